//! RFC 6120 §13.12 (denial of service): stanza size and nesting limits
//! enforced with <policy-violation/> (§4.9.3.18), before and after auth.

use conformance::{SILENCE, TestServer, ns, xml};

// Before authentication the server uses a small limit (10000 bytes): a 20 kB
// element is refused with <policy-violation/>.
#[tokio::test]
async fn rfc6120_13_12_pre_auth_size_limit() {
    let server = TestServer::start().await;
    let mut c = server.raw_starttls().await;
    let big = "A".repeat(20_000);
    let _ = c
        .try_send(format!(
            "<auth xmlns='{}' mechanism='PLAIN'>{big}</auth>",
            ns::SASL
        ))
        .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
}

// Same with an element that never ends: the limit applies to data being
// received, not only to complete elements.
#[tokio::test]
async fn rfc6120_13_12_pre_auth_size_limit_unterminated() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    let _ = c.try_send(format!("<foo>{}", "x".repeat(60_000))).await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
}

// An oversized stream header (before anything is negotiated) is refused with a stream error,
// <policy-violation/> (RFC 6120 §4.9.3.18), not a bare close: our header, the error, the end.
#[tokio::test]
async fn rfc6120_13_12_oversized_stream_header() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let _ = c
        .try_send(format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{}' to='localhost' version='1.0' x='{}'>",
            ns::STREAM,
            "y".repeat(30_000)
        ))
        .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
}

// After authentication `limits.max_stanza_size` applies: a stanza under the
// limit is routed, one over it closes the stream with <policy-violation/>.
#[tokio::test]
async fn rfc6120_13_12_post_auth_size_limit() {
    let server = TestServer::start_with(|c| c.max_stanza_size = 16_384).await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let to = bob.jid().to_string();
    // 12 kB before auth would exceed the pre-auth limit; after auth it is fine.
    let ok_body = "o".repeat(12_000);
    c.send(format!(
        "<message to='{to}' type='chat' id='ok'><body>{ok_body}</body></message>"
    ))
    .await;
    let m = bob.expect_message().await;
    assert_eq!(
        m.get_child("body", ns::CLIENT).map(|b| b.text().len()),
        Some(12_000)
    );
    let big = "b".repeat(40_000);
    let _ = c
        .try_send(format!(
            "<message to='{to}' type='chat' id='big'><body>{big}</body></message>"
        ))
        .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
    bob.expect_no_message(SILENCE).await;
}

// The default limit (262144) lets a 100 kB stanza through after auth.
#[tokio::test]
async fn rfc6120_13_12_default_limit_allows_large_stanzas() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let to = bob.jid().to_string();
    alice.send_message(&to, &"z".repeat(100_000)).await;
    let m = bob.expect_message().await;
    assert_eq!(
        m.get_child("body", ns::CLIENT).map(|b| b.text().len()),
        Some(100_000)
    );
}

// Deeply nested elements (small in bytes) are refused with <policy-violation/>.
#[tokio::test]
async fn rfc6120_13_12_deep_nesting() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let depth = 5_000;
    let mut s = String::from("<message to='alice@localhost' id='deep'>");
    s.push_str(&"<a>".repeat(depth));
    s.push_str(&"</a>".repeat(depth));
    s.push_str("</message>");
    let _ = c.try_send(s).await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
}

/// `(max-bytes, idle-seconds)` of the XEP-0478 `<limits/>` in `features`, both required.
fn stream_limits(features: &conformance::Element, stage: &str) -> (u64, u64) {
    let limits = features
        .get_child("limits", "urn:xmpp:stream-limits:0")
        .unwrap_or_else(|| panic!("no XEP-0478 <limits/> {stage}: {}", xml::to_string(features)));
    let number = |name: &str| -> u64 {
        limits
            .get_child(name, "urn:xmpp:stream-limits:0")
            .and_then(|e| e.text().trim().parse().ok())
            .unwrap_or_else(|| panic!("no <{name}/> {stage}: {}", xml::to_string(limits)))
    };
    (number("max-bytes"), number("idle-seconds"))
}

// XEP-0478: stream limits advertised in the features match what is enforced: 10000 bytes
// before authentication and `max_stanza_size` after; idle-seconds is the silence after which
// a connection is closed before login (`negotiation_idle_secs`), and after login the silence
// after which the server checks the connection with a ping (`idle_ping_secs`).
#[tokio::test]
async fn xep0478_stream_limits_advertised() {
    let server = TestServer::start_with(|c| c.max_stanza_size = 50_000).await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_starttls().await;
    let pre = c.features.clone().unwrap();
    c.sasl_scram(
        "alice",
        "passw0rd",
        conformance::ScramHash::Sha1,
        conformance::ChannelBindingMode::None,
    )
    .await
    .expect("login");
    let post = c.restart_stream().await;
    let (pre_max, pre_idle) = stream_limits(&pre, "before authentication");
    let (post_max, post_idle) = stream_limits(&post, "after authentication");
    assert_eq!(pre_max, 10_000, "pre-auth limit");
    assert_eq!(post_max, 50_000, "post-auth limit must be limits.max_stanza_size");
    assert_eq!(pre_idle, 10, "before login: negotiation_idle_secs");
    assert_eq!(post_idle, 300, "after login: idle_ping_secs");
}

// XEP-0478 idle-seconds before login is enforced: a connection that keeps talking stays
// (here an <abort/> every 0.7 s, answered each time, for well over the advertised time), and
// one that falls silent is closed with <connection-timeout/> (RFC 6120 §4.9.3.4) about
// idle-seconds later, long before the whole negotiation's deadline.
#[tokio::test]
async fn xep0478_idle_seconds_before_login_enforced() {
    let server = TestServer::start_with(|c| c.limits_toml = "negotiation_idle_secs = 2".into()).await;
    let mut c = server.raw_starttls().await;
    let (_, idle) = stream_limits(c.features.as_ref().unwrap(), "before authentication");
    assert_eq!(idle, 2);
    let idle = std::time::Duration::from_secs(idle);
    let started = std::time::Instant::now();
    while started.elapsed() < idle * 2 {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        c.send(format!("<abort xmlns='{}'/>", ns::SASL)).await;
        let e = c.expect_element().await;
        assert!(e.is("failure", ns::SASL), "{}", xml::to_string(&e));
    }
    let silent = std::time::Instant::now();
    c.timeout = idle * 4;
    let e = c.expect_stream_error().await;
    let after = silent.elapsed();
    e.assert_condition(&["connection-timeout"]);
    assert!(
        after >= idle - std::time::Duration::from_millis(300) && after <= idle * 2,
        "closed {after:?} after the last activity; idle-seconds is {idle:?}"
    );
}

// A connection that never even sends its stream header is let go after the same idle time,
// with our header and <connection-timeout/>.
#[tokio::test]
async fn rfc6120_4_9_3_4_silent_connection_let_go_after_idle_seconds() {
    let server = TestServer::start_with(|c| c.limits_toml = "negotiation_idle_secs = 1".into()).await;
    let mut c = server.raw().await;
    let started = std::time::Instant::now();
    let e = c.expect_stream_error().await;
    e.assert_condition(&["connection-timeout"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
}

/// `n` chat messages to `to` in one write.
fn messages(to: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("<message to='{to}' type='chat' id='m{i}'><body>{i}</body></message>"))
        .collect()
}

/// Waits for `n` messages at `bob`; how long that took.
async fn receive_all(bob: &mut conformance::XmppClient, n: usize) -> std::time::Duration {
    let started = std::time::Instant::now();
    for _ in 0..n {
        bob.expect_message().await;
    }
    started.elapsed()
}

// RFC 6120 §13.12 (rate limiting): past `limits.session_rate` the server slows the client down
// by reading later, without losing or refusing anything: 10 at once (the burst), then 20 per
// second, so 40 stanzas take about 1.5 s, and the session stays up.
#[tokio::test]
async fn rfc6120_13_12_rate_limit_throttles_reads() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "throttle_disconnect_secs = 30".into();
        c.extra_toml = "[limits.session_rate]\nstanzas_per_second = 20\nstanza_burst = 10\n".into();
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", None).await;
    alice.send(messages(&bob.jid().to_string(), 40)).await;
    let took = receive_all(&mut bob, 40).await;
    assert!(
        took >= std::time::Duration::from_millis(1200),
        "40 stanzas at 20/s after a burst of 10 arrived in {took:?}: not throttled"
    );
    let pong = alice
        .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        pong.attr("type"),
        Some("result"),
        "the throttled session is still up"
    );
}

// A session that stays over its rate for `throttle_disconnect_secs` is disconnected with
// <policy-violation/> (RFC 6120 §4.9.3.18); what it sent before that was delivered.
#[tokio::test]
async fn rfc6120_4_9_3_18_sustained_flood_is_policy_violation() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "throttle_disconnect_secs = 1".into();
        c.extra_toml = "[limits.session_rate]\nstanzas_per_second = 10\nstanza_burst = 5\n".into();
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", None).await;
    alice.send(messages(&bob.jid().to_string(), 200)).await;
    let e = alice.expect_stream_error().await;
    e.assert_condition(&["policy-violation"]);
    let mut got = 0;
    while bob
        .recv_within(std::time::Duration::from_millis(500))
        .await
        .is_some()
    {
        got += 1;
    }
    assert!(
        (5..100).contains(&got),
        "{got} of 200 delivered before the disconnect"
    );
}

// Presence broadcasts past `limits.presence_per_second` (and its burst) are refused with
// <policy-violation/>; the session stays.
#[tokio::test]
async fn rfc6121_4_2_presence_flood_is_refused() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "presence_per_second = 1\npresence_burst = 2".into();
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", None).await;
    let flood: String = (0..6)
        .map(|i| format!("<presence id='p{i}'><status>{i}</status></presence>"))
        .collect();
    alice.send(flood).await;
    let err = alice
        .read_until(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    assert_eq!(
        xml::stanza_error(&err).map(|(_, c)| c).as_deref(),
        Some("policy-violation"),
        "{}",
        xml::to_string(&err)
    );
    let pong = alice
        .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(pong.attr("type"), Some("result"));
}

// Subscription requests past `limits.subscriptions_per_minute` are refused with
// <policy-violation/>.
#[tokio::test]
async fn rfc6121_3_1_subscription_flood_is_refused() {
    let server = TestServer::start_with(|c| c.limits_toml = "subscriptions_per_minute = 2".into()).await;
    server.add_user("alice", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", None).await;
    let flood: String = (0..3)
        .map(|i| format!("<presence type='subscribe' id='s{i}' to='contact{i}@localhost'/>"))
        .collect();
    alice.send(flood).await;
    let err = alice
        .read_until(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    assert_eq!(err.attr("id"), Some("s2"), "{}", xml::to_string(&err));
    assert_eq!(
        xml::stanza_error(&err).map(|(_, c)| c).as_deref(),
        Some("policy-violation")
    );
}

// XEP-0199 §3 / RFC 6120 §4.6.3 (connection checks): an idle session is pinged by the server;
// answering keeps it, activity postpones the next ping, and silence ends it with
// <connection-timeout/> (§4.9.3.4).
#[tokio::test]
async fn xep0199_3_idle_ping_and_connection_timeout() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "idle_ping_secs = 1\nping_timeout_secs = 1".into();
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", Some("r")).await;
    let is_ping = |e: &minidom::Element| e.name() == "iq" && e.get_child("ping", ns::PING).is_some();
    // Idle: pinged after about a second; answering keeps the session.
    let ping = c.read_until(is_ping).await;
    assert_eq!(ping.attr("type"), Some("get"));
    let id = ping.attr("id").expect("ping id").to_string();
    c.send(format!("<iq type='result' id='{id}' to='localhost'/>"))
        .await;
    // Activity postpones the next ping: traffic every 400 ms for 2 s gets none.
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        c.send("<presence/>").await;
    }
    let started = std::time::Instant::now();
    let ping = c.read_until(is_ping).await;
    assert!(
        started.elapsed() > std::time::Duration::from_millis(500),
        "pinged despite recent traffic"
    );
    // Not answered: connection-timeout about a second later.
    assert_eq!(ping.attr("type"), Some("get"));
    let e = c.expect_stream_error().await;
    e.assert_condition(&["connection-timeout"]);
}
