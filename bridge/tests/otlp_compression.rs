//! OTLP compression on both transports, checked on the wire: Granular's exporter, built from
//! `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_COMPRESSION`, sends to a loopback
//! receiver that reads the compression header and the compressed bytes and decompresses and
//! decodes them itself.
//!
//! Pins issue #17: `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` was accepted and spans arrived, but
//! the exporter's gzip features were not compiled in, so nothing said whether compression was
//! applied (it was not).

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::time::Duration;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[test]
fn exports_are_compressed_as_configured_on_grpc_and_http() {
    let receiver = otlp_receiver::Receiver::start();
    // SAFETY: the only test in this binary; no other thread reads the environment yet (the
    // receiver's thread waits in accept).
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = [
        ("grpc", "gzip", Some("gzip")),
        ("grpc", "zstd", Some("zstd")),
        ("grpc", "none", None),
        ("http/protobuf", "gzip", Some("gzip")),
        ("http/protobuf", "zstd", Some("zstd")),
        ("http/protobuf", "none", None),
    ];
    for (i, (protocol, compression, encoding)) in cases.into_iter().enumerate() {
        let cfg = granular::Config::from_lookup(|k| match k {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.to_string()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some(compression.to_string()),
            _ => None,
        })
        .unwrap();
        let _in_runtime = rt.enter();
        let exporter = granular::otlp_exporter(&cfg).unwrap();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let name = format!("{protocol} {compression}");
        // A large attribute, so that compression has something to save.
        provider.tracer("test").in_span(name.clone(), |cx| {
            use opentelemetry::trace::TraceContextExt as _;
            cx.span().set_attribute(opentelemetry::KeyValue::new(
                "payload",
                "granular ".repeat(1000),
            ));
        });
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
        let got = receiver.wait_for(i + 1, Duration::from_secs(10));
        let req = got
            .iter()
            .find(|r| r.span_names() == [name.clone()])
            .unwrap_or_else(|| panic!("{name}: no request carried the span; got {got:#?}"));
        assert_eq!(req.transport, protocol, "{name}");
        assert_eq!(
            req.encoding.as_deref(),
            encoding,
            "{name}: compression header"
        );
        assert_eq!(
            req.compressed_flag,
            encoding.is_some(),
            "{name}: compressed bytes"
        );
        if encoding.is_some() {
            assert!(
                req.wire_bytes < 2000,
                "{name}: {} bytes on the wire for a 9,000-byte attribute",
                req.wire_bytes
            );
        }
    }
}
