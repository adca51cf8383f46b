//! Free loopback ports, for processes that cannot bind port 0 themselves.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

use crate::{Error, Result};

/// Ports already handed out by this process, so that parallel tests never
/// get the same port even if the kernel offers it twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process can still take it before the caller binds it; callers
/// that start servers on such ports should retry on "address in use".
pub fn free_port() -> Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| Error::new(format!("cannot bind a loopback port: {e}")))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::new("no new free loopback port after 100 attempts"))
}
