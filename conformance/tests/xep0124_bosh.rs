//! XEP-0124 BOSH and XEP-0206 XMPP over BOSH at /http-bind, with raw HTTP requests: session
//! creation, login with the restart, chat with a TCP client, the rid window (early requests
//! held, replays answered from the cache, rids outside it refused), hold, terminate,
//! inactivity, CORS.

use std::time::Duration;

use conformance::bosh::{BoshClient, HTTPBIND, XBOSH, body, http};
use conformance::{TIMEOUT, TestServer, ns};

const PW: &str = "passw0rd";

fn terminate_condition(el: &minidom::Element) -> Option<&str> {
    assert_eq!(el.attr("type"), Some("terminate"), "{}", String::from(el));
    el.attr("condition")
}

#[tokio::test]
async fn xep0124_7_1_session_creation_response() {
    let server = TestServer::start().await;
    let c = BoshClient::create(server.http_addr(), 120, 5).await;
    let b = &c.created;
    assert!(b.is("body", HTTPBIND), "{}", String::from(b));
    // wait and hold are capped; requests is hold + 1.
    assert_eq!(b.attr("wait"), Some("60"));
    assert_eq!(b.attr("hold"), Some("1"));
    assert_eq!(b.attr("requests"), Some("2"));
    assert_eq!(b.attr("inactivity"), Some("60"));
    assert!(b.attr("polling").is_some());
    assert_eq!(b.attr("ver"), Some("1.6"));
    assert_eq!(b.attr("from"), Some("localhost"));
    let version = b
        .attrs()
        .iter()
        .find(|((n, k), _)| n.as_str() == XBOSH && k.as_str() == "version")
        .map(|(_, v)| v.as_str());
    assert_eq!(version, Some("1.0"));
    // XEP-0206 §4: the stream features come with it.
    let features = b.get_child("features", ns::STREAM).expect("features");
    assert!(features.has_child("mechanisms", ns::SASL), "{}", String::from(b));
    assert!(!features.has_child("starttls", ns::TLS), "{}", String::from(b));
}

#[tokio::test]
async fn xep0124_7_1_unknown_host_and_bad_requests() {
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let r = http(
        addr,
        "POST",
        &body("rid='1' to='elsewhere.example' wait='5' hold='1'", ""),
        &[],
    )
    .await;
    assert_eq!(terminate_condition(&r.element()), Some("host-unknown"));
    let r = http(
        addr,
        "POST",
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'",
        &[],
    )
    .await;
    assert_eq!(terminate_condition(&r.element()), Some("bad-request"));
    let r = http(addr, "POST", &body("to='localhost'", ""), &[]).await;
    assert_eq!(terminate_condition(&r.element()), Some("bad-request"));
    let r = http(addr, "POST", &body("rid='5' sid='nosuchsession'", ""), &[]).await;
    assert_eq!(terminate_condition(&r.element()), Some("item-not-found"));
}

#[tokio::test]
async fn xep0206_login_restart_and_chat_with_tcp_client() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    let mut c = BoshClient::create(server.http_addr(), 5, 1).await;
    assert_eq!(c.login("alice", PW, "bosh").await, "alice@localhost/bosh");
    c.send("<presence xmlns='jabber:client'/><message xmlns='jabber:client' to='bob@localhost/home' type='chat'><body>over bosh</body></message>")
        .await;
    let got = bob.expect_message().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/bosh"));
    assert_eq!(got.get_child("body", ns::CLIENT).unwrap().text(), "over bosh");
    // A held request carries what arrives while it waits.
    let c2 = tokio::spawn(async move {
        let m = c.until(|e| e.is("message", ns::CLIENT)).await;
        (c, m)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send_message("alice@localhost/bosh", "to the browser").await;
    let (_c, m) = c2.await.unwrap();
    assert_eq!(m.get_child("body", ns::CLIENT).unwrap().text(), "to the browser");
    let metrics = server.http_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "switchboard_transport_sessions{transport=\"bosh\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn xep0124_14_3_replayed_rid_answered_from_cache() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut c = BoshClient::create(server.http_addr(), 2, 1).await;
    c.login("alice", PW, "bosh").await;
    let rid = c.rid;
    c.rid += 1;
    let first = c
        .send_rid(
            rid,
            "",
            "<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let again = c
        .send_rid(
            rid,
            "",
            "<iq xmlns='jabber:client' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert_eq!(String::from(&first), String::from(&again));
    // The replay was not processed: no answer to p2 ever comes.
    for _ in 0..2 {
        let answer = c.send("").await;
        assert!(
            !answer.children().any(|e| e.attr("id") == Some("p2")),
            "{}",
            String::from(&answer)
        );
    }
}

#[tokio::test]
async fn xep0124_14_out_of_order_request_held_until_the_gap_fills() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    let mut c = BoshClient::create(server.http_addr(), 2, 1).await;
    c.login("alice", PW, "bosh").await;
    let (first, second) = (c.rid, c.rid + 1);
    c.rid += 2;
    let msg = |b: &str| {
        format!(
            "<message xmlns='jabber:client' to='bob@localhost/home' type='chat'><body>{b}</body></message>"
        )
    };
    let early = tokio::spawn({
        let body = body(&format!("rid='{second}' sid='{}'", c.sid), &msg("second"));
        let addr = c.addr;
        async move { http(addr, "POST", &body, &[]).await }
    });
    // Nothing is routed while rid `first` is missing.
    bob.expect_none(Duration::from_millis(600), "message before the gap fills", |e| {
        e.is("message", ns::CLIENT)
    })
    .await;
    c.send_rid(first, "", &msg("first")).await;
    let a = bob.expect_message().await;
    let b = bob.expect_message().await;
    let body_of = |e: &minidom::Element| e.get_child("body", ns::CLIENT).unwrap().text();
    assert_eq!(
        (body_of(&a), body_of(&b)),
        ("first".to_string(), "second".to_string())
    );
    assert_eq!(early.await.unwrap().status, 200);
}

#[tokio::test]
async fn xep0124_14_rid_outside_the_window_is_item_not_found() {
    let server = TestServer::start().await;
    let c = BoshClient::create(server.http_addr(), 2, 1).await;
    let answer = c.send_rid(c.rid + 2, "", "").await;
    assert_eq!(terminate_condition(&answer), Some("item-not-found"));
    // The session is gone.
    let answer = c.send_rid(c.rid, "", "").await;
    assert_eq!(terminate_condition(&answer), Some("item-not-found"));
}

#[tokio::test]
async fn xep0124_10_hold_answers_the_older_request_when_a_new_one_comes() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut c = BoshClient::create(server.http_addr(), 20, 1).await;
    c.login("alice", PW, "bosh").await;
    let (r1, r2) = (c.rid, c.rid + 1);
    c.rid += 2;
    let started = tokio::time::Instant::now();
    let held = tokio::spawn({
        let b = body(&format!("rid='{r1}' sid='{}'", c.sid), "");
        let addr = c.addr;
        async move { http(addr, "POST", &b, &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "an empty request is held (wait=20)");
    let second = tokio::spawn({
        let b = body(&format!("rid='{r2}' sid='{}'", c.sid), "");
        let addr = c.addr;
        async move { http(addr, "POST", &b, &[]).await }
    });
    let first = tokio::time::timeout(TIMEOUT, held)
        .await
        .expect("answered")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(first.element().children().count(), 0);
    second.abort();
}

#[tokio::test]
async fn xep0124_12_terminate_ends_the_session() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut c = BoshClient::create(server.http_addr(), 2, 1).await;
    c.login("alice", PW, "bosh").await;
    let rid = c.rid;
    c.rid += 1;
    let answer = c
        .send_rid(
            rid,
            "type='terminate'",
            "<presence xmlns='jabber:client' type='unavailable'/>",
        )
        .await;
    assert_eq!(terminate_condition(&answer), None);
    assert!(
        server
            .wait_for_log("session ended jid=alice@localhost/bosh", 1, TIMEOUT)
            .await,
        "{}",
        server.logs()
    );
    let answer = c.send("").await;
    assert_eq!(terminate_condition(&answer), Some("item-not-found"));
}

#[tokio::test]
async fn xep0124_12_inactivity_timeout_ends_the_session() {
    let server = TestServer::start_with(|c| c.extra_toml = "[web]\nbosh_inactivity_secs = 2\n".into()).await;
    server.add_user("alice", PW).await;
    let mut c = BoshClient::create(server.http_addr(), 1, 1).await;
    assert_eq!(c.created.attr("inactivity"), Some("2"));
    c.login("alice", PW, "bosh").await;
    assert!(
        server
            .wait_for_log(
                "session ended jid=alice@localhost/bosh",
                1,
                Duration::from_secs(8)
            )
            .await,
        "{}",
        server.logs()
    );
    let answer = c.send("").await;
    assert_eq!(terminate_condition(&answer), Some("item-not-found"));
}

#[tokio::test]
async fn xep0124_15_cors_preflight_and_origin_allow_list() {
    let server =
        TestServer::start_with(|c| c.extra_toml = "[web]\norigins = [\"https://chat.example\"]\n".into())
            .await;
    let addr = server.http_addr();
    let r = http(
        addr,
        "OPTIONS",
        "",
        &[
            ("Origin", "https://chat.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://chat.example")
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|m| m.contains("Content-Type"))
    );
    let create = body("rid='1' to='localhost' wait='1' hold='1'", "");
    let r = http(addr, "POST", &create, &[("Origin", "https://chat.example")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://chat.example")
    );
    let r = http(addr, "POST", &create, &[("Origin", "https://evil.example")]).await;
    assert_eq!(r.status, 403);
}
