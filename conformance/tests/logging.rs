//! Operations logging (issue #6): one span per connection carrying the peer address and, once
//! bound, the session's JID; plain text without colour codes in a log file; JSON lines when
//! `[log] format = "json"`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

/// Logs in `alice/logs`, closes, and waits until the server logged the session's end.
async fn session_comes_and_goes(server: &TestServer) {
    server.add_user("alice", PW).await;
    let alice = server.client_jid("alice@localhost/logs", PW).await;
    alice.close().await;
    assert!(
        server
            .wait_for_log("session ended", 1, Duration::from_secs(10))
            .await,
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn log_span_per_session_with_jid() {
    let server = TestServer::start().await;
    session_comes_and_goes(&server).await;
    let logs = server.logs();
    let ended = logs
        .lines()
        .find(|l| l.contains("session ended"))
        .expect("a 'session ended' line");
    assert!(
        ended.contains("c2s{ip=127.0.0.1 jid=alice@localhost/logs}"),
        "the line is not in the session's span: {ended}"
    );
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file:\n{logs}");
}

#[tokio::test]
async fn log_json_lines_carry_the_session_span() {
    let server = TestServer::start_with(|cfg| cfg.extra_toml = "format = \"json\"".into()).await;
    session_comes_and_goes(&server).await;
    let logs = server.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ended = lines
        .iter()
        .find(|v| v["fields"]["message"] == "session ended")
        .unwrap_or_else(|| panic!("no 'session ended' event:\n{logs}"));
    assert_eq!(ended["span"]["name"], "c2s", "{ended}");
    assert_eq!(ended["span"]["jid"], "alice@localhost/logs", "{ended}");
    assert_eq!(ended["span"]["ip"], "127.0.0.1", "{ended}");
}
