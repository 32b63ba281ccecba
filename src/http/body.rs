//! The one way a request body is read: JSON only (415 otherwise), within a
//! size (413) and a time (408), parsed strictly (a key named twice is a
//! 400, never silently its last value).

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long a client may take to send its body once its headers are in.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The size policy, one limit per kind of body. A widget-data request (a
/// data source and its filters, or one widget for the action form) is
/// small; past this it is a 413.
pub const WIDGET_DATA_LIMIT_BYTES: usize = 64 * 1024;
/// A bundle registration or review names a URL and a few hosts.
pub const BUNDLE_REQUEST_LIMIT_BYTES: usize = 16 * 1024;
/// A `/rest/v1` write may carry many rows (a page of widgets is still far
/// smaller than this).
pub const REST_LIMIT_BYTES: usize = 1024 * 1024;

/// The body's bytes, at most `limit_bytes` of them, after checking that
/// they claim to be JSON. Empty is refused: every JSON endpoint takes one.
pub async fn read(headers: &HeaderMap, body: Body, limit_bytes: usize) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    let too_large = || ApiError::PayloadTooLarge { limit_bytes };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit_bytes) {
        return Err(too_large());
    }
    let bytes =
        match tokio::time::timeout(READ_TIMEOUT, axum::body::to_bytes(body, limit_bytes)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(too_large()),
            Err(_) => {
                return Err(ApiError::BodyTimeout {
                    timeout_secs: READ_TIMEOUT.as_secs(),
                });
            }
        };
    if bytes.is_empty() {
        return Err(ApiError::InvalidBody {
            message: "the request body is empty; send a JSON object".into(),
        });
    }
    Ok(bytes)
}

/// `bytes` as `T`, read strictly.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::json::from_slice(bytes).map_err(|e| ApiError::InvalidBody {
        message: format!("invalid request body: {e}"),
    })
}

/// No `Content-Type` is taken as JSON (curl and fetch may omit it); one
/// that names anything but JSON is a 415.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value.to_str().unwrap_or_default();
    let essence = media.split(';').next().unwrap_or_default().trim();
    let json = essence.eq_ignore_ascii_case("application/json")
        || essence.rsplit_once('+').is_some_and(|(kind, suffix)| {
            kind.starts_with("application/") && suffix.eq_ignore_ascii_case("json")
        });
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            media_type: media.chars().take(100).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(media: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(media).unwrap());
        h
    }

    #[test]
    fn json_media_types_pass_and_others_are_415() {
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.pgrst.object+json",
        ] {
            assert!(check_content_type(&with_type(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/json+xml",
            "",
        ] {
            let err = check_content_type(&with_type(refused)).unwrap_err();
            assert_eq!(err.code(), "unsupported_media_type", "{refused}");
        }
    }
}
