//! The recorder's own cost: one event, a poll's worth of events, against doing nothing.
//! Run: `cargo bench -p granular --bench recorder`; results in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use granular::__internal::recorder::codec::tasks::{PollEnd, PollStart};
use granular::__internal::recorder::codec::threads::Unpark;
use granular::__internal::recorder::{FlightRecorder, write};
use granular::RecorderSize;

fn bench(c: &mut Criterion) {
    FlightRecorder::install(RecorderSize::default());
    write(&Unpark); // take this thread's ring outside the measurement
    let mut g = c.benchmark_group("recorder");
    g.bench_function("baseline (black_box only)", |b| {
        b.iter(|| std::hint::black_box(1u64))
    });
    g.bench_function("clock::now", |b| b.iter(granular::__internal::clock::now));
    g.bench_function("record one event", |b| {
        b.iter(|| {
            write(&PollStart {
                task: std::hint::black_box(42),
                counters: None,
            })
        })
    });
    g.bench_function("poll start + end", |b| {
        b.iter(|| {
            write(&PollStart {
                task: std::hint::black_box(42),
                counters: None,
            });
            write(&PollEnd {
                schedule_latency_ns: 0,
                counters: None,
            });
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
