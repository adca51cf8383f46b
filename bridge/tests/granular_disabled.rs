//! `GRANULAR_ENABLED=false` turns Granular off in the whole process: no recorder memory, no
//! sampler or analyzer thread, no perf event, every source inactive with the reason, and spans
//! exported untouched (checked on a loopback OTLP receiver). `init()` also goes on past a bad
//! value, with a warning.
//!
//! Pins issue #17: `GRANULAR_ENABLED=false` left the hooks, the recorder and the samplers
//! running (the OS sampler thread ran, every source reported active).

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/switched_off.rs"]
mod switched_off;

use std::time::Duration;

use tracing::Instrument as _;

#[test]
fn granular_enabled_false_turns_everything_off_and_exports_spans_untouched() {
    // With Granular on, every span would violate and carry granular.* attributes.
    let (receiver, rt) = switched_off::start(&[
        ("GRANULAR_ENABLED", "false"),
        ("GRANULAR_SLO", "*=0ms"),
        ("GRANULAR_DETAIL", "verbose"),
    ]);
    let granular = rt.block_on(async {
        let granular = granular::init().expect("a bad value is a warning, not an error");
        for i in 0..20 {
            async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tokio::spawn(async { tokio::task::yield_now().await })
                    .await
                    .unwrap();
                granular::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
                    .await
                    .unwrap();
            }
            .instrument(tracing::info_span!("request", i))
            .await;
        }
        granular
    });
    let warnings: Vec<String> = granular
        .config_warnings()
        .iter()
        .map(|w| w.warning())
        .collect();
    assert_eq!(
        warnings,
        [
            "GRANULAR_DETAIL=\"verbose\" is invalid: expected summary, events or spans; using events instead"
        ]
    );
    switched_off::assert_nothing_runs(&granular, &["granular-"], "GRANULAR_ENABLED=false");

    rt.block_on(async { drop(granular) });
    let got = receiver.wait_for(1, Duration::from_secs(10));
    let spans: Vec<_> = got
        .iter()
        .flat_map(|r| &r.decoded.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(
        spans.iter().filter(|s| s.name == "request").count(),
        20,
        "spans exported: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for span in &spans {
        let granular_keys: Vec<&str> = span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .filter(|k| k.starts_with("granular."))
            .collect();
        assert!(granular_keys.is_empty(), "{}: {granular_keys:?}", span.name);
        assert!(span.events.is_empty(), "{}: span events added", span.name);
    }
    let resource_keys: Vec<&str> = got
        .iter()
        .flat_map(|r| &r.decoded.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .map(|kv| kv.key.as_str())
        .collect();
    assert!(
        !resource_keys.contains(&"granular.sources"),
        "{resource_keys:?}"
    );
}
