//! The HTTPS listener (`kind = "https"`): WebSocket (wss), BOSH, host-meta and /health over
//! TLS with the c2s certificate, which the clients check (they trust exactly the server's
//! generated self-signed certificate, for the name `localhost`). The listener binds all
//! interfaces, not loopback, so logins are accepted only because TLS is really spoken
//! (a plain listener there refuses them: see
//! `rfc7395_plain_non_loopback_listener_refuses_logins_unless_behind_tls_proxy`).

use std::net::SocketAddr;
use std::time::Duration;

use conformance::bosh::{self, BoshClient};
use conformance::js::NodeScript;
use conformance::websocket::WsClient;
use conformance::{TIMEOUT, TestServer, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PW: &str = "passw0rd";

/// A server with an HTTPS listener on all interfaces; its address as reached over loopback.
async fn start() -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[[listen]]\nkind = \"https\"\naddress = \"0.0.0.0:0\"\n".into();
    })
    .await;
    let port = server.listener_addr("https").port();
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test]
async fn rfc7395_wss_login_and_chat_on_the_https_listener() {
    let (server, addr) = start().await;
    let mut ws = WsClient::connect_tls(addr, &server.tls_config()).await;
    assert_eq!(ws.login("alice", PW, "wss").await, "alice@localhost/wss");
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    ws.send_text(
        "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>over wss</body></message>",
    )
    .await;
    let got = bob.expect_message().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/wss"));
    assert_eq!(got.get_child("body", ns::CLIENT).unwrap().text(), "over wss");
    bob.send_message("alice@localhost/wss", "back over wss").await;
    let got = ws.read_until(|e| e.is("message", ns::CLIENT)).await;
    assert_eq!(got.get_child("body", ns::CLIENT).unwrap().text(), "back over wss");
    ws.close().await;
}

#[tokio::test]
async fn xep0206_bosh_login_and_chat_over_https() {
    let (server, addr) = start().await;
    let mut c = BoshClient::create_tls(addr, server.tls_config(), 2, 1).await;
    assert_eq!(c.login("alice", PW, "bosh").await, "alice@localhost/bosh");
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    c.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>over https</body></message>")
        .await;
    let got = bob.expect_message().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/bosh"));
    bob.send_message("alice@localhost/bosh", "back over https").await;
    let got = c.until(|e| e.is("message", ns::CLIENT)).await;
    assert_eq!(
        got.get_child("body", ns::CLIENT).unwrap().text(),
        "back over https"
    );
}

#[tokio::test]
async fn https_listener_speaks_only_tls_with_the_c2s_certificate() {
    let (server, addr) = start().await;
    // The certificate presented is the c2s one.
    let tls = conformance::tls::connect_https(addr, &server.tls_config()).await;
    let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    assert_eq!(&presented, server.cert());
    drop(tls);

    // A client that trusts nothing else refuses it: the clients above really check.
    let untrusting = conformance::tls::client_config(None, &[b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(untrusting)
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");

    // Plain HTTP gets no HTTP answer (a TLS alert at most, then the connection ends).
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&buf));

    // The HTTP routes over TLS; host-meta lists the secure endpoints.
    let health = https_get(addr, &server, "/health").await;
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    // BOSH's own answers come back over TLS too.
    let r = bosh::https(
        addr,
        &server.tls_config(),
        "POST",
        &bosh::body("rid='1' to='elsewhere.example' wait='5' hold='1'", ""),
        &[],
    )
    .await;
    let answer = r.element();
    assert_eq!(answer.attr("type"), Some("terminate"), "{r:?}");
    assert_eq!(answer.attr("condition"), Some("host-unknown"), "{r:?}");
    let meta = https_get(addr, &server, "/.well-known/host-meta.json").await;
    let host = format!("127.0.0.1:{}", addr.port());
    for url in [
        format!("wss://{host}/xmpp-websocket"),
        format!("https://{host}/http-bind"),
    ] {
        assert!(meta.contains(&url), "{url} in {meta}");
    }
}

/// GET `path` over TLS (the BOSH helper posts to /http-bind; this one is for other paths).
async fn https_get(addr: SocketAddr, server: &TestServer, path: &str) -> String {
    let mut s = conformance::tls::connect_https(addr, &server.tls_config()).await;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// @xmpp/client (npm) over wss, trusting the generated certificate through node's
/// NODE_EXTRA_CA_CERTS (node checks it; without the variable the connection fails).
#[tokio::test]
async fn rfc7395_xmpp_js_client_over_wss_with_checked_certificate() {
    let (server, addr) = start().await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    let url = format!("wss://localhost:{}/xmpp-websocket", addr.port());
    let cert = server.dir().join("cert.pem");
    let mut js = NodeScript::start_with_env(
        "chat.mjs",
        &[&url, "localhost", "alice", PW, "bob@localhost/home"],
        &[("NODE_EXTRA_CA_CERTS", cert.to_str().expect("UTF-8 path"))],
    );
    let online = js.line(TIMEOUT * 3).await;
    assert!(
        online.starts_with("online alice@localhost/"),
        "{online}\n{}",
        server.logs()
    );
    let hello = bob.expect_message().await;
    assert_eq!(
        hello.get_child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("hello from @xmpp/client")
    );
    let from = hello.attr("from").expect("from").to_string();
    bob.send_message(&from, "bye").await;
    assert_eq!(js.line(TIMEOUT).await, "received bob@localhost/home bye");
    assert_eq!(js.exit_code(TIMEOUT).await, Some(0));
}
