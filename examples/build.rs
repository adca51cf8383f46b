//! Declares `granular_compare`, this workspace's opt-in cfg for the comparison telemetry stacks
//! (`DEMO_TELEMETRY=dial9|console`), so rustc's cfg check knows it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(granular_compare)");
}
