//! `granular.data_loss` on exactly the span whose records a full ring overwrote
//! (`GRANULAR_SAMPLE=all`, the composed stack over an in-memory exporter): one worker with a
//! 4 KiB ring (256 records) records a flood of short spans, dozens of rings' worth, while the
//! violating span `GET /flooded` is open; `GET /after`, violating too, begins on the same
//! worker once the flood is over. The first is exported with `granular.data_loss=true`, the
//! second with `false` and its usual breakdown (idle: it awaits a timer), and the recorder
//! counts the overwrites.

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;

use std::time::Duration;

use granular::__internal::recorder::{FlightRecorder, RECORD_BYTES};
use granular::{ArtifactSink, Config, RecorderSize, SloRules};
use opentelemetry_sdk::trace::SpanData;
use tracing::Instrument as _;

/// A worker's ring: 256 records.
const RING_BYTES: usize = 4 << 10;
/// Short spans recorded while `GET /flooded` is open: four records or more each, dozens of
/// rings.
const FLOOD: usize = 5_000;
/// How long `GET /after` awaits its timer.
const AFTER: Duration = Duration::from_millis(20);

#[test]
fn a_flood_marks_the_span_it_overwrote_and_not_the_one_after_it() {
    let cfg = Config {
        slo: SloRules::parse("GET /flooded=5ms,GET /after=5ms,*=10s").unwrap(),
        artifacts: ArtifactSink::None,
        recorder: RecorderSize {
            total_bytes: 1 << 20,
            ring_bytes: RING_BYTES,
        },
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let (exporter, provider) = in_memory::install(cfg, &sources);
    let rt = composed::runtime(1);
    rt.block_on(async {
        // On the worker: the runtime's one worker records both requests and the flood.
        tokio::spawn(async {
            async {
                for i in 0..FLOOD {
                    tracing::info_span!("flood", i).in_scope(|| {});
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            .instrument(tracing::info_span!("request", otel.name = "GET /flooded"))
            .await;
            tokio::time::sleep(AFTER)
                .instrument(tracing::info_span!("request", otel.name = "GET /after"))
                .await;
        })
        .await
        .unwrap();
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let overwritten = FlightRecorder::get().unwrap().counters().overwritten;

    let flooded = attrs(&spans, "GET /flooded");
    let after = attrs(&spans, "GET /after");
    println!(
        "{overwritten} records overwritten; GET /flooded: granular.data_loss={:?}; GET /after: \
         granular.data_loss={:?}, cause {:?}, idle {:?} µs",
        flooded("granular.data_loss"),
        after("granular.data_loss"),
        after("granular.cause"),
        after("granular.time.idle_us"),
    );
    let ring_records = (RING_BYTES / RECORD_BYTES) as u64;
    assert!(
        overwritten >= 10 * ring_records,
        "the flood overwrote {overwritten} records, not ten rings of {ring_records}"
    );
    assert_eq!(flooded("granular.data_loss").as_deref(), Some("true"));
    assert!(
        flooded("granular.cause").is_some(),
        "a breakdown all the same"
    );
    assert_eq!(after("granular.data_loss").as_deref(), Some("false"));
    assert_eq!(after("granular.cause").as_deref(), Some("idle"));
    let idle_us: u64 = after("granular.time.idle_us").unwrap().parse().unwrap();
    assert!(
        idle_us >= AFTER.as_micros() as u64 * 3 / 4,
        "GET /after awaited {AFTER:?}, {idle_us} µs of it idle"
    );
    assert_eq!(after("granular.skipped"), None);
}

/// Span `name`'s attributes, as text, by key.
fn attrs<'a>(spans: &'a [SpanData], name: &str) -> impl Fn(&str) -> Option<String> + 'a {
    let span = spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} not exported"));
    move |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }
}
