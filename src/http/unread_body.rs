//! `Connection: close` on answers to requests whose body the handler left
//! unread. Takes requests (wrapping a body only when there is one) and
//! gives the inner service's answers, marked when the body was not read to
//! its end. Must not read, buffer or drain a body itself.
//!
//! Why: a connection can carry the next request only once this one's body
//! has been read off it. When a handler answers early (a 401, 403 or 413
//! before the body is read), hyper gives up on the connection, but it may
//! notice only after the response head has gone out without a word of it,
//! and the client's next request on that connection fails. Saying
//! `Connection: close` up front makes the client open a new one.

use axum::body::Body;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, Default)]
pub struct UnreadBodyLayer;

impl<S> Layer<S> for UnreadBodyLayer {
    type Service = UnreadBody<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UnreadBody(inner)
    }
}

#[derive(Clone, Debug)]
pub struct UnreadBody<S>(S);

impl<S, B, ResBody> Service<Request<B>> for UnreadBody<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = UnreadBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Most requests (GETs, the health checks) have no body: nothing to
        // watch, nothing to allocate.
        if req.body().is_end_stream() {
            return UnreadBodyFuture {
                inner: self.0.call(req.map(Body::new)),
                read: None,
            };
        }
        let read = Arc::new(AtomicBool::new(false));
        let watched = Arc::clone(&read);
        let req = req.map(|inner| {
            Body::new(WatchedBody {
                inner,
                read: watched,
            })
        });
        UnreadBodyFuture {
            inner: self.0.call(req),
            read: Some(read),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct UnreadBodyFuture<F> {
        #[pin]
        inner: F,
        // `None`: the request had no body.
        read: Option<Arc<AtomicBool>>,
    }
}

impl<F, ResBody, E> Future for UnreadBodyFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(read) = this.read
            && !read.load(Ordering::Acquire)
        {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// A request body that notes when it has been read to its end.
    struct WatchedBody<B> {
        #[pin]
        inner: B,
        read: Arc<AtomicBool>,
    }
}

impl<B: http_body::Body> http_body::Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let frame = inner.as_mut().poll_frame(cx);
        // The end is either the last frame (when the body knows its
        // length) or the `None` after it.
        let ended = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    async fn connection_header(body: &'static str) -> Option<HeaderValue> {
        let router = Router::new()
            .route("/read", post(|body: String| async move { body }))
            .route("/ignore", post(|| async { "ignored" }));
        let service = UnreadBodyLayer.layer(router);
        let mut headers = Vec::new();
        for path in ["/read", "/ignore"] {
            let req = Request::post(path).body(Body::from(body)).expect("request");
            let resp = service.clone().oneshot(req).await.expect("response");
            headers.push(resp.headers().get(CONNECTION).cloned());
        }
        assert_eq!(
            headers[0], None,
            "a body read to its end keeps the connection"
        );
        headers.pop().flatten()
    }

    #[tokio::test]
    async fn an_unread_body_closes_the_connection_and_a_read_one_does_not() {
        assert_eq!(
            connection_header("{\"a\":1}").await,
            Some(HeaderValue::from_static("close"))
        );
    }

    #[tokio::test]
    async fn a_request_without_a_body_keeps_the_connection() {
        assert_eq!(connection_header("").await, None);
    }
}
