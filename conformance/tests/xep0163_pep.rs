//! XEP-0163 personal eventing (and the XEP-0060 operations it uses): auto-create, +notify
//! filtered notifications from XEP-0115 caps, last item on presence, access models,
//! publish-options, retract, items retrieval, node configuration, deletion and purge, and
//! the error conditions XEP-0060 lists for each.

use conformance::blocking::{self, PW, SHORT, befriend, online, settle};
use conformance::pep::{
    self, DISCO_INFO, TUNE, announce, assert_error, assert_ok, event_of, interested, is_event, items, owner,
    publish, tune,
};
use conformance::{TestServer, XmppClient, xml};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const CAROL: &str = "carol@localhost";
const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";

/// alice and bob share presence both ways and are interested in tunes; carol is a
/// stranger (no subscription), also interested.
struct Setup {
    server: TestServer,
    alice: XmppClient,
    bob: XmppClient,
    carol: XmppClient,
}

async fn setup() -> Setup {
    let server = blocking::server_with(&["alice", "bob", "carol"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[TUNE]).await;
    let mut bob = interested(&server, "bob@localhost/home", &[TUNE]).await;
    let carol = interested(&server, "carol@localhost/home", &[TUNE]).await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    Setup {
        server,
        alice,
        bob,
        carol,
    }
}

fn title_of(event: &conformance::Element) -> Option<String> {
    let item = event
        .get_child("items", pep::EVENT)?
        .get_child("item", pep::EVENT)?;
    Some(item.get_child("tune", TUNE)?.get_child("title", TUNE)?.text())
}

/// §3, §4.3: the first publish creates the node; the owner's and the contact's interested
/// resources get the item; a stranger does not.
#[tokio::test]
async fn xep0163_4_3_publish_auto_creates_and_notifies_interested_contacts() {
    let Setup {
        mut alice,
        mut bob,
        mut carol,
        server: _server,
        ..
    } = setup().await;
    let r = publish(&mut alice, TUNE, Some("t1"), &tune("Yesterday"), &[]).await;
    assert_ok(&r);
    let got = bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    let event = event_of(&got, ALICE, TUNE).unwrap();
    assert_eq!(title_of(event).as_deref(), Some("Yesterday"));
    assert_eq!(pep::published_id(event).as_deref(), Some("t1"));
    assert_eq!(got.attr("to"), Some("bob@localhost/home"));
    // §4.3: the owner's own interested resource too.
    alice.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    carol.ping_server().await;
    carol
        .expect_none(SHORT, "a notification for a stranger", |e| {
            is_event(e, ALICE, TUNE)
        })
        .await;
}

/// XEP-0060 §7.1.2: without an item id the service generates one and returns it.
#[tokio::test]
async fn xep0060_7_1_2_publish_without_id_gets_a_generated_id() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    let r = publish(&mut alice, TUNE, None, &tune("Help"), &[]).await;
    assert_ok(&r);
    let id = r
        .get_child("pubsub", pep::PUBSUB)
        .and_then(|p| p.get_child("publish", pep::PUBSUB))
        .and_then(|p| p.get_child("item", pep::PUBSUB))
        .and_then(|i| i.attr("id"))
        .unwrap_or_else(|| panic!("no item id in {}", xml::to_string(&r)))
        .to_owned();
    assert!(!id.is_empty());
    let got = bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    assert_eq!(pep::published_id(event_of(&got, ALICE, TUNE).unwrap()), Some(id));
}

/// §4.3.1: a contact whose caps do not say `node+notify` gets no notification.
#[tokio::test]
async fn xep0163_4_3_1_no_notification_without_notify_interest() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[TUNE]).await;
    let mut bob = interested(&server, "bob@localhost/home", &["urn:other:node"]).await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    assert_ok(&publish(&mut alice, TUNE, None, &tune("Girl"), &[]).await);
    alice.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    bob.ping_server().await;
    bob.expect_none(SHORT, "an unwanted notification", |e| is_event(e, ALICE, TUNE))
        .await;
}

/// XEP-0115 via §4.3.1: the server asks a resource's features once per unknown `ver`; a
/// second resource announcing the same `ver` is not asked, and gets notifications too.
#[tokio::test]
async fn xep0163_4_3_1_caps_queried_once_per_ver() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[TUNE]).await;
    let mut bob = online(&server, "bob@localhost/home").await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    let features = pep::notify(&[TUNE]);
    let refs: Vec<&str> = features.iter().map(String::as_str).collect();
    announce(&mut bob, &refs, true).await;
    let mut phone = server.client_jid("bob@localhost/phone", PW).await;
    let query = pep::disco_query(&refs);
    let ver = xml::caps_ver_sha1(&query);
    phone
        .send_xml(&format!(
            "<presence><c xmlns='{}' hash='sha-1' node='urn:conformance' ver='{ver}'/></presence>",
            pep::CAPS
        ))
        .await;
    phone.ping_server().await;
    phone
        .expect_none(SHORT, "a second disco#info query for a known ver", |e| {
            e.name() == "iq" && e.get_child("query", DISCO_INFO).is_some()
        })
        .await;
    assert_ok(&publish(&mut alice, TUNE, None, &tune("Rain"), &[]).await);
    bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    phone.wait_for(|e| is_event(e, ALICE, TUNE)).await;
}

/// XEP-0115 §5.4: an answer whose features do not hash to the announced `ver` is not
/// believed for others announcing that `ver`.
#[tokio::test]
async fn xep0115_5_4_unverified_caps_not_shared() {
    let server = blocking::server_with(&["alice", "bob", "carol"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[TUNE]).await;
    let mut bob = online(&server, "bob@localhost/home").await;
    let mut carol = online(&server, "carol@localhost/home").await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    befriend(&mut alice, ALICE, &mut carol, CAROL).await;
    // bob claims a ver, then answers with features that do not match it.
    let claimed = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    bob.send_xml(&format!(
        "<presence><c xmlns='{}' hash='sha-1' node='urn:conformance' ver='{claimed}'/></presence>",
        pep::CAPS
    ))
    .await;
    let features = pep::notify(&[TUNE]);
    let refs: Vec<&str> = features.iter().map(String::as_str).collect();
    pep::answer_caps_query(&mut bob, &pep::disco_query(&refs), claimed).await;
    bob.ping_server().await;
    carol
        .send_xml(&format!(
            "<presence><c xmlns='{}' hash='sha-1' node='urn:conformance' ver='{claimed}'/></presence>",
            pep::CAPS
        ))
        .await;
    carol.ping_server().await;
    settle(&mut carol).await;
    assert_ok(&publish(&mut alice, TUNE, None, &tune("Lies"), &[]).await);
    // bob said so for himself; carol's ver stays unknown.
    bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    carol
        .expect_none(SHORT, "a notification from someone else's unverified caps", |e| {
            is_event(e, ALICE, TUNE)
        })
        .await;
}

/// §4.3.2 / XEP-0060 §4.3 (send_last_published_item on_sub_and_presence): a contact's
/// resource coming online with +notify gets the last item.
#[tokio::test]
async fn xep0163_4_3_2_last_item_sent_when_contact_comes_online() {
    let Setup {
        server,
        mut alice,
        mut bob,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("a"), &tune("First"), &[]).await);
    assert_ok(&publish(&mut alice, TUNE, Some("b"), &tune("Second"), &[]).await);
    settle(&mut bob).await;
    let mut phone = server.client_jid("bob@localhost/phone", PW).await;
    let features = pep::notify(&[TUNE]);
    let mut refs: Vec<&str> = features.iter().map(String::as_str).collect();
    refs.push("urn:conformance:phone");
    announce(&mut phone, &refs, true).await;
    let got = phone.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    let event = event_of(&got, ALICE, TUNE).unwrap();
    assert_eq!(title_of(event).as_deref(), Some("Second"));
    assert_eq!(got.attr("to"), Some("bob@localhost/phone"));
    // Only the last item, once.
    phone
        .expect_none(SHORT, "a second last-item notification", |e| {
            is_event(e, ALICE, TUNE)
        })
        .await;
    // A stranger coming online gets nothing.
    let mut carol = server.client_jid("carol@localhost/other", PW).await;
    let mut refs2 = refs.clone();
    refs2.push("urn:conformance:carol");
    announce(&mut carol, &refs2, true).await;
    carol
        .expect_none(SHORT, "a last item for a stranger", |e| is_event(e, ALICE, TUNE))
        .await;
}

/// XEP-0060 §6.5.9 with the PEP default `presence` access model: a stranger is refused
/// (`not-authorized` + `presence-subscription-required`), a contact gets the items.
#[tokio::test]
async fn xep0060_6_5_9_presence_access_model() {
    let Setup {
        mut alice,
        mut bob,
        mut carol,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("x"), &tune("Here"), &[]).await);
    let got = items(&mut bob, Some(ALICE), TUNE, "", None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("id"), Some("x"));
    let r = items(&mut carol, Some(ALICE), TUNE, "", None).await.unwrap_err();
    assert_error(&r, "not-authorized", Some("presence-subscription-required"));
}

/// XEP-0060 §6.5.2-§6.5.8: all items, by id, the newest `max_items`; errors for an
/// unknown node or item.
#[tokio::test]
async fn xep0060_6_5_items_all_by_id_and_max_items() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[]).await;
    let create = format!(
        "<pubsub xmlns='{}'><create node='n'/><configure>{}</configure></pubsub>",
        pep::PUBSUB,
        pep::form(NODE_CONFIG, &[("pubsub#max_items", "10")])
    );
    assert_ok(&alice.iq("set", None, &create).await);
    for i in 1..=4 {
        let payload = format!("<p xmlns='urn:x' n='{i}'/>");
        assert_ok(&publish(&mut alice, "n", Some(&format!("i{i}")), &payload, &[]).await);
    }
    let ids = |v: &[conformance::Element]| {
        v.iter()
            .map(|i| i.attr("id").unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let all = items(&mut alice, None, "n", "", None).await.unwrap();
    assert_eq!(ids(&all), ["i1", "i2", "i3", "i4"]);
    assert!(all[0].get_child("p", "urn:x").is_some(), "payloads come back");
    let newest = items(&mut alice, None, "n", "", Some(2)).await.unwrap();
    assert_eq!(ids(&newest), ["i3", "i4"]);
    let by_id = items(&mut alice, None, "n", "<item id='i2'/>", None)
        .await
        .unwrap();
    assert_eq!(ids(&by_id), ["i2"]);
    let r = items(&mut alice, None, "n", "<item id='nope'/>", None)
        .await
        .unwrap_err();
    assert_error(&r, "item-not-found", None);
    let r = items(&mut alice, None, "missing", "", None).await.unwrap_err();
    assert_error(&r, "item-not-found", None);
    let r = items(&mut alice, Some("nobody@localhost"), "n", "", None)
        .await
        .unwrap_err();
    assert_error(&r, "item-not-found", None);
}

/// XEP-0060 §7.1.5: publish-options that match are accepted, a mismatch is `conflict` +
/// `precondition-not-met`, and on a new node they become its configuration.
#[tokio::test]
async fn xep0060_7_1_5_publish_options_preconditions() {
    let Setup {
        mut alice,
        mut carol,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, None, &tune("a"), &[]).await);
    let r = publish(
        &mut alice,
        TUNE,
        None,
        &tune("b"),
        &[("pubsub#access_model", "open")],
    )
    .await;
    assert_error(&r, "conflict", Some("precondition-not-met"));
    let r = publish(
        &mut alice,
        TUNE,
        None,
        &tune("c"),
        &[("pubsub#access_model", "presence")],
    )
    .await;
    assert_ok(&r);
    // A new node with options: open to anyone.
    let r = publish(
        &mut alice,
        "urn:x:open",
        Some("1"),
        "<x xmlns='urn:x'/>",
        &[("pubsub#access_model", "open"), ("pubsub#max_items", "max")],
    )
    .await;
    assert_ok(&r);
    let got = items(&mut carol, Some(ALICE), "urn:x:open", "", None)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let r = publish(
        &mut alice,
        "urn:x:bad",
        None,
        "<x xmlns='urn:x'/>",
        &[("pubsub#access_model", "authorize")],
    )
    .await;
    assert_error(&r, "conflict", Some("precondition-not-met"));
}

/// XEP-0060 §7.1.3: publish errors (another account's node, no item, no payload, two
/// items).
#[tokio::test]
async fn xep0060_7_1_3_publish_errors() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    let r = bob
        .iq(
            "set",
            Some(ALICE),
            &format!(
                "<pubsub xmlns='{}'><publish node='{TUNE}'><item>{}</item></publish></pubsub>",
                pep::PUBSUB,
                tune("x")
            ),
        )
        .await;
    assert_error(&r, "forbidden", None);
    let r = alice
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{TUNE}'/></pubsub>",
                pep::PUBSUB
            ),
        )
        .await;
    assert_error(&r, "bad-request", Some("item-required"));
    let r = alice
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{TUNE}'><item id='1'/></publish></pubsub>",
                pep::PUBSUB
            ),
        )
        .await;
    assert_error(&r, "bad-request", Some("payload-required"));
    let r = alice
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{TUNE}'><item id='1'>{}</item><item id='2'>{}</item></publish></pubsub>",
                pep::PUBSUB,
                tune("a"),
                tune("b")
            ),
        )
        .await;
    assert_error(&r, "bad-request", Some("invalid-payload"));
    // A get with a publish is not a request.
    let r = alice
        .iq(
            "get",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{TUNE}'><item>{}</item></publish></pubsub>",
                pep::PUBSUB,
                tune("a")
            ),
        )
        .await;
    assert_error(&r, "bad-request", None);
    // Unsupported operations name the feature.
    let r = alice
        .iq(
            "set",
            Some(ALICE),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='{TUNE}' jid='{ALICE}'/></pubsub>",
                pep::PUBSUB
            ),
        )
        .await;
    assert_error(&r, "feature-not-implemented", Some("unsupported"));
    let unsupported = r
        .get_child("error", "jabber:client")
        .unwrap()
        .get_child("unsupported", pep::ERRORS)
        .unwrap();
    assert_eq!(unsupported.attr("feature"), Some("subscribe"));
}

/// XEP-0060 §7.2: retract with notify; errors for a missing node, item, or item id, and
/// another account's node.
#[tokio::test]
async fn xep0060_7_2_retract_with_notify_and_errors() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("gone"), &tune("x"), &[]).await);
    bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    let retract = |node: &str, inner: &str| {
        format!(
            "<pubsub xmlns='{}'><retract node='{node}' notify='true'>{inner}</retract></pubsub>",
            pep::PUBSUB
        )
    };
    assert_ok(&alice.iq("set", None, &retract(TUNE, "<item id='gone'/>")).await);
    let got = bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    let event = event_of(&got, ALICE, TUNE).unwrap();
    let retracted = event
        .get_child("items", pep::EVENT)
        .unwrap()
        .get_child("retract", pep::EVENT)
        .unwrap();
    assert_eq!(retracted.attr("id"), Some("gone"));
    assert!(items(&mut alice, None, TUNE, "", None).await.unwrap().is_empty());
    let r = alice.iq("set", None, &retract(TUNE, "<item id='gone'/>")).await;
    assert_error(&r, "item-not-found", None);
    let r = alice.iq("set", None, &retract("missing", "<item id='x'/>")).await;
    assert_error(&r, "item-not-found", None);
    let r = alice.iq("set", None, &retract(TUNE, "")).await;
    assert_error(&r, "bad-request", Some("item-required"));
    let r = bob.iq("set", Some(ALICE), &retract(TUNE, "<item id='x'/>")).await;
    assert_error(&r, "forbidden", None);
}

/// XEP-0060 §8.2: the owner reads and changes the configuration; whitelist access keeps
/// contacts out until the owner makes them members (§8.9); others may not configure.
#[tokio::test]
async fn xep0060_8_2_configure_whitelist_and_affiliations() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("1"), &tune("x"), &[]).await);
    let r = owner(&mut alice, "get", &format!("<configure node='{TUNE}'/>")).await;
    assert_ok(&r);
    let form = r
        .get_child("pubsub", pep::OWNER)
        .and_then(|p| p.get_child("configure", pep::OWNER))
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .unwrap();
    let access = form
        .children()
        .find(|f| f.attr("var") == Some("pubsub#access_model"))
        .unwrap();
    assert_eq!(
        access.get_child("value", "jabber:x:data").unwrap().text(),
        "presence"
    );
    let set = format!(
        "<configure node='{TUNE}'>{}</configure>",
        pep::form(NODE_CONFIG, &[("pubsub#access_model", "whitelist")])
    );
    assert_ok(&owner(&mut alice, "set", &set).await);
    let r = items(&mut bob, Some(ALICE), TUNE, "", None).await.unwrap_err();
    assert_error(&r, "not-allowed", Some("closed-node"));
    settle(&mut bob).await;
    // Not on the list: no notification either.
    assert_ok(&publish(&mut alice, TUNE, Some("2"), &tune("y"), &[]).await);
    bob.ping_server().await;
    bob.expect_none(SHORT, "a notification from a whitelist node", |e| {
        is_event(e, ALICE, TUNE)
    })
    .await;
    let grant =
        format!("<affiliations node='{TUNE}'><affiliation jid='{BOB}' affiliation='member'/></affiliations>");
    assert_ok(&owner(&mut alice, "set", &grant).await);
    let r = owner(&mut alice, "get", &format!("<affiliations node='{TUNE}'/>")).await;
    let list = xml::to_string(&r);
    assert!(
        list.contains("affiliation='member'") || list.contains("affiliation=\"member\""),
        "{list}"
    );
    assert_eq!(
        items(&mut bob, Some(ALICE), TUNE, "", None).await.unwrap().len(),
        1
    );
    // Errors: an unknown node, another account, a bad value, no node.
    let r = owner(&mut alice, "get", "<configure node='missing'/>").await;
    assert_error(&r, "item-not-found", None);
    let r = bob
        .iq(
            "get",
            Some(ALICE),
            &format!(
                "<pubsub xmlns='{}'><configure node='{TUNE}'/></pubsub>",
                pep::OWNER
            ),
        )
        .await;
    assert_error(&r, "forbidden", None);
    let bad = format!(
        "<configure node='{TUNE}'>{}</configure>",
        pep::form(NODE_CONFIG, &[("pubsub#access_model", "nonsense")])
    );
    assert_error(&owner(&mut alice, "set", &bad).await, "not-acceptable", None);
    assert_error(
        &owner(&mut alice, "get", "<configure/>").await,
        "bad-request",
        Some("nodeid-required"),
    );
    let r = owner(&mut alice, "get", "<default/>").await;
    assert_ok(&r);
}

/// `roster` access model: contacts in the allowed groups only.
#[tokio::test]
async fn xep0060_4_5_roster_access_model() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    let create = format!(
        "<pubsub xmlns='{}'><create node='urn:x:r'/><configure>{}</configure></pubsub>",
        pep::PUBSUB,
        pep::form(
            NODE_CONFIG,
            &[
                ("pubsub#access_model", "roster"),
                ("pubsub#roster_groups_allowed", "Friends")
            ]
        )
    );
    assert_ok(&alice.iq("set", None, &create).await);
    assert_ok(&publish(&mut alice, "urn:x:r", Some("1"), "<x xmlns='urn:x'/>", &[]).await);
    let r = items(&mut bob, Some(ALICE), "urn:x:r", "", None)
        .await
        .unwrap_err();
    assert_error(&r, "not-authorized", Some("not-in-roster-group"));
    blocking::roster_set(&mut alice, BOB, &["Friends"]).await;
    assert_eq!(
        items(&mut bob, Some(ALICE), "urn:x:r", "", None)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// XEP-0060 §8.1: create errors (exists, no node name, another account).
#[tokio::test]
async fn xep0060_8_1_create_errors() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    let create = |node: &str| format!("<pubsub xmlns='{}'><create node='{node}'/></pubsub>", pep::PUBSUB);
    assert_ok(&alice.iq("set", None, &create("urn:x:c")).await);
    assert_error(&alice.iq("set", None, &create("urn:x:c")).await, "conflict", None);
    let r = alice
        .iq(
            "set",
            None,
            &format!("<pubsub xmlns='{}'><create/></pubsub>", pep::PUBSUB),
        )
        .await;
    assert_error(&r, "not-acceptable", Some("nodeid-required"));
    assert_error(
        &bob.iq("set", Some(ALICE), &create("urn:x:d")).await,
        "forbidden",
        None,
    );
}

/// XEP-0060 §8.4, §8.5: delete and purge notify interested contacts; then the node is
/// gone or empty.
#[tokio::test]
async fn xep0060_8_4_delete_and_8_5_purge_notify() {
    let Setup {
        mut alice,
        mut bob,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("1"), &tune("x"), &[]).await);
    bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    assert_ok(&owner(&mut alice, "set", &format!("<purge node='{TUNE}'/>")).await);
    let got = bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    assert!(
        event_of(&got, ALICE, TUNE)
            .unwrap()
            .get_child("purge", pep::EVENT)
            .is_some()
    );
    assert!(
        items(&mut bob, Some(ALICE), TUNE, "", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ok(&owner(&mut alice, "set", &format!("<delete node='{TUNE}'/>")).await);
    let got = bob.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    assert!(
        event_of(&got, ALICE, TUNE)
            .unwrap()
            .get_child("delete", pep::EVENT)
            .is_some()
    );
    assert_error(
        &items(&mut alice, None, TUNE, "", None).await.unwrap_err(),
        "item-not-found",
        None,
    );
    assert_error(
        &owner(&mut alice, "set", &format!("<delete node='{TUNE}'/>")).await,
        "item-not-found",
        None,
    );
    assert_error(
        &owner(&mut alice, "set", &format!("<purge node='{TUNE}'/>")).await,
        "item-not-found",
        None,
    );
    let r = bob
        .iq(
            "set",
            Some(ALICE),
            &format!("<pubsub xmlns='{}'><delete node='{TUNE}'/></pubsub>", pep::OWNER),
        )
        .await;
    assert_error(&r, "forbidden", None);
}

/// §6.1: the account advertises the PEP identity and the features clients check for
/// (publish-options for OMEMO).
#[tokio::test]
async fn xep0163_6_1_account_advertises_pep() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    let r = alice
        .iq("get", Some(ALICE), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    assert_ok(&r);
    let q = r.get_child("query", DISCO_INFO).unwrap();
    assert!(q.children().any(|c| c.name() == "identity"
        && c.attr("category") == Some("pubsub")
        && c.attr("type") == Some("pep")));
    let features: Vec<&str> = q.children().filter_map(|c| c.attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#publish-options",
        "http://jabber.org/protocol/pubsub#auto-create",
        "http://jabber.org/protocol/pubsub#access-whitelist",
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
}

/// Items survive the account's sessions ending (they are in the database).
#[tokio::test]
async fn xep0163_items_persist_across_sessions() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[]).await;
    assert_ok(&publish(&mut alice, TUNE, Some("kept"), &tune("x"), &[]).await);
    alice.close().await;
    let mut again = server.client_jid("alice@localhost/other", PW).await;
    let got = items(&mut again, None, TUNE, "", None).await.unwrap();
    assert_eq!(got[0].attr("id"), Some("kept"));
}

/// §4.3.2 / XEP-0060 §6.1.7: a contact whose subscription the owner approves gets the last
/// item at once on its interested resources.
#[tokio::test]
async fn xep0163_4_3_2_last_item_sent_when_contact_subscribes() {
    let Setup {
        server: _server,
        mut alice,
        mut carol,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("now"), &tune("Now"), &[]).await);
    settle(&mut carol).await;
    carol
        .send_xml(&format!("<presence to='{ALICE}' type='subscribe'/>"))
        .await;
    carol.ping_server().await;
    alice
        .send_xml(&format!("<presence to='{CAROL}' type='subscribed'/>"))
        .await;
    let got = carol.wait_for(|e| is_event(e, ALICE, TUNE)).await;
    assert_eq!(
        pep::published_id(event_of(&got, ALICE, TUNE).unwrap()).as_deref(),
        Some("now")
    );
}

/// XEP-0030 §4.1 on an account: disco#items lists its nodes; the account sees all of them,
/// a contact those its access models allow, a stranger only open ones.
#[tokio::test]
async fn xep0030_4_1_account_items_list_pep_nodes_by_access() {
    let Setup {
        mut alice,
        mut bob,
        mut carol,
        server: _server,
        ..
    } = setup().await;
    assert_ok(&publish(&mut alice, TUNE, Some("x"), &tune("Here"), &[]).await);
    let private = [("pubsub#access_model", "whitelist")];
    assert_ok(
        &publish(
            &mut alice,
            "urn:x:private",
            Some("p"),
            "<x xmlns='urn:x'/>",
            &private,
        )
        .await,
    );
    let open = [("pubsub#access_model", "open")];
    assert_ok(&publish(&mut alice, "urn:x:open", Some("o"), "<x xmlns='urn:x'/>", &open).await);
    async fn nodes(c: &mut XmppClient) -> Vec<String> {
        let r = c
            .iq(
                "get",
                Some(ALICE),
                "<query xmlns='http://jabber.org/protocol/disco#items'/>",
            )
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
        let q = r
            .get_child("query", "http://jabber.org/protocol/disco#items")
            .unwrap();
        let mut nodes: Vec<String> = q
            .children()
            .inspect(|i| assert_eq!(i.attr("jid"), Some(ALICE)))
            .filter_map(|i| i.attr("node").map(str::to_owned))
            .collect();
        nodes.sort();
        nodes
    }
    assert_eq!(nodes(&mut alice).await, [TUNE, "urn:x:open", "urn:x:private"]);
    assert_eq!(nodes(&mut bob).await, [TUNE, "urn:x:open"]);
    assert_eq!(nodes(&mut carol).await, ["urn:x:open"]);
}
