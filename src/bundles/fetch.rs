//! One widget bundle from its developer's origin, fetched safely: takes a
//! URL and a User-Agent, gives the bytes, their content type and the URL
//! they finally came from. It must never connect to an address that is
//! not public (unless the host is on the allow list), never hold more
//! than `max_bytes` of body, never follow more than `max_redirects`, and
//! never answer anything but JavaScript or CSS.
//!
//! The SSRF guard has two halves, because hyper never asks a resolver
//! about an IP literal:
//! - an IP literal in a URL (the `url` crate has already turned
//!   `2130706434`, `0x7f000002` and `127.1` into `127.0.0.2`, `127.0.0.1`)
//!   is checked before the request is sent;
//! - a name is resolved by [`GuardedResolver`], the client's only
//!   resolver, which refuses the name if any of its addresses is not
//!   public and otherwise hands the connector exactly the addresses it
//!   checked, so the connection never re-resolves.
//!
//! Redirects are followed here, by hand, so every hop goes through both
//! halves again.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, USER_AGENT};
use url::{Host, Url};

/// The limits of one fetch.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// `BUNDLE_MAX_BYTES`: the largest body accepted, counted as it streams.
    pub max_bytes: usize,
    /// The whole fetch, every hop and the body included.
    pub timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// `BUNDLE_ALLOW_HOSTS`: hosts exempt from the address guard. An IP
    /// admits that IP written as a literal (in any spelling the URL parser
    /// normalises to it); a name admits that name as written in the URL.
    /// Listing `127.0.0.1` does not admit `localhost`.
    pub allow_hosts: Vec<String>,
}

impl FetchPolicy {
    pub const DEFAULT_MAX_BYTES: usize = 500 * 1024;
    pub const DEFAULT_MAX_REDIRECTS: usize = 3;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
            max_redirects: Self::DEFAULT_MAX_REDIRECTS,
            allow_hosts: Vec::new(),
        }
    }
}

/// A bundle as its origin answered it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    /// The `Content-Type` header as sent, parameters included.
    pub content_type: String,
    /// The URL after redirects.
    pub final_url: Url,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The body, declared or streamed, is larger than the cap.
    #[error("the bundle is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The origin could not be reached, timed out, redirected too often or
    /// answered something other than 200.
    #[error("fetching the bundle failed: {0}")]
    Failed(String),
    /// The URL or a redirect leads to an address that is not public.
    #[error("the bundle's address is not allowed: {0}")]
    ForbiddenAddress(String),
    /// The origin answered something other than JavaScript or CSS.
    #[error("the bundle's content type is not JavaScript or CSS: {0}")]
    BadContentType(String),
    /// Not an absolute http(s) URL, first or after a redirect.
    #[error("the bundle's URL is not usable: {0}")]
    BadUrl(String),
}

impl FetchError {
    /// The stable wire code. A bad URL is a failed fetch to the caller:
    /// the four codes stay the whole list.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::TooLarge { .. } => "bundle_too_large",
            FetchError::Failed(_) | FetchError::BadUrl(_) => "bundle_fetch_failed",
            FetchError::ForbiddenAddress(_) => "bundle_forbidden_address",
            FetchError::BadContentType(_) => "bundle_bad_content_type",
        }
    }
}

/// (label, User-Agent) pairs that re-verification fetches with, because a
/// switch can target some clients only: a desktop browser, a mobile
/// browser, and ourselves as the bot we are.
pub const USER_AGENTS: &[(&str, &str)] = &[
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
         (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    (
        "bot",
        concat!(
            "widget-data/",
            env!("CARGO_PKG_VERSION"),
            " (bundle verification; bot)"
        ),
    ),
];

/// Media types a bundle may have, compared without parameters or case.
const ALLOWED_MEDIA_TYPES: &[&str] = &[
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/css",
];

/// Fetches bundles with one client, built once.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
    allow: Arc<AllowList>,
}

impl Fetcher {
    /// Builds the client. Panics only if the TLS stack cannot start, which
    /// is a broken build or host, found at start-up.
    pub fn new(policy: FetchPolicy) -> Self {
        let allow = Arc::new(AllowList::new(&policy.allow_hosts));
        let client = reqwest::Client::builder()
            // Every hop is re-checked here, so reqwest must not follow any.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow: Arc::clone(&allow),
            }))
            .connect_timeout(policy.timeout)
            .referer(false)
            .build()
            .expect("the TLS stack (rustls with aws-lc-rs) starts");
        Self {
            client,
            policy,
            allow,
        }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches `url` as `user_agent`, following at most `max_redirects`,
    /// all within `timeout`.
    pub async fn fetch(&self, url: &str, user_agent: &str) -> Result<Fetched, FetchError> {
        let timeout = self.policy.timeout;
        tokio::time::timeout(timeout, self.fetch_unbounded(url, user_agent))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Failed(format!(
                    "no complete answer within {} ms",
                    timeout.as_millis()
                )))
            })
    }

    async fn fetch_unbounded(&self, url: &str, user_agent: &str) -> Result<Fetched, FetchError> {
        let mut url = Url::parse(url).map_err(|e| FetchError::BadUrl(format!("{url:?}: {e}")))?;
        let mut redirects = 0;
        loop {
            self.check_before_connecting(&url)?;
            let response = self
                .client
                .get(url.clone())
                .header(USER_AGENT, user_agent)
                .send()
                .await
                .map_err(|e| request_error(&url, &e))?;
            let status = response.status();
            if is_redirect(status) {
                if redirects == self.policy.max_redirects {
                    return Err(FetchError::Failed(format!(
                        "more than {} redirects",
                        self.policy.max_redirects
                    )));
                }
                redirects += 1;
                url = next_hop(&url, &response)?;
                continue;
            }
            if status != StatusCode::OK {
                return Err(FetchError::Failed(format!("{url} answered {status}")));
            }
            return self.read_bundle(url, response).await;
        }
    }

    /// The half of the guard that the resolver cannot do: the scheme, and
    /// IP literals, which hyper connects to without asking a resolver.
    /// Names are checked by [`GuardedResolver`] when they are resolved.
    fn check_before_connecting(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::BadUrl(format!(
                "{url}: only http and https are fetched"
            )));
        }
        // No credentials travel to an origin, and none appear in our logs.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::BadUrl(
                "a URL with credentials is not fetched".to_owned(),
            ));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(FetchError::BadUrl(format!("{url}: no host"))),
        };
        if self.allow.admits_ip(ip) || is_public(ip) {
            Ok(())
        } else {
            Err(FetchError::ForbiddenAddress(format!(
                "{url} is {ip}, which is not public"
            )))
        }
    }

    async fn read_bundle(
        &self,
        url: Url,
        mut response: reqwest::Response,
    ) -> Result<Fetched, FetchError> {
        let headers = response.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .ok_or_else(|| FetchError::BadContentType("none sent".to_owned()))?
            .to_str()
            .map_err(|_| FetchError::BadContentType("not text".to_owned()))?
            .to_owned();
        if !is_bundle_media_type(&content_type) {
            return Err(FetchError::BadContentType(content_type));
        }
        // We ask for no encoding; a compressed body would be pinned and
        // served as if it were the script itself.
        if let Some(encoding) = headers.get(CONTENT_ENCODING)
            && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            return Err(FetchError::Failed(format!(
                "{url} sent a Content-Encoding ({encoding:?}) that was not asked for"
            )));
        }
        // A declared length over the cap is refused before reading. The
        // header is read as well as hyper's framing, because a chunked
        // body keeps its (ignored) Content-Length header.
        let limit = self.policy.max_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let over = |n: u64| usize::try_from(n).map_or(true, |n| n > limit);
        if declared.is_some_and(over) || response.content_length().is_some_and(over) {
            return Err(FetchError::TooLarge { limit });
        }
        // Whatever was declared, count what arrives and stop at the first
        // chunk that would pass the cap.
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(format!("{url}: the body broke off: {e}")))?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes: body.freeze(),
            content_type,
            final_url: url,
        })
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

fn next_hop(from: &Url, response: &reqwest::Response) -> Result<Url, FetchError> {
    let location = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| {
            FetchError::Failed(format!(
                "{from} answered {} without a Location",
                response.status()
            ))
        })?
        .to_str()
        .map_err(|_| {
            FetchError::BadUrl(format!("{from} redirected to a Location that is not text"))
        })?;
    from.join(location)
        .map_err(|e| FetchError::BadUrl(format!("{from} redirected to {location:?}: {e}")))
}

/// `text/javascript; charset=utf-8` and the like.
fn is_bundle_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    ALLOWED_MEDIA_TYPES
        .iter()
        .any(|allowed| essence.eq_ignore_ascii_case(allowed))
}

/// What a reqwest error means to the caller: the resolver's refusal is a
/// forbidden address, the rest is a failed fetch.
fn request_error(url: &Url, error: &reqwest::Error) -> FetchError {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return FetchError::ForbiddenAddress(refused.0.clone());
        }
        cause = e.source();
    }
    let mut message = format!("{url}: {error}");
    let mut cause = error.source();
    while let Some(e) = cause {
        message.push_str(": ");
        message.push_str(&e.to_string());
        cause = e.source();
    }
    FetchError::Failed(message)
}

/// `BUNDLE_ALLOW_HOSTS`, parsed once: IPs and names kept apart, so that an
/// IP admits only itself and a name only itself.
#[derive(Debug, Default)]
struct AllowList {
    ips: HashSet<IpAddr>,
    names: HashSet<String>,
}

impl AllowList {
    fn new(hosts: &[String]) -> Self {
        let mut list = Self::default();
        for host in hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            match bare.parse::<IpAddr>() {
                Ok(ip) => {
                    list.ips.insert(ip);
                }
                Err(_) => {
                    list.names.insert(normalise_name(host));
                }
            }
        }
        list
    }

    fn admits_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip)
    }

    fn admits_name(&self, name: &str) -> bool {
        self.names.contains(&normalise_name(name))
    }
}

/// `Example.COM.` and `example.com` are one host.
fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The client's resolver: a name resolves only if every address it has is
/// public, or the name is on the allow list; the addresses returned are
/// the ones checked, and the connector uses nothing else.
struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector puts the URL's port in.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if !allow.admits_name(&host) {
                // Any one private address refuses the name: which one the
                // connector would pick is not ours to predict.
                if let Some(addr) = addrs.iter().find(|a| !is_public(a.ip())) {
                    return Err(Box::new(Refused(format!(
                        "{host} resolves to {}, which is not public",
                        addr.ip()
                    ))) as Box<dyn StdError + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, found again in reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// Whether `ip` is an address on the public internet. Pure: no I/O.
///
/// IPv4: everything but the special-purpose ranges (RFC 6890 and
/// successors). IPv6: only global unicast (2000::/3) minus its special
/// ranges; IPv4 embedded in IPv6 (mapped, NAT64 and 6to4) is judged as
/// the IPv4 it carries, and IPv4-compatible (::/96, deprecated) never.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

/// (network, prefix length): IPv4 ranges that are not public.
const NON_PUBLIC_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and 255.255.255.255 broadcast
];

/// (network, prefix length): ranges inside 2000::/3 that are not public.
const NON_PUBLIC_V6_GLOBAL: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo, benchmarking
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
];

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC_V4.iter().any(|&range| in_v4(ip, range))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    // ::ffff:a.b.c.d goes out as IPv4 on a dual-stack socket.
    if in_v6(ip, (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)) {
        return is_public_v4(low_v4);
    }
    // NAT64 (well-known prefix): a gateway connects to the IPv4 inside.
    if in_v6(ip, (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)) {
        return is_public_v4(low_v4);
    }
    // 6to4: 2002:AABB:CCDD::/48 is routed towards AA.BB.CC.DD.
    if in_v6(ip, (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16)) {
        return is_public_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    // Everything else outside global unicast is loopback, unspecified,
    // IPv4-compatible, unique-local, link-local, site-local, multicast,
    // discard-only, local NAT64 or unallocated.
    in_v6(ip, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3))
        && !NON_PUBLIC_V6_GLOBAL.iter().any(|&range| in_v6(ip, range))
}

#[cfg(test)]
mod tests;
