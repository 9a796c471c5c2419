//! XEP-0016 Privacy Lists as a view of the shared model (xep/xep-ignore-list.md §5.1, §5.4).

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const PRIVACY: &str = "jabber:iq:privacy";
const BLOCKING: &str = "urn:xmpp:blocking";
const IGNORE: &str = "urn:switchboard:ignore:0";
const SHORT: Duration = Duration::from_millis(400);

struct Setup {
    _server: TestServer,
    desk: XmppClient,
    phone: XmppClient,
    bob: XmppClient,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut desk = server.client_jid("alice@localhost/desk", "passw0rd").await;
    let mut phone = server.client_jid("alice@localhost/phone", "passw0rd").await;
    let mut bob = server.client_jid("bob@localhost/home", "passw0rd").await;
    desk.send_presence(1).await;
    phone.send_presence(1).await;
    bob.send_presence(0).await;
    desk.ping_server().await;
    phone.ping_server().await;
    bob.ping_server().await;
    Setup {
        _server: server,
        desk,
        phone,
        bob,
    }
}

fn condition(r: &Element) -> Option<String> {
    let e = r.get_child("error", ns::CLIENT)?;
    e.children()
        .find(|c| c.ns() == ns::STANZAS)
        .map(|c| c.name().to_owned())
}

async fn set(c: &mut XmppClient, inner: &str) -> Element {
    c.iq("set", None, &format!("<query xmlns='{PRIVACY}'>{inner}</query>"))
        .await
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

const PUBLIC: &str = "<list name='public'>\
    <item type='jid' value='bob@localhost' action='deny' order='1'><message/></item>\
    <item type='jid' value='tybalt@example.com' action='deny' order='2'/>\
    <item action='allow' order='3'/></list>";

// XEP-0016 §2.2 / §2.3: names, then one list, as stored.
#[tokio::test]
async fn xep0016_2_2_retrieve_lists() {
    let mut s = setup().await;
    ok(&set(&mut s.desk, PUBLIC).await);
    let r = s
        .desk
        .iq("get", None, &format!("<query xmlns='{PRIVACY}'/>"))
        .await;
    let q = r.get_child("query", PRIVACY).unwrap();
    let names: Vec<_> = q
        .children()
        .filter(|c| c.name() == "list")
        .filter_map(|c| c.attr("name"))
        .collect();
    assert_eq!(names, vec!["public"]);
    let r = s
        .desk
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVACY}'><list name='public'/></query>"),
        )
        .await;
    let list = r
        .get_child("query", PRIVACY)
        .unwrap()
        .get_child("list", PRIVACY)
        .unwrap();
    assert_eq!(list.children().count(), 3);
    let first = list.children().next().unwrap();
    assert_eq!(first.attr("value"), Some("bob@localhost"));
    assert!(first.get_child("message", PRIVACY).is_some());
    let r = s
        .desk
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVACY}'><list name='nope'/></query>"),
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("item-not-found"));
}

// XEP-0016 §2.6: an edited list is pushed to the resources using privacy lists.
#[tokio::test]
async fn xep0016_2_6_list_push() {
    let mut s = setup().await;
    s.phone
        .iq("get", None, &format!("<query xmlns='{PRIVACY}'/>"))
        .await;
    ok(&set(&mut s.desk, PUBLIC).await);
    let p = s
        .phone
        .wait_for(|e| e.get_child("query", PRIVACY).is_some())
        .await;
    assert_eq!(p.attr("type"), Some("set"));
    assert_eq!(
        p.get_child("query", PRIVACY)
            .unwrap()
            .get_child("list", PRIVACY)
            .unwrap()
            .attr("name"),
        Some("public")
    );
    // bob never used privacy lists: his blocks (XEP-0191) push nothing of XEP-0016 to him.
    ok(&s
        .bob
        .iq(
            "set",
            None,
            &format!("<block xmlns='{BLOCKING}'><item jid='x@example.net'/></block>"),
        )
        .await);
    while let Some(e) = s.bob.recv_within(SHORT).await {
        assert!(e.get_child("query", PRIVACY).is_none(), "{}", xml::to_string(&e));
    }
}

// XEP-0016 §2.4 (active list): applies to the session that chose it, only for its selectors.
#[tokio::test]
async fn xep0016_2_6_active_list() {
    let mut s = setup().await;
    ok(&set(&mut s.desk, PUBLIC).await);
    ok(&set(&mut s.desk, "<active name='public'/>").await);
    s.bob
        .send_xml("<message to='alice@localhost/desk' id='p1' type='chat'><body>x</body></message>")
        .await;
    let e = s.bob.wait_for(|e| e.attr("id") == Some("p1")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    // The phone has no active list and no default: delivered.
    s.bob.send_message("alice@localhost/phone", "y").await;
    assert_eq!(
        s.phone.expect_message().await.attr("from"),
        Some("bob@localhost/home")
    );
    // IQs are not selected by the item: the request reaches desk.
    s.bob
        .send_xml("<iq type='get' id='p3' to='alice@localhost/desk'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    s.desk
        .wait_for(|e| e.name() == "iq" && e.attr("id") == Some("p3"))
        .await;
    // Outbound: the item's message selector stops desk's messages to bob too.
    s.desk
        .send_xml("<message to='bob@localhost' id='p2' type='chat'><body>x</body></message>")
        .await;
    let e = s.desk.wait_for(|e| e.attr("id") == Some("p2")).await;
    assert_eq!(condition(&e).as_deref(), Some("not-acceptable"));
    ok(&set(&mut s.desk, "<active/>").await);
    s.bob.send_message("alice@localhost/desk", "z").await;
    s.desk.expect_message().await;
    let r = set(&mut s.desk, "<active name='nope'/>").await;
    assert_eq!(condition(&r).as_deref(), Some("item-not-found"));
}

// XEP-0016 §2.5 with XEP-0191: the default list's block items are the blocklist; an item
// with partial selectors is not (spec §5.3); presence-out stops directed presence.
#[tokio::test]
async fn xep0016_2_5_default_list_is_blocklist() {
    let mut s = setup().await;
    s.phone
        .iq("get", None, &format!("<blocklist xmlns='{BLOCKING}'/>"))
        .await;
    ok(&set(&mut s.desk, PUBLIC).await);
    ok(&set(&mut s.desk, "<default name='public'/>").await);
    let p = s
        .phone
        .wait_for(|e| e.get_child("block", BLOCKING).is_some())
        .await;
    let jids: Vec<_> = p
        .get_child("block", BLOCKING)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid"))
        .collect();
    assert_eq!(jids, vec!["tybalt@example.com"]);
    // Unblock all through XEP-0191 keeps bob's message-only item (spec §5.3).
    ok(&s
        .phone
        .iq("set", None, &format!("<unblock xmlns='{BLOCKING}'/>"))
        .await);
    let r = s
        .desk
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVACY}'><list name='public'/></query>"),
        )
        .await;
    let list = r
        .get_child("query", PRIVACY)
        .unwrap()
        .get_child("list", PRIVACY)
        .unwrap();
    let values: Vec<_> = list.children().filter_map(|i| i.attr("value")).collect();
    assert_eq!(values, vec!["bob@localhost"]);
    // The ignore view shows the same list.
    let r = s
        .desk
        .iq("get", None, &format!("<list xmlns='{IGNORE}' name='public'/>"))
        .await;
    assert_eq!(r.get_child("list", IGNORE).unwrap().attr("total"), Some("2"));
    // The default list in use cannot be removed (§2.7).
    let r = set(&mut s.desk, "<list name='public'/>").await;
    assert_eq!(condition(&r).as_deref(), Some("conflict"));
    ok(&set(&mut s.desk, "<default/>").await);
    ok(&set(&mut s.desk, "<list name='public'/>").await);
    let r = s
        .desk
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVACY}'><list name='public'/></query>"),
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("item-not-found"));
}

// XEP-0016 §2.11 (presence-out) and §2.10 (presence-in).
#[tokio::test]
async fn xep0016_2_10_presence_selectors() {
    let mut s = setup().await;
    ok(&set(
        &mut s.desk,
        "<list name='p'><item type='jid' value='bob@localhost' action='deny' order='1'><presence-out/></item></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='p'/>").await);
    s.desk.send_xml("<presence to='bob@localhost/home'/>").await;
    s.desk.ping_server().await;
    s.bob.ping_server().await;
    while let Some(e) = s.bob.recv_within(SHORT).await {
        assert_ne!(
            e.attr("from"),
            Some("alice@localhost/desk"),
            "{}",
            xml::to_string(&e)
        );
    }
    // Messages still flow both ways.
    s.bob.send_message("alice@localhost/desk", "hi").await;
    s.desk.expect_message().await;
    // Bad requests: item without order, two children.
    let r = set(&mut s.desk, "<list name='q'><item action='deny'/></list>").await;
    assert_eq!(condition(&r).as_deref(), Some("bad-request"));
    let r = set(&mut s.desk, "<active/><default/>").await;
    assert_eq!(condition(&r).as_deref(), Some("bad-request"));
}

// XEP-0016 §2.11 (presence-out) for broadcasts: the active list of the sending resource
// stops its presence broadcasts to the denied subscriber, who still gets the presence of
// the account's other resources; other subscribers get everything.
#[tokio::test]
async fn xep0016_2_11_presence_out_stops_broadcasts() {
    let Setup {
        _server: server,
        mut desk,
        mut phone,
        mut bob,
    } = setup().await;
    server.add_user("carol", "passw0rd").await;
    let mut carol = server.client_jid("carol@localhost/c", "passw0rd").await;
    for (c, bare) in [(&mut bob, "bob@localhost"), (&mut carol, "carol@localhost")] {
        c.send_xml("<presence to='alice@localhost' type='subscribe'/>")
            .await;
        desk.send_xml(&format!("<presence to='{bare}' type='subscribed'/>"))
            .await;
        desk.ping_server().await;
        c.ping_server().await;
    }
    carol.send_presence(0).await;
    carol.ping_server().await;
    for c in [&mut desk, &mut phone, &mut bob, &mut carol] {
        while c.recv_within(SHORT).await.is_some() {}
    }
    ok(&set(
        &mut desk,
        "<list name='p'><item type='jid' value='bob@localhost' action='deny' order='1'><presence-out/></item></list>",
    )
    .await);
    ok(&set(&mut desk, "<active name='p'/>").await);
    desk.send_xml("<presence><show>away</show></presence>").await;
    carol
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/desk"))
        .await;
    bob.ping_server().await;
    while let Some(e) = bob.recv_within(SHORT).await {
        assert_ne!(
            e.attr("from"),
            Some("alice@localhost/desk"),
            "{}",
            xml::to_string(&e)
        );
    }
    // The phone has no active list: its presence reaches bob.
    phone.send_xml("<presence><show>xa</show></presence>").await;
    bob.wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/phone"))
        .await;
}
