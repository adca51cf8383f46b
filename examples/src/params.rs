//! Parsing of the numeric query parameters (`ms`, `mib`, `jobs`, `delay_ms`).
//!
//! Parameters arrive as raw strings so a bad value gets a message naming the parameter and the
//! accepted range instead of a generic deserialisation error, and so huge values are refused
//! before they can make the demo hang or exhaust memory.

use crate::error::AppError;

/// `raw` as an integer in `0..=max`, or `default` when absent.
pub fn bounded(raw: Option<&str>, name: &str, default: u64, max: u64) -> Result<u64, AppError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(AppError::bad_request(format!(
            "query parameter `{name}` must be a whole number from 0 to {max}, got {raw:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parses_and_bounds() {
        assert_eq!(bounded(None, "ms", 50, 100).ok(), Some(50));
        assert_eq!(bounded(Some("100"), "ms", 50, 100).ok(), Some(100));
        assert!(bounded(Some("101"), "ms", 50, 100).is_err());
        assert!(bounded(Some("-1"), "ms", 50, 100).is_err());
        assert!(bounded(Some("abc"), "ms", 50, 100).is_err());
    }
}
