//! XEP-0156: `/.well-known/host-meta` (XRD) and `/.well-known/host-meta.json` (JRD) list
//! the web endpoints (BOSH and WebSocket), so a client that knows only the domain finds
//! them.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::server::Server;
use crate::web::WebListener;

const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";

/// The endpoints, as (rel, href).
fn links(server: &Server, listener: &WebListener, headers: &HeaderMap) -> Vec<(&'static str, String)> {
    let web = &server.config().web;
    let websocket = web
        .websocket_url
        .clone()
        .unwrap_or_else(|| derived_url(listener, headers, "ws", crate::web::websocket::PATH));
    let bosh = web
        .bosh_url
        .clone()
        .unwrap_or_else(|| derived_url(listener, headers, "http", crate::web::bosh::PATH));
    vec![(REL_BOSH, bosh), (REL_WEBSOCKET, websocket)]
}

/// The endpoint's URL as the client reached us: the request's Host, and the secure
/// `scheme` (`ws` -> `wss`) on our own TLS listener or when a proxy says the client came
/// over HTTPS.
fn derived_url(listener: &WebListener, headers: &HeaderMap, scheme: &str, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let https = listener.tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if https { "s" } else { "" };
    format!("{scheme}{secure}://{host}{path}")
}

/// Readable from any page: XEP-0156 §3 asks for CORS on host-meta.
fn response(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body,
    )
        .into_response()
}

pub async fn xrd(
    State(server): State<Arc<Server>>,
    Extension(listener): Extension<Arc<WebListener>>,
    headers: HeaderMap,
) -> Response {
    let mut body = String::from(
        "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
    );
    for (rel, href) in links(&server, &listener, &headers) {
        body.push_str(&format!(
            "  <Link rel='{}' href='{}'/>\n",
            rel,
            crate::xml::escape(&href)
        ));
    }
    body.push_str("</XRD>\n");
    response("application/xrd+xml; charset=utf-8", body)
}

pub async fn json(
    State(server): State<Arc<Server>>,
    Extension(listener): Extension<Arc<WebListener>>,
    headers: HeaderMap,
) -> Response {
    let links: Vec<String> = links(&server, &listener, &headers)
        .into_iter()
        .map(|(rel, href)| format!("{{\"rel\":\"{}\",\"href\":{}}}", rel, json_string(&href)))
        .collect();
    response(
        "application/json",
        format!("{{\"links\":[{}]}}\n", links.join(",")),
    )
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(super::json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
