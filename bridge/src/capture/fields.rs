//! Field values into the recorder, compactly and without allocating: numbers as one payload
//! record, strings (and `Debug` output, formatted into a stack buffer) as 15 bytes per record,
//! truncated at [`MAX_VALUE`] bytes. See [`codec::fields`](crate::recorder::codec::fields)
//! for the layout.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use crate::recorder;
use crate::recorder::codec::fields::{self as codec, Text, Value};

/// Longest value kept, bytes; longer ones are truncated (at a character boundary).
pub(crate) const MAX_VALUE: usize = 512;

/// What the span recorder needs to know about a few reserved fields while recording.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Specials {
    /// `otel.status_code = "ERROR"` was recorded.
    pub error: bool,
    /// `http.route`, inline, truncated at 64 bytes.
    pub route: Option<InlineStr>,
    /// `otel.name` (the span's exported name), inline, truncated at 64 bytes.
    pub name: Option<InlineStr>,
}

/// A short string kept without allocating (truncated at 64 bytes, on a character boundary).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InlineStr {
    bytes: [u8; 64],
    len: u8,
}

impl InlineStr {
    pub(crate) fn new(s: &str) -> Self {
        let mut len = s.len().min(64);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; 64];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        InlineStr {
            bytes,
            len: len as u8,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// Writes every visited field as [`codec::Field`] records owned by `owner`.
#[derive(Debug)]
pub(crate) struct FieldWriter {
    owner: u64,
    /// Write only this field (the others are visited and skipped).
    only: Option<&'static str>,
    /// The time the fields are stamped with: that of the record they belong to (the span's
    /// creation, the event), read once for all of them. Nothing reads a field's own time,
    /// and the ring's times stay in order: the owner's record was written just before.
    ts: u64,
    pub specials: Specials,
}

impl FieldWriter {
    /// Fields of `owner`, stamped `ts` (clock ticks).
    pub(crate) fn new(owner: u64, ts: u64) -> Self {
        FieldWriter {
            owner,
            only: None,
            ts,
            specials: Specials::default(),
        }
    }

    /// A writer that keeps just `name` (beside tracing-opentelemetry, only `otel.name` is
    /// recorded: culprits and timelines show the name users see in Jaeger).
    pub(crate) fn only(owner: u64, ts: u64, name: &'static str) -> Self {
        FieldWriter {
            only: Some(name),
            ..FieldWriter::new(owner, ts)
        }
    }

    fn wanted(&self, field: &Field) -> bool {
        self.only.is_none_or(|n| n == field.name())
    }

    fn write(&self, field: &Field, value: Value<'_>) {
        let owner = self.owner;
        let name = field.name();
        recorder::write_at(self.ts, &codec::Field { owner, name, value });
    }

    fn string(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if name == "otel.status_code" && value.eq_ignore_ascii_case("error") {
            self.specials.error = true;
        }
        match name {
            "http.route" => self.specials.route = Some(InlineStr::new(value)),
            "otel.name" => self.specials.name = Some(InlineStr::new(value)),
            _ => {}
        }
        let mut end = value.len().min(MAX_VALUE);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        self.write(field, Value::Str(Text::Given(&value[..end])));
    }
}

/// A `fmt::Write` into a fixed buffer that drops what does not fit.
struct StackBuf {
    buf: [u8; MAX_VALUE],
    len: usize,
}

impl StackBuf {
    fn as_str(&self) -> &str {
        // SAFETY: `write_str` only appends whole `&str`s, or their prefixes cut at a character
        // boundary, so the bytes written are UTF-8 (checking them again cost ~1.5 % of a
        // request's spans).
        unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_VALUE - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

impl Visit for FieldWriter {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.wanted(field) {
            return;
        }
        self.write(field, Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.wanted(field) {
            return;
        }
        self.write(field, Value::I64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.wanted(field) {
            return;
        }
        self.write(field, Value::F64(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.wanted(field) {
            return;
        }
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.wanted(field) {
            return;
        }
        let mut buf = StackBuf {
            buf: [0; MAX_VALUE],
            len: 0,
        };
        let _ = write!(buf, "{value:?}");
        self.string(field, buf.as_str());
    }
}
