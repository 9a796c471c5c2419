//! Prometheus `/metrics` on the HTTP listener: the counters move with real traffic.

use conformance::TestServer;
use conformance::client::tokio_xmpp_sasl_login;

const PW: &str = "passw0rd";

async fn scrape(server: &TestServer) -> String {
    let text = server.http_get("/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{text}"
    );
    text
}

/// The value of the sample whose name and labels are exactly `series`, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_counters_move() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let before = scrape(&server).await;
    assert_eq!(sample(&before, "switchboard_sessions"), 0.0, "{before}");

    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    alice.send_message("bob@localhost", "hi").await;
    bob.expect_message().await;
    alice.ping_server().await;
    assert_eq!(
        tokio_xmpp_sasl_login(
            server.starttls_connector(),
            "alice@localhost",
            "wrongpass",
            &["SCRAM-SHA-256"]
        )
        .await,
        Err("not-authorized".to_string())
    );
    // A message to an offline account is stored, then delivered at login.
    server.add_user("carol", PW).await;
    alice.send_message("carol@localhost", "later").await;
    alice.ping_server().await;
    let mut carol = server.client("carol", PW).await;
    carol.send_presence(0).await;
    carol.expect_message().await;
    carol.ping_server().await;

    let after = scrape(&server).await;
    assert_eq!(sample(&after, "switchboard_sessions"), 3.0, "{after}");
    let logins = "switchboard_logins_total{mechanism=\"SCRAM-SHA-256\",transport=\"tcp\"}";
    assert!(sample(&after, logins) >= 3.0, "{after}");
    let failures = "switchboard_auth_failures_total{mechanism=\"SCRAM-SHA-256\"}";
    assert!(sample(&after, failures) >= 1.0, "{after}");
    for (series, at_least) in [
        ("switchboard_stanzas_in_total{kind=\"message\"}", 2.0),
        ("switchboard_stanzas_in_total{kind=\"iq\"}", 2.0),
        ("switchboard_stanzas_in_total{kind=\"presence\"}", 2.0),
        ("switchboard_stanzas_out_total{kind=\"message\"}", 2.0),
        ("switchboard_stanzas_out_total{kind=\"iq\"}", 2.0),
        ("switchboard_offline_delivered_total", 1.0),
        ("switchboard_offline_stored_total", 1.0),
    ] {
        assert!(
            sample(&after, series) >= at_least + sample(&before, series),
            "{series}: {after}"
        );
    }
}

// Per-module counters: blocking (what a list stopped, each direction) and ad-hoc commands
// (refused for a non-admin).
#[tokio::test]
async fn metrics_module_counters_move() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client("bob", PW).await;
    let before = scrape(&server).await;
    let r = alice
        .iq(
            "set",
            None,
            "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    bob.send_message("alice@localhost", "hi").await;
    alice.send_message("bob@localhost", "hi").await;
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            "<command xmlns='http://jabber.org/protocol/commands' \
             node='http://jabber.org/protocol/admin#add-user' action='execute'/>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    alice.ping_server().await;
    bob.ping_server().await;
    let after = scrape(&server).await;
    for series in [
        "switchboard_module_events_total{module=\"blocking\",event=\"inbound_denied\"}",
        "switchboard_module_events_total{module=\"blocking\",event=\"outbound_denied\"}",
        "switchboard_module_events_total{module=\"adhoc\",event=\"command_refused\"}",
    ] {
        assert!(
            sample(&after, series) >= 1.0 + sample(&before, series),
            "{series}: {after}"
        );
    }
}

// Counters whose calls sit in other modules (router, roster): routing latency histogram,
// roster pushes, presence fan-out.
#[tokio::test]
async fn metrics_routing_and_fanout_move() {
    use conformance::blocking::{befriend, online};
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let before = scrape(&server).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    alice.send_xml("<presence><show>away</show></presence>").await;
    bob.wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/a"))
        .await;
    alice.send_message("bob@localhost", "hi").await;
    bob.expect_message().await;
    let after = scrape(&server).await;
    for series in [
        "switchboard_route_duration_seconds_count{kind=\"message\"}",
        "switchboard_route_duration_seconds_count{kind=\"presence\"}",
        "switchboard_roster_pushes_total",
        "switchboard_presence_fanout_total",
    ] {
        assert!(
            sample(&after, series) >= 1.0 + sample(&before, series),
            "{series}: {after}"
        );
    }
    assert!(
        after.contains("switchboard_route_duration_seconds_bucket{kind=\"message\",le=\"0.001\"}"),
        "a histogram with buckets: {after}"
    );
}

/// The metric family names the README lists (`switchboard_...` in backquotes).
fn readme_families() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let mut names: Vec<String> = readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("switchboard_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

// Metrics from the first scrape (issue 18): a fresh server, before any client connected,
// exports every family the README lists, each with HELP and TYPE and at least one sample at
// zero; and the README lists every family the server exports.
#[tokio::test]
async fn metrics_every_family_exported_from_the_first_scrape() {
    let server = TestServer::start().await;
    let text = scrape(&server).await;
    let body = &text[text.find("\r\n\r\n").expect("headers end") + 4..];
    let listed = readme_families();
    assert!(listed.len() >= 19, "README lists only {listed:?}");
    for name in &listed {
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "{name}: no HELP\n{body}"
        );
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name}: no TYPE\n{body}"
        );
        let samples: Vec<&str> = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name.as_str()))
            .collect();
        assert!(!samples.is_empty(), "{name}: no sample\n{body}");
        for s in samples {
            let value: f64 = s.rsplit(' ').next().unwrap().parse().expect("number");
            assert_eq!(value, 0.0, "a fresh server: {s}");
        }
    }
    let exported: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for name in exported {
        assert!(
            listed.iter().any(|l| l == name),
            "{name} is exported but not in the README"
        );
    }
}
