//! Breakdown scenarios with perf turned off: the schedstat sampler alone, as on hosts where
//! `perf_event_open` is denied (Docker's default seccomp profile, perf_event_paranoid=3).

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;
#[path = "support/breakdown.rs"]
mod scenarios;

#[test]
fn breakdowns_name_the_cause_without_perf() {
    scenarios::breakdowns_name_the_cause(false);
}
