//! The one error type handlers return, so every failure becomes a plain-text HTTP answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed request: the status to answer with and a message for the caller.
///
/// Bad input is the caller's fault (4xx); broken pathology machinery or a failed downstream hop
/// is ours (5xx), which the server span then marks as an error.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    /// 400: the request named something we do not know or gave a bad parameter.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 500: work inside this service failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// 502: the downstream service could not be reached or answered with an error.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("a spawned task failed: {e}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}
