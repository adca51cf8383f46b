//! The three steps of a `/messages` request, each its own span as in the talk: fetch an access
//! token, look in the cache, query the database. Their latencies are real awaited timers, or,
//! with `?steps=yield`, one yield each (same spans and await points, no timer), so a closed
//! loop saturates the CPU rather than waiting on ~8 ms of timers per request.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinError;
use tokio::time::sleep;

use crate::pathology::cpu_in_unspanned_child;

/// How a step spends its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// An awaited timer of the step's duration (the default).
    #[default]
    Timers,
    /// One `yield_now` instead (`?steps=yield`).
    Yield,
}

impl Pace {
    /// Parses the `steps` query value.
    pub fn parse(value: Option<&str>) -> Result<Pace, String> {
        match value {
            None | Some("timers") => Ok(Pace::Timers),
            Some("yield") => Ok(Pace::Yield),
            Some(other) => Err(format!(
                "query parameter `steps` is {other:?}; expected timers or yield"
            )),
        }
    }

    async fn wait(self, ms: u64) {
        match self {
            Pace::Timers => sleep(Duration::from_millis(ms)).await,
            Pace::Yield => tokio::task::yield_now().await,
        }
    }
}

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
pub async fn access_token(pace: Pace) -> AccessToken {
    pace.wait(2).await;
    AccessToken { user: "demo-user" }
}

/// `cache.Lookup`: ~1 ms. The demo's cache is always cold, so every request reaches the db
/// step and all requests do the same work unless a pathology says otherwise.
#[tracing::instrument(name = "cache.Lookup", skip_all, fields(cache.hit = false))]
pub async fn cache_lookup(_token: AccessToken, pace: Pace) -> Option<Vec<Message>> {
    pace.wait(1).await;
    None
}

/// `db.Query`: ~5 ms of awaited I/O, or, with the `child` pathology, `child_cpu` of CPU work
/// moved into a spawned child task that has no span of its own.
#[tracing::instrument(name = "db.Query", skip_all)]
pub async fn db_query(
    token: AccessToken,
    child_cpu: Option<Duration>,
    pace: Pace,
) -> Result<Vec<Message>, JoinError> {
    match child_cpu {
        Some(cpu) => {
            cpu_in_unspanned_child(cpu).await?;
        }
        None => pace.wait(5).await,
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

#[cfg(test)]
mod tests {
    use super::Pace;

    #[test]
    fn pace_parses_and_names_bad_values() {
        assert_eq!(Pace::parse(None), Ok(Pace::Timers));
        assert_eq!(Pace::parse(Some("timers")), Ok(Pace::Timers));
        assert_eq!(Pace::parse(Some("yield")), Ok(Pace::Yield));
        let err = Pace::parse(Some("fast")).expect_err("not a pace");
        assert!(
            err.contains("\"fast\"") && err.contains("timers or yield"),
            "{err}"
        );
    }
}
