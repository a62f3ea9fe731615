//! The plain-text responses the endpoints answer errors with (the texts
//! ASP.NET Core sends).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A `text/plain` response.
pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response()
}

/// 401, for a request whose identity was refused.
pub(super) fn unauthorized() -> Response {
    text(StatusCode::UNAUTHORIZED, "Unauthorized")
}
