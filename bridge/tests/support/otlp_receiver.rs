#![allow(dead_code)] // each test binary uses part of it
//! A loopback OTLP trace receiver that keeps what arrived on the wire: gRPC (HTTP/2, the
//! `TraceService/Export` method) and HTTP/protobuf (HTTP/1.1 `POST /v1/traces`) on one port.
//! It records each request's transport, its compression header, whether the body (the gRPC
//! message, for gRPC) was compressed, and the decoded `ExportTraceServiceRequest` after
//! decompressing it itself (gzip with flate2, zstd with the zstd crate), so a test sees
//! exactly what the exporter sent.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// One export request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `grpc` or `http/protobuf`.
    pub transport: &'static str,
    /// `grpc-encoding` (gRPC) or `Content-Encoding` (HTTP), if any.
    pub encoding: Option<String>,
    /// The body's bytes were compressed (gRPC: the message's compressed flag; HTTP: the body
    /// starts with the gzip or zstd magic number).
    pub compressed_flag: bool,
    /// Size on the wire and after decompression.
    pub wire_bytes: usize,
    pub decoded: ExportTraceServiceRequest,
}

impl Received {
    /// Names of the spans in the request.
    pub fn span_names(&self) -> Vec<String> {
        self.decoded
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }
}

/// The receiver; its thread and runtime stop with the process (tests are short-lived).
#[derive(Debug, Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(serve(listener, keep));
            })
            .expect("receiver thread");
        Receiver { addr, received }
    }

    /// The endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT` (both transports).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let until = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn serve(listener: std::net::TcpListener, received: Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let received = received.clone();
                async move { Ok::<_, hyper::Error>(handle(req, &received).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn handle(req: Request<Incoming>, received: &Mutex<Vec<Received>>) -> Response<Body> {
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let encoding = if grpc {
        header("grpc-encoding")
    } else {
        header("content-encoding")
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(400),
    };
    let wire_bytes = body.len();
    let (payload, compressed_flag) = if grpc {
        // Length-prefixed message: flag byte (1 = compressed), u32 big-endian length.
        if body.len() < 5 {
            return status(400);
        }
        (body.slice(5..), body[0] == 1)
    } else {
        let compressed =
            body.starts_with(&[0x1f, 0x8b]) || body.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
        (body, compressed)
    };
    let bytes = match (compressed_flag, encoding.as_deref()) {
        (false, _) => payload.to_vec(),
        (true, Some("gzip")) => {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&payload[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return status(400);
            }
            out
        }
        (true, Some("zstd")) => match zstd::decode_all(&payload[..]) {
            Ok(out) => out,
            Err(_) => return status(400),
        },
        (true, _) => return status(415),
    };
    let Ok(decoded) = ExportTraceServiceRequest::decode(&bytes[..]) else {
        return status(400);
    };
    received.lock().unwrap().push(Received {
        transport: if grpc { "grpc" } else { "http/protobuf" },
        encoding,
        compressed_flag,
        wire_bytes,
        decoded,
    });
    if grpc {
        // An empty ExportTraceServiceResponse, uncompressed, then grpc-status 0 in trailers.
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed();
        Response::builder()
            .header("content-type", "application/grpc")
            .body(body)
            .unwrap()
    } else {
        Response::builder()
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    }
}

fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}
