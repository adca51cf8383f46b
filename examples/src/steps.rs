//! The three steps of a `/messages` request, each its own span as in the talk: fetch an access
//! token, look in the cache, query the database. Their latencies are real awaited timers.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinError;
use tokio::time::sleep;

use crate::pathology::cpu_in_unspanned_child;

/// Who the request is for, as the auth step established.
#[derive(Debug, Clone, Copy)]
pub struct AccessToken {
    /// The user whose messages are listed.
    pub user: &'static str,
}

/// One message in the `/messages` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// Message id.
    pub id: u64,
    /// Recipient, taken from the access token.
    pub to: &'static str,
    /// Sender.
    pub from: &'static str,
    /// Body.
    pub text: &'static str,
}

/// `auth.AccessToken`: ~2 ms, like a call to a token service.
#[tracing::instrument(name = "auth.AccessToken", skip_all)]
pub async fn access_token() -> AccessToken {
    sleep(Duration::from_millis(2)).await;
    AccessToken { user: "demo-user" }
}

/// `cache.Lookup`: ~1 ms. The demo's cache is always cold, so every request reaches the db
/// step and all requests do the same work unless a pathology says otherwise.
#[tracing::instrument(name = "cache.Lookup", skip_all, fields(cache.hit = false))]
pub async fn cache_lookup(_token: AccessToken) -> Option<Vec<Message>> {
    sleep(Duration::from_millis(1)).await;
    None
}

/// `db.Query`: ~5 ms of awaited I/O, or, with the `child` pathology, `child_cpu` of CPU work
/// moved into a spawned child task that has no span of its own.
#[tracing::instrument(name = "db.Query", skip_all)]
pub async fn db_query(
    token: AccessToken,
    child_cpu: Option<Duration>,
) -> Result<Vec<Message>, JoinError> {
    match child_cpu {
        Some(cpu) => {
            cpu_in_unspanned_child(cpu).await?;
        }
        None => sleep(Duration::from_millis(5)).await,
    }
    Ok(vec![
        Message {
            id: 1,
            to: token.user,
            from: "alice",
            text: "Is the p99 better today?",
        },
        Message {
            id: 2,
            to: token.user,
            from: "bob",
            text: "Only when nobody runs a report.",
        },
    ])
}
