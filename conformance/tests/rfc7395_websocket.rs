//! RFC 7395 XMPP over WebSocket at /xmpp-websocket on the HTTP listener, with raw frames:
//! the handshake, framing, login with the stream restart, chat with a TCP client, and
//! every error path (each ends with a stream error, `<close/>` and a close frame).

use std::time::Duration;

use conformance::websocket::{FRAMING, WsClient, WsIncoming, request, try_connect};
use conformance::{SILENCE, TestServer, ns};

const PW: &str = "passw0rd";

#[tokio::test]
async fn rfc7395_3_1_xmpp_subprotocol_required() {
    let server = TestServer::start().await;
    assert_eq!(
        try_connect(request(server.http_addr(), None, None)).await.err(),
        Some(400)
    );
    assert_eq!(
        try_connect(request(server.http_addr(), Some("chat"), None))
            .await
            .err(),
        Some(400)
    );
    let ws = WsClient::connect(server.http_addr()).await;
    assert_eq!(ws.protocol.as_deref(), Some("xmpp"));
}

#[tokio::test]
async fn rfc7395_3_3_origin_allow_list() {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[web]\norigins = [\"https://chat.example\"]\n".into();
    })
    .await;
    let addr = server.http_addr();
    assert_eq!(
        try_connect(request(addr, Some("xmpp"), Some("https://evil.example")))
            .await
            .err(),
        Some(403)
    );
    let mut ws = try_connect(request(addr, Some("xmpp"), Some("https://chat.example")))
        .await
        .expect("allowed origin");
    ws.open().await;
    // Without an allow-list any origin may connect.
    let open = TestServer::start().await;
    try_connect(request(
        open.http_addr(),
        Some("xmpp"),
        Some("https://evil.example"),
    ))
    .await
    .expect("no allow-list");
}

#[tokio::test]
async fn rfc7395_3_4_open_answered_with_open_and_features_without_starttls() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    let (open, features) = ws.open().await;
    assert_eq!(open.attr("from"), Some("localhost"));
    assert_eq!(open.attr("version"), Some("1.0"));
    assert!(open.attr("id").is_some_and(|id| !id.is_empty()));
    let mechs = features.get_child("mechanisms", ns::SASL).expect("mechanisms");
    assert!(
        mechs.children().any(|m| m.text() == "PLAIN"),
        "{}",
        String::from(&features)
    );
    assert!(
        !features.has_child("starttls", ns::TLS),
        "{}",
        String::from(&features)
    );
    // A stanza is one message, in jabber:client, declared in the message itself.
    ws.close().await;
}

#[tokio::test]
async fn rfc7395_3_5_login_restart_and_chat_with_tcp_client() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    let jid = ws.login("alice", PW, "web").await;
    assert_eq!(jid, "alice@localhost/web");
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    ws.send_text("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>from the browser</body></message>")
        .await;
    let got = bob.expect_message().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/web"));
    assert_eq!(
        got.get_child("body", ns::CLIENT).unwrap().text(),
        "from the browser"
    );
    bob.send_message("alice@localhost/web", "from the desktop").await;
    let got = ws.read_until(|e| e.is("message", ns::CLIENT)).await;
    assert_eq!(
        got.get_child("body", ns::CLIENT).unwrap().text(),
        "from the desktop"
    );
    // Each stanza is one message with its namespace declared (parsed standalone above).
    assert_eq!(got.ns(), ns::CLIENT);
    // The session shows up in the server's logs and metrics with its transport.
    assert!(
        server.logs().contains("c2s{transport=\"websocket\""),
        "{}",
        server.logs()
    );
    let metrics = server.http_get("/metrics").await;
    for series in [
        "switchboard_transport_sessions{transport=\"websocket\"} 1",
        "switchboard_transport_sessions{transport=\"tcp\"} 1",
        "switchboard_logins_total{mechanism=\"PLAIN\",transport=\"websocket\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series} in\n{metrics}");
    }
}

#[tokio::test]
async fn rfc7395_3_6_close_answered_with_close() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.login("alice", PW, "web").await;
    ws.send_text(&format!("<close xmlns='{FRAMING}'/>")).await;
    assert_eq!(ws.expect_close().await, Some(1000));
}

#[tokio::test]
async fn rfc7395_3_6_1_see_other_uri() {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[web]\nwebsocket_see_other_uri = \"wss://other.example/xmpp-websocket\"\n".into();
    })
    .await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.send_open().await;
    let close = ws.read_until(|e| e.is("close", FRAMING)).await;
    assert_eq!(
        close.attr("see-other-uri"),
        Some("wss://other.example/xmpp-websocket")
    );
    assert_eq!(ws.expect_close_frame().await, Some(1000));
}

#[tokio::test]
async fn rfc7395_3_2_binary_message_is_bad_format() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.open().await;
    ws.send_binary(b"<message xmlns='jabber:client'/>").await;
    assert_eq!(ws.expect_stream_error("bad-format").await, Some(1003));
}

#[tokio::test]
async fn rfc7395_3_3_3_message_not_one_well_formed_element() {
    let server = TestServer::start().await;
    let cases = [
        ("<message xmlns='jabber:client'><body>half", "not-well-formed"),
        ("<message xmlns='jabber:client'></iq>", "not-well-formed"),
        ("just text", "not-well-formed"),
        (
            "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",
            "bad-format",
        ),
    ];
    for (text, condition) in cases {
        let mut ws = WsClient::connect(server.http_addr()).await;
        ws.open().await;
        ws.send_text(text).await;
        assert_eq!(ws.expect_stream_error(condition).await, Some(1000), "{text}");
    }
}

#[tokio::test]
async fn rfc7395_3_3_1_unknown_framing_element() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.open().await;
    ws.send_text(&format!("<reopen xmlns='{FRAMING}'/>")).await;
    ws.expect_stream_error("unsupported-stanza-type").await;
}

#[tokio::test]
async fn rfc7395_3_3_stanza_before_open_is_bad_format() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.send_text("<presence xmlns='jabber:client'/>").await;
    // The error still comes after our <open/>.
    let open = ws.expect_element().await;
    assert!(open.is("open", FRAMING), "{}", String::from(&open));
    ws.expect_stream_error("bad-format").await;
}

#[tokio::test]
async fn rfc7395_3_3_message_over_the_stanza_limit() {
    let server = TestServer::start_with(|c| c.max_stanza_size = 20_000).await;
    server.add_user("alice", PW).await;
    // Before authentication the smaller limit applies (the parser's).
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.open().await;
    ws.send_text(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>",
        ns::SASL,
        "A".repeat(12_000)
    ))
    .await;
    ws.expect_stream_error("policy-violation").await;
    // After it, a message over max_stanza_size is refused by the WebSocket layer itself.
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.login("alice", PW, "web").await;
    let body = "x".repeat(25_000);
    ws.send_text(&format!(
        "<message xmlns='jabber:client' to='alice@localhost'><body>{body}</body></message>"
    ))
    .await;
    assert_eq!(ws.expect_stream_error("policy-violation").await, Some(1009));
    // Just under it is fine.
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.login("alice", PW, "web2").await;
    let body = "x".repeat(15_000);
    ws.send_text(&format!(
        "<message xmlns='jabber:client' to='alice@localhost/web2'><body>{body}</body></message>"
    ))
    .await;
    let echoed = ws.read_until(|e| e.is("message", ns::CLIENT)).await;
    assert_eq!(echoed.get_child("body", ns::CLIENT).unwrap().text().len(), 15_000);
}

#[tokio::test]
async fn rfc7395_3_5_starttls_is_not_offered_or_accepted() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.open().await;
    ws.send_text(&format!("<starttls xmlns='{}'/>", ns::TLS)).await;
    ws.expect_stream_error("policy-violation").await;
}

/// A free port on all interfaces, for a listener that is not on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn rfc7395_plain_non_loopback_listener_refuses_logins_unless_behind_tls_proxy() {
    let port = free_port();
    let server = TestServer::start_with(|c| {
        c.extra_toml = format!("[[listen]]\nkind = \"http\"\naddress = \"0.0.0.0:{port}\"\n");
    })
    .await;
    server.add_user("alice", PW).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ws = WsClient::connect(addr).await;
    let (_, features) = ws.open().await;
    assert!(
        !features.has_child("mechanisms", ns::SASL),
        "{}",
        String::from(&features)
    );
    let creds = "AGFsaWNlAHBhc3N3MHJk"; // \0alice\0passw0rd
    ws.send_text(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
        ns::SASL
    ))
    .await;
    let failure = ws.expect_element().await;
    assert!(failure.is("failure", ns::SASL), "{}", String::from(&failure));
    assert!(
        failure.has_child("encryption-required", ns::SASL),
        "{}",
        String::from(&failure)
    );
    drop(server);

    let port = free_port();
    let server = TestServer::start_with(|c| {
        c.extra_toml =
            format!("[[listen]]\nkind = \"http\"\naddress = \"0.0.0.0:{port}\"\nbehind_tls_proxy = true\n");
    })
    .await;
    server.add_user("alice", PW).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ws = WsClient::connect(addr).await;
    assert_eq!(ws.login("alice", PW, "proxied").await, "alice@localhost/proxied");
}

#[tokio::test]
async fn rfc7395_3_7_websocket_ping_for_idle_detection() {
    let server =
        TestServer::start_with(|c| c.limits_toml = "idle_ping_secs = 1\nping_timeout_secs = 2\n".into())
            .await;
    server.add_user("alice", PW).await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.login("alice", PW, "web").await;
    // An idle session gets a WebSocket ping (not an XMPP one); answered (tungstenite pongs
    // while reading), the session stays up past the ping timeout.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Some(incoming) = ws.next_within(until - tokio::time::Instant::now()).await {
        match incoming {
            WsIncoming::Ping(_) => pings += 1,
            other => panic!("expected only pings, got {other:?}"),
        }
    }
    assert!(pings >= 2, "pings: {pings}");
    ws.send_text("<message xmlns='jabber:client' to='alice@localhost/web'><body>still here</body></message>")
        .await;
    let echoed = ws.read_until(|e| e.is("message", ns::CLIENT)).await;
    assert_eq!(echoed.get_child("body", ns::CLIENT).unwrap().text(), "still here");
    let _ = SILENCE;
}

const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";

/// The body inside a carbon copy (`kind`: sent or received) of `el`, if it is one.
fn carbon_body(el: &minidom::Element, kind: &str) -> Option<String> {
    el.get_child(kind, CARBONS)?
        .get_child("forwarded", FORWARD)?
        .get_child("message", ns::CLIENT)?
        .get_child("body", ns::CLIENT)
        .map(|b| b.text())
}

#[tokio::test]
async fn rfc7395_xep0280_carbons_between_websocket_and_tcp_sessions() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut web = WsClient::connect(server.http_addr()).await;
    web.login("alice", PW, "web").await;
    let id = web.id();
    web.send_text(&format!(
        "<iq xmlns='jabber:client' type='set' id='{id}'><enable xmlns='{CARBONS}'/></iq>"
    ))
    .await;
    let r = web.read_until(|e| e.attr("id") == Some(&id)).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    web.send_text("<presence xmlns='jabber:client'/>").await;
    let mut desk = server.client_jid("alice@localhost/desk", PW).await;
    let r = desk
        .iq("set", None, &format!("<enable xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    desk.send_presence(0).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;

    // bob -> alice/desk: the WebSocket session gets a 'received' carbon.
    bob.send_message("alice@localhost/desk", "to the desk").await;
    let carbon = web
        .read_until(|e| e.is("message", ns::CLIENT) && carbon_body(e, "received").is_some())
        .await;
    assert_eq!(carbon_body(&carbon, "received").as_deref(), Some("to the desk"));
    assert_eq!(carbon.attr("from"), Some("alice@localhost"));
    desk.wait_for(|e| e.is("message", ns::CLIENT) && e.get_child("body", ns::CLIENT).is_some())
        .await;

    // alice/web -> bob: the TCP session gets a 'sent' carbon.
    web.send_text("<message xmlns='jabber:client' to='bob@localhost/home' type='chat'><body>from the web</body></message>")
        .await;
    let carbon = desk.wait_for(|e| carbon_body(e, "sent").is_some()).await;
    assert_eq!(carbon_body(&carbon, "sent").as_deref(), Some("from the web"));
    let got = bob.expect_message().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/web"));
}

#[tokio::test]
async fn rfc6120_7_7_2_2_conflict_takeover_across_transports() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    // A WebSocket session taking over a TCP session's resource: the TCP one gets <conflict/>.
    let mut tcp = server.raw_login("alice", PW, Some("same")).await;
    let mut web = WsClient::connect(server.http_addr()).await;
    assert_eq!(web.login("alice", PW, "same").await, "alice@localhost/same");
    tcp.expect_stream_error().await.assert_condition(&["conflict"]);
    // And back: a TCP login takes the resource from the WebSocket session.
    let _tcp = server.raw_login("alice", PW, Some("same")).await;
    web.expect_stream_error("conflict").await;
}

#[tokio::test]
async fn rfc7395_3_7_unanswered_websocket_ping_ends_the_stream() {
    let server =
        TestServer::start_with(|c| c.limits_toml = "idle_ping_secs = 1\nping_timeout_secs = 1\n".into())
            .await;
    server.add_user("alice", PW).await;
    let mut ws = WsClient::connect(server.http_addr()).await;
    ws.login("alice", PW, "web").await;
    // Not reading: tungstenite answers a ping only while the socket is polled, so the
    // server's ping goes unanswered.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ws.expect_stream_error("connection-timeout").await;
}
