//! Where a URL written in a bundle sends its request, as far as the text
//! shows, and whether that host was declared. Pure string work: takes the
//! statically known text of a URL (all of it, or only a prefix when the
//! rest is computed at run time) and gives a [`Destination`].
//!
//! It follows the WHATWG URL parser where that decides the host: leading
//! C0 controls and spaces are stripped, tabs and newlines are ignored, `\`
//! counts as `/`, special schemes skip any number of slashes, userinfo and
//! port are not part of the host, and a host may be percent-encoded.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// No other host: a relative URL (the page's own origin) or a scheme
    /// that never leaves the browser (`data:`, `blob:`, `about:`,
    /// `javascript:`, `mailto:`, `tel:`, `file:`).
    Local,
    /// An absolute URL whose host the text fixes (lowercased, without port
    /// or trailing dot).
    Host(String),
    /// The host depends on a value computed at run time.
    Unknown,
}

/// Schemes whose URLs never make a request to another host (a page on
/// the web cannot read `file:` URLs either).
const LOCAL_SCHEMES: &[&str] = &[
    "data",
    "blob",
    "about",
    "javascript",
    "mailto",
    "tel",
    "file",
];

/// The special schemes of the URL standard that carry a host: for them
/// `https:evil.example` and `https:////evil.example` both reach
/// `evil.example`.
const SPECIAL_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "ftp"];

/// The destination of a URL whose text starts with `prefix`; `complete`
/// says the prefix is the whole URL.
pub fn classify(prefix: &str, complete: bool) -> Destination {
    let text: String = prefix
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let bytes = text.as_bytes();
    let is_slash = |b: &u8| *b == b'/' || *b == b'\\';
    match bytes {
        // `//host/…`: scheme-relative, so another host.
        [a, b, ..] if is_slash(a) && is_slash(b) => authority(&text[2..], complete),
        // `/path`: the page's own origin, unless the next character,
        // computed at run time, could make it `//host`.
        [a] if is_slash(a) => {
            if complete {
                Destination::Local
            } else {
                Destination::Unknown
            }
        }
        [a, ..] if is_slash(a) => Destination::Local,
        _ => match scheme(&text) {
            Some((scheme, rest)) => {
                if LOCAL_SCHEMES.contains(&scheme.as_str()) {
                    Destination::Local
                } else if SPECIAL_SCHEMES.contains(&scheme.as_str()) || rest.starts_with("//") {
                    authority(rest, complete)
                } else {
                    Destination::Local
                }
            }
            // No scheme in the text we have. A path-relative URL (`api/x`,
            // `./x`, `?q`) stays on the page's origin; but `ht` + `tps://…`
            // computed at run time could still become a scheme.
            None if complete => Destination::Local,
            None if text.bytes().all(is_scheme_byte) => Destination::Unknown,
            None => Destination::Local,
        },
    }
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// `(scheme, rest)` of `scheme:rest`, the scheme lowercased.
fn scheme(text: &str) -> Option<(String, &str)> {
    let colon = text.find(':')?;
    let (name, rest) = (&text[..colon], &text[colon + 1..]);
    let first = name.bytes().next()?;
    (first.is_ascii_alphabetic() && name.bytes().all(is_scheme_byte))
        .then(|| (name.to_ascii_lowercase(), rest))
}

/// The host in `rest`, which follows `scheme:` or `//`.
fn authority(rest: &str, complete: bool) -> Destination {
    let rest = rest.trim_start_matches(['/', '\\']);
    let authority = match rest.find(['/', '\\', '?', '#']) {
        Some(end) => &rest[..end],
        // `https://good.example` + x could be `https://good.example.evil.example`.
        None if !complete => return Destination::Unknown,
        None => rest,
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => return Destination::Unknown,
        }
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    match normalise_host(host) {
        Some(host) => Destination::Host(host),
        None => Destination::Unknown,
    }
}

/// Lowercase, percent-decoded, without a trailing dot; `None` when empty
/// or not decodable.
fn normalise_host(host: &str) -> Option<String> {
    let decoded = percent_decode(host)?;
    let host = decoded.trim_end_matches('.').to_lowercase();
    (!host.is_empty()).then_some(host)
}

fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The hosts a developer declared at registration, normalised once.
///
/// An entry is a host (`api.example.com`), optionally with a port (ignored:
/// a declared host is trusted on every port) or written as a URL
/// (`https://api.example.com/v1`, whose host is taken). `*.example.com`
/// admits every subdomain of `example.com` but not `example.com` itself,
/// as in a Content-Security-Policy source list.
#[derive(Debug, Default)]
pub struct DeclaredHosts {
    exact: Vec<String>,
    /// `.example.com` for `*.example.com`.
    suffixes: Vec<String>,
}

impl DeclaredHosts {
    pub fn new(declared: &[String]) -> Self {
        let mut hosts = Self::default();
        for entry in declared {
            let entry = entry.trim();
            if let Some(domain) = entry.strip_prefix("*.") {
                if let Some(domain) = normalise_host(domain) {
                    hosts.suffixes.push(format!(".{domain}"));
                }
                continue;
            }
            let url = if entry.contains("://") {
                entry.to_owned()
            } else {
                format!("https://{entry}")
            };
            if let Destination::Host(host) = classify(&url, true) {
                hosts.exact.push(host);
            }
        }
        hosts
    }

    pub fn allows(&self, host: &str) -> bool {
        self.exact.iter().any(|h| h == host) || self.suffixes.iter().any(|s| host.ends_with(s))
    }
}
