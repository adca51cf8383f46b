//! The span table: spans from their creation records, and what later records say about them
//! (ids, fields, events, close), from whichever ring holds those.

use super::super::idmap::IdMap;
use super::decoded::{Decoded, EventInfo, FieldValue, SpanInfo};
use crate::recorder::codec::span_ids::SpanIds;
use crate::recorder::codec::spans::SpanNew;

/// What the records that follow a span's creation say about it (its ids, fields, events and
/// close), gathered from every ring and applied once all are decoded. A span created on one
/// thread is entered, recorded, logged in and closed on whichever threads its future runs on,
/// and the rings are decoded one after another: applied as they came, the records on a ring
/// decoded before the one holding the span's creation found no span and were dropped, so the
/// span was taken for still open and not exported, and a trace none of whose spans closed on
/// its root's ring was lost whole (issue #17). Ids and closes are applied at once when the
/// span is known (the common case), kept for the end otherwise; fields and events are all
/// kept, and put in time order per span at the end: a field recorded again on another thread
/// keeps its last value.
#[derive(Default)]
pub(super) struct SpanUpdates {
    /// Ids and closes found before their span's creation (on a ring decoded earlier).
    early: Vec<(u64, Early)>,
    /// Every field recorded on a span: (span, time, name, value).
    fields: Vec<(u64, u64, &'static str, FieldValue)>,
    /// Every event inside a span: (span, event).
    events: Vec<(u64, EventInfo)>,
}

/// A record about a span found before the span's creation.
enum Early {
    Ids(SpanIds),
    End(u64),
}

/// Sets a span's ids; a local root's trace and remote parent only where the record has them.
fn set_ids(s: &mut SpanInfo, ids: &SpanIds) {
    s.otel_span_id = ids.span_id;
    if let Some(root) = ids.root {
        s.trace_id = Some(root.trace_id);
        s.remote_parent = root.remote_parent.or(s.remote_parent);
    }
}

impl SpanUpdates {
    /// A span created at `at` on the OS thread `tid`.
    pub(super) fn new_span(&mut self, d: &mut Decoded, new: &SpanNew, at: u64, tid: u64) {
        // A recorded child carries its span id here rather than in a SpanIds record.
        let otel_span_id = new.span_id.unwrap_or(0);
        if otel_span_id != 0 {
            d.by_otel_id.insert(otel_span_id, new.key);
        }
        let span = SpanInfo {
            name: new.meta.name(),
            meta: new.meta,
            parent: new.parent,
            otel_span_id,
            trace_id: None,
            remote_parent: None,
            start: at,
            end: None,
            tid,
            fields: Vec::new(),
            events: Vec::new(),
        };
        d.spans.insert(new.key, span);
    }

    /// The span's ids, now if its creation was decoded, else at [`Self::apply`].
    pub(super) fn ids(&mut self, d: &mut Decoded, ids: SpanIds) {
        d.by_otel_id.insert(ids.span_id, ids.key);
        match d.spans.get_mut(&ids.key) {
            Some(s) => set_ids(s, &ids),
            None => self.early.push((ids.key, Early::Ids(ids))),
        }
    }

    /// The span's close, now if its creation was decoded, else at [`Self::apply`].
    pub(super) fn end(&mut self, spans: &mut IdMap<u64, SpanInfo>, key: u64, at: u64) {
        match spans.get_mut(&key) {
            Some(s) => s.end = Some(at),
            None => self.early.push((key, Early::End(at))),
        }
    }

    /// A field recorded on the span `key` at `at`.
    pub(super) fn field(&mut self, key: u64, at: u64, name: &'static str, value: FieldValue) {
        self.fields.push((key, at, name, value));
    }

    /// An event inside the span `key`; returns where it is kept, for [`Self::event_field`].
    pub(super) fn event(&mut self, key: u64, event: EventInfo) -> usize {
        self.events.push((key, event));
        self.events.len() - 1
    }

    /// A field of the event [`Self::event`] returned `event` for.
    pub(super) fn event_field(&mut self, event: usize, name: &'static str, value: FieldValue) {
        if let Some((_, e)) = self.events.get_mut(event) {
            e.fields.push((name, value));
        }
    }

    /// Applies what is left to the spans whose creation was decoded; the rest (spans created
    /// before the window) is dropped.
    pub(super) fn apply(mut self, spans: &mut IdMap<u64, SpanInfo>) {
        for (key, early) in self.early {
            if let Some(s) = spans.get_mut(&key) {
                match early {
                    Early::Ids(ids) => set_ids(s, &ids),
                    Early::End(at) => s.end = Some(at),
                }
            }
        }
        // Stable: fields recorded together (one clock reading) keep their order.
        self.fields.sort_by_key(|f| (f.0, f.1));
        let fields = self.fields.into_iter().map(|(key, _, n, v)| (key, (n, v)));
        attach(spans, fields, |s, field| s.fields.push(field));
        self.events.sort_by_key(|e| (e.0, e.1.at));
        attach(spans, self.events, |s, event| s.events.push(event));
    }
}

/// Hands each `(span key, item)` to its span with `put`, in order (items sorted by key look each
/// span up once); items of spans not in `spans` are dropped.
fn attach<T>(
    spans: &mut IdMap<u64, SpanInfo>,
    items: impl IntoIterator<Item = (u64, T)>,
    mut put: impl FnMut(&mut SpanInfo, T),
) {
    let mut span: Option<(u64, Option<&mut SpanInfo>)> = None;
    for (key, item) in items {
        if span.as_ref().is_none_or(|(k, _)| *k != key) {
            span = Some((key, spans.get_mut(&key)));
        }
        if let Some((_, Some(s))) = &mut span {
            put(s, item);
        }
    }
}
