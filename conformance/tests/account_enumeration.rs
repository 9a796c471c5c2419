//! RFC 6120 §13.9 / RFC 5802 §9 (no account enumeration): nothing an unauthenticated client
//! can observe tells an existing account from a missing one beyond what the protocol must
//! say: not the time PLAIN takes, not the SCRAM challenge (iteration count, salt), and
//! in-band registration (XEP-0077), whose "name taken" answer cannot be avoided, only at the
//! registration rate.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use conformance::{RawClient, TestServer, ns, xml};

/// Limits high enough that the backoff never mixes into the timings.
const NO_BACKOFF: &str =
    "[auth]\nfailures_per_ip_per_minute = 100000\nfailures_per_account_per_minute = 100000\n";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// PLAIN runs the same key derivation for an unknown user as for an existing one (stand-in
// credentials with the usual iteration count), so the answer takes as long. Samples are
// interleaved (known, unknown, known, ...) so load on the machine hits both alike, and the
// medians must be within a factor of 1.6 of each other (without the stand-in work an unknown
// user was answered about 7 times faster in a release build, far more in a debug one).
#[tokio::test]
async fn rfc6120_13_9_plain_unknown_user_takes_as_long_as_known() {
    let server = TestServer::start_with(|c| c.extra_toml = NO_BACKOFF.into()).await;
    server.add_user("alice", "secret").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let mut c: Option<RawClient> = None;
    for i in 0..40 {
        // A stream allows 5 failures; open a new one every 4 (not timed).
        if i % 4 == 0 {
            c = Some(server.raw_starttls().await);
        }
        let c = c.as_mut().expect("stream");
        let user = if i % 2 == 0 {
            "alice".to_string()
        } else {
            format!("nobody{i}")
        };
        let started = Instant::now();
        let f = c
            .sasl_plain(&user, "wrong-password")
            .await
            .expect_err("wrong password");
        let took = started.elapsed();
        assert_eq!(f.condition, "not-authorized", "{user}: {f:?}");
        if i % 2 == 0 {
            known.push(took);
        } else {
            unknown.push(took);
        }
    }
    let (k, u) = (median(known.clone()), median(unknown.clone()));
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    eprintln!("PLAIN median: existing account {k:?}, unknown user {u:?} (ratio {ratio:.2})");
    assert!(
        (1.0 / 1.6..=1.6).contains(&ratio),
        "median answer for an unknown user {u:?} vs an existing one {k:?} (ratio {ratio:.2}): \
         the time tells them apart\nknown: {known:?}\nunknown: {unknown:?}"
    );
}

/// The `s=` (decoded) and `i=` of the server-first-message for `user` (SCRAM-SHA-256); the
/// exchange is then aborted.
async fn server_first(server: &TestServer, user: &str) -> (Vec<u8>, u32) {
    let mut c = server.raw_starttls().await;
    c.send_auth(
        "SCRAM-SHA-256",
        Some(format!("n,,n={user},r=abcdefgh").as_bytes()),
    )
    .await;
    let ch = c.expect_element().await;
    assert!(ch.is("challenge", ns::SASL), "{}", xml::to_string(&ch));
    let msg = String::from_utf8(B64.decode(ch.text().trim()).expect("base64")).expect("utf-8");
    let field = |k: &str| {
        msg.split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {msg}"))
            .to_string()
    };
    let salt = B64.decode(field("s=")).expect("salt is base64");
    let iterations = field("i=").parse().expect("iteration count");
    c.send(format!("<abort xmlns='{}'/>", ns::SASL)).await;
    (salt, iterations)
}

// RFC 5802 §5.1 / §9: after the operator raised `auth.scram_iterations` (a reload), existing
// accounts keep their stored count until their password changes; an unknown user must be
// offered that same usual count, not the new setting, and a salt of the same length that
// stays the same from one try to the next, like a real account's.
#[tokio::test]
async fn rfc5802_9_unknown_user_challenge_looks_like_an_account() {
    let mut server =
        TestServer::start_with(|c| c.extra_toml = "[auth]\nscram_iterations = 4096\n".into()).await;
    server.add_user("alice", "secret").await;
    server.add_user("bob", "secret").await;
    server.rewrite_config(|c| c.extra_toml = "[auth]\nscram_iterations = 20000\n".into());
    server.sighup().await;
    assert!(
        server
            .wait_for_log("configuration reloaded", 1, Duration::from_secs(10))
            .await,
        "no reload: {}",
        server.logs()
    );
    let (alice_salt, alice_i) = server_first(&server, "alice").await;
    assert_eq!(alice_i, 4096, "the stored count of an existing account");
    let (salt, i) = server_first(&server, "nobody").await;
    assert_eq!(
        i, alice_i,
        "an unknown user is offered {i} iterations, the accounts have {alice_i}"
    );
    assert_eq!(salt.len(), alice_salt.len(), "salt length tells them apart");
    let (again, _) = server_first(&server, "nobody").await;
    assert_eq!(
        again, salt,
        "an unknown user's salt changes from one try to the next"
    );
    let (other, _) = server_first(&server, "somebody").await;
    assert_ne!(other, salt, "two unknown users share a salt");
}

/// Sends an XEP-0077 registration on an unauthenticated stream; the reply.
async fn register(c: &mut RawClient, user: &str) -> conformance::Element {
    c.iq(&format!(
        "<iq type='set' id='reg-{user}'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>long-enough-pw</password></query></iq>"
    ))
    .await
}

// XEP-0077 §3.1 / §11 (security): "that name is taken" (conflict) tells that an account
// exists, so every registration that gets that far counts against the address's
// `registration.per_ip_per_hour`, taken names included: probing for accounts is no faster
// than creating them.
#[tokio::test]
async fn xep0077_11_taken_names_count_against_the_registration_rate() {
    let server = TestServer::start_with(|c| {
        c.registration = true;
        c.registration_toml = "per_ip_per_hour = 2".into();
    })
    .await;
    server.add_user("alice", "secret").await;
    let mut c = server.raw_starttls().await;
    for _ in 0..2 {
        let r = register(&mut c, "alice").await;
        assert_eq!(
            xml::stanza_error(&r).map(|(_, c)| c).as_deref(),
            Some("conflict"),
            "{}",
            xml::to_string(&r)
        );
    }
    let r = register(&mut c, "carol").await;
    assert_eq!(
        xml::stanza_error(&r).map(|(_, c)| c).as_deref(),
        Some("resource-constraint"),
        "a third registration in the hour after two probes: {}",
        xml::to_string(&r)
    );
    assert!(
        !server
            .list_users(None)
            .await
            .iter()
            .any(|u| u.starts_with("carol@")),
        "carol was created past the limit"
    );
}
