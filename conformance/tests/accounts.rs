//! XEP-0077 in-band registration / password change / cancellation, and the
//! HTTP health endpoint.

use std::time::Duration;

use conformance::client::tokio_xmpp_sasl_login;
use conformance::{ChannelBindingMode, Incoming, ScramHash, TestServer, ns, xml};

async fn registration_server() -> TestServer {
    TestServer::start_with(|c| c.registration = true).await
}

async fn login_ok(server: &TestServer, user: &str, pw: &str) -> bool {
    let mut c = server.raw_starttls().await;
    c.sasl_scram(user, pw, ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .is_ok()
}

fn register_query(user: &str, pw: &str) -> String {
    format!(
        "<query xmlns='{}'><username>{}</username><password>{}</password></query>",
        ns::REGISTER,
        xml::escape(user),
        xml::escape(pw)
    )
}

// XEP-0077 §8 / §3.1: registration is disabled by default: no stream feature,
// and registration attempts fail without creating an account.
#[tokio::test]
async fn xep0077_registration_disabled_by_default() {
    let server = TestServer::start().await;
    let mut c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    assert!(
        f.get_child("register", ns::REGISTER_FEATURE).is_none(),
        "register feature advertised although disabled: {}",
        xml::to_string(&f)
    );
    c.send(format!(
        "<iq type='set' id='reg1' to='localhost'>{}</iq>",
        register_query("mallory", "passw0rd")
    ))
    .await;
    match c.next().await {
        Incoming::Element(e) if e.name() == "iq" => {
            assert_eq!(
                e.attr("type"),
                Some("error"),
                "registration accepted: {}",
                xml::to_string(&e)
            );
        }
        Incoming::Element(e) if e.is("error", ns::STREAM) => {
            let cond = xml::stream_error_condition(&e).unwrap_or_default();
            assert!(
                cond == "not-authorized" || cond == "policy-violation",
                "{}",
                xml::to_string(&e)
            );
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert!(
        !server
            .list_users(None)
            .await
            .contains(&"mallory@localhost".to_string())
    );
    assert!(!login_ok(&server, "mallory", "passw0rd").await);
}

// XEP-0077 §3.1: with registration enabled, the feature is advertised, the
// form asks for username and password, and a new account can log in.
#[tokio::test]
async fn xep0077_register_new_account() {
    let server = registration_server().await;
    let mut c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    assert!(
        f.get_child("register", ns::REGISTER_FEATURE).is_some(),
        "register feature not advertised: {}",
        xml::to_string(&f)
    );
    let r = c
        .iq(&format!(
            "<iq type='get' id='form' to='localhost'><query xmlns='{}'/></iq>",
            ns::REGISTER
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let q = r.get_child("query", ns::REGISTER).expect("query");
    assert!(
        q.get_child("username", ns::REGISTER).is_some(),
        "{}",
        xml::to_string(q)
    );
    assert!(
        q.get_child("password", ns::REGISTER).is_some(),
        "{}",
        xml::to_string(q)
    );
    let r = c
        .iq(&format!(
            "<iq type='set' id='reg' to='localhost'>{}</iq>",
            register_query("newbie", "n3wpass")
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    // The new account works with tokio-xmpp and shows in the CLI.
    let client = server.client("newbie", "n3wpass").await;
    assert_eq!(client.jid().to_bare().to_string(), "newbie@localhost");
    assert!(
        server
            .list_users(None)
            .await
            .contains(&"newbie@localhost".to_string())
    );
}

// XEP-0077 §3.1: registering an existing username -> <conflict/>; missing
// password -> <not-acceptable/> (or bad-request).
#[tokio::test]
async fn xep0077_register_conflict_and_not_acceptable() {
    let server = registration_server().await;
    server.add_user("alice", "original").await;
    let mut c = server.raw_starttls().await;
    let r = c
        .iq(&format!(
            "<iq type='set' id='dup' to='localhost'>{}</iq>",
            register_query("alice", "hijack")
        ))
        .await;
    xml::assert_stanza_error(&r, &["conflict"]);
    let r = c
        .iq(&format!(
            "<iq type='set' id='nopw' to='localhost'><query xmlns='{}'><username>someone</username></query></iq>",
            ns::REGISTER
        ))
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable", "bad-request"]);
    assert!(
        login_ok(&server, "alice", "original").await,
        "existing password changed"
    );
    assert!(!login_ok(&server, "alice", "hijack").await, "account hijacked");
}

// XEP-0077 §3.1 with §6: a data form submission, which the form we offer never asks for
// (it lists username and password only), is refused for want of those fields and creates
// nothing.
#[tokio::test]
async fn xep0077_3_1_unrequested_data_form_creates_nothing() {
    let server = registration_server().await;
    let mut c = server.raw_starttls().await;
    let r = c
        .iq(&format!(
            "<iq type='set' id='xform' to='localhost'><query xmlns='{}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='username'><value>formuser</value></field>\
             <field var='password'><value>f0rmpass</value></field></x></query></iq>",
            ns::REGISTER
        ))
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    assert!(
        !server
            .list_users(None)
            .await
            .contains(&"formuser@localhost".to_string())
    );
}

// XEP-0077 §3.3: password change by a logged-in user.
#[tokio::test]
async fn xep0077_change_password() {
    let server = registration_server().await;
    server.add_user("alice", "old-password").await;
    let mut c = server.client("alice", "old-password").await;
    let r = c
        .iq("set", Some("localhost"), &register_query("alice", "new-secret"))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    c.close().await;
    assert!(
        login_ok(&server, "alice", "new-secret").await,
        "new password rejected"
    );
    assert!(
        !login_ok(&server, "alice", "old-password").await,
        "old password still accepted"
    );
    tokio_xmpp_sasl_login(
        server.starttls_connector(),
        "alice@localhost",
        "new-secret",
        &["SCRAM-SHA-256"],
    )
    .await
    .expect("SCRAM-SHA-256 with the new password");
}

// XEP-0077 §3.3: a user cannot change another user's password.
#[tokio::test]
async fn xep0077_change_other_users_password_refused() {
    let server = registration_server().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "bob-password").await;
    let mut c = server.client("alice", "passw0rd").await;
    let r = c
        .iq("set", Some("localhost"), &register_query("bob", "owned-pw"))
        .await;
    assert_eq!(
        r.attr("type"),
        Some("error"),
        "changed bob's password: {}",
        xml::to_string(&r)
    );
    assert!(login_ok(&server, "bob", "bob-password").await);
    assert!(!login_ok(&server, "bob", "owned-pw").await);
}

// XEP-0077 §3.2: account removal with <remove/>.
#[tokio::test]
async fn xep0077_cancel_registration() {
    let server = registration_server().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    c.send(format!(
        "<iq type='set' id='rm1' to='localhost'><query xmlns='{}'><remove/></query></iq>",
        ns::REGISTER
    ))
    .await;
    let r = c.expect_element().await;
    assert_eq!(r.attr("id"), Some("rm1"), "{}", xml::to_string(&r));
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    // The server may close the stream afterwards; whatever it does, give it a moment.
    let _ = c.next_within(Duration::from_millis(500)).await;
    assert!(
        !login_ok(&server, "alice", "passw0rd").await,
        "removed account can still log in"
    );
    assert!(
        !server
            .list_users(None)
            .await
            .contains(&"alice@localhost".to_string())
    );
}

// The HTTP listener's health check.
#[tokio::test]
async fn http_health_endpoint() {
    let server = TestServer::start().await;
    let text = server.http_get("/health").await;
    let status = text.lines().next().unwrap_or("");
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "status line: {status:?}\n{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(body.trim(), "ok", "body: {body:?}");
}
