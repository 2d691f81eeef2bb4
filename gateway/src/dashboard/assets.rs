//! The page's files, embedded in the binary, and the headers every dashboard answer carries.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::http::ApiError;

/// Scripts, styles, images and fetches from the gateway only; no inline script or style, no
/// frames, no plugins, no `<base>`, no form posts.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Each file the page is made of: its name under `/dashboard/`, content type and bytes.
pub(super) const FILES: &[(&str, &str, &[u8])] = &[
    ("dashboard.js", "text/javascript; charset=utf-8", include_bytes!("assets/dashboard.js")),
    ("dashboard.css", "text/css; charset=utf-8", include_bytes!("assets/dashboard.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("assets/favicon.svg")),
];

const INDEX: &[u8] = include_bytes!("assets/index.html");

/// An answer with the dashboard's headers. `Cache-Control: no-store` is the edge's rule for
/// every answer (the files are small and fetched once per page load; the figures change).
fn answer(content_type: &'static str, body: impl Into<web::Bytes>) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    res.body(body.into())
}

/// `GET /dashboard/`
pub(super) async fn index() -> HttpResponse {
    answer("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/{asset}`
pub(super) async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| answer(content_type, *bytes))
        .ok_or_else(|| ApiError::not_found("no such file in the dashboard"))
}

/// A figures answer as JSON.
pub(super) fn json(value: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => answer("application/json", body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
