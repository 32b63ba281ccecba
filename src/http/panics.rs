//! Panics at the edge. Gives a layer that turns a handler's panic into the
//! service's generic 500 (instead of a dropped connection) and a panic hook
//! that logs each panic as one line. Nothing of a panic reaches the client.

use crate::error::ErrorBody;
use axum::Json;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;

type Answer = fn(Box<dyn Any + Send + 'static>) -> Response<Body>;

/// The last resort: a panic below it is answered like any other 5xx.
pub fn layer() -> CatchPanicLayer<Answer> {
    CatchPanicLayer::custom(internal_error as Answer)
}

// The hook has logged the panic already (inside the request's span);
// the client gets the same body as every other internal error.
fn internal_error(_panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ErrorBody {
            code: crate::code::ErrorCode::InternalError,
            message: "internal error".into(),
            details: None,
            hint: None,
        }),
    )
        .into_response()
}

/// Logs every panic as one `error` line, its message and location, instead
/// of the default report (a backtrace per request under `RUST_BACKTRACE`).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("(no message)");
        match info.location() {
            Some(at) => tracing::error!(panic = message, location = %at, "panicked"),
            None => tracing::error!(panic = message, "panicked"),
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_the_generic_500() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("the handler broke");
                    }
                    "unreachable"
                }),
            )
            .layer(layer());
        let req = Request::get("/boom").body(Body::empty()).expect("request");
        let resp = router.oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            resp.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            r#"{"code":"internal_error","message":"internal error","details":null,"hint":null}"#
        );
    }
}
