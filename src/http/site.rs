//! The pages a person uses: the dashboard (`/`), the query playground
//! (`/playground`) and the cache admin view (`/admin`), with their assets
//! under content-hashed names, and the dev tokens the dashboard's sign-in
//! offers in embedded mode.
//!
//! Every file ships inside the binary (`src/http/pages/`), so the pages
//! work offline; `PAGES_DIR` serves a directory instead, read at start.
//! The pages call the same API as any client, with the signed-in token.

use super::assets::{Site, SiteError};
use crate::app::App;
use crate::auth::{self, Role};
use crate::bundles::store::{Encoding, choose_encoding};
use crate::config::Config;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, REFERRER_POLICY, VARY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

static BUILT_IN: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/http/pages");

/// No inline script or style, no eval, nothing from another origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// How long the dev tokens the sign-in page offers stay valid.
const DEV_TOKEN_SECS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("PAGES_DIR {dir}: {source}")]
    Read { dir: String, source: std::io::Error },
    #[error("the pages' files: {0}")]
    Site(#[from] SiteError),
}

/// The pages for `config`: the built-in ones, or `PAGES_DIR`'s. Built once
/// per process (compressing every file takes a few milliseconds).
pub fn load(config: &Config) -> Result<Arc<Site>, Arc<LoadError>> {
    static BUILT: OnceLock<Result<Arc<Site>, Arc<LoadError>>> = OnceLock::new();
    static FROM_DIR: OnceLock<Result<Arc<Site>, Arc<LoadError>>> = OnceLock::new();
    match &config.pages_dir {
        None => BUILT
            .get_or_init(|| {
                let files = BUILT_IN
                    .files()
                    .map(|f| {
                        let name = f.path().to_string_lossy().into_owned();
                        (name, f.contents().to_vec())
                    })
                    .collect();
                Ok(Arc::new(Site::build(files).map_err(LoadError::from)?))
            })
            .clone(),
        Some(dir) => FROM_DIR
            .get_or_init(|| {
                let read = |source| LoadError::Read {
                    dir: dir.display().to_string(),
                    source,
                };
                let mut files = BTreeMap::new();
                for entry in std::fs::read_dir(dir).map_err(read)? {
                    let entry = entry.map_err(read)?;
                    if entry.file_type().map_err(read)?.is_file() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        files.insert(name, std::fs::read(entry.path()).map_err(read)?);
                    }
                }
                Ok(Arc::new(Site::build(files).map_err(LoadError::from)?))
            })
            .clone(),
    }
}

/// The pages' routes; without pages (a `PAGES_DIR` that does not load,
/// already refused at start), none.
pub fn router(config: &Config) -> Router<Arc<App>> {
    let Ok(site) = load(config) else {
        return Router::new();
    };
    let mut router = Router::new();
    for (route, _) in super::assets::PAGES {
        let site = Arc::clone(&site);
        router = router.route(
            route,
            get(move |headers: HeaderMap| async move { page(&site, route, &headers) }),
        );
    }
    let assets = Arc::clone(&site);
    router.route(
        "/assets/{file}",
        get(
            move |Path(file): Path<String>, headers: HeaderMap| async move {
                asset(&assets, &file, &headers)
            },
        ),
    )
}

fn page(site: &Site, route: &str, headers: &HeaderMap) -> Response {
    let file = &site.pages[route];
    let mut response = send(file, headers, "no-cache");
    let h = response.headers_mut();
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(site: &Site, name: &str, headers: &HeaderMap) -> Response {
    match site.assets.get(name) {
        Some(file) => send(file, headers, IMMUTABLE),
        None => ApiError::NotFound { what: "asset" }.into_response(),
    }
}

/// `file` in the encoding `headers` accept best, or 304 when the client
/// holds it already.
fn send(file: &super::assets::File, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let etag = HeaderValue::from_str(&file.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        (ETAG, etag),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    if super::etag::if_none_match(headers, file.etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let accepted = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let encoding = choose_encoding(accepted);
    let body = match encoding {
        Encoding::Brotli => file.brotli.clone(),
        Encoding::Gzip => file.gzip.clone(),
        Encoding::Identity => file.identity.clone(),
    };
    let mut response = (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(file.content_type))],
        body,
    )
        .into_response();
    if let Some(coding) = encoding.content_encoding() {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    response
}

/// One dev token.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DevToken {
    /// `anon`, `demo user` or `service_role`.
    name: &'static str,
    /// The request role the token names.
    role: &'static str,
    token: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DevTokens {
    tokens: Vec<DevToken>,
}

/// Tokens for local development (embedded mode with the built-in dev
/// secret only).
///
/// The same tokens the start banner prints (valid for a day here), for
/// the dashboard's sign-in picker. Given only when the service runs its
/// own embedded PostgreSQL with the published dev secret, with which
/// anyone can sign such tokens anyway; otherwise the list is empty (the
/// page then asks for a token), so a page load never logs a failed
/// request.
#[utoipa::path(
    get,
    path = "/dev/tokens",
    tag = "operations",
    operation_id = "get_dev_tokens",
    responses(
        (status = 200, description = "A token of each request role; none unless in embedded mode with the dev secret", body = DevTokens),
    )
)]
pub async fn get_dev_tokens(State(app): State<Arc<App>>) -> Response {
    let config = &app.config;
    let offered = config.database_url.is_none() && config.jwt_secret_is_dev;
    // HS256 with a string secret does not fail to sign; were it to, the
    // page falls back to its pasted-token form.
    let tokens = match offered {
        false => Vec::new(),
        true => auth::dev_tokens(&config.jwt_secret, &config.jwt_audience, DEV_TOKEN_SECS)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "could not sign the dev tokens");
                Vec::new()
            }),
    };
    let tokens = tokens
        .into_iter()
        .map(
            |(name, role, token): (&'static str, Role, String)| DevToken {
                name,
                role: role.as_str(),
                token,
            },
        )
        .collect();
    (
        [(CACHE_CONTROL, "no-store")],
        axum::Json(DevTokens { tokens }),
    )
        .into_response()
}
