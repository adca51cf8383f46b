//! Breakdown scenarios with perf context-switch records as the OS source (where permitted).

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;
#[path = "support/breakdown.rs"]
mod scenarios;

#[test]
fn breakdowns_name_the_cause_with_perf() {
    scenarios::breakdowns_name_the_cause(true);
}
