//! The artifact linked from a violating span (`granular.artifact`): its window drawn as a
//! Perfetto timeline ([`draw()`]), kept by an [`ArtifactStore`] ([`store`]), within
//! `GRANULAR_ARTIFACTS_PER_SEC`, slowest spans first.

pub(crate) mod draw;
pub(crate) mod store;

use std::sync::atomic::Ordering;

use opentelemetry_sdk::trace::SpanData;

use super::rate::PerSecond;
use crate::analysis::request::RequestWork;
use crate::analysis::{Breakdown, Decoded};
use crate::slo::{Judgement, Stats};
use crate::timeline::encode_perfetto;

pub(crate) use draw::draw;
pub(crate) use store::{ArtifactStore, DirStore, OtlpArtifacts, Unusable};

/// The analyzer's artifacts: where they go, and how many it may still build this second.
#[derive(Debug)]
pub(super) struct Artifacts {
    store: Option<Box<dyn ArtifactStore>>,
    per_sec: u32,
    this_second: PerSecond,
}

impl Artifacts {
    /// Artifacts put in `store` (none without one), at most `per_sec` a second.
    pub(super) fn new(store: Option<Box<dyn ArtifactStore>>, per_sec: u32) -> Self {
        Artifacts {
            store,
            per_sec,
            this_second: PerSecond::default(),
        }
    }

    /// Whether artifacts are kept at all (else a span without one needs no reason why).
    pub(super) fn enabled(&self) -> bool {
        self.store.is_some()
    }

    /// Which spans of `batch` get an artifact in the second `now`: violating ones (not
    /// baseline samples: their timelines would cost storage for what is, by definition,
    /// normal), slowest first, within the per-second limit.
    pub(super) fn choose(&mut self, batch: &[(SpanData, Judgement)], now: u64) -> Vec<bool> {
        let mut chosen = vec![false; batch.len()];
        let mut violating: Vec<usize> = (0..batch.len()).filter(|i| batch[*i].1.violated).collect();
        let length = |i: &usize| {
            let s = &batch[*i].0;
            s.end_time.duration_since(s.start_time).unwrap_or_default()
        };
        violating.sort_by_key(|i| std::cmp::Reverse(length(i)));
        for i in violating {
            if !self.take_one(now) {
                break;
            }
            chosen[i] = true;
        }
        chosen
    }

    /// Whether one more artifact fits in the second `now` (counted as taken if so).
    pub(super) fn take_one(&mut self, now: u64) -> bool {
        if self.store.is_none() || self.this_second.room(now, self.per_sec) == 0 {
            return false;
        }
        self.this_second.take();
        true
    }

    /// Draws `b`'s window and puts it in the store; returns the link for `granular.artifact`,
    /// or `Err` without a store or when the store failed (counted in `artifact_errors`, the
    /// first logged; the span says `granular.artifact.skipped=store_error`).
    pub(super) fn put(
        &self,
        d: &Decoded,
        b: &Breakdown,
        trace_id: u128,
        span_id: u64,
        stats: &Stats,
    ) -> Result<String, ()> {
        self.store.as_ref().ok_or(())?;
        self.keep(timeline(d, b, trace_id, span_id), trace_id, span_id, stats)
    }

    /// Puts `bytes`, a [`timeline`], in the store, as [`Self::put`] does.
    pub(super) fn keep(
        &self,
        bytes: Vec<u8>,
        trace_id: u128,
        span_id: u64,
        stats: &Stats,
    ) -> Result<String, ()> {
        let store = self.store.as_ref().ok_or(())?;
        if let Some(o) = super::observer::observer() {
            o.timeline(trace_id, span_id, &bytes);
        }
        let id = artifact_id(trace_id, span_id);
        store.put(&id, trace_id, span_id, bytes).map_err(|e| {
            if stats.artifact_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("granular: {e}");
            }
        })
    }
}

/// `b`'s window of `d` drawn as a Perfetto timeline: the bytes of an artifact.
pub(super) fn timeline(d: &Decoded, b: &Breakdown, trace_id: u128, span_id: u64) -> Vec<u8> {
    let work = d
        .by_otel_id
        .get(&span_id)
        .map(|k| RequestWork::collect(d, *k))
        .unwrap_or_default();
    encode_perfetto(&draw(d, b, &work, trace_id, span_id))
}

/// The artifact's id: trace and span id, so it is unique and easy to find by hand.
pub(crate) fn artifact_id(trace_id: u128, span_id: u64) -> String {
    format!("{trace_id:032x}-{span_id:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::testing::span;

    #[derive(Debug)]
    struct Nowhere;

    impl ArtifactStore for Nowhere {
        fn put(&self, _: &str, _: u128, _: u64, _: Vec<u8>) -> Result<String, String> {
            Ok(String::new())
        }
    }

    /// Timelines cost storage, so they go to violating spans only, the slowest
    /// first, at most `GRANULAR_ARTIFACTS_PER_SEC` a second.
    #[test]
    fn artifacts_go_to_the_slowest_violating_spans_within_the_limit() {
        let violated = Judgement {
            violated: true,
            ..Judgement::default()
        };
        let baseline = Judgement {
            baseline: true,
            ..Judgement::default()
        };
        let batch = [
            (span(1, 1, 0, "fast", 5), violated),
            (span(2, 2, 0, "slow baseline", 50), baseline),
            (span(3, 3, 0, "slowest", 20), violated),
            (span(4, 4, 0, "slow", 10), violated),
        ];
        let mut a = Artifacts::new(Some(Box::new(Nowhere)), 2);
        assert_eq!(a.choose(&batch, 7), [false, false, true, true]);
        assert_eq!(
            a.choose(&batch, 7),
            [false; 4],
            "this second's two are taken"
        );
        assert_eq!(
            a.choose(&batch, 8),
            [false, false, true, true],
            "the next second"
        );
        let mut none = Artifacts::new(None, 2);
        assert_eq!(none.choose(&batch, 9), [false; 4], "no store, no artifact");
    }
}
