//! XEP-0156: the HTTP listener's host-meta documents list the WebSocket and BOSH endpoints.

use conformance::TestServer;

/// The body of an HTTP response, after checking its status and a header.
fn body<'a>(response: &'a str, content_type: &str) -> &'a str {
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("content-type: {content_type}")),
        "{response}"
    );
    assert!(lower.contains("access-control-allow-origin: *"), "{response}");
    response.split("\r\n\r\n").nth(1).expect("a body")
}

#[tokio::test]
async fn xep0156_3_host_meta_xrd_lists_the_web_endpoints() {
    let server = TestServer::start().await;
    let response = server.http_get("/.well-known/host-meta").await;
    let xrd: minidom::Element = body(&response, "application/xrd+xml")
        .trim()
        .parse()
        .expect("XRD");
    assert!(
        xrd.is("XRD", "http://docs.oasis-open.org/ns/xri/xrd-1.0"),
        "{response}"
    );
    let link = xrd
        .children()
        .find(|l| l.attr("rel") == Some("urn:xmpp:alt-connections:websocket"))
        .expect("a websocket link");
    // Derived from the request's Host (127.0.0.1 in the harness) without a configured URL.
    assert_eq!(link.attr("href"), Some("ws://127.0.0.1/xmpp-websocket"));
    let link = xrd
        .children()
        .find(|l| l.attr("rel") == Some("urn:xmpp:alt-connections:xbosh"))
        .expect("a BOSH link");
    assert_eq!(link.attr("href"), Some("http://127.0.0.1/http-bind"));
}

#[tokio::test]
async fn xep0156_3_host_meta_json_uses_the_configured_url() {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[web]\nwebsocket_url = \"wss://chat.example/xmpp-websocket\"\nbosh_url = \"https://chat.example/http-bind\"\n".into();
    })
    .await;
    let response = server.http_get("/.well-known/host-meta.json").await;
    let json: serde_json::Value = serde_json::from_str(body(&response, "application/json")).expect("JSON");
    let links = json["links"].as_array().expect("links");
    assert!(
        links
            .iter()
            .any(|l| l["rel"] == "urn:xmpp:alt-connections:websocket"
                && l["href"] == "wss://chat.example/xmpp-websocket"),
        "{json}"
    );
    assert!(
        links
            .iter()
            .any(|l| l["rel"] == "urn:xmpp:alt-connections:xbosh"
                && l["href"] == "https://chat.example/http-bind"),
        "{json}"
    );
    let response = server.http_get("/.well-known/host-meta").await;
    assert!(
        response.contains("href='wss://chat.example/xmpp-websocket'"),
        "{response}"
    );
}
