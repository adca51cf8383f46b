//! Field values into the recorder, compactly and without allocating: numbers as one payload
//! record, strings (and `Debug` output, formatted into a stack buffer) as 15 bytes per record,
//! truncated at [`MAX_VALUE`] bytes. See [`Kind::Field`] for the layout.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use crate::recorder::{self, Kind};

/// Longest value kept, bytes; longer ones are truncated (at a character boundary).
pub(crate) const MAX_VALUE: usize = 512;

/// Value kinds on the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ValueKind {
    Bool = 1,
    I64 = 2,
    F64 = 3,
    Str = 4,
}

impl ValueKind {
    pub(crate) fn from_u8(b: u8) -> Option<ValueKind> {
        Some(match b {
            1 => ValueKind::Bool,
            2 => ValueKind::I64,
            3 => ValueKind::F64,
            4 => ValueKind::Str,
            _ => return None,
        })
    }
}

/// Number of payload records a field carries, from its first payload's `w1`.
pub(crate) fn payload_records(meta: u64) -> usize {
    let kind = ((meta >> 16) & 0xff) as u8;
    let len = (meta >> 24) as usize;
    match ValueKind::from_u8(kind) {
        Some(ValueKind::Str) => 1 + len.div_ceil(15),
        _ => 2,
    }
}

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

/// Writes every visited field as [`Kind::Field`] records owned by `owner`.
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

    fn number(&self, field: &Field, kind: ValueKind, bits: u64) {
        let name = field.name();
        let meta = name.len().min(0xffff) as u64 | (kind as u64) << 16;
        recorder::record_with_at(
            Kind::Field,
            self.ts,
            self.owner,
            &[(name.as_ptr() as u64, meta), (bits, 0)],
        );
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
        let bytes = &value.as_bytes()[..end];
        let meta =
            name.len().min(0xffff) as u64 | (ValueKind::Str as u64) << 16 | (end as u64) << 24;
        let chunks = bytes.chunks(15).map(|chunk| {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            let w0 = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            let w1 = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
            (w0, w1)
        });
        let payload = std::iter::once((name.as_ptr() as u64, meta)).chain(chunks);
        recorder::record_with_iter_at(Kind::Field, self.ts, self.owner, payload);
    }
}

/// Decodes the string bytes of a field's payload records (`w1` of each holds 7 bytes).
pub(crate) fn decode_string(records: &[(u64, u64)], len: usize) -> String {
    let mut bytes = Vec::with_capacity(records.len() * 15);
    for &(w0, w1) in records {
        bytes.extend_from_slice(&w0.to_le_bytes());
        bytes.extend_from_slice(&w1.to_le_bytes()[..7]);
    }
    bytes.truncate(len);
    String::from_utf8_lossy(&bytes).into_owned()
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
        self.number(field, ValueKind::Bool, u64::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.wanted(field) {
            return;
        }
        self.number(field, ValueKind::I64, value as u64);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.wanted(field) {
            return;
        }
        self.number(field, ValueKind::F64, value.to_bits());
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
