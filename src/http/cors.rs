//! CORS for browser dashboards, lean enough for the cache-hit path.
//!
//! Credentials travel in the Authorization header, never in cookies, so
//! any origin may call (as with Supabase's API gateway) without exposing
//! one user's session to a site. With `*` and no credentials every answer
//! is the same for every origin: no `Vary`, nothing computed per request
//! but the preflight's mirrored method and headers.

use axum::body::Body;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD,
};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

const ANY: HeaderValue = HeaderValue::from_static("*");
const EXPOSED: HeaderValue = HeaderValue::from_static("x-request-id, x-cache, content-range, etag");
const MAX_AGE: HeaderValue = HeaderValue::from_static("3600");

#[derive(Clone, Copy, Default)]
pub struct Cors;

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorsService(inner)
    }
}

#[derive(Clone)]
pub struct CorsService<S>(S);

pub enum CorsFuture<F> {
    Preflight(Option<Response<Body>>),
    Simple(F),
}

impl<S> Service<Request<Body>> for CorsService<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Unpin,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            return CorsFuture::Simple(self.0.call(req));
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
        h.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        for (ask, allow) in [
            (ACCESS_CONTROL_REQUEST_METHOD, ACCESS_CONTROL_ALLOW_METHODS),
            (ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_ALLOW_HEADERS),
        ] {
            if let Some(v) = req.headers().get(ask) {
                h.insert(allow, v.clone());
            }
        }
        CorsFuture::Preflight(Some(response))
    }
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>> + Unpin,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CorsFuture::Preflight(response) => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            CorsFuture::Simple(inner) => Pin::new(inner).poll(cx).map_ok(|mut response| {
                let h = response.headers_mut();
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
                h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
                response
            }),
        }
    }
}
