//! Every worker of a runtime records, however many workers it has: worker rings shrink so that
//! all of them fit in the recorder's memory. Before, each worker took a full-size ring and the
//! workers past the budget (the eighth, with the defaults) recorded nothing, silently: in
//! `violations` mode their violating traces were never exported.

use std::time::Duration;

use granular::__internal::recorder::FlightRecorder;
use granular::RecorderSize;

#[test]
fn every_worker_of_a_wide_runtime_gets_a_ring() {
    // 8 workers of 1 MiB rings would need twice this budget.
    let size = RecorderSize {
        total_bytes: 4 << 20,
        ring_bytes: 1 << 20,
    };
    let recorder = FlightRecorder::install(size);
    let workers = 8;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).enable_all();
    let rt = granular::instrument_runtime(&mut builder)
        .build()
        .expect("runtime builds");
    rt.block_on(async {
        // Work that wakes every worker; each parks between sleeps and records the park.
        let tasks: Vec<_> = (0..4 * workers)
            .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(20))))
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    // Idle workers park (and record it) within the runtime's first milliseconds.
    std::thread::sleep(Duration::from_millis(100));
    drop(rt);
    assert_eq!(
        recorder.refused_threads(),
        0,
        "a thread was refused a ring; dropped: {:?}",
        recorder.counters().dropped
    );
    assert!(
        recorder.rings_in_use() >= workers,
        "{} rings for {workers} workers",
        recorder.rings_in_use()
    );
    assert_eq!(size.worker_ring_bytes(workers), 256 << 10);
}

#[test]
fn default_worker_rings_shrink_by_powers_of_two_as_workers_grow() {
    let size = RecorderSize::default();
    let mib = |n: usize| n << 20;
    for (workers, ring) in [
        (1, mib(16)),
        (6, mib(16)),
        (7, mib(8)),
        (12, mib(8)),
        (16, mib(4)),
        (64, mib(1)),
        (100_000, 64 << 10),
    ] {
        assert_eq!(size.worker_ring_bytes(workers), ring, "{workers} workers");
    }
    // A ring asked smaller than the fair share stays as asked.
    let small = RecorderSize {
        ring_bytes: 32 << 10,
        ..size
    };
    assert_eq!(small.worker_ring_bytes(2), 32 << 10);
}
