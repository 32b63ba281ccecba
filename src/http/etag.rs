//! Conditional requests: whether the client already holds an answer.

use axum::http::HeaderMap;
use axum::http::header::IF_NONE_MATCH;

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 13.1.2).
pub fn if_none_match(headers: &HeaderMap, etag: &[u8]) -> bool {
    let opaque = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
    let ours = opaque(etag);
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || opaque(t) == ours)
}
