//! Every listener the project starts binds loopback by default: the demo service, Jaeger with
//! `deploy/jaeger/config.yaml`, granularcol with each `deploy/collector` config. Read from the
//! kernel's socket tables for each process, so a port nobody knew about is caught too.

use granular_e2e::collector::Collector;
use granular_e2e::demo::Demo;
use granular_e2e::jaeger::Jaeger;
use granular_e2e::process::listening_addresses;

/// Fails naming every listener of `what` (process `pid`) that is not on a loopback address.
fn assert_loopback_only(what: &str, pid: u32) {
    let addrs = listening_addresses(pid).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!addrs.is_empty(), "{what} (pid {pid}) listens on nothing?");
    let open: Vec<_> = addrs.iter().filter(|a| !a.ip().is_loopback()).collect();
    assert!(
        open.is_empty(),
        "{what} listens beyond loopback on {open:?} (all: {addrs:?})"
    );
}

#[test]
fn every_listener_binds_loopback_by_default() {
    let jaeger = Jaeger::start().expect("Jaeger");
    assert_loopback_only("Jaeger (deploy/jaeger/config.yaml)", jaeger.pid());

    let demo = Demo::builder("listeners")
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .start()
        .expect("demo with its default DEMO_LISTEN (the harness sets none)");
    assert_loopback_only("demo-service (default DEMO_LISTEN)", demo.process().pid());

    let jaeger_grpc = jaeger
        .otlp_grpc_endpoint()
        .trim_start_matches("http://")
        .to_string();
    let single = Collector::start("single.yaml", &[("JAEGER_OTLP_GRPC", &jaeger_grpc)])
        .expect("granularcol single.yaml");
    assert_loopback_only("granularcol (single.yaml)", single.process().pid());
    let tier2 = Collector::start("tier2.yaml", &[("JAEGER_OTLP_GRPC", &jaeger_grpc)])
        .expect("granularcol tier2.yaml");
    assert_loopback_only("granularcol (tier2.yaml)", tier2.process().pid());
    let endpoints = format!("[{}]", tier2.otlp_grpc_addr());
    let tier1 = Collector::start(
        "tier1-loadbalancer.yaml",
        &[("GRANULAR_TIER2_ENDPOINTS", &endpoints)],
    )
    .expect("granularcol tier1-loadbalancer.yaml");
    assert_loopback_only(
        "granularcol (tier1-loadbalancer.yaml)",
        tier1.process().pid(),
    );
}

#[test]
fn proc_net_addresses_parse() {
    // Compiled into the harness; exercised here through a real listener of this process.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addrs = listening_addresses(std::process::id()).unwrap();
    assert!(addrs.contains(&l.local_addr().unwrap()), "{addrs:?}");
}
