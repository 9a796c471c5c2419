//! XEP-0016 Privacy Lists as a view of the shared model (xep/xep-ignore-list.md §5.1, §5.4).

use conformance::blocking::{
    BLOCKING, IGNORE, PRIVACY, PW, SHORT, Setup, befriend, condition, drain, no_presence_from, ok, online,
    presence_from, privacy_set as set, roster_set, setup_with, subscribe,
};
use conformance::{XmppClient, ns, xml};

async fn setup() -> Setup {
    // Both of alice's resources at priority 1: a message to her bare JID reaches both.
    setup_with(1).await
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
    s.bob
        .expect_none(SHORT, "privacy list push", |e| {
            e.get_child("query", PRIVACY).is_some()
        })
        .await;
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
    s.bob
        .expect_none(SHORT, "stanza from alice/desk", |e| {
            e.attr("from") == Some("alice@localhost/desk")
        })
        .await;
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
        server,
        mut desk,
        mut phone,
        mut bob,
    } = setup().await;
    server.add_user("carol", PW).await;
    let mut carol = server.client_jid("carol@localhost/c", PW).await;
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
        drain(c).await;
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
    bob.expect_none(SHORT, "stanza from alice/desk", |e| {
        e.attr("from") == Some("alice@localhost/desk")
    })
    .await;
    // The phone has no active list: its presence reaches bob.
    phone.send_xml("<presence><show>xa</show></presence>").await;
    bob.wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/phone"))
        .await;
}

/// alice's two resources and bob, subscribed to each other both ways, everyone drained.
async fn friends() -> Setup {
    let mut s = setup().await;
    befriend(&mut s.desk, "alice@localhost", &mut s.bob, "bob@localhost").await;
    for c in [&mut s.desk, &mut s.phone, &mut s.bob] {
        drain(c).await;
    }
    s
}

/// Waits for bob's next broadcast (`show`) at `c`.
async fn bob_shows(c: &mut XmppClient, show: &str) {
    c.wait_for(|e| {
        presence_from(e, "bob@localhost/home", None)
            && e.get_child("show", ns::CLIENT).map(|s| s.text()).as_deref() == Some(show)
    })
    .await;
}

// XEP-0016 §2.9 with a `group` item: the active list of the desk denies presence-in from
// the roster group bob is in, so bob's broadcasts (delivered by the roster module, judged
// by the synchronous presence filter) stop at the desk; the phone still gets them.
#[tokio::test]
async fn xep0016_2_9_group_item_blocks_presence_in() {
    let mut s = friends().await;
    roster_set(&mut s.desk, "bob@localhost", &["Enemies"]).await;
    ok(&set(
        &mut s.desk,
        "<list name='g'><item type='group' value='Enemies' action='deny' order='1'><presence-in/></item></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='g'/>").await);
    drain(&mut s.desk).await;
    s.bob.send_xml("<presence><show>away</show></presence>").await;
    bob_shows(&mut s.phone, "away").await;
    s.desk.ping_server().await;
    no_presence_from(&mut s.desk, "bob@localhost").await;
    // Messages are not selected by the item.
    s.bob.send_message("alice@localhost/desk", "hi").await;
    s.desk.expect_message().await;
    // A group bob is not in denies nothing.
    ok(&set(
        &mut s.desk,
        "<list name='g'><item type='group' value='Others' action='deny' order='1'><presence-in/></item></list>",
    )
    .await);
    s.bob.send_xml("<presence><show>dnd</show></presence>").await;
    bob_shows(&mut s.desk, "dnd").await;
}

// XEP-0016 §2.10 with a `subscription` item: the desk's active list denies presence-out to
// contacts with subscription 'both' (bob), so its broadcasts skip bob but reach carol,
// whose subscription is 'from'.
#[tokio::test]
async fn xep0016_2_10_subscription_item_blocks_presence_out() {
    let mut s = friends().await;
    s.server.add_user("carol", PW).await;
    let mut carol = online(&s.server, "carol@localhost/c").await;
    subscribe(&mut carol, &mut s.desk, "alice@localhost", "carol@localhost").await;
    for c in [&mut s.desk, &mut s.phone, &mut s.bob, &mut carol] {
        drain(c).await;
    }
    ok(&set(
        &mut s.desk,
        "<list name='s'><item type='subscription' value='both' action='deny' order='1'><presence-out/></item></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='s'/>").await);
    s.desk.send_xml("<presence><show>away</show></presence>").await;
    carol
        .wait_for(|e| presence_from(e, "alice@localhost/desk", None))
        .await;
    s.bob.ping_server().await;
    s.bob
        .expect_none(SHORT, "available presence from alice/desk", |e| {
            presence_from(e, "alice@localhost/desk", None)
        })
        .await;
    // The phone has no active list: bob sees it.
    s.phone.send_xml("<presence><show>xa</show></presence>").await;
    s.bob
        .wait_for(|e| presence_from(e, "alice@localhost/phone", None))
        .await;
}

// XEP-0016 §3 rules 1-2: a message to the bare JID is judged, for each resource it would
// reach, by that resource's active list, else the default list. The desk's active list
// denies bob's messages: the phone alone gets it, and bob gets no error. When every
// resource denies it, bob gets the §2.13 error.
#[tokio::test]
async fn xep0016_3_bare_jid_message_judged_per_resource() {
    let mut s = setup().await;
    ok(&set(&mut s.desk, PUBLIC).await);
    ok(&set(&mut s.desk, "<active name='public'/>").await);
    s.bob
        .send_xml("<message to='alice@localhost' id='b1' type='chat'><body>one</body></message>")
        .await;
    let m = s.phone.expect_message().await;
    assert_eq!(m.attr("id"), Some("b1"));
    s.desk.expect_no_message(SHORT).await;
    s.bob.expect_no_message(SHORT).await;
    // The phone makes the same list active: nobody may get it.
    ok(&set(&mut s.phone, "<active name='public'/>").await);
    s.bob
        .send_xml("<message to='alice@localhost' id='b2' type='chat'><body>two</body></message>")
        .await;
    let e = s.bob.wait_for(|e| e.attr("id") == Some("b2")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    s.desk.expect_no_message(SHORT).await;
    s.phone.expect_no_message(SHORT).await;
}

// XEP-0016 §3 rule 1: an active list replaces the default list for its resource (no
// layering). The default list denies bob's messages; the desk's active list allows all:
// a message to the bare JID reaches the desk only.
#[tokio::test]
async fn xep0016_3_active_list_replaces_default_for_bare_jid() {
    let mut s = setup().await;
    ok(&set(&mut s.desk, PUBLIC).await);
    ok(&set(&mut s.desk, "<default name='public'/>").await);
    ok(&set(
        &mut s.desk,
        "<list name='open'><item action='allow' order='1'/></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='open'/>").await);
    s.bob
        .send_xml("<message to='alice@localhost' id='d1' type='chat'><body>x</body></message>")
        .await;
    assert_eq!(s.desk.expect_message().await.attr("id"), Some("d1"));
    s.phone.expect_no_message(SHORT).await;
    s.bob.expect_no_message(SHORT).await;
    // Directed presence to the bare JID: the same per-resource judgement (presence-in).
    ok(&set(
        &mut s.desk,
        "<list name='public'><item type='jid' value='bob@localhost' action='deny' order='1'/></list>",
    )
    .await);
    drain(&mut s.phone).await;
    s.bob
        .send_xml("<presence to='alice@localhost'><show>chat</show></presence>")
        .await;
    s.desk
        .wait_for(|e| presence_from(e, "bob@localhost/home", None))
        .await;
    s.phone.ping_server().await;
    no_presence_from(&mut s.phone, "bob@localhost").await;
}

// XEP-0016 §2.9 with a `group` item, the roster changing under an active list: once bob is
// put in the denied group his broadcasts stop at the desk, once taken out they arrive
// again. Needs the roster module to report its changes (`hooks.roster_changed`).
#[tokio::test]
async fn xep0016_2_9_group_item_follows_roster_changes() {
    let mut s = friends().await;
    ok(&set(
        &mut s.desk,
        "<list name='g'><item type='group' value='Enemies' action='deny' order='1'><presence-in/></item></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='g'/>").await);
    s.bob.send_xml("<presence><show>away</show></presence>").await;
    bob_shows(&mut s.desk, "away").await;
    roster_set(&mut s.desk, "bob@localhost", &["Enemies"]).await;
    drain(&mut s.desk).await;
    s.bob.send_xml("<presence><show>dnd</show></presence>").await;
    bob_shows(&mut s.phone, "dnd").await;
    s.desk.ping_server().await;
    no_presence_from(&mut s.desk, "bob@localhost").await;
    roster_set(&mut s.desk, "bob@localhost", &["Friends"]).await;
    s.bob.send_xml("<presence><show>chat</show></presence>").await;
    bob_shows(&mut s.desk, "chat").await;
}

// XEP-0016 §2.11 (blocking IQ stanzas), both directions: bob's IQ requests to the desk get
// service-unavailable, the desk's to bob not-acceptable without <blocked/> (the item has a
// selector, so it is no block, xep/xep-ignore-list.md §5.3); messages still flow.
#[tokio::test]
async fn xep0016_2_11_iq_item_both_directions() {
    let mut s = setup().await;
    ok(&set(
        &mut s.desk,
        "<list name='q'><item type='jid' value='bob@localhost' action='deny' order='1'><iq/></item></list>",
    )
    .await);
    ok(&set(&mut s.desk, "<active name='q'/>").await);
    let r = s
        .bob
        .iq(
            "get",
            Some("alice@localhost/desk"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("service-unavailable"));
    let r = s
        .desk
        .iq(
            "get",
            Some("bob@localhost/home"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("not-acceptable"));
    assert!(
        r.get_child("error", ns::CLIENT)
            .and_then(|e| e.get_child("blocked", "urn:xmpp:blocking:errors"))
            .is_none(),
        "{}",
        xml::to_string(&r)
    );
    // The phone has no active list: its IQ reaches bob.
    s.phone
        .send_xml("<iq type='get' id='v1' to='bob@localhost/home'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    s.bob
        .wait_for(|e| e.name() == "iq" && e.attr("id") == Some("v1"))
        .await;
    s.bob.send_message("alice@localhost/desk", "still").await;
    s.desk.expect_message().await;
}
