//! Decoded snapshots built by hand, for unit tests of what reads them (the analysis, the
//! artifact's drawing). Every decoded type is built here and only here, so a field the decoder
//! gains changes this file, not every test.

use super::decode::{Decoded, Entry, FieldValue, Poll, SpanInfo, ThreadActivity};
use super::idmap::IdMap;
use crate::clock::Calibration;

/// A snapshot holding `threads` and nothing else: no spans, tasks, jobs or OS records, nothing
/// counted or observed, taken at time 0. Its workers are the threads with a worker index.
pub(crate) fn decoded(threads: Vec<ThreadActivity>) -> Decoded {
    let worker_tids = threads
        .iter()
        .filter(|t| t.worker.is_some())
        .map(|t| t.tid)
        .collect();
    Decoded {
        spans: IdMap::default(),
        by_otel_id: IdMap::default(),
        tasks: IdMap::default(),
        jobs: IdMap::default(),
        threads,
        os_samples: IdMap::default(),
        off_cpu: IdMap::default(),
        waits: IdMap::default(),
        page_faults: IdMap::default(),
        alive_tasks: Vec::new(),
        worker_tids,
        alloc_counted: false,
        threads_observed: false,
        lost_records: 0,
        complete_since: None,
        taken_at: 0,
        calibration: Calibration::identity(0),
        light: false,
        thread_names: IdMap::default(),
        children: IdMap::default(),
        spawned_in_span: IdMap::default(),
        spawned_by_task: IdMap::default(),
    }
}

/// Thread `tid`'s activity, its span entries sorted and indexed as the decoder leaves them.
pub(crate) fn thread(
    tid: u64,
    worker: Option<usize>,
    polls: Vec<Poll>,
    mut entries: Vec<Entry>,
    parks: Vec<(u64, u64)>,
) -> ThreadActivity {
    entries.sort_by_key(|e| e.start);
    let mut reach = 0;
    let entry_reach = entries
        .iter()
        .map(|e| {
            reach = reach.max(e.end);
            reach
        })
        .collect();
    ThreadActivity {
        tid,
        worker,
        polls,
        entries,
        parks,
        entry_reach,
        ..ThreadActivity::default()
    }
}

/// A finished poll of `task` over `[start, end]` (ns), without wake latency or counters.
pub(crate) fn poll(task: u64, start: u64, end: u64) -> Poll {
    Poll {
        task,
        start,
        end,
        sched_latency: 0,
        alloc: None,
        open: false,
    }
}

/// An entry of span `span` over `[start, end]` (ns), without counters.
pub(crate) fn entry(span: u64, start: u64, end: u64) -> Entry {
    Entry {
        span,
        start,
        end,
        alloc: None,
    }
}

/// Adds span `key`, a local root named `name` (its `otel.name`) on trace `trace`, OTel id
/// `100 + key`.
pub(crate) fn add_root_span(d: &mut Decoded, key: u64, name: &'static str, trace: u128) {
    let meta = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        tracing::info_span!("span", otel.name = name)
            .metadata()
            .expect("enabled under the registry")
    });
    d.spans.insert(
        key,
        SpanInfo {
            name: meta.name(),
            meta,
            parent: 0,
            otel_span_id: 100 + key,
            trace_id: Some(trace),
            remote_parent: None,
            start: 0,
            end: None,
            tid: 0,
            fields: vec![("otel.name", FieldValue::Str(name.into()))],
            events: Vec::new(),
        },
    );
}
