//! A minimal HTTP/1.1 server on its own OS threads, never on the application's runtime: an
//! accept loop on `granular-debug`, and one short-lived thread per connection (pausing as the
//! analyzer does, `crate::background`), at most [`MAX_CONNECTIONS`] at once (beyond: 503 at once). A request is one `GET` whose head fits
//! in [`MAX_HEAD`] bytes (beyond: 431) and arrives whole within [`READ_TIMEOUT`] (beyond: the
//! connection is dropped); the answer closes the connection.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::DebugState;
use super::response::Response;
use super::routes::respond;

/// Connections served at once at most.
const MAX_CONNECTIONS: usize = 4;
/// A request's head (request line and headers) at most.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request's whole head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener, not yet serving.
#[derive(Debug)]
pub(crate) struct Server {
    listener: TcpListener,
    state: &'static DebugState,
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

impl Server {
    pub(crate) fn bind(addr: SocketAddr, state: &'static DebugState) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            state,
        })
    }

    /// Where it listens (the port chosen when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves on a thread of its own until the process ends.
    pub(crate) fn spawn(self) -> io::Result<()> {
        std::thread::Builder::new()
            .name("granular-debug".into())
            .spawn(move || self.accept_loop())
            .map(|_| ())
    }

    fn accept_loop(self) {
        for stream in self.listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if ACTIVE.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
                let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
                let busy = Response::text(
                    503,
                    format!(
                        "the debug endpoint serves {MAX_CONNECTIONS} connections at once; retry"
                    ),
                );
                let _ = busy.write_to(&mut stream);
                continue;
            }
            let state = self.state;
            let spawned = std::thread::Builder::new()
                .name("granular-debug-conn".into())
                .spawn(move || {
                    // A capture decodes seconds of records: the application gets the CPU first.
                    crate::background::yield_to_the_application();
                    serve(stream, state);
                    ACTIVE.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Reads one request from `stream` and answers it.
pub(crate) fn serve(mut stream: TcpStream, state: &'static DebugState) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let response = match read_head(&mut stream, Instant::now() + READ_TIMEOUT) {
        Ok(head) => match parse_request_line(&head) {
            Some((method, target)) => respond(state, method, target),
            None => Response::text(
                400,
                "expected an HTTP/1.1 request line: GET /debug/granular/ HTTP/1.1",
            ),
        },
        Err(HeadError::TooLarge) => Response::text(
            431,
            format!(
                "the request's head is over {MAX_HEAD} bytes; the debug endpoint takes short GET requests"
            ),
        ),
        Err(HeadError::Io) => return,
    };
    let _ = response.write_to(&mut stream);
}

enum HeadError {
    TooLarge,
    Io,
}

/// The request's head, up to the blank line, read by `deadline`: each read waits only for what
/// is left of the time, so a client sending a byte at a time cannot hold the connection longer.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<String, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Io);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Io)?;
        let n = stream.read(&mut buf).map_err(|_| HeadError::Io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// `(method, target)` of the request line.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    version.starts_with("HTTP/1.").then_some((method, target))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_request_line_is_method_target_version() {
        assert_eq!(
            parse_request_line("GET /debug/granular/?format=json HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/debug/granular/?format=json"))
        );
        assert_eq!(parse_request_line("GET /\r\n"), None);
        assert_eq!(parse_request_line("hello"), None);
    }

    /// Over a real loopback socket: an answer, a too-large head, and a client that sends
    /// nothing is dropped after the read timeout rather than holding a thread forever.
    #[test]
    fn a_server_on_loopback_answers_and_bounds_requests() {
        let state = super::super::test_state();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), state).unwrap();
        let addr = server.local_addr();
        server.spawn().unwrap();
        let get = |req: &[u8]| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        let ok = get(b"GET /debug/granular/?format=json HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\"operations\":["), "{ok}");
        let mut big = b"GET /debug/granular/ HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let too_big = get(&big);
        assert!(
            too_big.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{too_big}"
        );
        let post = get(b"POST /debug/granular/ HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("Allow: GET"), "{post}");
    }

    /// A head that trickles in, a byte every 20 ms, is cut off at the deadline rather than
    /// waited for as long as each byte keeps coming within a read timeout.
    #[test]
    fn a_trickled_head_is_cut_off_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            // 200 bytes: 4 s to send whole, against the 300 ms deadline.
            let mut head = b"GET /debug/granular/ HTTP/1.1\r\nX: ".to_vec();
            head.resize(200, b'a');
            for b in head {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let (mut stream, _) = listener.accept().unwrap();
        let start = Instant::now();
        let read = read_head(&mut stream, start + Duration::from_millis(300));
        let took = start.elapsed();
        assert!(
            matches!(read, Err(HeadError::Io)),
            "the head was read whole"
        );
        // The upper bound leaves a loaded machine slack: the head alone takes 4 s.
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "cut off after {took:?}, not at the 300 ms deadline"
        );
        drop(stream);
        writer.join().unwrap();
    }
}
