//! What Granular's runtime hooks cost per worker park and unpark: recording, and with
//! Granular off (`GRANULAR_ENABLED=false`), where each hook is a relaxed load and a branch.
//! Run: `cargo bench -p granular --bench hooks`; results in docs/benchmarks.md ("Disabled").

use criterion::{Criterion, criterion_group, criterion_main};
use granular::__internal::capture::{on_thread_park, on_thread_unpark};
use granular::__internal::recorder::FlightRecorder;
use granular::RecorderSize;

fn bench(c: &mut Criterion) {
    FlightRecorder::install(RecorderSize::default());
    on_thread_park(); // take this thread's ring outside the measurement
    let mut g = c.benchmark_group("hooks");
    g.bench_function("baseline (black_box only)", |b| {
        b.iter(|| std::hint::black_box(1u64))
    });
    g.bench_function("park + unpark, recording", |b| {
        b.iter(|| {
            on_thread_park();
            on_thread_unpark();
        })
    });
    // Turns Granular off for the rest of the process, as init() does with
    // GRANULAR_ENABLED=false (there the recorder is never installed at all).
    granular::install_recorder(&granular::Config {
        enabled: false,
        ..granular::Config::default()
    });
    g.bench_function("park + unpark, off", |b| {
        b.iter(|| {
            on_thread_park();
            on_thread_unpark();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
