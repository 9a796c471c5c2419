//! XEP-0313 archives of MUC rooms (`muc#roomconfig_enablearchiving`): stanza-ids by the
//! room, queries addressed to the room JID with filters, paging and full-text search, the
//! room's anonymity and membership honoured, disco, join history from the archive,
//! retention, purge. Error paths in raw XML.

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, ns, xml};

const MAM: &str = "urn:xmpp:mam:2";
const SID: &str = "urn:xmpp:sid:0";
const RSM: &str = "http://jabber.org/protocol/rsm";
const FORWARD: &str = "urn:xmpp:forward:0";
const DELAY: &str = "urn:xmpp:delay";
const INFO: &str = "http://jabber.org/protocol/disco#info";
const CMD: &str = "http://jabber.org/protocol/commands";

async fn server_with(extra: &str, admins: &[&str]) -> TestServer {
    let extra = extra.to_string();
    let admins: Vec<String> = admins.iter().map(|a| a.to_string()).collect();
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = extra;
        cfg.admins = admins;
    })
    .await;
    for u in ["alice", "bob", "carol"] {
        s.add_user(u, PW).await;
    }
    s
}

/// alice creates persistent room `name` (nick Alice) with `fields` too.
async fn persistent_room(alice: &mut XmppClient, name: &str, fields: &[(&str, &str)]) {
    let mut all = vec![("persistentroom", "1")];
    all.extend_from_slice(fields);
    create(alice, name, "Alice", &all).await;
}

/// `c` says `body` in room `name`; every client in `hear` (the sender too) receives the
/// broadcast, which is returned as `c` got it.
async fn say(c: &mut XmppClient, name: &str, body: &str) -> Element {
    c.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>{}</body></message>",
        room(name),
        xml::escape(body)
    ))
    .await;
    let b = body.to_string();
    c.wait_for(move |e| e.name() == "message" && conformance::muc::body(e).as_deref() == Some(b.as_str()))
        .await
}

async fn heard(c: &mut XmppClient, body: &str) -> Element {
    let b = body.to_string();
    c.wait_for(move |e| e.name() == "message" && conformance::muc::body(e).as_deref() == Some(b.as_str()))
        .await
}

/// The room's stanza-id on a broadcast message (exactly one, `by` the room).
fn room_stanza_id(m: &Element, name: &str) -> String {
    let ids: Vec<&Element> = m.children().filter(|c| c.is("stanza-id", SID)).collect();
    assert_eq!(ids.len(), 1, "{}", xml::to_string(m));
    assert_eq!(
        ids[0].attr("by"),
        Some(room(name).as_str()),
        "{}",
        xml::to_string(m)
    );
    ids[0].attr("id").unwrap().to_string()
}

/// One query to room `name`: its result messages and the IQ answer.
async fn query(c: &mut XmppClient, name: &str, inner: &str) -> (Vec<Element>, Element) {
    let qid = c.id();
    let iq = c
        .iq(
            "set",
            Some(&room(name)),
            &format!("<query xmlns='{MAM}' queryid='{qid}'>{inner}</query>"),
        )
        .await;
    let mut results = Vec::new();
    while let Some(e) = c.recv_within(Duration::from_millis(50)).await {
        if let Some(r) = e.get_child("result", MAM) {
            assert_eq!(r.attr("queryid"), Some(qid.as_str()), "{}", xml::to_string(&e));
            assert_eq!(e.attr("from"), Some(room(name).as_str()));
            results.push(e);
        }
    }
    (results, iq)
}

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

fn bodies(results: &[Element]) -> Vec<String> {
    results
        .iter()
        .map(|r| conformance::muc::body(forwarded(r)).unwrap_or_default())
        .collect()
}

fn result_id(result_msg: &Element) -> String {
    result_msg
        .get_child("result", MAM)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string()
}

/// The real JID an archived message shows, if any.
fn shown_jid(result_msg: &Element) -> Option<String> {
    item(forwarded(result_msg))
        .and_then(|i| i.attr("jid"))
        .map(str::to_string)
}

/// `<fin/>`: (complete, first, last, count).
fn fin(iq: &Element) -> (bool, Option<String>, Option<String>, Option<String>) {
    assert_eq!(iq.attr("type"), Some("result"), "{}", xml::to_string(iq));
    let fin = iq.get_child("fin", MAM).expect("fin");
    let set = fin.get_child("set", RSM).expect("set");
    let text = |n: &str| set.get_child(n, RSM).map(|e| e.text());
    (
        fin.attr("complete") == Some("true"),
        text("first"),
        text("last"),
        text("count"),
    )
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

async fn features(c: &mut XmppClient, name: &str) -> Vec<String> {
    let r = c
        .iq("get", Some(&room(name)), &format!("<query xmlns='{INFO}'/>"))
        .await;
    r.get_child("query", INFO)
        .unwrap_or_else(|| panic!("{}", xml::to_string(&r)))
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var"))
        .map(str::to_string)
        .collect()
}

// XEP-0313 §5 (MUC archives), XEP-0359: a persistent room archives by default; every
// occupant's copy names the archive entry `by` the room; the archive answers at the room
// JID with filters (`with` an occupant JID, full text, ids), paging and metadata; unknown
// ids are item-not-found.
#[tokio::test]
async fn xep0313_5_room_archive_query_paging_and_stanza_ids() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    let mut bob = s.client("bob", PW).await;
    persistent_room(&mut alice, "lounge", &[]).await;
    assert!(joined(&join(&mut bob, &room("lounge"), "Bob").await));
    assert!(features(&mut bob, "lounge").await.contains(&MAM.to_string()));
    let mut ids = Vec::new();
    for i in 1..=5 {
        let (c, who) = if i % 2 == 0 {
            (&mut bob, "Bob")
        } else {
            (&mut alice, "Alice")
        };
        let mine = say(c, "lounge", &format!("hello number {i}")).await;
        let _ = who;
        let id = room_stanza_id(&mine, "lounge");
        let other = if i % 2 == 0 { &mut alice } else { &mut bob };
        assert_eq!(
            room_stanza_id(&heard(other, &format!("hello number {i}")).await, "lounge"),
            id
        );
        ids.push(id);
    }
    // A stanza-id a client forges for the room is replaced.
    alice
        .send_xml(&format!(
            "<message type='groupchat' to='{}'><body>forged</body><stanza-id xmlns='{SID}' by='{}' id='1'/></message>",
            room("lounge"),
            room("lounge")
        ))
        .await;
    let forged = heard(&mut bob, "forged").await;
    assert_ne!(room_stanza_id(&forged, "lounge"), "1");
    let (r, iq) = query(&mut carol_or(&s).await, "lounge", "").await;
    assert_eq!(r.len(), 6, "an open public room's archive is public");
    let _ = iq;
    let (r, iq) = query(&mut bob, "lounge", "").await;
    assert_eq!(
        bodies(&r)[..5],
        (1..=5).map(|i| format!("hello number {i}")).collect::<Vec<_>>()[..]
    );
    assert_eq!(r.iter().take(5).map(result_id).collect::<Vec<_>>(), ids);
    assert_eq!(
        forwarded(&r[0]).attr("from"),
        Some(format!("{}/Alice", room("lounge")).as_str())
    );
    assert_eq!(
        fin(&iq),
        (
            true,
            Some(ids[0].clone()),
            Some(result_id(&r[5])),
            Some("6".into())
        )
    );
    // Paging: two at a time, then the last page with an empty <before/>.
    let (r, iq) = query(
        &mut bob,
        "lounge",
        &format!("<set xmlns='{RSM}'><max>2</max></set>"),
    )
    .await;
    assert_eq!(bodies(&r), ["hello number 1", "hello number 2"]);
    assert_eq!(
        fin(&iq),
        (
            false,
            Some(ids[0].clone()),
            Some(ids[1].clone()),
            Some("6".into())
        )
    );
    let (r, _) = query(
        &mut bob,
        "lounge",
        &format!("<set xmlns='{RSM}'><max>2</max><after>{}</after></set>", ids[1]),
    )
    .await;
    assert_eq!(bodies(&r), ["hello number 3", "hello number 4"]);
    let (r, iq) = query(
        &mut bob,
        "lounge",
        &format!("<set xmlns='{RSM}'><max>2</max><before/></set>"),
    )
    .await;
    assert_eq!(bodies(&r), ["hello number 5", "forged"]);
    assert_eq!(fin(&iq).3.as_deref(), Some("6"));
    // `with` an occupant JID: that nick's messages.
    let (r, _) = query(
        &mut bob,
        "lounge",
        &form(&field("with", &format!("{}/Bob", room("lounge")))),
    )
    .await;
    assert_eq!(bodies(&r), ["hello number 2", "hello number 4"]);
    let (r, _) = query(&mut bob, "lounge", &form(&field("with", "bob@localhost"))).await;
    assert!(r.is_empty(), "only occupant JIDs of the room filter");
    // Full text.
    let (r, _) = query(
        &mut bob,
        "lounge",
        &form(&field("{urn:xmpp:fulltext:0}fulltext", "NUMBER 3")),
    )
    .await;
    assert_eq!(bodies(&r), ["hello number 3"]);
    // Unknown id: item-not-found (raw XML).
    let (_, iq) = query(
        &mut bob,
        "lounge",
        &format!("<set xmlns='{RSM}'><after>12345</after></set>"),
    )
    .await;
    xml::assert_stanza_error(&iq, &["item-not-found"]);
    assert_eq!(iq.attr("from"), Some(room("lounge").as_str()));
    // Metadata: first and last.
    let m = bob
        .iq(
            "get",
            Some(&room("lounge")),
            &format!("<metadata xmlns='{MAM}'/>"),
        )
        .await;
    let meta = m
        .get_child("metadata", MAM)
        .unwrap_or_else(|| panic!("{}", xml::to_string(&m)));
    assert_eq!(
        meta.get_child("start", MAM).unwrap().attr("id"),
        Some(ids[0].as_str())
    );
}

async fn carol_or(s: &TestServer) -> XmppClient {
    s.client("carol", PW).await
}

// XEP-0313 §5 with XEP-0045 §5.1.3: in a semi-anonymous room the archive shows real JIDs
// only to those who may see them (owners, admins, moderators); in a non-anonymous room to
// everyone allowed to read it.
#[tokio::test]
async fn xep0313_5_room_archive_hides_real_jids_in_semianonymous_room() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    let mut bob = s.client("bob", PW).await;
    persistent_room(&mut alice, "semi", &[]).await;
    join(&mut bob, &room("semi"), "Bob").await;
    say(&mut bob, "semi", "secret sender").await;
    let (r, _) = query(&mut bob, "semi", "").await;
    assert_eq!(r.len(), 1);
    assert_eq!(shown_jid(&r[0]), None, "{}", xml::to_string(&r[0]));
    assert!(
        !xml::to_string(forwarded(&r[0])).contains("bob@localhost"),
        "{}",
        xml::to_string(&r[0])
    );
    let (r, _) = query(&mut alice, "semi", "").await;
    assert_eq!(
        shown_jid(&r[0]).as_deref(),
        Some("bob@localhost"),
        "the owner sees it"
    );
    // Non-anonymous: everyone.
    persistent_room(&mut alice, "open", &[("whois", "anyone")]).await;
    join(&mut bob, &room("open"), "Bob").await;
    say(&mut alice, "open", "known sender").await;
    let (r, _) = query(&mut bob, "open", "").await;
    assert_eq!(shown_jid(&r[0]).as_deref(), Some("alice@localhost"));
}

// XEP-0313 §5 with XEP-0045 §7.2.6: a members-only room's archive is for its members;
// outcasts never read an archive; a hidden room's archive is for members and occupants.
#[tokio::test]
async fn xep0313_5_room_archive_membership_and_outcasts_forbidden() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    let mut bob = s.client("bob", PW).await;
    let mut carol = s.client("carol", PW).await;
    persistent_room(&mut alice, "club", &[("membersonly", "1")]).await;
    ok(&admin(
        &mut alice,
        "club",
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await);
    say(&mut alice, "club", "members only").await;
    let (r, iq) = query(&mut carol, "club", "").await;
    assert!(r.is_empty());
    xml::assert_stanza_error(&iq, &["forbidden"]);
    assert_eq!(iq.attr("from"), Some(room("club").as_str()));
    let (r, _) = query(&mut bob, "club", "").await;
    assert_eq!(
        bodies(&r),
        ["members only"],
        "a member who is not in the room reads it"
    );
    // An outcast of an open room.
    persistent_room(&mut alice, "pub", &[]).await;
    say(&mut alice, "pub", "public").await;
    ok(&admin(
        &mut alice,
        "pub",
        "<item affiliation='outcast' jid='carol@localhost'/>",
    )
    .await);
    let (r, iq) = query(&mut carol, "pub", "").await;
    assert!(r.is_empty());
    xml::assert_stanza_error(&iq, &["forbidden"]);
    let (r, _) = query(&mut bob, "pub", "").await;
    assert_eq!(bodies(&r), ["public"]);
    // A hidden room: occupants and members only.
    persistent_room(&mut alice, "hidden", &[("publicroom", "0")]).await;
    say(&mut alice, "hidden", "hush").await;
    let (_, iq) = query(&mut bob, "hidden", "").await;
    xml::assert_stanza_error(&iq, &["forbidden"]);
    join(&mut bob, &room("hidden"), "Bob").await;
    let (r, _) = query(&mut bob, "hidden", "").await;
    assert_eq!(bodies(&r), ["hush"]);
}

// muc#roomconfig_enablearchiving: off (or a temporary room), no archive: no stanza-id, no
// urn:xmpp:mam:2 in disco, queries refused with service-unavailable (raw XML).
#[tokio::test]
async fn xep0313_5_archiving_off_no_feature_no_archive() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    persistent_room(&mut alice, "quiet", &[("enablearchiving", "0")]).await;
    let got = configure_form(&mut alice, "quiet").await;
    assert!(got.contains("muc#roomconfig_enablearchiving"), "{got}");
    assert!(!features(&mut alice, "quiet").await.contains(&MAM.to_string()));
    let m = say(&mut alice, "quiet", "not kept").await;
    assert!(
        !m.children().any(|c| c.is("stanza-id", SID)),
        "{}",
        xml::to_string(&m)
    );
    let (_, iq) = query(&mut alice, "quiet", "").await;
    xml::assert_stanza_error(&iq, &["service-unavailable"]);
    // Temporary rooms do not archive.
    create(&mut alice, "temp", "Alice", &[]).await;
    assert!(!features(&mut alice, "temp").await.contains(&MAM.to_string()));
    let m = say(&mut alice, "temp", "gone").await;
    assert!(!m.children().any(|c| c.is("stanza-id", SID)));
    // Turned on: archived from then on.
    ok(&configure(&mut alice, "quiet", &[("enablearchiving", "1")]).await);
    assert!(features(&mut alice, "quiet").await.contains(&MAM.to_string()));
    say(&mut alice, "quiet", "kept").await;
    let (r, _) = query(&mut alice, "quiet", "").await;
    assert_eq!(bodies(&r), ["kept"]);
}

async fn configure_form(c: &mut XmppClient, name: &str) -> String {
    let r = c
        .iq("get", Some(&room(name)), &format!("<query xmlns='{NS_OWNER}'/>"))
        .await;
    xml::to_string(&r)
}

fn history_bodies(got: &[Element]) -> Vec<String> {
    got.iter()
        .filter(|e| e.get_child("delay", DELAY).is_some())
        .filter_map(conformance::muc::body)
        .collect()
}

// XEP-0045 §7.2.14 with XEP-0313: an archiving room's join history is read from its
// archive (it survives a restart without the room's own history store), with maxstanzas,
// maxchars, seconds and since, each message with its stanza-id and a delay from the room.
#[tokio::test]
async fn xep0045_7_2_14_join_history_from_the_room_archive() {
    let mut s = server_with("", &[]).await;
    {
        let mut alice = s.client("alice", PW).await;
        persistent_room(&mut alice, "lounge", &[("historylength", "10")]).await;
        for i in 1..=15 {
            say(&mut alice, "lounge", &format!("line {i}")).await;
        }
        alice.close().await;
    }
    // A graceful stop writes out what is queued (a crash may lose the last batch).
    graceful_stop(&s).await;
    s.restart().await;
    let mut bob = s.client("bob", PW).await;
    let got = join(&mut bob, &room("lounge"), "Bob").await;
    let want: Vec<String> = (6..=15).map(|i| format!("line {i}")).collect();
    assert_eq!(history_bodies(&got), want, "historylength messages by default");
    let last = got
        .iter()
        .find(|e| conformance::muc::body(e).as_deref() == Some("line 15"))
        .unwrap();
    room_stanza_id(last, "lounge");
    assert_eq!(
        last.get_child("delay", DELAY).unwrap().attr("from"),
        Some(room("lounge").as_str())
    );
    let mut carol = s.client("carol", PW).await;
    let got = join_with(&mut carol, &room("lounge"), "Carol", "<history maxstanzas='3'/>").await;
    assert_eq!(history_bodies(&got), ["line 13", "line 14", "line 15"]);
    let mut c2 = s.client_jid("carol@localhost/two", PW).await;
    let got = join_with(&mut c2, &room("lounge"), "Carol", "<history maxstanzas='0'/>").await;
    assert!(history_bodies(&got).is_empty());
    let mut c3 = s.client_jid("carol@localhost/three", PW).await;
    let got = join_with(
        &mut c3,
        &room("lounge"),
        "Carol",
        "<history since='2999-01-01T00:00:00Z'/>",
    )
    .await;
    assert!(history_bodies(&got).is_empty());
    let mut c4 = s.client_jid("carol@localhost/four", PW).await;
    let got = join_with(
        &mut c4,
        &room("lounge"),
        "Carol",
        "<history seconds='3600' maxstanzas='100'/>",
    )
    .await;
    assert_eq!(history_bodies(&got), want, "capped at historylength");
    let mut c5 = s.client_jid("carol@localhost/five", PW).await;
    let got = join_with(&mut c5, &room("lounge"), "Carol", "<history maxchars='1'/>").await;
    assert!(history_bodies(&got).is_empty());
}

async fn graceful_stop(s: &TestServer) {
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        s.wait_for_log("stopped", 1, Duration::from_secs(20)).await,
        "{}",
        s.logs()
    );
}

async fn run_command(c: &mut XmppClient, node: &str, fields: &str) -> Element {
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
        .unwrap()
        .to_string();
    c.iq(
        "set",
        Some("localhost"),
        &format!(
            "<command xmlns='{CMD}' node='{node}' sessionid='{sid}' action='complete'>\
             <x xmlns='jabber:x:data' type='submit'>{fields}</x></command>"
        ),
    )
    .await
}

// Purges: an administrator purges one room's archive (XEP-0050 command), other rooms keep
// theirs; a destroyed room's archive goes with it.
#[tokio::test]
async fn xep0313_admin_purges_a_room_archive_and_destroy_deletes_it() {
    let s = server_with("", &["carol@localhost"]).await;
    let mut alice = s.client("alice", PW).await;
    let mut carol = s.client("carol", PW).await;
    persistent_room(&mut alice, "one", &[]).await;
    persistent_room(&mut alice, "two", &[]).await;
    say(&mut alice, "one", "a").await;
    say(&mut alice, "one", "b").await;
    say(&mut alice, "two", "c").await;
    let node = "https://github.com/switchboard-xmpp/switchboard#purge-room-archive";
    let r = run_command(
        &mut carol,
        node,
        &format!(
            "<field var='roomjid'><value>{}</value></field><field var='confirm'><value>1</value></field>",
            room("one")
        ),
    )
    .await;
    let note = r
        .get_child("command", CMD)
        .and_then(|c| c.get_child("note", CMD))
        .map(|n| n.text());
    assert_eq!(
        note.as_deref(),
        Some("Deleted 2 archived message(s)"),
        "{}",
        xml::to_string(&r)
    );
    assert!(query(&mut alice, "one", "").await.0.is_empty());
    assert_eq!(bodies(&query(&mut alice, "two", "").await.0), ["c"]);
    // Not an admin.
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' action='execute'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(&r));
    // Destroyed, then created again: the old archive is gone.
    ok(&alice
        .iq(
            "set",
            Some(&room("two")),
            &format!("<query xmlns='{NS_OWNER}'><destroy/></query>"),
        )
        .await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    persistent_room(&mut alice, "two", &[]).await;
    let (r, _) = query(&mut alice, "two", "").await;
    assert!(r.is_empty(), "{:?}", bodies(&r));
}

// Retention: room messages older than `muc.archive_max_age_secs` are deleted.
#[tokio::test]
async fn xep0313_room_archive_retention_max_age() {
    let s = server_with("[muc]\narchive_max_age_secs = 2\n", &[]).await;
    let mut alice = s.client("alice", PW).await;
    persistent_room(&mut alice, "brief", &[]).await;
    say(&mut alice, "brief", "old").await;
    assert_eq!(bodies(&query(&mut alice, "brief", "").await.0), ["old"]);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    say(&mut alice, "brief", "new").await;
    assert_eq!(bodies(&query(&mut alice, "brief", "").await.0), ["new"]);
}

const MODERATE: &str = "urn:xmpp:message-moderate:1";
const RETRACT: &str = "urn:xmpp:message-retract:1";

fn moderate(id: &str, reason: &str) -> String {
    format!(
        "<moderate xmlns='{MODERATE}' id='{id}'><retract xmlns='{RETRACT}'/><reason>{reason}</reason></moderate>"
    )
}

// XEP-0425 §4: a moderator retracts another occupant's message by its stanza-id: every
// occupant gets the retraction naming the moderator (occupant JID and occupant id) and the
// reason; the archive keeps a tombstone (no body, not found by full text); a participant
// is refused (forbidden) and an unknown id is item-not-found (raw XML).
#[tokio::test]
async fn xep0425_moderator_retracts_message() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    let mut bob = s.client("bob", PW).await;
    let mut carol = s.client("carol", PW).await;
    persistent_room(&mut alice, "mod", &[]).await;
    assert!(features(&mut alice, "mod").await.contains(&MODERATE.to_string()));
    join(&mut bob, &room("mod"), "Bob").await;
    join(&mut carol, &room("mod"), "Carol").await;
    let m = say(&mut bob, "mod", "offensive words").await;
    let id = room_stanza_id(&m, "mod");
    heard(&mut alice, "offensive words").await;
    heard(&mut carol, "offensive words").await;
    // A participant may not.
    let r = carol.iq("set", Some(&room("mod")), &moderate(&id, "no")).await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    // Unknown id.
    let r = alice.iq("set", Some(&room("mod")), &moderate("12345", "x")).await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    let r = alice
        .iq("set", Some(&room("mod")), &moderate("not-an-id", "x"))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    // The moderator.
    let r = alice.iq("set", Some(&room("mod")), &moderate(&id, "Spam")).await;
    ok(&r);
    for c in [&mut bob, &mut carol] {
        let notice = c
            .wait_for(|e| e.name() == "message" && e.get_child("retract", RETRACT).is_some())
            .await;
        assert_eq!(notice.attr("from"), Some(room("mod").as_str()));
        assert_eq!(notice.attr("type"), Some("groupchat"));
        let retract = notice.get_child("retract", RETRACT).unwrap();
        assert_eq!(retract.attr("id"), Some(id.as_str()));
        let moderated = retract.get_child("moderated", MODERATE).expect("moderated");
        assert_eq!(
            moderated.attr("by"),
            Some(format!("{}/Alice", room("mod")).as_str())
        );
        assert!(
            moderated
                .get_child("occupant-id", "urn:xmpp:occupant-id:0")
                .is_some()
        );
        assert_eq!(
            retract.get_child("reason", RETRACT).map(|r| r.text()).as_deref(),
            Some("Spam")
        );
    }
    // The archive keeps a tombstone in the message's place.
    let (r, _) = query(&mut carol, "mod", "").await;
    let tomb = r.iter().find(|m| result_id(m) == id).expect("still there");
    let original = forwarded(tomb);
    assert!(
        conformance::muc::body(original).is_none(),
        "{}",
        xml::to_string(original)
    );
    let retracted = original.get_child("retracted", RETRACT).expect("tombstone");
    assert!(retracted.attr("stamp").is_some());
    assert!(retracted.get_child("moderated", MODERATE).is_some());
    assert!(
        r.iter()
            .any(|m| forwarded(m).get_child("retract", RETRACT).is_some()),
        "the retraction is archived too"
    );
    let (r, _) = query(
        &mut carol,
        "mod",
        &form(&field("{urn:xmpp:fulltext:0}fulltext", "offensive")),
    )
    .await;
    assert!(r.is_empty());
    // Join history shows the tombstone, not the words.
    let mut b2 = s.client_jid("bob@localhost/two", PW).await;
    let got = join(&mut b2, &room("mod"), "Bob").await;
    assert!(!got.iter().any(|e| xml::to_string(e).contains("offensive")));
}

fn own_retraction(room_jid: &str, id: &str) -> String {
    format!(
        "<message type='groupchat' to='{room_jid}'><retract xmlns='{RETRACT}' id='{id}'/>\
         <body>retracted</body><store xmlns='urn:xmpp:hints'/></message>"
    )
}

// XEP-0424 in a room that archives: an occupant retracting its own message (by the room's
// stanza-id) leaves a tombstone in the archive and the retraction reaches the occupants;
// naming someone else's message changes nothing in the archive.
#[tokio::test]
async fn xep0424_occupant_retracts_own_message_in_room_archive() {
    let s = server_with("", &[]).await;
    let mut alice = s.client("alice", PW).await;
    let mut bob = s.client("bob", PW).await;
    persistent_room(&mut alice, "own", &[]).await;
    join(&mut bob, &room("own"), "Bob").await;
    let mine = room_stanza_id(&say(&mut bob, "own", "oops typo").await, "own");
    let hers = room_stanza_id(&say(&mut alice, "own", "keep this").await, "own");
    bob.send_xml(&own_retraction(&room("own"), &hers)).await;
    heard(&mut alice, "retracted").await;
    bob.send_xml(&own_retraction(&room("own"), &mine)).await;
    let notice = alice
        .wait_for(|e| e.get_child("retract", RETRACT).and_then(|r| r.attr("id")) == Some(mine.as_str()))
        .await;
    assert_eq!(notice.attr("from"), Some(format!("{}/Bob", room("own")).as_str()));
    let (r, _) = query(&mut alice, "own", "").await;
    let by_id = |id: &str| forwarded(r.iter().find(|m| result_id(m) == id).unwrap()).clone();
    assert!(
        by_id(&mine).get_child("retracted", RETRACT).is_some(),
        "{}",
        xml::to_string(&by_id(&mine))
    );
    assert_eq!(
        conformance::muc::body(&by_id(&hers)).as_deref(),
        Some("keep this")
    );
}
