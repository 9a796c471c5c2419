//! Configuration reload (SIGHUP and our `reload-config` ad-hoc command): limits change on a
//! live server without dropping sessions, keys that need a restart keep their running value,
//! and an invalid file changes nothing. Also `switchboard config check FILE` / `example`.

use std::time::{Duration, Instant};

use conformance::{Element, RawClient, TestServer, XmppClient, xml};

const PW: &str = "passw0rd";
const CMD: &str = "http://jabber.org/protocol/commands";
const RELOAD: &str = "https://github.com/switchboard-xmpp/switchboard#reload-config";
const SLOW: &str = "[limits.session_rate]\nstanzas_per_second = 10\nstanza_burst = 5\n";
/// 25 stanzas at 10/s after a burst of 5 take 2 s; unthrottled, milliseconds. The bounds
/// leave room for a loaded machine.
const FAST: Duration = Duration::from_millis(1400);
const SLOWER_THAN: Duration = Duration::from_millis(1600);

/// A server with admin@localhost in `admins`, and the accounts admin, alice and bob.
async fn server() -> TestServer {
    let server = TestServer::start_with(|c| c.admins = vec!["admin@localhost".into()]).await;
    for user in ["admin", "alice", "bob"] {
        server.add_user(user, PW).await;
    }
    server
}

fn messages(to: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("<message to='{to}' type='chat' id='m{i}'><body>{i}</body></message>"))
        .collect()
}

/// Sends `n` messages from `from` to `to` in one write; how long until all arrived.
async fn burst(from: &mut RawClient, to: &mut XmppClient, n: usize) -> Duration {
    from.send(messages(&to.jid().to_string(), n)).await;
    let started = Instant::now();
    for _ in 0..n {
        to.expect_message().await;
    }
    started.elapsed()
}

async fn ping(c: &mut RawClient) {
    let r = c
        .iq("<iq type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(
        r.attr("type"),
        Some("result"),
        "session still up: {}",
        xml::to_string(&r)
    );
}

/// Runs the reload command; its `<note/>` (type, text).
async fn reload_command(admin: &mut XmppClient) -> (String, String) {
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{RELOAD}' action='execute'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let cmd: &Element = r.get_child("command", CMD).expect("command");
    assert_eq!(cmd.attr("status"), Some("completed"));
    let note = cmd.get_child("note", CMD).expect("note");
    (note.attr("type").unwrap_or("info").to_string(), note.text())
}

// The acceptance test: SIGHUP with a lower `limits.session_rate` throttles a session
// that was open before the reload, and does not drop it.
#[tokio::test]
async fn sighup_reload_lowers_rate_on_live_session() {
    let mut server = server().await;
    let mut bob = server.client("bob", PW).await;
    let mut alice = server.raw_login("alice", PW, None).await;
    let fast = burst(&mut alice, &mut bob, 25).await;
    assert!(fast < FAST, "default limits: 25 stanzas took {fast:?}");
    server.rewrite_config(|c| c.extra_toml = SLOW.into());
    server.sighup().await;
    assert!(
        server
            .wait_for_log("configuration reloaded", 1, Duration::from_secs(10))
            .await,
        "no reload logged:\n{}",
        server.logs()
    );
    let slow = burst(&mut alice, &mut bob, 25).await;
    assert!(
        slow >= SLOWER_THAN,
        "after lowering to 10/s (burst 5) 25 stanzas took {slow:?}"
    );
    ping(&mut alice).await;
}

// The same through the ad-hoc command, whose note names what changed; the admin's own
// session survives too. Raising the limit again takes effect as well.
#[tokio::test]
async fn adhoc_reload_changes_limits_without_dropping_sessions() {
    let mut server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut bob = server.client("bob", PW).await;
    let mut alice = server.raw_login("alice", PW, None).await;
    server.rewrite_config(|c| c.extra_toml = SLOW.into());
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "info", "{text}");
    assert!(text.contains("limits.session_rate.stanzas_per_second"), "{text}");
    let slow = burst(&mut alice, &mut bob, 25).await;
    assert!(slow >= SLOWER_THAN, "25 stanzas took {slow:?}");
    server.rewrite_config(|c| c.extra_toml.clear());
    let (_, text) = reload_command(&mut admin).await;
    assert!(text.contains("limits.session_rate"), "{text}");
    let fast = burst(&mut alice, &mut bob, 25).await;
    assert!(fast < FAST, "limits raised again: 25 stanzas took {fast:?}");
    ping(&mut alice).await;
    admin.ping_server().await;
}

// An invalid file is reported (file, line and key) and the running configuration stays:
// the lower limit in that file is not applied.
#[tokio::test]
async fn invalid_reload_keeps_old_config() {
    let mut server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut bob = server.client("bob", PW).await;
    let mut alice = server.raw_login("alice", PW, None).await;
    let broken = format!("{}{SLOW}no_such_key = 1\n", server.rendered_config());
    server.write_config_text(&broken);
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("no_such_key"), "{text}");
    assert!(
        text.contains("switchboard.toml:"),
        "names the file and line: {text}"
    );
    server.sighup().await;
    assert!(
        server
            .wait_for_log("configuration reload failed", 2, Duration::from_secs(10))
            .await,
        "{}",
        server.logs()
    );
    let fast = burst(&mut alice, &mut bob, 25).await;
    assert!(fast < FAST, "old limits kept: 25 stanzas took {fast:?}");
    // A semantically invalid value is refused the same way.
    server.rewrite_config(|c| c.limits_toml = "max_depth = 1".into());
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("max_depth"), "{text}");
    ping(&mut alice).await;
}

// Keys that need a restart (here `domains`) keep their running value and are reported; the
// rest of the file is applied.
#[tokio::test]
async fn reload_reports_keys_that_need_a_restart() {
    let mut server = server().await;
    let mut admin = server.client("admin", PW).await;
    server.rewrite_config(|c| {
        c.domains.push("other.example".into());
        c.registration = true;
    });
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "info", "{text}");
    assert!(text.contains("needs restart (kept): domains"), "{text}");
    assert!(text.contains("registration.enabled"), "{text}");
    // Registration is now advertised to new connections; the new domain is not hosted.
    let mut c = server.raw_starttls().await;
    let features = c.features.clone().expect("features");
    assert!(
        features
            .get_child("register", "http://jabber.org/features/iq-register")
            .is_some(),
        "{}",
        xml::to_string(&features)
    );
    c.close_stream().await;
    let mut other = RawClient::connect(server.c2s_addr(), server.tls_config(), "other.example").await;
    other.send_header().await;
    let e = other.expect_stream_error().await;
    e.assert_condition(&["host-unknown"]);
    admin.ping_server().await;
}

// XEP-0478: after a reload, new streams advertise the new `max_stanza_size`.
#[tokio::test]
async fn xep0478_limits_after_reload_are_advertised() {
    let mut server = server().await;
    let mut admin = server.client("admin", PW).await;
    server.rewrite_config(|c| c.max_stanza_size = 70_000);
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "info", "{text}");
    let mut c = server.raw_starttls().await;
    c.sasl_scram(
        "alice",
        PW,
        conformance::ScramHash::Sha1,
        conformance::ChannelBindingMode::None,
    )
    .await
    .expect("login");
    let features = c.restart_stream().await;
    let max = features
        .get_child("limits", "urn:xmpp:stream-limits:0")
        .and_then(|l| l.get_child("max-bytes", "urn:xmpp:stream-limits:0"))
        .map(|m| m.text());
    assert_eq!(max.as_deref(), Some("70000"));
}

// Non-admins cannot reload.
#[tokio::test]
async fn reload_command_is_admin_only() {
    let server = server().await;
    let mut alice = server.client("alice", PW).await;
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{RELOAD}' action='execute'/>"),
        )
        .await;
    assert_eq!(
        xml::stanza_error(&r).map(|(_, c)| c).as_deref(),
        Some("forbidden"),
        "{}",
        xml::to_string(&r)
    );
}

// `switchboard config check FILE` names the file, line and key of an error; `config example`
// prints a file that checks clean.
#[tokio::test]
async fn config_check_and_example_cli() {
    let server = TestServer::start().await;
    let bad = server.dir().join("bad.toml");
    std::fs::write(&bad, "domains = [\"localhost\"]\n\n[limits]\nmax_depth = 2\n").unwrap();
    let out = server.cli(&["config", "check", bad.to_str().unwrap()]).await;
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("bad.toml:4"), "{out:?}");
    assert!(out.stderr.contains("max_depth"), "{out:?}");
    let out = server.cli(&["config", "example"]).await;
    assert!(out.success(), "{out:?}");
    let example = server.dir().join("example.toml");
    std::fs::write(&example, &out.stdout).unwrap();
    let out = server.cli(&["config", "check", example.to_str().unwrap()]).await;
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains(": ok"), "{out:?}");
}

// A reload reads the certificate files again: new connections get the new certificate,
// sessions on the old one stay.
#[tokio::test]
async fn reload_applies_new_tls_certificate_to_new_connections() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.raw_login("alice", PW, None).await;
    // Both files gone and generate_self_signed on: the reload makes a new certificate.
    std::fs::remove_file(server.dir().join("cert.pem")).unwrap();
    std::fs::remove_file(server.dir().join("key.pem")).unwrap();
    let (kind, text) = reload_command(&mut admin).await;
    assert_eq!(kind, "info", "{text}");
    use rustls_pki_types::pem::PemObject;
    let new_cert =
        rustls_pki_types::CertificateDer::from_pem_file(server.dir().join("cert.pem")).expect("new cert");
    assert_ne!(&new_cert, server.cert(), "a new certificate was generated");
    let trusting_new = conformance::tls::client_config(Some(&new_cert), &[]);
    let mut c = RawClient::connect(server.c2s_addr(), trusting_new, "localhost").await;
    c.open_stream().await;
    c.starttls().await;
    assert_eq!(
        c.tls_server_end_point().map(|p| p.len()),
        Some(32),
        "TLS with the new certificate"
    );
    ping(&mut alice).await;
}

// `log.level` changes on a reload: a debug message appears only after it.
#[tokio::test]
async fn reload_changes_log_level() {
    if std::env::var_os("RUST_LOG").is_some() || std::env::var_os("SWITCHBOARD_TEST_LOG").is_some() {
        return; // the level is fixed by the environment
    }
    let mut server = server().await;
    let unknown_host = async |server: &TestServer| {
        let mut c = RawClient::connect(server.c2s_addr(), server.tls_config(), "nowhere.example").await;
        c.send_header().await;
        c.expect_stream_error().await.assert_condition(&["host-unknown"]);
    };
    unknown_host(&server).await;
    assert!(
        !server.logs().contains("negotiation failed"),
        "debug is off at info"
    );
    server.rewrite_config(|c| c.log_level = "debug".into());
    server.sighup().await;
    assert!(
        server
            .wait_for_log("configuration reloaded", 1, Duration::from_secs(10))
            .await
    );
    unknown_host(&server).await;
    assert!(
        server
            .wait_for_log("negotiation failed", 1, Duration::from_secs(5))
            .await,
        "{}",
        server.logs()
    );
}
