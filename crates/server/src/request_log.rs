//! One log line per request, in a span that carries the request id (`X-Request-Id`, generated
//! when the client sent none and echoed in the response by the layers `App` adds around this
//! one), so every event a request causes can be found by that id.
//!
//! The span records the method and the path only: never headers (`Authorization` carries
//! passwords and tokens) and never the query string.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Span;

/// The header both request-id layers use.
const REQUEST_ID: &str = "x-request-id";

type MakeSpan = fn(&Request<Body>) -> Span;
type OnRequest = fn(&Request<Body>, &Span);
type OnResponse = fn(&Response<Body>, Duration, &Span);

/// The tracing layer: an `info` span per request and a line when its response is ready.
pub(crate) fn layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    MakeSpan,
    OnRequest,
    OnResponse,
    (),
    (),
    DefaultOnFailure,
> {
    TraceLayer::new_for_http()
        .make_span_with(make_span as MakeSpan)
        .on_request(on_request as OnRequest)
        .on_response(on_response as OnResponse)
        .on_body_chunk(())
        .on_eos(())
}

fn make_span(request: &Request<Body>) -> Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

fn on_request(_: &Request<Body>, _: &Span) {}

fn on_response(response: &Response<Body>, latency: Duration, _: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "request answered"
    );
}
