//! A room under overload (XEP-0045 §17.4 denial of service, as a service handles it): senders
//! flooding a room whose queue is full are slowed down (their reads pause while they wait for
//! room) instead of being answered `resource-constraint` at once. Bouncing is the last resort
//! for a sender still over the limit after `[muc] room_queue_wait_ms`, counted in
//! `switchboard_muc_overload_bounces_total`.
//!
//! The room is persistent, so each message waits for its history row in SQLite: the room is
//! far slower than three senders writing as fast as they can, and its queue of two commands is
//! full almost all the time, on any machine.

use std::collections::HashMap;
use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, xml};
use tokio::time::Instant;

/// Messages each sender floods.
const FLOOD: usize = 120;
const SENDERS: [&str; 3] = ["bob", "carol", "dave"];

async fn scrape(server: &TestServer) -> String {
    server.http_get("/metrics").await
}

/// The value of an unlabelled counter, 0 if absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("number"))
        .unwrap_or(0.0)
}

/// A server whose rooms queue `queue` commands and let senders wait `wait_ms` for room.
async fn start(queue: usize, wait_ms: u64) -> TestServer {
    let s = TestServer::start_with(|c| {
        c.extra_toml = format!("[muc]\nroom_queue_length = {queue}\nroom_queue_wait_ms = {wait_ms}\n");
    })
    .await;
    for u in ["alice"].iter().chain(SENDERS.iter()) {
        s.add_user(u, PW).await;
    }
    s
}

/// Alice creates the persistent room `name`; every sender joins it.
async fn setup(s: &TestServer, name: &str) -> (XmppClient, Vec<XmppClient>) {
    let mut a = s.client("alice", PW).await;
    join(&mut a, &room(name), "Alice").await;
    let r = a
        .iq(
            "set",
            Some(&room(name)),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let mut senders = Vec::new();
    for u in SENDERS {
        let mut c = s.client(u, PW).await;
        let got = join(&mut c, &room(name), u).await;
        assert!(got.iter().any(|e| codes(e).contains(&110)), "{u} did not enter");
        senders.push(c);
    }
    (a, senders)
}

/// Every sender writes its `FLOOD` messages, interleaved, without waiting for anything.
async fn flood(senders: &mut [XmppClient], name: &str) {
    for i in 0..FLOOD {
        for (c, u) in senders.iter_mut().zip(SENDERS) {
            c.send_xml(&format!(
                "<message type='groupchat' to='{}'><body>{u} {i}</body></message>",
                room(name)
            ))
            .await;
        }
    }
}

/// Reads `c`'s stanzas until `expected` groupchat bodies arrived or `within` passed; returns
/// the bodies per sender in arrival order and the error stanzas seen.
async fn collect(
    c: &mut XmppClient,
    expected: usize,
    within: Duration,
) -> (HashMap<String, Vec<usize>>, Vec<Element>) {
    let deadline = Instant::now() + within;
    let mut bodies: HashMap<String, Vec<usize>> = HashMap::new();
    let mut errors = Vec::new();
    let mut count = 0;
    while count < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(e) = c.recv_within(left).await else { break };
        if e.attr("type") == Some("error") {
            errors.push(e);
            continue;
        }
        if let Some((who, n)) = body(&e).as_deref().and_then(|b| b.split_once(' ')) {
            bodies
                .entry(who.to_string())
                .or_default()
                .push(n.parse().expect("flood body"));
            count += 1;
        }
    }
    (bodies, errors)
}

// The room's queue (2) is full while three senders flood it, yet nothing is refused: the
// senders wait for room (their reads pause) and every message reaches every occupant, in
// each sender's order.
#[tokio::test]
async fn xep0045_overloaded_room_slows_senders_instead_of_refusing() {
    let s = start(2, 60_000).await;
    let (mut a, mut senders) = setup(&s, "busy").await;
    flood(&mut senders, "busy").await;
    let total = FLOOD * SENDERS.len();
    let (bodies, errors) = collect(&mut a, total, Duration::from_secs(120)).await;
    assert!(errors.is_empty(), "refused: {}", xml::to_string(&errors[0]));
    for u in SENDERS {
        let got = bodies.get(u).cloned().unwrap_or_default();
        assert_eq!(
            got,
            (0..FLOOD).collect::<Vec<_>>(),
            "{u}'s messages as Alice saw them"
        );
    }
    // The senders got every message back too, and no error among them.
    for c in &mut senders {
        let (bodies, errors) = collect(c, total, Duration::from_secs(60)).await;
        assert!(errors.is_empty(), "refused: {}", xml::to_string(&errors[0]));
        assert_eq!(bodies.values().map(Vec::len).sum::<usize>(), total);
        c.expect_none(Duration::from_millis(300), "error", |e| {
            e.attr("type") == Some("error")
        })
        .await;
    }
    let metrics = scrape(&s).await;
    // The room was overloaded (senders waited), and none was bounced.
    assert!(
        sample(&metrics, "switchboard_muc_sender_waits_total") > 0.0,
        "the flood never filled the room's queue:\n{metrics}"
    );
    assert_eq!(sample(&metrics, "switchboard_muc_overload_bounces_total"), 0.0);
}

// The last resort: with no time to wait (room_queue_wait_ms = 0), a sender finding the queue
// full is refused with resource-constraint, and each refusal is counted.
#[tokio::test]
async fn xep0045_overloaded_room_bounces_as_last_resort_and_counts_it() {
    let s = start(1, 0).await;
    let (mut a, mut senders) = setup(&s, "jammed").await;
    flood(&mut senders, "jammed").await;
    let mut refused = 0;
    for c in &mut senders {
        // A ping answered means every stanza before it was routed: its refusals came first.
        let id = c.id();
        c.send_xml(&format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
        loop {
            let e = c.recv().await;
            if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
                break;
            }
            if e.attr("type") == Some("error") {
                xml::assert_stanza_error(&e, &["resource-constraint"]);
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a queue of one with no wait refused nothing");
    // Everything not refused reached the room, once.
    let expected = FLOOD * SENDERS.len() - refused;
    let (bodies, errors) = collect(&mut a, expected, Duration::from_secs(60)).await;
    assert!(errors.is_empty());
    assert_eq!(bodies.values().map(Vec::len).sum::<usize>(), expected);
    a.expect_none(Duration::from_millis(500), "more room messages", |e| {
        body(e).is_some()
    })
    .await;
    let metrics = scrape(&s).await;
    assert_eq!(
        sample(&metrics, "switchboard_muc_overload_bounces_total"),
        refused as f64,
        "{metrics}"
    );
}
