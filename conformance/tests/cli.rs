//! The `switchboard user ...` CLI, run against a live server (same database).

use conformance::{ChannelBindingMode, ScramHash, TestServer};

async fn login_ok(server: &TestServer, user: &str, pw: &str) -> bool {
    let mut c = server.raw_starttls().await;
    c.sasl_scram(user, pw, ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .is_ok()
}

fn combined(out: &conformance::CliOutput) -> String {
    format!("{}{}", out.stdout, out.stderr).to_lowercase()
}

// `user add` on a running server: the account works immediately (SCRAM and
// tokio-xmpp), and appears in `user list`.
#[tokio::test]
async fn cli_user_add_then_login() {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    assert!(login_ok(&server, "alice", "secret").await);
    let c = server.client("alice", "secret").await;
    assert_eq!(c.jid().to_bare().to_string(), "alice@localhost");
    assert_eq!(server.list_users(None).await, vec!["alice@localhost".to_string()]);
}

// Adding an existing user fails with a clear message.
#[tokio::test]
async fn cli_user_add_existing_fails() {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    let out = server
        .cli(&["user", "add", "alice@localhost", "--password", "other-password"])
        .await;
    assert!(!out.success(), "duplicate add succeeded: {out:?}");
    assert!(
        combined(&out).contains("exist"),
        "message should say the user exists: {out:?}"
    );
    assert!(
        login_ok(&server, "alice", "secret").await,
        "password was overwritten"
    );
}

// Invalid JIDs are refused.
#[tokio::test]
async fn cli_user_add_invalid_jid_fails() {
    let server = TestServer::start().await;
    for bad in ["@localhost", "a@b@localhost", "localhost", "al ice@localhost", ""] {
        let out = server.cli(&["user", "add", bad, "--password", "passw0rd"]).await;
        assert!(!out.success(), "`user add {bad:?}` succeeded: {out:?}");
        assert!(!combined(&out).trim().is_empty(), "no message for {bad:?}");
    }
    assert!(server.list_users(None).await.is_empty());
}

// A domain the server does not serve is refused, naming the domain.
#[tokio::test]
async fn cli_user_add_unknown_domain_fails() {
    let server = TestServer::start().await;
    let out = server
        .cli(&["user", "add", "alice@example.org", "--password", "passw0rd"])
        .await;
    assert!(!out.success(), "{out:?}");
    assert!(
        combined(&out).contains("example.org"),
        "message should name the domain: {out:?}"
    );
}

// `user del` removes the account: login fails and it is no longer listed.
#[tokio::test]
async fn cli_user_del() {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    server.add_user("bob", "passw0rd").await;
    let out = server.cli(&["user", "del", "alice@localhost"]).await;
    assert!(out.success(), "{out:?}");
    assert!(
        !login_ok(&server, "alice", "secret").await,
        "deleted user can log in"
    );
    assert_eq!(server.list_users(None).await, vec!["bob@localhost".to_string()]);
}

// `user del` of a user that does not exist reports an error.
#[tokio::test]
async fn cli_user_del_unknown_fails() {
    let server = TestServer::start().await;
    let out = server.cli(&["user", "del", "ghost@localhost"]).await;
    assert!(!out.success(), "{out:?}");
}

// `user passwd` changes the password of a live server's user.
#[tokio::test]
async fn cli_user_passwd() {
    let server = TestServer::start().await;
    server.add_user("alice", "old-password").await;
    let out = server
        .cli(&["user", "passwd", "alice@localhost", "--password", "new-password"])
        .await;
    assert!(out.success(), "{out:?}");
    assert!(
        login_ok(&server, "alice", "new-password").await,
        "new password rejected"
    );
    assert!(
        !login_ok(&server, "alice", "old-password").await,
        "old password accepted"
    );
    // SCRAM-SHA-256 credentials were updated too.
    conformance::client::tokio_xmpp_sasl_login(
        server.starttls_connector(),
        "alice@localhost",
        "new-password",
        &["SCRAM-SHA-256"],
    )
    .await
    .expect("SCRAM-SHA-256 with the new password");
}

// `user passwd` for an unknown user fails.
#[tokio::test]
async fn cli_user_passwd_unknown_fails() {
    let server = TestServer::start().await;
    let out = server
        .cli(&["user", "passwd", "ghost@localhost", "--password", "x-password"])
        .await;
    assert!(!out.success(), "{out:?}");
}

// `user list [DOMAIN]`: one JID per line, filtered by domain.
#[tokio::test]
async fn cli_user_list() {
    let server = TestServer::start_with(|c| {
        c.domains = vec!["localhost".into(), "example.net".into()];
    })
    .await;
    assert!(server.list_users(None).await.is_empty());
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let out = server
        .cli(&["user", "add", "carol@example.net", "--password", "passw0rd"])
        .await;
    assert!(out.success(), "{out:?}");
    assert_eq!(
        server.list_users(None).await,
        vec!["alice@localhost", "bob@localhost", "carol@example.net"]
    );
    assert_eq!(
        server.list_users(Some("localhost")).await,
        vec!["alice@localhost", "bob@localhost"]
    );
    assert_eq!(
        server.list_users(Some("example.net")).await,
        vec!["carol@example.net"]
    );
}

// RFC 7622 §3.3: JIDs are normalised (case-mapped localpart and domain), so
// an account added as Dave@LOCALHOST is dave@localhost.
#[tokio::test]
async fn rfc7622_3_3_cli_normalises_jid() {
    let server = TestServer::start().await;
    let out = server
        .cli(&["user", "add", "Dave@LOCALHOST", "--password", "passw0rd"])
        .await;
    assert!(out.success(), "{out:?}");
    assert_eq!(server.list_users(None).await, vec!["dave@localhost"]);
    assert!(login_ok(&server, "dave", "passw0rd").await);
    let dup = server
        .cli(&["user", "add", "dave@localhost", "--password", "passw0rd2"])
        .await;
    assert!(!dup.success(), "dave@localhost added twice: {dup:?}");
}
