//! Field values (span attributes and event fields) and the `tracing` events inside spans.
//!
//! ```text
//!  Field  header: owning span key (0: a field of the event written just before on this thread)
//!         payload 1: w0 = address of the field name (`&'static str`),
//!                    w1 = name length (16 bits) | value kind << 16 | string length << 24
//!         then one payload with the number (w0 = bool, i64 or f64 bits), or ⌈length / 15⌉
//!         payloads with a string's UTF-8 bytes, 8 in w0 and 7 in w1 each
//!  Event  header: span key     payload: w0 = `&'static Metadata` address
//!         its fields follow as Field records of owner 0
//! ```

use tracing::Metadata;

use super::{Codec, Kind, Record, Ring, payloads};

/// String bytes a payload record carries: 8 in w0, 7 in w1 (its top byte is the kind).
pub(super) const TEXT_BYTES_PER_RECORD: usize = 15;
/// Of those, the bytes in w1.
const TEXT_BYTES_IN_W1: usize = 7;

/// Value kinds on the ring (see [`Layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ValueKind {
    Bool = 1,
    I64 = 2,
    F64 = 3,
    Str = 4,
}

impl ValueKind {
    /// The kind written as `b`; `None` for bytes no writer produces.
    fn from_u8(b: u8) -> Option<ValueKind> {
        [
            ValueKind::Bool,
            ValueKind::I64,
            ValueKind::F64,
            ValueKind::Str,
        ]
        .into_iter()
        .find(|k| *k as u8 == b)
    }
}

/// Width of [`Layout::name_len`] in the layout word: longer names are cut to what fits.
const NAME_LEN_BITS: u32 = 16;
/// Where [`Layout::kind`] (8 bits) starts in the layout word.
const VALUE_KIND_SHIFT: u32 = NAME_LEN_BITS;
/// Where [`Layout::text_len`] (32 bits) starts in the layout word.
const TEXT_LEN_SHIFT: u32 = VALUE_KIND_SHIFT + 8;
/// Longest name length the layout word holds.
const MAX_NAME_LEN: usize = (1 << NAME_LEN_BITS) - 1;

/// What the name payload's w1 tells a reader: the name's length, the value's kind and, for a
/// string, its length, which together give the number of payloads that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    name_len: usize,
    kind: ValueKind,
    /// 0 unless `kind` is [`ValueKind::Str`].
    text_len: usize,
}

impl Layout {
    fn to_word(self) -> u64 {
        self.name_len as u64
            | (self.kind as u64) << VALUE_KIND_SHIFT
            | (self.text_len as u64) << TEXT_LEN_SHIFT
    }

    /// `None` for a value kind no writer produces.
    fn from_word(word: u64) -> Option<Layout> {
        Some(Layout {
            name_len: (word & MAX_NAME_LEN as u64) as usize,
            kind: ValueKind::from_u8((word >> VALUE_KIND_SHIFT) as u8)?,
            text_len: (word >> TEXT_LEN_SHIFT) as usize,
        })
    }

    /// Payload records the field takes, the name's included.
    fn payloads(self) -> usize {
        match self.kind {
            ValueKind::Str => 1 + self.text_len.div_ceil(TEXT_BYTES_PER_RECORD),
            _ => 2,
        }
    }
}

/// A payload record carrying up to [`TEXT_BYTES_PER_RECORD`] bytes of a string.
pub(super) fn text_record(chunk: &[u8]) -> Record {
    let mut b = [0u8; 16];
    b[..chunk.len()].copy_from_slice(chunk);
    let [w0, w1] = [&b[..8], &b[8..]].map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    Record::payload(w0, w1)
}

/// The string bytes a payload record carries ([`text_record`] read back).
fn text_bytes(r: &Record) -> impl Iterator<Item = u8> {
    let [w0, w1] = [r.w0.to_le_bytes(), r.w1.to_le_bytes()];
    w0.into_iter().chain(w1.into_iter().take(TEXT_BYTES_IN_W1))
}

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A boolean.
    Bool(bool),
    /// A signed integer (unsigned ones above `i64::MAX` are written as text).
    I64(i64),
    /// A float.
    F64(f64),
    /// A string.
    Str(Text<'a>),
}

/// A string value: as given to the encoder, or as its payload records hold it (read without a
/// copy until asked for). Two texts are equal when their bytes are.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    /// As given to the encoder.
    Given(&'a str),
    /// As the payload records hold it.
    Recorded {
        /// ⌈len / 15⌉ payload records, 15 bytes each.
        chunks: &'a [Record],
        /// Its length in bytes.
        len: usize,
    },
}

impl Text<'_> {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Text::Given(s) => s.len(),
            Text::Recorded { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text's bytes.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let (given, chunks) = match *self {
            Text::Given(s) => (s.as_bytes(), &[][..]),
            Text::Recorded { chunks, .. } => (&[][..], chunks),
        };
        let recorded = chunks.iter().flat_map(text_bytes);
        given.iter().copied().chain(recorded).take(self.len())
    }

    /// The text as a `String` (invalid UTF-8, which no writer produces, replaced).
    pub fn to_string_lossy(&self) -> String {
        match self {
            Text::Given(s) => (*s).to_owned(),
            Text::Recorded { chunks, len } => {
                let mut bytes = Vec::with_capacity(chunks.len() * TEXT_BYTES_PER_RECORD);
                bytes.extend(chunks.iter().flat_map(text_bytes));
                bytes.truncate(*len);
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

/// A field value recorded on a span, or on the event written just before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    /// The owning span's key; 0 for a field of the [`TracingEvent`] written just before it on
    /// the same thread.
    pub owner: u64,
    /// At most 65,535 bytes of it are written.
    pub name: &'static str,
    /// Its value.
    pub value: Value<'a>,
}

impl<'a> Codec<'a> for Field<'a> {
    const KIND: Kind = Kind::Field;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let (kind, number, text_len) = match self.value {
            Value::Bool(b) => (ValueKind::Bool, u64::from(b), 0),
            Value::I64(i) => (ValueKind::I64, i as u64, 0),
            Value::F64(f) => (ValueKind::F64, f.to_bits(), 0),
            Value::Str(t) => (ValueKind::Str, 0, t.len()),
        };
        let layout = Layout {
            name_len: self.name.len().min(MAX_NAME_LEN),
            kind,
            text_len,
        };
        ring.push(Record::header(Self::KIND, ts, self.owner));
        ring.push(Record::payload(self.name.as_ptr() as u64, layout.to_word()));
        match self.value {
            Value::Str(Text::Given(s)) => {
                for chunk in s.as_bytes().chunks(TEXT_BYTES_PER_RECORD) {
                    ring.push(text_record(chunk));
                }
            }
            Value::Str(Text::Recorded { chunks, .. }) => {
                for r in chunks {
                    ring.push(Record::payload(r.w0, r.arg()));
                }
            }
            _ => ring.push(Record::payload(number, 0)),
        }
    }

    #[inline]
    fn decode(owner: u64, rest: &'a [Record]) -> Option<(Self, usize)> {
        let first = payloads(rest, 1)?[0];
        let layout = Layout::from_word(first.arg())?;
        let n = layout.payloads();
        let p = payloads(rest, n)?;
        // SAFETY: w0 is the address of a field name, a `&'static str` of at least `layout.name_len`
        // bytes, written by `encode` (the only writer of this kind); the record passed the
        // payload-kind and the ring's tearing checks.
        let name = unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                first.w0 as *const u8,
                layout.name_len,
            ))
        };
        let value = match layout.kind {
            ValueKind::Bool => Value::Bool(p[1].w0 != 0),
            ValueKind::I64 => Value::I64(p[1].w0 as i64),
            ValueKind::F64 => Value::F64(f64::from_bits(p[1].w0)),
            ValueKind::Str => Value::Str(Text::Recorded {
                chunks: &p[1..],
                len: layout.text_len,
            }),
        };
        Some((Field { owner, name, value }, n))
    }
}

/// A `tracing` event inside a span (it becomes a span event); its fields follow it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracingEvent {
    /// The key of the span it happened in.
    pub span: u64,
    /// Its callsite: name, target, level.
    pub meta: &'static Metadata<'static>,
}

impl Codec<'_> for TracingEvent {
    const KIND: Kind = Kind::Event;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        ring.push(Record::header(Self::KIND, ts, self.span));
        ring.push(Record::payload(self.meta as *const _ as u64, 0));
    }

    #[inline]
    fn decode(span: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        // SAFETY: as for `SpanNew`: the address of a `&'static Metadata` written by `encode`.
        let meta = unsafe { &*(p.w0 as *const Metadata<'static>) };
        Some((TracingEvent { span, meta }, 1))
    }
}
