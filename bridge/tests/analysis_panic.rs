//! A panic inside analysis (injected for one span name) is caught and counted: that span is
//! exported with its SLO judgement and `granular.skipped=analysis_error` but no breakdown, and
//! the analyzer goes on analysing the next violating span in full.

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;

use std::sync::atomic::Ordering;

use granular::{ArtifactSink, Config, SloRules};

#[test]
fn a_panic_in_analysis_costs_one_span_its_breakdown_and_nothing_else() {
    let cfg = Config {
        slo: SloRules::parse("*=5ms").unwrap(),
        artifacts: ArtifactSink::None,
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let (exporter, provider, stats) = in_memory::install_counted(cfg, &sources);
    granular::__internal::faults::panic_in_analysis_of(Some("GET /boom"));
    let attr = in_memory::sleep_spans(&exporter, &provider, &["GET /boom", "GET /after"]);
    granular::__internal::faults::panic_in_analysis_of(None);

    assert_eq!(
        attr("GET /boom", "granular.skipped").as_deref(),
        Some("analysis_error")
    );
    assert_eq!(
        attr("GET /boom", "granular.slo.violated").as_deref(),
        Some("true")
    );
    assert_eq!(attr("GET /boom", "granular.cause"), None);
    assert_eq!(
        attr("GET /after", "granular.cause").as_deref(),
        Some("idle")
    );
    assert_eq!(attr("GET /after", "granular.skipped"), None);
    assert_eq!(stats.analysis_errors.load(Ordering::Relaxed), 1);
}
