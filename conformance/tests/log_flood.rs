//! Logs an attacker cannot use (issue 18): an event a client can repeat at will is counted in
//! `/metrics` every time but logged once per client, then summarized once per
//! `log.repeat_interval_secs` (`src/ops/log_limit.rs`). Without it one user filling a full
//! offline store wrote one line per message (126,000 lines in 30 s).

use std::time::{Duration, Instant};

use conformance::{TestServer, xml};

const PW: &str = "passw0rd";

/// The value of the sample whose name and labels are exactly `series`, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
        .unwrap_or(0.0)
}

/// The `repeated=N` counts of the summary lines of `kind`.
fn summarized(logs: &str, kind: &str) -> Vec<u64> {
    logs.lines()
        .filter(|l| l.contains("repeated event") && l.contains(kind))
        .map(|l| {
            let n = l.split("repeated=").nth(1).expect("repeated= field");
            n.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .expect("count")
        })
        .collect()
}

// XEP-0160 §3 (a full offline store answers service-unavailable) under a flood: every refusal
// is counted, the log holds one line for it and one summary a second, and the summaries add
// up to all the refusals that got no line of their own.
#[tokio::test]
async fn log_flood_offline_store_full_is_summarized() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "max_offline_messages = 1\n\
                         session_rate = { stanzas_per_second = 0, bytes_per_second = 0 }"
            .into();
        c.extra_toml = "repeat_interval_secs = 1\n".into();
    })
    .await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut alice = server.client("alice", PW).await;
    alice
        .send_xml("<message type='chat' to='bob@localhost' id='fill'><body>fills the store</body></message>")
        .await;
    alice.ping_server().await;
    let lines_before = server.logs().lines().count();

    // Three seconds of messages into the full store, 50 in flight at a time.
    let started = Instant::now();
    let mut refused = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        for i in 0..50 {
            alice
                .send_xml(&format!(
                    "<message type='chat' to='bob@localhost' id='m{i}'><body>flood</body></message>"
                ))
                .await;
        }
        for _ in 0..50 {
            let e = alice.expect_message().await;
            xml::assert_stanza_error(&e, &["service-unavailable"]);
            refused += 1;
        }
    }
    assert!(refused >= 200, "only {refused} messages refused in 3 s");
    // The last interval's summary is written by the server's flush tick.
    let complete = server
        .wait_for_log("repeated event", 1, Duration::from_secs(5))
        .await;
    assert!(complete, "no summary line:\n{}", server.logs());
    let mut sum = 0;
    for _ in 0..50 {
        let logs = server.logs();
        sum = summarized(&logs, "offline_full").iter().sum::<u64>();
        if sum + 1 >= refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = server.logs();
    let own_lines = logs.lines().filter(|l| l.contains("offline queue full")).count();
    assert_eq!(own_lines, 1, "{logs}");
    let summaries = summarized(&logs, "offline_full");
    assert!(
        (1..=6).contains(&summaries.len()),
        "{} summary lines for 3 s at one a second:\n{logs}",
        summaries.len()
    );
    assert_eq!(
        sum + 1,
        refused,
        "summaries {summaries:?} do not add up to {refused} refusals"
    );
    let flood_lines = logs.lines().count() - lines_before;
    assert!(
        flood_lines <= 10,
        "{flood_lines} log lines for {refused} refusals:\n{logs}"
    );

    let metrics = server.http_get("/metrics").await;
    assert_eq!(
        sample(&metrics, "switchboard_offline_refused_total"),
        refused as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "switchboard_repeated_events_total{kind=\"offline_full\"}"
        ),
        refused as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "switchboard_log_lines_suppressed_total{kind=\"offline_full\"}"
        ),
        (refused - 1) as f64,
        "{metrics}"
    );
}

// RFC 6120 §13.12 / §4.9.3.18: connections past `unauthenticated_per_ip` are each refused
// with policy-violation, counted, and logged once (then summarized).
#[tokio::test]
async fn log_flood_refused_connections_are_summarized() {
    let server = TestServer::start_with(|c| {
        c.limits_toml = "unauthenticated_per_ip = 1".into();
        c.extra_toml = "repeat_interval_secs = 1\n".into();
    })
    .await;
    let _held = server.raw_from("127.0.9.1").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts = 150;
    for _ in 0..attempts {
        let mut c = server.raw_from("127.0.9.1").await;
        c.expect_stream_error()
            .await
            .assert_condition(&["policy-violation"]);
    }
    assert!(
        server
            .wait_for_log("repeated event", 1, Duration::from_secs(5))
            .await,
        "no summary line:\n{}",
        server.logs()
    );
    let logs = server.logs();
    let own_lines = logs.lines().filter(|l| l.contains("connection refused")).count();
    assert_eq!(own_lines, 1, "{logs}");
    let metrics = server.http_get("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "switchboard_repeated_events_total{kind=\"connection_refused\"}"
        ),
        attempts as f64,
        "{metrics}"
    );
    let summed: u64 = summarized(&logs, "connection_refused").iter().sum();
    assert!(summed >= 1 && summed < attempts, "{logs}");
}
