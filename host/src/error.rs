//! The JSON error envelope every non-2xx response carries:
//! `{"error":"<stable code>","message":"<text>"}`. Clients match on `error` only.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sigil_protocol::ErrorCode;

/// A failed request: a stable code (which fixes the HTTP status) and a human message.
/// Messages never contain secrets (tokens, keys) or echo large inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The stable code; HTTP status and SPEC code string come from it.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: Cow<'static, str>,
}

impl AppError {
    /// An error with a fixed message.
    #[must_use]
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message: Cow::Borrowed(message) }
    }

    /// An error with a composed message.
    #[must_use]
    pub fn with(code: ErrorCode, message: String) -> Self {
        Self { code, message: Cow::Owned(message) }
    }

    /// The HTTP status of this error.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[derive(serde::Serialize)]
struct Envelope<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Envelope { error: self.code.http_code(), message: &self.message })
            .unwrap_or_else(|_| br#"{"error":"internal","message":"error encoding failed"}"#.to_vec());
        let mut resp = (self.status(), body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Lets the audit/metrics layer see the code without parsing the body.
        resp.extensions_mut().insert(self.code);
        resp
    }
}
