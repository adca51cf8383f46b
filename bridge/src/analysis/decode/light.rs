//! What a light decode keeps: the spans of the traces asked for, found by key, by local root
//! or by OpenTelemetry span id.

use super::super::idmap::IdSet;
use crate::recorder::RecorderSnapshot;
use crate::recorder::codec::spans::SpanNew;
use crate::recorder::codec::{self, Event};

/// A set of span keys with a 4,096-bit filter in front: most records of a busy ring belong to
/// other spans, and the bitmap (one L1-resident word) turns them away before a hash lookup.
pub(super) struct KeyFilter<'a> {
    bits: [u64; 64],
    keys: &'a IdSet<u64>,
}

impl<'a> KeyFilter<'a> {
    pub(super) fn new(keys: &'a IdSet<u64>) -> Self {
        let mut bits = [0u64; 64];
        for &k in keys {
            let b = Self::bit(k);
            bits[b / 64] |= 1 << (b % 64);
        }
        KeyFilter { bits, keys }
    }

    fn bit(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
    }

    #[inline]
    pub(super) fn contains(&self, key: u64) -> bool {
        let b = Self::bit(key);
        self.bits[b / 64] & (1 << (b % 64)) != 0 && self.keys.contains(&key)
    }
}

/// The keys of the spans whose OpenTelemetry span id is in `otel_ids`, from their id records
/// (or, for children in span-recording mode, their creation).
pub(super) fn keys_by_otel_id(snap: &RecorderSnapshot, otel_ids: &IdSet<u64>) -> Vec<u64> {
    let mut keys = Vec::new();
    for t in &snap.threads {
        for (i, e) in codec::events(t.records()).enumerate() {
            crate::background::every(i);
            let (key, id) = match e.event {
                Event::SpanIds(ids) => (ids.key, ids.span_id),
                Event::SpanNew(SpanNew {
                    key,
                    span_id: Some(id),
                    ..
                }) => (key, id),
                _ => continue,
            };
            if otel_ids.contains(&id) {
                keys.push(key);
            }
        }
    }
    keys
}

/// `roots` and every span created beneath them in `snap`. Parents are created before their
/// children, so one pass finds a ring's own chains; passes repeat while spans on one ring
/// turn out to be children of spans found on another.
pub(super) fn descendants(snap: &RecorderSnapshot, roots: &[u64]) -> IdSet<u64> {
    let mut keys: IdSet<u64> = roots.iter().copied().collect();
    loop {
        let before = keys.len();
        for t in &snap.threads {
            for (i, e) in codec::events(t.records()).enumerate() {
                crate::background::every(i);
                match e.event {
                    Event::SpanNew(new) if keys.contains(&new.parent) => keys.insert(new.key),
                    _ => false,
                };
            }
        }
        if keys.len() == before {
            return keys;
        }
    }
}
