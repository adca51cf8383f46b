//! A backend that accepts connections and never answers: each connection is read (and what
//! arrives discarded) until the client gives up, and nothing is ever written back. An OTLP
//! exporter pointed at it connects at once, sends its request and waits for an answer that
//! never comes, until its own timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`): the export stalls.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::{Error, Result};

/// The stalling server, on a free loopback port; stopped on drop.
#[derive(Debug)]
pub struct StallServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl StallServer {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::new(format!("cannot bind a loopback port: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::new(format!("no local address: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (flag, count, bytes) = (stop.clone(), accepted.clone(), received.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::Relaxed);
                let (flag, bytes) = (flag.clone(), bytes.clone());
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut buf = [0u8; 16 * 1024];
                    while !flag.load(Ordering::Relaxed) {
                        match conn.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                bytes.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            stop,
            accepted,
            received,
        })
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Bytes received (and never answered) so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}
