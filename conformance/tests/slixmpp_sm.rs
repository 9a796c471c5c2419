//! XEP-0198 with a real client: slixmpp's `xep_0198` plugin loses its connection, resumes,
//! and nothing is lost either way (`slixmpp_sm.py`).

use std::time::Duration;

use conformance::TestServer;

/// The Python with slixmpp installed (`scripts/test.sh` makes a venv for it).
fn python() -> String {
    std::env::var("SWITCHBOARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn xep0198_5_slixmpp_resumes_after_a_cut_connection_and_nothing_is_lost() {
    let server =
        TestServer::start_with(|cfg| cfg.extra_toml = "[stream_management]\nenabled = true\n".into()).await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_sm.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), "passw0rd"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "stdout: {stdout}\nstderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    assert!(stdout.lines().any(|l| l == "ok"), "{context}");
    let logs = server.logs();
    assert!(
        logs.contains("session waits for resumption"),
        "the session hibernated: {context}"
    );
    assert!(logs.contains("session resumed"), "{context}");
}
