//! RFC 7395 with a real client library nobody here wrote: @xmpp/client (npm, run by node)
//! logs in over WebSocket and chats with a tokio-xmpp user on TCP.

use conformance::js::NodeScript;
use conformance::{TIMEOUT, TestServer, ns};

const PW: &str = "passw0rd";

#[tokio::test]
async fn rfc7395_xmpp_js_client_chats_with_tcp_user() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;

    let url = format!("ws://{}/xmpp-websocket", server.http_addr());
    let mut js = NodeScript::start(
        "chat.mjs",
        &[&url, "localhost", "alice", PW, "bob@localhost/home"],
    );
    let online = js.line(TIMEOUT * 3).await;
    assert!(
        online.starts_with("online alice@localhost/"),
        "{online}\n{}",
        server.logs()
    );
    let body = |e: &conformance::Element| e.get_child("body", ns::CLIENT).map(|b| b.text());

    let hello = bob.expect_message().await;
    assert_eq!(body(&hello).as_deref(), Some("hello from @xmpp/client"));
    let from = hello.attr("from").expect("from").to_string();
    assert_eq!(from, online.trim_start_matches("online "));

    bob.send_message(&from, "how are you").await;
    assert_eq!(js.line(TIMEOUT).await, "received bob@localhost/home how are you");
    let echo = bob.expect_message().await;
    assert_eq!(body(&echo).as_deref(), Some("echo: how are you"));

    bob.send_message(&from, "bye").await;
    assert_eq!(js.line(TIMEOUT).await, "received bob@localhost/home bye");
    assert_eq!(js.exit_code(TIMEOUT).await, Some(0));
    // The library closed its stream with <close/>: the server logs a clean end.
    assert!(
        server
            .wait_for_log("session ended jid=alice@localhost/", 1, TIMEOUT)
            .await,
        "{}",
        server.logs()
    );
}
