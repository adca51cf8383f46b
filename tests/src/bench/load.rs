//! An HTTP/1.1 load generator on plain blocking sockets, one thread per keep-alive connection.
//!
//! * [`fixed_rate`] — open loop: request `i` is due at `start + i / rate`; its latency runs from
//!   that due time (not from when a free connection sent it), so a server that falls behind is
//!   charged for the queue it causes (no coordinated omission).
//! * [`saturate`] — closed loop: every connection sends its next request as soon as the last
//!   one is answered; throughput is what the server sustains.
//!
//! Every request carries a W3C `traceparent` whose trace id the generator minted
//! ([`Workload::trace_id`]), and every `slow_every`-th request goes to the slow path, so a
//! caller can look exactly those traces up in a tracing backend afterwards.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// What to send.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Path of a normal request, e.g. `/messages`.
    pub normal_path: String,
    /// Path of a slow-on-purpose request, e.g. `/messages?pathology=sleep&ms=150`.
    pub slow_path: String,
    /// Request `i` is slow when `i % slow_every == slow_every - 1`; 0 means none is.
    pub slow_every: u64,
    /// High 64 bits of every trace id (non-zero, different per run so ids never repeat).
    pub tag: u64,
}

impl Workload {
    /// Whether request `i` goes to the slow path.
    pub fn is_slow(&self, i: u64) -> bool {
        self.slow_every > 0 && i % self.slow_every == self.slow_every - 1
    }

    /// The trace id of request `i`, 32 hex digits.
    pub fn trace_id(&self, i: u64) -> String {
        format!("{:016x}{:016x}", self.tag, i + 1)
    }

    fn request(&self, host: &str, i: u64) -> Vec<u8> {
        let path = if self.is_slow(i) {
            &self.slow_path
        } else {
            &self.normal_path
        };
        format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\ntraceparent: 00-{}-{:016x}-01\r\n\r\n",
            self.trace_id(i),
            i + 1
        )
        .into_bytes()
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests failed or answered otherwise.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latencies of answered normal requests, µs, sorted.
    pub healthy_us: Vec<u64>,
    /// Latencies of answered slow requests, µs, sorted.
    pub slow_us: Vec<u64>,
    /// Indices of answered requests (for trace look-ups), sorted.
    pub answered: Vec<u64>,
    /// Fixed rate only: requests sent more than 1 ms after they were due (the generator or
    /// its connections could not keep up; their latency counts the delay).
    pub late: u64,
}

impl Results {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(parts: Vec<Results>, elapsed: Duration) -> Results {
        let mut all = Results {
            elapsed,
            ..Results::default()
        };
        for p in parts {
            all.ok += p.ok;
            all.errors += p.errors;
            all.late += p.late;
            if all.first_error.is_none() {
                all.first_error = p.first_error;
            }
            all.healthy_us.extend(p.healthy_us);
            all.slow_us.extend(p.slow_us);
            all.answered.extend(p.answered);
        }
        all.healthy_us.sort_unstable();
        all.slow_us.sort_unstable();
        all.answered.sort_unstable();
        all
    }

    fn record(&mut self, workload: &Workload, i: u64, outcome: io::Result<u16>, latency: Duration) {
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                self.ok += 1;
                self.answered.push(i);
                let us = latency.as_micros() as u64;
                if workload.is_slow(i) {
                    self.slow_us.push(us);
                } else {
                    self.healthy_us.push(us);
                }
            }
            other => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(match other {
                        Ok(status) => format!("request {i}: HTTP {status}"),
                        Err(e) => format!("request {i}: {e}"),
                    });
                }
            }
        }
    }
}

/// Open loop at `rate` requests/s for `duration`, over `connections` connections.
pub fn fixed_rate(
    addr: SocketAddr,
    workload: &Workload,
    rate: f64,
    duration: Duration,
    connections: usize,
) -> Results {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let parts = run_threads(connections, |_| {
        let next = Arc::clone(&next);
        let workload = workload.clone();
        move || {
            let mut conn = Connection::new(addr);
            let mut part = Results::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return part;
                }
                let due = start + interval.mul_f64(i as f64);
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                } else if now - due > Duration::from_millis(1) {
                    part.late += 1;
                }
                let outcome = conn.get(&workload.request(&conn.host, i));
                part.record(&workload, i, outcome, due.elapsed());
            }
        }
    });
    Results::merge(parts, start.elapsed())
}

/// Closed loop over `connections` connections for `duration`.
pub fn saturate(
    addr: SocketAddr,
    workload: &Workload,
    duration: Duration,
    connections: usize,
) -> Results {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let end = start + duration;
    let parts = run_threads(connections, |_| {
        let (next, stop) = (Arc::clone(&next), Arc::clone(&stop));
        let workload = workload.clone();
        move || {
            let mut conn = Connection::new(addr);
            let mut part = Results::default();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = conn.get(&workload.request(&conn.host, i));
                let done = Instant::now();
                if done > end {
                    // Finished after the window: not counted (its CPU is outside it too).
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                part.record(&workload, i, outcome, done - sent);
            }
            part
        }
    });
    Results::merge(parts, duration)
}

fn run_threads<F, G>(n: usize, mut make: G) -> Vec<Results>
where
    G: FnMut(usize) -> F,
    F: FnOnce() -> Results + Send + 'static,
{
    let handles: Vec<_> = (0..n.max(1))
        .map(|k| {
            thread::Builder::new()
                .name(format!("load-{k}"))
                .stack_size(256 * 1024)
                .spawn(make(k))
                .expect("spawn a load thread")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| Results {
                errors: 1,
                first_error: Some("a load thread panicked".into()),
                ..Results::default()
            })
        })
        .collect()
}

/// One keep-alive connection, reconnected after any error.
struct Connection {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and reads the whole response; returns its status.
    fn get(&mut self, request: &[u8]) -> io::Result<u16> {
        let result = self.exchange(request);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        stream.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response headers",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..header_end])
            .map_err(|_| io::Error::other("response headers are not UTF-8"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line: {head:?}")))?;
        let mut length = None;
        for line in head.lines() {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(io::Error::other("chunked responses are not supported"));
                }
            }
        }
        let length = length.ok_or_else(|| io::Error::other("no content-length"))?;
        let mut have = self.buf.len() - header_end;
        while have < length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the body",
                ));
            }
            have += n;
        }
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A tiny keep-alive server answering every request with `200 ok`.
    fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(pos) = find(&buf, b"\r\n\r\n") {
                            buf.drain(..pos + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(reply).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn workload() -> Workload {
        Workload {
            normal_path: "/".into(),
            slow_path: "/slow".into(),
            slow_every: 10,
            tag: 0xabc,
        }
    }

    #[test]
    fn fixed_rate_and_saturation_against_a_tiny_server() {
        let addr = server();
        let w = workload();
        assert!(w.is_slow(9) && !w.is_slow(10));
        assert_eq!(w.trace_id(0), "0000000000000abc0000000000000001");
        let r = fixed_rate(addr, &w, 200.0, Duration::from_millis(250), 4);
        assert_eq!((r.ok, r.errors), (50, 0), "{:?}", r.first_error);
        assert_eq!(r.slow_us.len(), 5);
        assert_eq!(r.answered.len(), 50);
        let r = saturate(addr, &w, Duration::from_millis(200), 2);
        assert!(r.ok > 10 && r.errors == 0, "{r:?}");
    }
}
