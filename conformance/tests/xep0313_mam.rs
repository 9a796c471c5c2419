//! XEP-0313 message archive management for accounts, with XEP-0359 stanza ids and XEP-0059
//! paging: what is archived (both sides, delivered or offline, hints), query filters, every
//! paging edge in raw XML, metadata, errors, and a graceful stop losing nothing.

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const MAM: &str = "urn:xmpp:mam:2";
const SID: &str = "urn:xmpp:sid:0";
const RSM: &str = "http://jabber.org/protocol/rsm";
const FORWARD: &str = "urn:xmpp:forward:0";
const DELAY: &str = "urn:xmpp:delay";
const PW: &str = "passw0rd";

async fn server() -> TestServer {
    server_with_limits("").await
}

async fn server_with_limits(limits: &str) -> TestServer {
    let limits = limits.to_string();
    let server = TestServer::start_with(|cfg| cfg.limits_toml = limits).await;
    for user in ["alice", "bob", "carol"] {
        server.add_user(user, PW).await;
    }
    server
}

async fn online(server: &TestServer, jid: &str) -> XmppClient {
    let mut c = server.client_jid(jid, PW).await;
    c.send_presence(0).await;
    c
}

/// One archive query: the `<result/>` messages for it (in arrival order) and the IQ answer.
async fn query(c: &mut XmppClient, inner: &str) -> (Vec<Element>, Element) {
    let qid = c.id();
    let iq = c
        .iq(
            "set",
            None,
            &format!("<query xmlns='{MAM}' queryid='{qid}'>{inner}</query>"),
        )
        .await;
    // Results are written before the answer; whatever else arrived stays out of the way.
    let mut results = Vec::new();
    while let Some(e) = c.recv_within(Duration::from_millis(50)).await {
        if let Some(r) = e.get_child("result", MAM) {
            assert_eq!(r.attr("queryid"), Some(qid.as_str()), "{}", xml::to_string(&e));
            results.push(e);
        }
    }
    (results, iq)
}

fn form(fields: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{MAM}</value></field>{fields}</x>"
    )
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{}</value></field>", xml::escape(value))
}

fn set(inner: &str) -> String {
    format!("<set xmlns='{RSM}'>{inner}</set>")
}

/// The archived message inside a result, checking the wrapper (§4.2: forwarded + delay).
fn forwarded(result_msg: &Element) -> &Element {
    let f = result_msg
        .get_child("result", MAM)
        .and_then(|r| r.get_child("forwarded", FORWARD))
        .unwrap_or_else(|| panic!("not a result: {}", xml::to_string(result_msg)));
    assert!(
        f.get_child("delay", DELAY)
            .and_then(|d| d.attr("stamp"))
            .is_some()
    );
    f.get_child("message", ns::CLIENT).expect("the forwarded message")
}

fn body(result_msg: &Element) -> String {
    forwarded(result_msg)
        .get_child("body", ns::CLIENT)
        .map(|b| b.text())
        .unwrap_or_default()
}

fn bodies(results: &[Element]) -> Vec<String> {
    results.iter().map(body).collect()
}

fn result_id(result_msg: &Element) -> String {
    result_msg
        .get_child("result", MAM)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string()
}

/// `<fin/>` of a result IQ: (complete, first, first index, last, count).
fn fin(
    iq: &Element,
) -> (
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    assert_eq!(iq.attr("type"), Some("result"), "{}", xml::to_string(iq));
    let fin = iq
        .get_child("fin", MAM)
        .unwrap_or_else(|| panic!("no fin: {}", xml::to_string(iq)));
    let set = fin.get_child("set", RSM).expect("fin has a set");
    let text = |n: &str| set.get_child(n, RSM).map(|e| e.text());
    let first = set.get_child("first", RSM);
    (
        fin.attr("complete") == Some("true"),
        first.map(|f| f.text()),
        first.and_then(|f| f.attr("index")).map(str::to_string),
        text("last"),
        text("count"),
    )
}

fn error_condition(iq: &Element) -> String {
    assert_eq!(iq.attr("type"), Some("error"), "{}", xml::to_string(iq));
    iq.get_child("error", ns::CLIENT)
        .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

/// alice sends `n` numbered chat messages to bob (online), who receives them all.
async fn chat(alice: &mut XmppClient, bob: &mut XmppClient, n: usize) -> Vec<Element> {
    for i in 1..=n {
        alice.send_message("bob@localhost", &format!("m{i}")).await;
    }
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            bob.wait_for(|e| e.name() == "message" && e.get_child("body", ns::CLIENT).is_some())
                .await,
        );
    }
    got
}

// XEP-0359 §3, §4 with XEP-0313 §3.1: the recipient's copy carries exactly one stanza-id by
// the recipient's bare JID, naming its archive entry; the client's origin-id is kept; a
// stanza-id the sender wrote claiming our JIDs is removed, another server's kept.
#[tokio::test]
async fn xep0359_stanza_id_added_origin_id_kept_forged_removed() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    alice
        .send_xml(&format!(
            "<message type='chat' to='bob@localhost' id='x1'><body>hi</body>\
             <origin-id xmlns='{SID}' id='origin-1'/>\
             <stanza-id xmlns='{SID}' by='bob@localhost' id='forged-bob'/>\
             <stanza-id xmlns='{SID}' by='alice@localhost' id='forged-alice'/>\
             <stanza-id xmlns='{SID}' by='elsewhere.example' id='theirs'/></message>"
        ))
        .await;
    let got = bob.expect_message().await;
    let ids: Vec<(Option<&str>, Option<&str>)> = got
        .children()
        .filter(|c| c.is("stanza-id", SID))
        .map(|c| (c.attr("by"), c.attr("id")))
        .collect();
    let ours: Vec<_> = ids
        .iter()
        .filter(|(by, _)| *by == Some("bob@localhost"))
        .collect();
    assert_eq!(ours.len(), 1, "{}", xml::to_string(&got));
    let id = ours[0].1.unwrap().to_string();
    assert_ne!(id, "forged-bob");
    assert!(
        !ids.iter().any(|(by, _)| *by == Some("alice@localhost")),
        "{}",
        xml::to_string(&got)
    );
    assert!(
        ids.contains(&(Some("elsewhere.example"), Some("theirs"))),
        "{}",
        xml::to_string(&got)
    );
    let origin = got.get_child("origin-id", SID).and_then(|o| o.attr("id"));
    assert_eq!(origin, Some("origin-1"));
    let (results, _) = query(&mut bob, "").await;
    assert_eq!(results.len(), 1);
    assert_eq!(
        result_id(&results[0]),
        id,
        "the stanza-id names the archive entry"
    );
    let archived = forwarded(&results[0]);
    assert_eq!(
        archived.get_child("origin-id", SID).and_then(|o| o.attr("id")),
        Some("origin-1")
    );
    assert_eq!(archived.attr("from"), Some("alice@localhost/a"));
}

// XEP-0313 §3.1 (and §5.1.1): a message between two local accounts is in the sender's
// archive (outgoing) and the recipient's (incoming), whether delivered or stored offline;
// the offline copy carries the stanza-id of the recipient's archive.
#[tokio::test]
async fn xep0313_3_1_both_archives_delivered_and_offline() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 1).await;
    alice.send_message("carol@localhost", "to carol offline").await;
    alice.ping_server().await;
    let (results, _) = query(&mut alice, "").await;
    assert_eq!(bodies(&results), ["m1", "to carol offline"]);
    assert_eq!(forwarded(&results[1]).attr("to"), Some("carol@localhost"));
    let (results, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&results), ["m1"]);
    let mut carol = online(&server, "carol@localhost/c").await;
    let offline = carol.expect_message().await;
    let sid = offline
        .children()
        .find(|c| c.is("stanza-id", SID) && c.attr("by") == Some("carol@localhost"))
        .and_then(|c| c.attr("id"))
        .unwrap_or_else(|| panic!("no stanza-id on the offline copy: {}", xml::to_string(&offline)))
        .to_string();
    let (results, _) = query(&mut carol, "").await;
    assert_eq!(bodies(&results), ["to carol offline"]);
    assert_eq!(result_id(&results[0]), sid);
}

// XEP-0313 §5.1.1, XEP-0334 §4: messages without a body (chat states) are not archived
// unless hinted `<store/>`; `<no-store/>` and `<no-permanent-store/>` are never archived, and
// get no stanza-id either.
#[tokio::test]
async fn xep0313_5_1_1_hints_and_bodyless_messages() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    for inner in [
        "<active xmlns='http://jabber.org/protocol/chatstates'/>",
        "<body>secret</body><no-store xmlns='urn:xmpp:hints'/>",
        "<body>ephemeral</body><no-permanent-store xmlns='urn:xmpp:hints'/>",
        "<body>kept</body>",
        "<composing xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/>",
    ] {
        alice
            .send_xml(&format!(
                "<message type='chat' to='bob@localhost'>{inner}</message>"
            ))
            .await;
        let got = bob.expect_message().await;
        let stamped = got.has_child("stanza-id", SID);
        let kept = inner.contains("kept") || inner.contains("<store");
        assert_eq!(stamped, kept, "{}", xml::to_string(&got));
    }
    let (results, _) = query(&mut bob, "").await;
    assert_eq!(results.len(), 2);
    assert_eq!(body(&results[0]), "kept");
    assert!(forwarded(&results[1]).has_child("composing", "http://jabber.org/protocol/chatstates"));
    let (results, _) = query(&mut alice, "").await;
    assert_eq!(results.len(), 2);
}

// XEP-0313 §4.1.1-4.1.3 and the #extended filters: with (bare and full JID), start/end,
// after-id/before-id, ids.
#[tokio::test]
async fn xep0313_4_1_filters() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let mut carol = online(&server, "carol@localhost/c").await;
    chat(&mut alice, &mut bob, 3).await;
    carol.send_message("bob@localhost", "from carol").await;
    bob.expect_message().await;
    let (all, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&all), ["m1", "m2", "m3", "from carol"]);
    let ids: Vec<String> = all.iter().map(result_id).collect();
    let (r, _) = query(&mut bob, &form(&field("with", "alice@localhost"))).await;
    assert_eq!(bodies(&r), ["m1", "m2", "m3"]);
    let (r, _) = query(&mut bob, &form(&field("with", "carol@localhost/c"))).await;
    assert_eq!(bodies(&r), ["from carol"]);
    let (r, _) = query(&mut bob, &form(&field("with", "carol@localhost/other"))).await;
    assert!(r.is_empty());
    let (r, _) = query(&mut bob, &form(&field("after-id", &ids[0]))).await;
    assert_eq!(bodies(&r), ["m2", "m3", "from carol"]);
    let (r, _) = query(
        &mut bob,
        &form(&(field("after-id", &ids[0]) + &field("before-id", &ids[3]))),
    )
    .await;
    assert_eq!(bodies(&r), ["m2", "m3"]);
    let ids_field = format!(
        "<field var='ids'><value>{}</value><value>{}</value></field>",
        ids[3], ids[1]
    );
    let (r, _) = query(&mut bob, &form(&ids_field)).await;
    assert_eq!(bodies(&r), ["m2", "from carol"]);
    // Time: the stamps of the archived messages bound them.
    let stamp = forwarded_delay;
    let (r, _) = query(&mut bob, &form(&field("start", &stamp(&all[1])))).await;
    assert_eq!(bodies(&r), ["m2", "m3", "from carol"]);
    let (r, _) = query(&mut bob, &form(&field("end", &stamp(&all[1])))).await;
    assert_eq!(bodies(&r), ["m1", "m2"]);
    let (r, _) = query(&mut bob, &form(&field("start", "2000-01-01T00:00:00Z"))).await;
    assert_eq!(r.len(), 4);
    let (r, _) = query(&mut bob, &form(&field("end", "2000-01-01T00:00:00Z"))).await;
    assert!(r.is_empty());
}

fn forwarded_delay(m: &Element) -> String {
    m.get_child("result", MAM)
        .and_then(|r| r.get_child("forwarded", FORWARD))
        .and_then(|f| f.get_child("delay", DELAY))
        .and_then(|d| d.attr("stamp"))
        .unwrap()
        .to_string()
}

// XEP-0313 §4.3 / XEP-0059 §2.6: an empty archive answers at once, complete, with a count of
// zero and no first/last.
#[tokio::test]
async fn xep0313_4_3_empty_archive_is_complete() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    for inner in ["", &set("<max>10</max>"), &set("<before/>")] {
        let (r, iq) = query(&mut alice, inner).await;
        assert!(r.is_empty());
        assert_eq!(fin(&iq), (true, None, None, None, Some("0".into())), "{inner}");
    }
}

// XEP-0059 §2.2 with XEP-0313 §4.3: paging forwards; a page that ends exactly at the end of
// the archive is complete, the one before is not.
#[tokio::test]
async fn xep0313_4_3_exact_page_boundary() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 4).await;
    let (r, iq) = query(&mut bob, &set("<max>2</max>")).await;
    assert_eq!(bodies(&r), ["m1", "m2"]);
    let (complete, first, index, last, count) = fin(&iq);
    assert_eq!(
        (complete, index.as_deref(), count.as_deref()),
        (false, Some("0"), Some("4"))
    );
    assert_eq!(first.as_deref(), Some(result_id(&r[0]).as_str()));
    assert_eq!(last.as_deref(), Some(result_id(&r[1]).as_str()));
    let (r, iq) = query(
        &mut bob,
        &set(&format!("<max>2</max><after>{}</after>", last.unwrap())),
    )
    .await;
    assert_eq!(bodies(&r), ["m3", "m4"]);
    let (complete, _, index, last, count) = fin(&iq);
    assert_eq!(
        (complete, index.as_deref(), count.as_deref()),
        (true, Some("2"), Some("4"))
    );
    let (r, iq) = query(
        &mut bob,
        &set(&format!("<max>2</max><after>{}</after>", last.unwrap())),
    )
    .await;
    assert!(r.is_empty());
    assert_eq!(fin(&iq), (true, None, None, None, Some("4".into())));
    // The whole archive in one page of exactly its size: complete.
    let (r, iq) = query(&mut bob, &set("<max>4</max>")).await;
    assert_eq!(r.len(), 4);
    assert!(fin(&iq).0);
}

// XEP-0059 §2.5 with XEP-0313 §4.3: an empty `<before/>` asks for the last page; paging
// backwards with `<before>first</before>` until the page that reaches the start is complete.
#[tokio::test]
async fn xep0313_4_3_last_page_with_empty_before() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 5).await;
    let (r, iq) = query(&mut bob, &set("<max>2</max><before/>")).await;
    assert_eq!(bodies(&r), ["m4", "m5"]);
    let (complete, first, index, _, count) = fin(&iq);
    assert_eq!(
        (complete, index.as_deref(), count.as_deref()),
        (false, Some("3"), Some("5"))
    );
    let (r, iq) = query(
        &mut bob,
        &set(&format!("<max>2</max><before>{}</before>", first.unwrap())),
    )
    .await;
    assert_eq!(bodies(&r), ["m2", "m3"]);
    let (complete, first, index, _, _) = fin(&iq);
    assert_eq!((complete, index.as_deref()), (false, Some("1")));
    let (r, iq) = query(
        &mut bob,
        &set(&format!("<max>2</max><before>{}</before>", first.unwrap())),
    )
    .await;
    assert_eq!(bodies(&r), ["m1"]);
    let (complete, _, index, _, _) = fin(&iq);
    assert_eq!((complete, index.as_deref()), (true, Some("0")));
    // XEP-0059 §2.4: a page by index; §2.6: max 0 gives the count only.
    let (r, iq) = query(&mut bob, &set("<max>2</max><index>2</index>")).await;
    assert_eq!(bodies(&r), ["m3", "m4"]);
    assert_eq!(fin(&iq).2.as_deref(), Some("2"));
    let (r, iq) = query(&mut bob, &set("<max>0</max>")).await;
    assert!(r.is_empty());
    assert_eq!(fin(&iq).4.as_deref(), Some("5"));
}

// XEP-0313 §4.3 flip-page: the page's messages arrive newest first; first/last still name
// the page's oldest and newest.
#[tokio::test]
async fn xep0313_4_3_flip_page() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 3).await;
    let (r, iq) = query(&mut bob, &(set("<max>2</max><before/>") + "<flip-page/>")).await;
    assert_eq!(bodies(&r), ["m3", "m2"]);
    let (_, first, _, last, _) = fin(&iq);
    assert_eq!(first, Some(result_id(&r[1])));
    assert_eq!(last, Some(result_id(&r[0])));
}

// XEP-0313 §4.3 (and §6.1): an id the archive does not hold, as a paging position or an
// after-id/before-id filter, is item-not-found; malformed queries are bad-request.
#[tokio::test]
async fn xep0313_unknown_id_is_item_not_found() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 1).await;
    // alice's own id is in alice's archive, not in bob's.
    let (r, _) = query(&mut alice, "").await;
    let alices = result_id(&r[0]);
    for inner in [
        set("<after>12345</after>"),
        set("<before>12345</before>"),
        set("<after>not-an-id</after>"),
        set(&format!("<after>{alices}</after>")),
        form(&field("after-id", "12345")),
        form(&field("before-id", "nope")),
    ] {
        let (r, iq) = query(&mut bob, &inner).await;
        assert!(r.is_empty());
        assert_eq!(error_condition(&iq), "item-not-found", "{inner}");
    }
    for inner in [
        form(&field("colour", "red")),
        form(&field("start", "yesterday")),
        set("<max>lots</max>"),
    ] {
        let (_, iq) = query(&mut bob, &inner).await;
        assert_eq!(error_condition(&iq), "bad-request", "{inner}");
    }
    // Another user's archive is not offered.
    let iq = bob
        .iq("set", Some("alice@localhost"), &format!("<query xmlns='{MAM}'/>"))
        .await;
    assert_eq!(error_condition(&iq), "service-unavailable");
}

// XEP-0313 §4.3: a max above the server's limit (`limits.max_archive_page`) is lowered to
// it; the page is then not complete and the count tells the client there is more.
#[tokio::test]
async fn xep0313_4_3_max_above_limit_is_capped() {
    let server = server_with_limits("max_archive_page = 3").await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 5).await;
    let (r, iq) = query(&mut bob, &set("<max>100</max>")).await;
    assert_eq!(bodies(&r), ["m1", "m2", "m3"]);
    let (complete, _, _, _, count) = fin(&iq);
    assert_eq!((complete, count.as_deref()), (false, Some("5")));
    // No max at all: the default, lowered to the limit too.
    let (r, _) = query(&mut bob, "").await;
    assert_eq!(r.len(), 3);
}

// XEP-0313 §6.1 (metadata), §4.1.1 (form fields) and §3 (discovery on the account).
#[tokio::test]
async fn xep0313_metadata_form_and_discovery() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let md = bob.iq("get", None, &format!("<metadata xmlns='{MAM}'/>")).await;
    let meta = md.get_child("metadata", MAM).expect("metadata");
    assert!(meta.children().next().is_none(), "{}", xml::to_string(&md));
    chat(&mut alice, &mut bob, 3).await;
    let (all, _) = query(&mut bob, "").await;
    let md = bob.iq("get", None, &format!("<metadata xmlns='{MAM}'/>")).await;
    let meta = md.get_child("metadata", MAM).expect("metadata");
    let start = meta.get_child("start", MAM).expect("start");
    let end = meta.get_child("end", MAM).expect("end");
    assert_eq!(start.attr("id"), Some(result_id(&all[0]).as_str()));
    assert_eq!(end.attr("id"), Some(result_id(&all[2]).as_str()));
    assert!(start.attr("timestamp").is_some() && end.attr("timestamp").is_some());
    let f = bob.iq("get", None, &format!("<query xmlns='{MAM}'/>")).await;
    let vars: Vec<&str> = f
        .get_child("query", MAM)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .expect("a form")
        .children()
        .filter_map(|c| c.attr("var"))
        .collect();
    for var in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "after-id",
        "before-id",
        "ids",
    ] {
        assert!(vars.contains(&var), "{var} missing from {vars:?}");
    }
    let info = bob
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let features: Vec<&str> = info
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [
        MAM,
        "urn:xmpp:mam:2#extended",
        SID,
        "urn:xmpp:message-retract:1#tombstone",
    ] {
        assert!(features.contains(&f), "{f} not in {features:?}");
    }
}

// The archive writer batches off the routing path; a graceful stop (SIGTERM) writes out
// everything queued before storage closes: every message the recipient got with a
// stanza-id before the stop, even in the middle of a burst, is in its archive afterwards.
// The database is held locked (another SQLite connection's write transaction, released
// after 3 s, within the server's busy timeout) while the burst is routed and the stop
// begins, so the writer is behind when the stop comes: without the stop's flush, the rows
// still queued are lost (this test then fails).
#[tokio::test]
async fn xep0313_graceful_stop_loses_nothing() {
    let mut server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = server.raw_login("bob", PW, Some("b")).await;
    bob.send("<presence/>").await;
    let db = server.dir().join("sb.db");
    let mut locker = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(3)\n\
             c.execute('COMMIT')\n",
            db.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with sqlite3");
    {
        use tokio::io::AsyncBufReadExt;
        let out = locker.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(out).read_line(&mut line).await.unwrap();
        assert_eq!(line.trim(), "locked");
    }
    for i in 1..=3000 {
        alice.send_message("bob@localhost", &format!("m{i}")).await;
    }
    let pid = server.pid();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mut seen = Vec::new();
    while let Some(conformance::Incoming::Element(e)) = bob.next_within(Duration::from_secs(10)).await {
        if let Some(sid) = e.get_child("stanza-id", SID).and_then(|s| s.attr("id")) {
            seen.push(sid.to_string());
        }
    }
    assert!(
        server.wait_for_log("stopped", 1, Duration::from_secs(20)).await,
        "{}",
        server.logs()
    );
    assert!(!seen.is_empty(), "bob got nothing before the stop");
    assert!(
        locker.wait().await.unwrap().success(),
        "the lock was held and released"
    );
    server.restart().await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let mut archived = std::collections::HashSet::new();
    let mut after = String::new();
    loop {
        let (r, iq) = query(&mut bob, &set(&format!("<max>250</max>{after}"))).await;
        archived.extend(r.iter().map(result_id));
        let (complete, _, _, last, _) = fin(&iq);
        if complete || r.is_empty() {
            break;
        }
        after = format!("<after>{}</after>", last.unwrap());
    }
    let lost: Vec<&String> = seen.iter().filter(|id| !archived.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} delivered messages not archived",
        lost.len(),
        seen.len()
    );
}

/// `<prefs/>` of an IQ answer: (default, always, never).
fn prefs_of(iq: &Element) -> (String, Vec<String>, Vec<String>) {
    assert_eq!(iq.attr("type"), Some("result"), "{}", xml::to_string(iq));
    let p = iq
        .get_child("prefs", MAM)
        .unwrap_or_else(|| panic!("no prefs: {}", xml::to_string(iq)));
    let list = |name: &str| {
        p.get_child(name, MAM)
            .map(|l| l.children().map(|j| j.text()).collect())
            .unwrap_or_default()
    };
    (
        p.attr("default").unwrap_or_default().to_string(),
        list("always"),
        list("never"),
    )
}

async fn set_prefs(c: &mut XmppClient, default: &str, always: &[&str], never: &[&str]) -> Element {
    let jids = |l: &[&str]| l.iter().map(|j| format!("<jid>{j}</jid>")).collect::<String>();
    c.iq(
        "set",
        None,
        &format!(
            "<prefs xmlns='{MAM}' default='{default}'><always>{}</always><never>{}</never></prefs>",
            jids(always),
            jids(never)
        ),
    )
    .await
}

// XEP-0441 §3: the preferences start as 'always' with empty lists; a set is stored and
// answered with what is stored; a malformed one is bad-request.
#[tokio::test]
async fn xep0441_3_prefs_stored_and_returned() {
    let server = server().await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let got = bob.iq("get", None, &format!("<prefs xmlns='{MAM}'/>")).await;
    assert_eq!(prefs_of(&got), ("always".into(), vec![], vec![]));
    let set = set_prefs(&mut bob, "never", &["carol@localhost"], &["alice@localhost/spam"]).await;
    let expected = (
        "never".to_string(),
        vec!["carol@localhost".to_string()],
        vec!["alice@localhost/spam".to_string()],
    );
    assert_eq!(prefs_of(&set), expected);
    let got = bob.iq("get", None, &format!("<prefs xmlns='{MAM}'/>")).await;
    assert_eq!(prefs_of(&got), expected);
    let bad = bob
        .iq(
            "set",
            None,
            &format!("<prefs xmlns='{MAM}' default='sometimes'/>"),
        )
        .await;
    assert_eq!(error_condition(&bad), "bad-request");
}

// XEP-0441 §3: default 'never' with an 'always' list: only the listed JID's messages are
// archived (and stamped), for the recipient online and offline; the sender's own archive
// follows the sender's preferences.
#[tokio::test]
async fn xep0441_3_never_default_with_always_list() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut carol = online(&server, "carol@localhost/c").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    set_prefs(&mut bob, "never", &["carol@localhost"], &[]).await;
    alice.send_message("bob@localhost", "from alice").await;
    let got = bob.expect_message().await;
    assert!(!got.has_child("stanza-id", SID), "{}", xml::to_string(&got));
    carol.send_message("bob@localhost", "from carol").await;
    let got = bob.expect_message().await;
    assert!(got.has_child("stanza-id", SID), "{}", xml::to_string(&got));
    let (r, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&r), ["from carol"]);
    let (r, _) = query(&mut alice, "").await;
    assert_eq!(bodies(&r), ["from alice"], "alice archives what she sends");
    // Offline: the preferences are read from storage.
    bob.close().await;
    alice.send_message("bob@localhost", "alice offline").await;
    carol.send_message("bob@localhost", "carol offline").await;
    alice.ping_server().await;
    carol.ping_server().await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let (r, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&r), ["from carol", "carol offline"]);
}

// XEP-0441 §3: default 'roster' archives messages with contacts in the roster only, and
// follows roster changes at once.
#[tokio::test]
async fn xep0441_3_roster_default_follows_the_roster() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    set_prefs(&mut bob, "roster", &[], &[]).await;
    alice.send_message("bob@localhost", "stranger").await;
    bob.expect_message().await;
    let r = bob
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='alice@localhost'/></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    alice.send_message("bob@localhost", "contact").await;
    bob.wait_for(|e| e.name() == "message" && e.get_child("body", ns::CLIENT).is_some())
        .await;
    let (r, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&r), ["contact"]);
}

// XEP-0280 §6.1 (`urn:xmpp:carbons:rules:0`, advertised): what an account's archive keeps
// is also copied to its other resources, with the stanza-id naming the archive entry; a
// normal message with only an IM payload (a receipt) is copied too.
#[tokio::test]
async fn xep0280_6_1_rules_0_carbons_cover_what_is_archived() {
    let server = server().await;
    let mut desk = server.client_jid("alice@localhost/desk", PW).await;
    let mut phone = server.client_jid("alice@localhost/phone", PW).await;
    desk.send_presence(5).await;
    phone.send_presence(0).await;
    for c in [&mut desk, &mut phone] {
        let r = c.iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>").await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    let info = desk
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let rules = info
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .any(|f| f.attr("var") == Some("urn:xmpp:carbons:rules:0"));
    assert!(rules, "{}", xml::to_string(&info));
    let mut bob = online(&server, "bob@localhost/b").await;
    let carbon_of = |m: &Element| -> Element {
        m.get_child("received", "urn:xmpp:carbons:2")
            .and_then(|r| r.get_child("forwarded", FORWARD))
            .and_then(|f| f.get_child("message", ns::CLIENT))
            .cloned()
            .unwrap_or_else(|| panic!("not a carbon: {}", xml::to_string(m)))
    };
    bob.send_xml(
        "<message to='alice@localhost/desk' id='s1'><store xmlns='urn:xmpp:hints'/>\
         <markable xmlns='urn:xmpp:chat-markers:0'/></message>",
    )
    .await;
    desk.wait_for(|m| m.attr("id") == Some("s1")).await;
    let inner = carbon_of(&phone.expect_message().await);
    let sid = inner
        .children()
        .find(|c| c.is("stanza-id", SID) && c.attr("by") == Some("alice@localhost"))
        .and_then(|c| c.attr("id"))
        .expect("the carbon names the archive entry")
        .to_string();
    let (r, _) = query(&mut phone, "").await;
    assert_eq!(r.len(), 1);
    assert_eq!(result_id(&r[0]), sid);
    bob.send_xml(
        "<message to='alice@localhost/desk' id='r1'><received xmlns='urn:xmpp:receipts' id='x'/></message>",
    )
    .await;
    desk.wait_for(|m| m.attr("id") == Some("r1")).await;
    let inner = carbon_of(&phone.expect_message().await);
    assert_eq!(inner.attr("id"), Some("r1"));
}

const CMD: &str = "http://jabber.org/protocol/commands";

/// Runs a one-form ad-hoc command to completion with `fields`; returns the info note.
async fn run_command(c: &mut XmppClient, node: &str, fields: &str) -> String {
    let r = c
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' action='execute'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let sid = r
        .get_child("command", CMD)
        .and_then(|c| c.attr("sessionid"))
        .expect("a session")
        .to_string();
    let r = c
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{CMD}' node='{node}' sessionid='{sid}' action='complete'>\
                 <x xmlns='jabber:x:data' type='submit'>{fields}</x></command>"
            ),
        )
        .await;
    let cmd = r
        .get_child("command", CMD)
        .unwrap_or_else(|| panic!("{}", xml::to_string(&r)));
    assert_eq!(cmd.attr("status"), Some("completed"), "{}", xml::to_string(&r));
    cmd.get_child("note", CMD).map(|n| n.text()).unwrap_or_default()
}

// Purges: a user deletes their own archive (XEP-0050 command, confirmed), an admin any
// account's; the other archives stay.
#[tokio::test]
async fn xep0313_purge_own_archive_and_admin_purge() {
    let server = TestServer::start_with(|cfg| cfg.admins = vec!["carol@localhost".into()]).await;
    for user in ["alice", "bob", "carol"] {
        server.add_user(user, PW).await;
    }
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 3).await;
    let mine = "https://github.com/switchboard-xmpp/switchboard#purge-my-archive";
    let note = run_command(
        &mut bob,
        mine,
        "<field var='confirm'><value>false</value></field>",
    )
    .await;
    assert!(note.contains("Nothing deleted"), "{note}");
    assert_eq!(query(&mut bob, "").await.0.len(), 3);
    let note = run_command(&mut bob, mine, "<field var='confirm'><value>true</value></field>").await;
    assert!(note.contains("Deleted 3"), "{note}");
    assert!(query(&mut bob, "").await.0.is_empty());
    assert_eq!(query(&mut alice, "").await.0.len(), 3, "alice's archive is hers");
    let mut carol = online(&server, "carol@localhost/c").await;
    let user = "https://github.com/switchboard-xmpp/switchboard#purge-user-archive";
    let note = run_command(
        &mut carol,
        user,
        "<field var='accountjid'><value>alice@localhost</value></field>\
         <field var='confirm'><value>1</value></field>",
    )
    .await;
    assert!(note.contains("Deleted 3"), "{note}");
    assert!(query(&mut alice, "").await.0.is_empty());
    // Not an admin: the admin command is refused.
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{user}' action='execute'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(&r));
}

// Retention: messages older than `limits.archive_max_age_secs` are deleted.
#[tokio::test]
async fn xep0313_retention_max_age() {
    let server = server_with_limits("archive_max_age_secs = 2").await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    chat(&mut alice, &mut bob, 2).await;
    assert_eq!(query(&mut bob, "").await.0.len(), 2);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    chat(&mut alice, &mut bob, 1).await;
    let (r, _) = query(&mut bob, "").await;
    assert_eq!(bodies(&r), ["m1"], "only the fresh message is left");
}

// XEP-0308 §5 with XEP-0313: a correction is archived as sent, a message of its own with
// its <replace/>, after the original (the archive keeps history; clients apply it).
#[tokio::test]
async fn xep0308_corrections_archived_as_sent() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    alice
        .send_xml("<message type='chat' to='bob@localhost' id='orig1'><body>helo</body></message>")
        .await;
    alice
        .send_xml(
            "<message type='chat' to='bob@localhost' id='fix1'><body>hello</body>\
             <replace xmlns='urn:xmpp:message-correct:0' id='orig1'/></message>",
        )
        .await;
    bob.expect_message().await;
    bob.expect_message().await;
    for c in [&mut alice, &mut bob] {
        let (r, _) = query(c, "").await;
        assert_eq!(bodies(&r), ["helo", "hello"]);
        let replace = forwarded(&r[1])
            .get_child("replace", "urn:xmpp:message-correct:0")
            .and_then(|e| e.attr("id"));
        assert_eq!(replace, Some("orig1"));
    }
}

const RETRACT: &str = "urn:xmpp:message-retract:1";

fn retraction(to: &str, origin: &str) -> String {
    format!(
        "<message type='chat' to='{to}' id='r-{origin}'><retract xmlns='{RETRACT}' id='{origin}'/>\
         <fallback xmlns='urn:xmpp:fallback:0' for='{RETRACT}'/><body>/me retracted a message</body>\
         <store xmlns='urn:xmpp:hints'/></message>"
    )
}

// XEP-0424 §4, §5: a retraction reaches the recipient, and both archives keep a tombstone
// in the retracted message's place (no body, `<retracted/>`), then the retraction itself.
// Only the sender's own message can be retracted: the other party naming it changes nothing.
#[tokio::test]
async fn xep0424_retraction_leaves_tombstones() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    alice
        .send_xml(&format!(
            "<message type='chat' to='bob@localhost' id='m1'><body>oops</body><origin-id xmlns='{SID}' id='o1'/></message>"
        ))
        .await;
    alice
        .send_xml(&format!(
            "<message type='chat' to='bob@localhost' id='m2'><body>fine</body><origin-id xmlns='{SID}' id='o2'/></message>"
        ))
        .await;
    bob.expect_message().await;
    bob.expect_message().await;
    // Bob cannot retract what alice sent.
    bob.send_xml(&retraction("alice@localhost", "o2")).await;
    alice.expect_message().await;
    alice.send_xml(&retraction("bob@localhost", "o1")).await;
    let notice = bob.expect_message().await;
    assert_eq!(
        notice.get_child("retract", RETRACT).and_then(|r| r.attr("id")),
        Some("o1")
    );
    for c in [&mut alice, &mut bob] {
        let (r, _) = query(c, "").await;
        assert_eq!(r.len(), 4, "{}", c.jid());
        let tomb = forwarded(&r[0]);
        assert!(
            tomb.get_child("body", ns::CLIENT).is_none(),
            "{}",
            xml::to_string(tomb)
        );
        assert!(
            tomb.get_child("retracted", RETRACT)
                .and_then(|t| t.attr("stamp"))
                .is_some()
        );
        assert_eq!(tomb.attr("id"), Some("m1"));
        assert_eq!(
            body(&r[1]),
            "fine",
            "{}: only the sender's own message is retracted",
            c.jid()
        );
        assert!(forwarded(&r[2]).has_child("retract", RETRACT));
        assert!(forwarded(&r[3]).has_child("retract", RETRACT));
    }
}

// XEP-0431 §2-3: the fulltext field of the query form finds messages by words of their body
// (all terms, phrases in quotes, prefixes with *), combined with the other filters and
// paging; a query without a word is bad-request; the feature and field are advertised.
#[tokio::test]
async fn xep0431_fulltext_search() {
    let server = server().await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let mut carol = online(&server, "carol@localhost/c").await;
    for text in ["The quick brown fox", "lazy dog", "Quick thinking"] {
        alice.send_message("bob@localhost", text).await;
        bob.expect_message().await;
    }
    carol.send_message("bob@localhost", "quickly now").await;
    bob.expect_message().await;
    let ft = |q: &str| form(&field("{urn:xmpp:fulltext:0}fulltext", q));
    let (r, _) = query(&mut bob, &ft("quick")).await;
    assert_eq!(bodies(&r), ["The quick brown fox", "Quick thinking"]);
    let (r, _) = query(&mut bob, &ft("\"brown fox\"")).await;
    assert_eq!(bodies(&r), ["The quick brown fox"]);
    let (r, _) = query(&mut bob, &ft("\"fox brown\"")).await;
    assert!(r.is_empty());
    let (r, _) = query(&mut bob, &ft("quick*")).await;
    assert_eq!(
        bodies(&r),
        ["The quick brown fox", "Quick thinking", "quickly now"]
    );
    let with = form(&(field("{urn:xmpp:fulltext:0}fulltext", "quick*") + &field("with", "carol@localhost")));
    let (r, _) = query(&mut bob, &with).await;
    assert_eq!(bodies(&r), ["quickly now"]);
    let (r, iq) = query(&mut bob, &(ft("quick*") + &set("<max>1</max><before/>"))).await;
    assert_eq!(bodies(&r), ["quickly now"]);
    assert_eq!(fin(&iq).4.as_deref(), Some("3"));
    let (_, iq) = query(&mut bob, &ft("  \"\" * ")).await;
    assert_eq!(error_condition(&iq), "bad-request");
    let (r, _) = query(&mut alice, &ft("quickly")).await;
    assert!(r.is_empty(), "carol's message is not in alice's archive");
    let info = bob
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(
        xml::to_string(&info).contains("urn:xmpp:fulltext:0"),
        "{}",
        xml::to_string(&info)
    );
    let f = bob.iq("get", None, &format!("<query xmlns='{MAM}'/>")).await;
    assert!(xml::to_string(&f).contains("{urn:xmpp:fulltext:0}fulltext"));
}
