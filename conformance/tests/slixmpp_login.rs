//! Logging in with slixmpp 1.8 (Debian 12's python3-slixmpp, used by poezio and many bots):
//! it sees SCRAM-*-PLUS offered, asks for the `tls-unique` binding (undefined on TLS 1.3), is
//! refused, retries with the `y` flag (refused as a downgrade, RFC 5802 §6) and then logs in
//! with PLAIN. Those refusals checked no password, so they must be answered at once and not
//! count as failed logins: ten logins in a row from one address each take well under a
//! second. The client side is `slixmpp_login.py`.

use std::time::Duration;

use conformance::TestServer;

/// The Python with slixmpp 1.8 installed (`scripts/test.sh` makes a venv for it).
fn python() -> String {
    std::env::var("SWITCHBOARD_TEST_PYTHON_SLIXMPP18").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn rfc6120_6_4_slixmpp_1_8_logs_in_fast_ten_times() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_login.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(script)
            .args([
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "alice@localhost/slix",
                "passw0rd",
                "10",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let context = format!(
        "stdout: {stdout}\nstderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    assert!(stdout.lines().any(|l| l == "ok"), "{context}");
    assert!(
        stdout.contains("slixmpp 1.8."),
        "the test needs slixmpp 1.8 (set SWITCHBOARD_TEST_PYTHON_SLIXMPP18): {context}"
    );
    let logins: Vec<(f64, &str)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("login "))
        .map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            let secs = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
            (secs, l)
        })
        .collect();
    assert_eq!(logins.len(), 10, "{context}");
    // The client really went through the refusals this test is about.
    assert!(
        logins.iter().all(|(_, l)| l.contains("not-authorized")),
        "slixmpp did not try and get refused first: {context}"
    );
    for (secs, line) in &logins {
        assert!(*secs < 0.5, "a login took {secs} s ({line}): {context}");
    }
}
