//! `GET /` and `GET /assets/{name}`: the web page (files under `web/`), built into
//! the binary with `include_str!`, so running it needs no build step and no files
//! beside the binary.
//!
//! The page needs no token to load: it asks the person for one and sends it as a
//! bearer token to the API (and as `?token=` to `/ws`). Every answer carries a
//! Content-Security-Policy that allows this origin only (no inline script or
//! style, no other host), and an ETag computed at compile time with `Cache-Control:
//! no-cache`, so a browser revalidates (304) and never runs an old script after an
//! upgrade.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};

use super::{ApiError, ErrorBody};

/// Only this origin; nothing inline; the page is never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Its name under `/assets/` (`index.html` is served at `/`).
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static str,
    /// Its quoted ETag, a hash of `body`.
    etag: &'static str,
}

/// FNV-1a, 64 bits: only to tell versions of a file apart, in a const context.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"<16 hex digits>"` of a hash, as a const string.
const fn quoted_hex(h: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = DIGITS[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($name:literal, $type:expr) => {{
        const BODY: &str = include_str!(concat!("../../web/", $name));
        const TAG: [u8; 18] = quoted_hex(fnv1a(BODY.as_bytes()));
        Asset {
            name: $name,
            content_type: $type,
            body: BODY,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("session.js", JS),
    asset!("notifications.js", JS),
    asset!("admin.js", JS),
    asset!("charts.js", JS),
    asset!("format.js", JS),
];

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The asset, or 304 when the browser already has this version.
fn answer(req: &HttpRequest, a: &'static Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, HeaderValue::from_static(a.etag)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    if fresh {
        res.finish()
    } else {
        res.content_type(a.content_type).body(a.body)
    }
}

/// The web page: notifications for the signed-in person; for admins the streams,
/// charts, pools, dead letters and sagas. No token needed to load it.
#[utoipa::path(
    tag = "page",
    responses(
        (status = 200, description = "The page (HTML)", body = String, content_type = "text/html"),
        (status = 304, description = "Not modified (If-None-Match)")
    )
)]
#[get("/")]
pub(super) async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let a = find("index.html").ok_or_else(|| ApiError::internal("index.html not embedded"))?;
    Ok(answer(&req, a))
}

/// A script, style sheet or icon of the page.
#[utoipa::path(
    tag = "page",
    params(("name" = String, Path, description = "e.g. `app.js`")),
    responses(
        (status = 200, description = "The file", body = String),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, body = ErrorBody)
    )
)]
#[get("/assets/{name}")]
pub(super) async fn asset(
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match find(&name) {
        Some(a) if a.name != "index.html" => Ok(answer(&req, a)),
        _ => Err(ApiError::not_found(format!("no asset `{name}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_own_etag_and_index_links_only_to_embedded_files() {
        let mut tags: Vec<_> = ASSETS.iter().map(|a| a.etag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        let html = find("index.html").map(|a| a.body).unwrap_or_default();
        for part in html.split("/assets/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(find(&name).is_some(), "index.html names /assets/{name}");
        }
        // Modules import each other by relative name: each must be embedded.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for part in a.body.split("from './").skip(1) {
                let name: String = part.chars().take_while(|c| *c != '\'').collect();
                assert!(find(&name).is_some(), "{} imports ./{name}", a.name);
            }
        }
    }

    #[test]
    fn the_hash_changes_with_the_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(&quoted_hex(0x0123_4567_89ab_cdef), b"\"0123456789abcdef\"");
    }
}
