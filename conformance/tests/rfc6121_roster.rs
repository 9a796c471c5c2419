//! RFC 6121 §2 (roster management) and XEP-0237 (roster versioning).

use conformance::blocking::settle_without;
use conformance::{Element, TestServer, XmppClient, xml};

const ROSTER: &str = "jabber:iq:roster";
const PW: &str = "passw0rd";

fn query(e: &Element) -> &Element {
    e.get_child("query", ROSTER)
        .unwrap_or_else(|| panic!("no roster query in {}", xml::to_string(e)))
}

fn item<'a>(q: &'a Element, jid: &str) -> Option<&'a Element> {
    q.children()
        .find(|i| i.is("item", ROSTER) && i.attr("jid") == Some(jid))
}

fn groups(item: &Element) -> Vec<String> {
    let mut g: Vec<String> = item
        .children()
        .filter(|c| c.is("group", ROSTER))
        .map(|c| c.text())
        .collect();
    g.sort();
    g
}

fn is_push(e: &Element) -> bool {
    e.name() == "iq" && e.attr("type") == Some("set") && e.get_child("query", ROSTER).is_some()
}

async fn roster_get(c: &mut XmppClient, ver: Option<&str>) -> Element {
    let payload = match ver {
        Some(v) => format!("<query xmlns='{ROSTER}' ver='{v}'/>"),
        None => format!("<query xmlns='{ROSTER}'/>"),
    };
    let r = c.iq("get", None, &payload).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r
}

async fn roster_set(c: &mut XmppClient, item_xml: &str) -> Element {
    c.iq(
        "set",
        None,
        &format!("<query xmlns='{ROSTER}'>{item_xml}</query>"),
    )
    .await
}

async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

// RFC 6121 §2.1.3: a roster get is answered with the roster (empty for a new account),
// with a version (XEP-0237 §3).
#[tokio::test]
async fn rfc6121_2_1_3_roster_get() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    let r = roster_get(&mut alice, None).await;
    let q = query(&r);
    assert_eq!(q.children().count(), 0, "{}", xml::to_string(&r));
    assert!(q.attr("ver").is_some(), "no ver: {}", xml::to_string(&r));
    assert!(
        matches!(r.attr("from"), None | Some("alice@localhost")),
        "answered for the account: {}",
        xml::to_string(&r)
    );
}

// RFC 6121 §2.3.2 / §2.1.6: adding an item: result to the sender, a push with the new item
// to every interested resource (the sender included), none to a resource that never asked
// for the roster.
#[tokio::test]
async fn rfc6121_2_1_6_roster_push() {
    let server = server_with(&["alice", "bob"]).await;
    let mut one = server.client_jid("alice@localhost/one", PW).await;
    let mut two = server.client_jid("alice@localhost/two", PW).await;
    let mut three = server.client_jid("alice@localhost/three", PW).await;
    roster_get(&mut one, None).await;
    roster_get(&mut two, None).await;
    let r = roster_set(
        &mut one,
        "<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    for c in [&mut one, &mut two] {
        let push = c.wait_for(is_push).await;
        assert!(
            matches!(push.attr("from"), None | Some("alice@localhost")),
            "§2.1.6: a push comes from the account or nobody: {}",
            xml::to_string(&push)
        );
        assert!(push.attr("id").is_some());
        let q = query(&push);
        assert!(q.attr("ver").is_some(), "XEP-0237: pushes carry ver");
        assert_eq!(q.children().count(), 1);
        let it = item(q, "bob@localhost").expect("the pushed item");
        assert_eq!(it.attr("name"), Some("Bob"));
        assert_eq!(it.attr("subscription"), Some("none"));
        assert_eq!(it.attr("ask"), None);
        assert_eq!(groups(it), ["Friends", "Work"]);
    }
    settle_without(
        &mut three,
        "roster push to a resource that never asked for the roster",
        is_push,
    )
    .await;
    // The roster now has the item.
    let r = roster_get(&mut three, None).await;
    let it = item(query(&r), "bob@localhost").expect("item stored");
    assert_eq!(it.attr("name"), Some("Bob"));
}

// RFC 6121 §2.4: updating an item replaces its name and groups; subscription is kept.
#[tokio::test]
async fn rfc6121_2_4_roster_update() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    roster_get(&mut alice, None).await;
    roster_set(
        &mut alice,
        "<item jid='bob@localhost' name='Bob'><group>A</group></item>",
    )
    .await;
    alice.wait_for(is_push).await;
    let r = roster_set(
        &mut alice,
        "<item jid='bob@localhost' name='Robert'><group>B</group><group>C</group></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let push = alice.wait_for(is_push).await;
    let it = item(query(&push), "bob@localhost").unwrap();
    assert_eq!(it.attr("name"), Some("Robert"));
    assert_eq!(groups(it), ["B", "C"]);
    // No name and no group: both cleared.
    roster_set(&mut alice, "<item jid='bob@localhost'/>").await;
    let push = alice.wait_for(is_push).await;
    let it = item(query(&push), "bob@localhost").unwrap();
    assert_eq!(it.attr("name"), None);
    assert!(groups(it).is_empty());
}

// RFC 6121 §2.1.2.1/§2.1.2.2/§2.1.2.5: in a roster set the server ignores 'approved', 'ask'
// and any subscription other than "remove".
#[tokio::test]
async fn rfc6121_2_1_2_set_ignores_ask_approved_subscription() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    roster_get(&mut alice, None).await;
    let r = roster_set(
        &mut alice,
        "<item jid='bob@localhost' subscription='both' ask='subscribe' approved='true'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let push = alice.wait_for(is_push).await;
    let it = item(query(&push), "bob@localhost").unwrap();
    assert_eq!(it.attr("subscription"), Some("none"));
    assert_eq!(it.attr("ask"), None);
    assert_eq!(it.attr("approved"), None);
}

// RFC 6121 §2.5.2: removal: result, a push with subscription='remove', gone from the roster.
#[tokio::test]
async fn rfc6121_2_5_2_roster_remove() {
    let server = server_with(&["alice", "bob"]).await;
    let mut one = server.client_jid("alice@localhost/one", PW).await;
    let mut two = server.client_jid("alice@localhost/two", PW).await;
    roster_get(&mut one, None).await;
    roster_get(&mut two, None).await;
    roster_set(&mut one, "<item jid='bob@localhost'/>").await;
    one.wait_for(is_push).await;
    two.wait_for(is_push).await;
    let r = roster_set(&mut two, "<item jid='bob@localhost' subscription='remove'/>").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    for c in [&mut one, &mut two] {
        let push = c.wait_for(is_push).await;
        let it = item(query(&push), "bob@localhost").unwrap();
        assert_eq!(it.attr("subscription"), Some("remove"));
    }
    let r = roster_get(&mut one, None).await;
    assert!(item(query(&r), "bob@localhost").is_none());
}

// RFC 6121 §2.5.3: removing an item that is not in the roster -> <item-not-found/>.
#[tokio::test]
async fn rfc6121_2_5_3_remove_unknown_item() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    let r = roster_set(&mut alice, "<item jid='nobody@localhost' subscription='remove'/>").await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

// RFC 6121 §2.3.3: errors of a roster set.
#[tokio::test]
async fn rfc6121_2_3_3_roster_set_errors() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.raw_login("alice", PW, Some("raw")).await;
    let long_name = "n".repeat(5000);
    let long_group = "g".repeat(5000);
    let cases: Vec<(String, &[&str])> = vec![
        // More than one item, or none.
        (
            "<item jid='a@localhost'/><item jid='b@localhost'/>".into(),
            &["bad-request"],
        ),
        (String::new(), &["bad-request"]),
        // Duplicate groups.
        (
            "<item jid='a@localhost'><group>X</group><group>X</group></item>".into(),
            &["bad-request"],
        ),
        // Empty group, too long a name or group.
        (
            "<item jid='a@localhost'><group/></item>".into(),
            &["not-acceptable"],
        ),
        (
            format!("<item jid='a@localhost' name='{long_name}'/>"),
            &["not-acceptable"],
        ),
        (
            format!("<item jid='a@localhost'><group>{long_group}</group></item>"),
            &["not-acceptable"],
        ),
        // No jid, a malformed one, a full JID, the user's own JID.
        ("<item name='x'/>".into(), &["bad-request"]),
        ("<item jid='a@@localhost'/>".into(), &["jid-malformed"]),
        (
            "<item jid='a@localhost/res'/>".into(),
            &["bad-request", "jid-malformed"],
        ),
        ("<item jid='alice@localhost'/>".into(), &["not-allowed"]),
    ];
    for (i, (items, conditions)) in cases.iter().enumerate() {
        let r = alice
            .iq(&format!(
                "<iq type='set' id='e{i}'><query xmlns='{ROSTER}'>{items}</query></iq>"
            ))
            .await;
        xml::assert_stanza_error(&r, conditions);
    }
    // Nothing was added.
    let r = alice
        .iq(&format!("<iq type='get' id='g'><query xmlns='{ROSTER}'/></iq>"))
        .await;
    assert_eq!(query(&r).children().count(), 0, "{}", xml::to_string(&r));
}

// RFC 6121 §2.3.3 / §2.1.5: only the account itself may read or change its roster.
#[tokio::test]
async fn rfc6121_2_3_3_other_users_roster_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    for t in ["get", "set"] {
        let payload = if t == "get" {
            format!("<query xmlns='{ROSTER}'/>")
        } else {
            format!("<query xmlns='{ROSTER}'><item jid='carol@localhost'/></query>")
        };
        let r = alice.iq(t, Some("bob@localhost"), &payload).await;
        xml::assert_stanza_error(&r, &["forbidden"]);
    }
    // Addressed to one's own bare JID it works.
    let r = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{ROSTER}'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
}

// The roster size limit ([limits] max_roster_items): adding beyond it is refused with
// <not-allowed/>; updating an existing item still works.
#[tokio::test]
async fn rfc6121_2_3_3_roster_size_limit() {
    let mut server = server_with(&["alice"]).await;
    let path = server.config_path().to_owned();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("[limits]\n", "[limits]\nmax_roster_items = 2\n"),
    )
    .unwrap();
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    for c in ["a", "b"] {
        let r = roster_set(&mut alice, &format!("<item jid='{c}@localhost'/>")).await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    let r = roster_set(&mut alice, "<item jid='c@localhost'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed", "resource-constraint"]);
    let r = roster_set(&mut alice, "<item jid='a@localhost' name='A'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
}

// XEP-0237 §2: roster versioning is advertised after authentication, as is pre-approval
// (RFC 6121 §3.4).
#[tokio::test]
async fn xep0237_stream_feature() {
    let server = server_with(&["alice"]).await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.starttls().await;
    c.sasl_scram(
        "alice",
        PW,
        conformance::ScramHash::Sha256,
        conformance::ChannelBindingMode::None,
    )
    .await
    .unwrap();
    let features = c.restart_stream().await;
    assert!(
        features.has_child("ver", "urn:xmpp:features:rosterver"),
        "{}",
        xml::to_string(&features)
    );
    assert!(
        features.has_child("sub", "urn:xmpp:features:pre-approval"),
        "{}",
        xml::to_string(&features)
    );
}

// XEP-0237 §3: a get with the current version is answered with an empty result; later
// changes come as pushes with newer versions.
#[tokio::test]
async fn xep0237_ver_unchanged_empty_result() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    roster_get(&mut alice, None).await;
    roster_set(&mut alice, "<item jid='a@localhost'/>").await;
    let push = alice.wait_for(is_push).await;
    let ver = query(&push).attr("ver").unwrap().to_owned();
    let r = roster_get(&mut alice, Some(&ver)).await;
    assert_eq!(
        r.children().count(),
        0,
        "up to date: empty result, {}",
        xml::to_string(&r)
    );
    roster_set(&mut alice, "<item jid='b@localhost'/>").await;
    let push = alice.wait_for(is_push).await;
    let newer = query(&push).attr("ver").unwrap().to_owned();
    assert_ne!(newer, ver);
    assert!(item(query(&push), "b@localhost").is_some());
}

// XEP-0237 §3: with an older version (or an empty one) the whole roster comes back with
// the current version; every change gives a new version.
#[tokio::test]
async fn xep0237_ver_stale_full_roster() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    let r = roster_get(&mut alice, Some("")).await;
    let v0 = query(&r).attr("ver").unwrap().to_owned();
    roster_set(&mut alice, "<item jid='a@localhost'/>").await;
    roster_set(&mut alice, "<item jid='b@localhost'/>").await;
    let r = roster_get(&mut alice, Some(&v0)).await;
    let q = query(&r);
    assert_ne!(q.attr("ver"), Some(v0.as_str()));
    assert!(item(q, "a@localhost").is_some() && item(q, "b@localhost").is_some());
    let v2 = q.attr("ver").unwrap().to_owned();
    roster_set(&mut alice, "<item jid='a@localhost' subscription='remove'/>").await;
    let r = roster_get(&mut alice, Some(&v2)).await;
    let q = query(&r);
    assert_ne!(q.attr("ver"), Some(v2.as_str()));
    assert!(item(q, "a@localhost").is_none());
}

// XEP-0237 / RFC 6121 §2.1.1: the roster and its version are stored: after a restart the
// same version is current and answered with an empty result.
#[tokio::test]
async fn xep0237_roster_and_ver_survive_restart() {
    let mut server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    roster_set(
        &mut alice,
        "<item jid='a@localhost' name='A'><group>G</group></item>",
    )
    .await;
    roster_set(&mut alice, "<item jid='b@localhost'/>").await;
    let r = roster_get(&mut alice, None).await;
    let ver = query(&r).attr("ver").unwrap().to_owned();
    drop(alice);
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    let r = roster_get(&mut alice, Some(&ver)).await;
    assert_eq!(r.children().count(), 0, "{}", xml::to_string(&r));
    let r = roster_get(&mut alice, None).await;
    let q = query(&r);
    assert_eq!(q.attr("ver"), Some(ver.as_str()));
    let a = item(q, "a@localhost").unwrap();
    assert_eq!(a.attr("name"), Some("A"));
    assert_eq!(groups(a), ["G"]);
    // And it keeps counting upwards.
    roster_get(&mut alice, None).await;
    roster_set(&mut alice, "<item jid='c@localhost'/>").await;
    let push = alice.wait_for(is_push).await;
    assert_ne!(query(&push).attr("ver"), Some(ver.as_str()));
}
