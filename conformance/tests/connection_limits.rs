//! RFC 6120 §13.12 (connection limits): a refused connection is told why with a stream error
//! (§4.9.1.1: our header, the error, the close), `resource-constraint` when the server is full
//! (§4.9.3.17) and `policy-violation` when the address has too many (§4.9.3.18). Connections
//! that have not authenticated are capped per address apart from the authenticated ones, so
//! an address's silent connections neither take its users' sessions' places nor lock it out.
//!
//! Every 127.x.y.z is a loopback address of its own on Linux: tests play several IPs.

use std::time::Duration;

use conformance::{RawClient, TestServer, ns, xml};

/// Asserts `c` gets the stream error `condition` with a human-readable text, then the close.
async fn expect_refusal(c: &mut RawClient, condition: &str) {
    let e = c.expect_stream_error().await;
    e.assert_condition(&[condition]);
    let text = e
        .element
        .get_child("text", "urn:ietf:params:xml:ns:xmpp-streams")
        .map(|t| t.text())
        .unwrap_or_default();
    assert!(
        !text.trim().is_empty(),
        "no <text/> saying why: {}",
        xml::to_string(&e.element)
    );
}

/// A client from `ip` logged in (PLAIN) and bound.
async fn login_from(server: &TestServer, ip: &str, user: &str) -> RawClient {
    let mut c = server.raw_starttls_from(ip).await;
    c.sasl_plain(user, "passw0rd").await.expect("login");
    c.restart_stream().await;
    c.bind(None).await.expect("bind");
    c
}

async fn ping(c: &mut RawClient) {
    let r = c
        .iq("<iq type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

// §4.9.3.17: past `max_connections` a new connection gets <resource-constraint/> and a text.
#[tokio::test]
async fn rfc6120_4_9_3_17_server_full_is_resource_constraint() {
    let server = TestServer::start_with(|c| c.limits_toml = "max_connections = 2".into()).await;
    let _a = server.raw_from("127.0.3.1").await;
    let _b = server.raw_from("127.0.3.2").await;
    // Both are accepted (the server holds them) before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = server.raw_from("127.0.3.3").await;
    expect_refusal(&mut c, "resource-constraint").await;
}

// §4.9.3.18: past `unauthenticated_per_ip` an address's next connection gets
// <policy-violation/> and a text; another address is still served.
#[tokio::test]
async fn rfc6120_4_9_3_18_too_many_from_one_address_is_policy_violation() {
    let server = TestServer::start_with(|c| c.limits_toml = "unauthenticated_per_ip = 2".into()).await;
    let _a = server.raw_from("127.0.3.1").await;
    let _b = server.raw_from("127.0.3.1").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = server.raw_from("127.0.3.1").await;
    expect_refusal(&mut c, "policy-violation").await;
    let mut other = server.raw_from("127.0.3.2").await;
    let f = other.open_stream().await;
    assert!(
        f.get_child("starttls", ns::TLS).is_some(),
        "{}",
        xml::to_string(&f)
    );
}

// An address's silent connections (connected, never a word) do not lock its users out: with
// `connections_per_ip = 4`, four of them are there and a user from the same address still
// logs in at once.
#[tokio::test]
async fn rfc6120_13_12_silent_connections_do_not_lock_out_their_address() {
    let server = TestServer::start_with(|c| c.limits_toml = "connections_per_ip = 4".into()).await;
    server.add_user("alice", "passw0rd").await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(server.raw_from("127.0.3.5").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut alice = tokio::time::timeout(Duration::from_secs(5), login_from(&server, "127.0.3.5", "alice"))
        .await
        .expect("alice logged in beside the silent connections");
    ping(&mut alice).await;
}

// Authenticated and negotiating connections are counted apart: an address with its
// `connections_per_ip` sessions logged in can still open `unauthenticated_per_ip` new
// connections (one more is refused), and a login past its sessions' limit is refused once
// the password is proven, with <policy-violation/>; the sessions already there are untouched.
#[tokio::test]
async fn rfc6120_13_12_authenticated_and_negotiating_counted_apart() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "connections_per_ip = 2\nunauthenticated_per_ip = 2".into();
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    let mut a = login_from(&server, "127.0.3.6", "alice").await;
    let mut b = login_from(&server, "127.0.3.6", "alice").await;
    let mut third = server.raw_starttls_from("127.0.3.6").await;
    let _silent = server.raw_from("127.0.3.6").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = server.raw_from("127.0.3.6").await;
    expect_refusal(&mut refused, "policy-violation").await;
    // The right password, but the address already has its sessions: the stream error comes
    // instead of <success/>.
    let f = third
        .sasl_plain("alice", "passw0rd")
        .await
        .expect_err("a third session from the address was let in");
    assert_eq!(f.condition, "stream-error:policy-violation", "{f:?}");
    let text = f
        .element
        .as_ref()
        .and_then(|e| e.get_child("text", "urn:ietf:params:xml:ns:xmpp-streams"))
        .map(|t| t.text())
        .unwrap_or_default();
    assert!(!text.is_empty(), "no <text/> saying why: {f:?}");
    ping(&mut a).await;
    ping(&mut b).await;
}
