//! The recorder's own cost: one event, a poll's worth of events, against doing nothing.
//! Run: `cargo bench -p granular --bench recorder`; results in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use granular::__internal::recorder::{FlightRecorder, Kind, record};
use granular::RecorderSize;

fn bench(c: &mut Criterion) {
    FlightRecorder::install(RecorderSize::default());
    record(Kind::Unpark, 0); // take this thread's ring outside the measurement
    let mut g = c.benchmark_group("recorder");
    g.bench_function("baseline (black_box only)", |b| {
        b.iter(|| std::hint::black_box(1u64))
    });
    g.bench_function("clock::now", |b| b.iter(granular::__internal::clock::now));
    g.bench_function("record one event", |b| {
        b.iter(|| record(Kind::PollStart, std::hint::black_box(42)))
    });
    g.bench_function("poll start + end", |b| {
        b.iter(|| {
            record(Kind::PollStart, std::hint::black_box(42));
            record(Kind::PollEnd, 0);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
