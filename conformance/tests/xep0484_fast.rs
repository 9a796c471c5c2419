//! XEP-0484 Fast Authentication Streamlining Tokens in SASL2, raw XML: the `<fast/>` inline
//! feature, `<request-token/>` and `<token/>`, logins with HT-SHA-256-NONE/-ENDP/-EXPR,
//! replay protection by `count`, invalidation, rotation, expiry, revocation by a password
//! change, and the binding of a token to its user agent and mechanism.

use std::time::Duration;

use conformance::sasl2::{self, FAST, NS};
use conformance::{RawClient, TestServer, xml};

const UA: &str = "5bc1f6e2-fast-ua";

async fn with_alice() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    server
}

/// A password login of alice from `UA` that asks for a token for `mechanism`.
async fn token_for(server: &TestServer, mechanism: &str) -> (String, String) {
    let mut c = server.raw_starttls().await;
    let extra = format!(
        "{}<request-token xmlns='{FAST}' mechanism='{mechanism}'/>",
        sasl2::user_agent(UA)
    );
    let success = sasl2::login(&mut c, "alice", "secret", &extra).await;
    sasl2::token_of(&success).unwrap_or_else(|| panic!("no <token/>: {}", xml::to_string(&success)))
}

async fn fresh(server: &TestServer) -> RawClient {
    server.raw_starttls().await
}

/// A HT-SHA-256-NONE login of alice from `UA` with `token` and `fast_attrs`.
async fn none_login(
    server: &TestServer,
    token: &str,
    fast_attrs: &str,
) -> Result<conformance::Element, conformance::Element> {
    let mut c = fresh(server).await;
    sasl2::fast_login(&mut c, "HT-SHA-256-NONE", "alice", token, b"", UA, fast_attrs, "").await
}

// §2: FAST rides inline in SASL2's feature, with the HT mechanisms this TLS connection can
// bind to (tls-exporter and tls-server-end-point, and NONE).
#[tokio::test]
async fn xep0484_2_fast_offered_inline_with_ht_mechanisms() {
    let server = TestServer::start().await;
    let c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    let fast = sasl2::authentication(&f)
        .and_then(|a| a.get_child("inline", NS))
        .and_then(|i| i.get_child("fast", FAST))
        .unwrap_or_else(|| panic!("no <fast/>: {}", xml::to_string(&f)));
    let mechs: Vec<String> = fast.children().map(|m| m.text()).collect();
    assert_eq!(mechs, ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]);
    // Not among the password mechanisms.
    assert!(!sasl2::mechanisms(&f).iter().any(|m| m.starts_with("HT-")));
}

// §3.1-§3.3: a password login with `<request-token/>` gets a `<token/>` with its expiry (the
// configured lifetime, 14 days by default); the next login uses it, with a count, and the
// server proves it knows the token in `<additional-data/>`.
#[tokio::test]
async fn xep0484_3_request_token_then_log_in_with_it() {
    let server = with_alice().await;
    let (token, expiry) = token_for(&server, "HT-SHA-256-NONE").await;
    assert!(token.len() >= 32, "{token}");
    let expiry = chrono_like_days_from_now(&expiry);
    assert!((13..=14).contains(&expiry), "expiry in {expiry} days");
    let success = none_login(&server, &token, "count='1'")
        .await
        .unwrap_or_else(|f| panic!("{}", xml::to_string(&f)));
    assert_eq!(sasl2::authorization_identifier(&success), "alice@localhost");
}

/// Days from now until an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` time (rounded down).
fn chrono_like_days_from_now(t: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .expect("date");
    let then: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad expiry {t}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (then - now) / 86400
}

// §3.4 replay protection: the same count twice (a replayed initial response) is refused;
// a higher one works.
#[tokio::test]
async fn xep0484_3_4_token_replay_with_the_same_count_is_refused() {
    let server = with_alice().await;
    let (token, _) = token_for(&server, "HT-SHA-256-NONE").await;
    none_login(&server, &token, "count='5'").await.expect("first use");
    let f = none_login(&server, &token, "count='5'")
        .await
        .expect_err("a replay");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    let f = none_login(&server, &token, "count='4'")
        .await
        .expect_err("an older count");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    none_login(&server, &token, "count='6'")
        .await
        .expect("a higher count");
}

// A wrong token, another user agent's token and a token used with another mechanism than
// the one it was issued for are all refused.
#[tokio::test]
async fn xep0484_3_token_bound_to_user_agent_and_mechanism() {
    let server = with_alice().await;
    let (token, _) = token_for(&server, "HT-SHA-256-NONE").await;
    let f = none_login(&server, "not-the-token", "count='1'")
        .await
        .expect_err("wrong token");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    let mut c = fresh(&server).await;
    let f = sasl2::fast_login(
        &mut c,
        "HT-SHA-256-NONE",
        "alice",
        &token,
        b"",
        "another-agent",
        "count='1'",
        "",
    )
    .await
    .expect_err("another user agent");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    let mut c = fresh(&server).await;
    let cb = c.tls_server_end_point().expect("end point");
    let f = sasl2::fast_login(
        &mut c,
        "HT-SHA-256-ENDP",
        "alice",
        &token,
        &cb,
        UA,
        "count='1'",
        "",
    )
    .await
    .expect_err("another mechanism");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    // A mechanism that is not offered at all.
    let mut c = fresh(&server).await;
    let f = sasl2::fast_login(&mut c, "HT-SHA-256-UNIQ", "alice", &token, b"", UA, "", "")
        .await
        .expect_err("tls-unique is not offered");
    assert_eq!(sasl2::condition(&f), "invalid-mechanism");
    none_login(&server, &token, "count='1'")
        .await
        .expect("the right use still works");
}

// Channel binding (-EXPR with RFC 9266 tls-exporter, -ENDP with RFC 5929
// tls-server-end-point): the token works only with this connection's binding data.
#[tokio::test]
async fn xep0484_3_channel_bound_tokens() {
    let server = with_alice().await;
    let (token, _) = token_for(&server, "HT-SHA-256-EXPR").await;
    let mut c = fresh(&server).await;
    let exporter = c.tls_exporter().expect("exporter");
    sasl2::fast_login(&mut c, "HT-SHA-256-EXPR", "alice", &token, &exporter, UA, "", "")
        .await
        .unwrap_or_else(|f| panic!("{}", xml::to_string(&f)));
    // Another connection's exporter value (a relayed login) does not work.
    let mut c = fresh(&server).await;
    let f = sasl2::fast_login(&mut c, "HT-SHA-256-EXPR", "alice", &token, &exporter, UA, "", "")
        .await
        .expect_err("stale binding data");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    let (token, _) = token_for(&server, "HT-SHA-256-ENDP").await;
    let mut c = fresh(&server).await;
    let endp = c.tls_server_end_point().expect("end point");
    sasl2::fast_login(&mut c, "HT-SHA-256-ENDP", "alice", &token, &endp, UA, "", "")
        .await
        .unwrap_or_else(|f| panic!("{}", xml::to_string(&f)));
}

// `auth.fast_token_lifetime_secs`: an expired token is refused with credentials-expired.
#[tokio::test]
async fn xep0484_3_expired_token_is_refused() {
    let server =
        TestServer::start_with(|c| c.extra_toml = "[auth]\nfast_token_lifetime_secs = 1\n".into()).await;
    server.add_user("alice", "secret").await;
    let (token, _) = token_for(&server, "HT-SHA-256-NONE").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let f = none_login(&server, &token, "count='1'")
        .await
        .expect_err("expired");
    assert_eq!(sasl2::condition(&f), "credentials-expired");
}

// Changing the password revokes every token (XEP-0077 in-band change here).
#[tokio::test]
async fn xep0484_revoked_token_after_password_change() {
    let server = with_alice().await;
    let (token, _) = token_for(&server, "HT-SHA-256-NONE").await;
    let mut c = server.raw_login("alice", "secret", Some("pw")).await;
    let r = c
        .iq("<iq type='set' id='pw1'><query xmlns='jabber:iq:register'><username>alice</username><password>n3w-secret</password></query></iq>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let f = none_login(&server, &token, "count='1'")
        .await
        .expect_err("revoked");
    assert_eq!(sasl2::condition(&f), "not-authorized");
}

// §3.5: `<fast invalidate='true'/>` logs in one last time and ends the token.
#[tokio::test]
async fn xep0484_3_5_invalidate_ends_the_token() {
    let server = with_alice().await;
    let (token, _) = token_for(&server, "HT-SHA-256-NONE").await;
    none_login(&server, &token, "count='1' invalidate='true'")
        .await
        .expect("last use");
    let f = none_login(&server, &token, "count='2'")
        .await
        .expect_err("invalidated");
    assert_eq!(sasl2::condition(&f), "not-authorized");
}

// §3.3 rotation: a FAST login that asks for a new token gets one; the old token still works
// until the new one is used, then it is retired.
#[tokio::test]
async fn xep0484_3_3_rotation_retires_the_old_token_once_the_new_one_is_used() {
    let server = with_alice().await;
    let (old, _) = token_for(&server, "HT-SHA-256-NONE").await;
    let mut c = fresh(&server).await;
    let request = format!("<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>");
    let success = sasl2::fast_login(
        &mut c,
        "HT-SHA-256-NONE",
        "alice",
        &old,
        b"",
        UA,
        "count='1'",
        &request,
    )
    .await
    .unwrap_or_else(|f| panic!("{}", xml::to_string(&f)));
    let (new, _) = sasl2::token_of(&success).expect("a rotated token");
    assert_ne!(new, old);
    none_login(&server, &old, "count='2'")
        .await
        .expect("the old one until the new is used");
    none_login(&server, &new, "count='1'").await.expect("the new one");
    let f = none_login(&server, &old, "count='3'").await.expect_err("retired");
    assert_eq!(sasl2::condition(&f), "not-authorized");
}

// Without a user-agent id there is nothing to bind a token to: no token is issued.
#[tokio::test]
async fn xep0484_3_no_token_without_user_agent_id() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let extra = format!("<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>");
    let success = sasl2::login(&mut c, "alice", "secret", &extra).await;
    assert!(
        sasl2::token_of(&success).is_none(),
        "{}",
        xml::to_string(&success)
    );
}
