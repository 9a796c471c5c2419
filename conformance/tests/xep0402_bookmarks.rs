//! XEP-0223 private PEP storage and XEP-0402 bookmarks with `#compat` / `#compat-pep`:
//! bookmarks published in PEP appear in XEP-0049 private storage (XEP-0048 format) and
//! back, with notifications to the account's interested resources.

use conformance::blocking::{self, PW, SHORT, befriend, settle};
use conformance::pep::{
    self, DISCO_INFO, assert_error, assert_ok, event_of, interested, is_event, items, publish,
};
use conformance::{Element, XmppClient, xml};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const NODE: &str = "urn:xmpp:bookmarks:1";
const LEGACY: &str = "storage:bookmarks";
const ROOM: &str = "room@conference.localhost";

/// XEP-0402 §3 / XEP-0223 §2: the options clients publish bookmarks with.
const OPTIONS: &[(&str, &str)] = &[
    ("pubsub#persist_items", "true"),
    ("pubsub#max_items", "max"),
    ("pubsub#send_last_published_item", "never"),
    ("pubsub#access_model", "whitelist"),
];

fn conference(name: &str, nick: &str) -> String {
    format!("<conference xmlns='{NODE}' name='{name}' autojoin='true'><nick>{nick}</nick></conference>")
}

async fn private_get(c: &mut XmppClient) -> Element {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'/></query>"),
        )
        .await;
    assert_ok(&r);
    r.get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", LEGACY))
        .cloned()
        .unwrap_or_else(|| panic!("no storage: {}", xml::to_string(&r)))
}

async fn private_set(c: &mut XmppClient, inner: &str) {
    let r = c
        .iq(
            "set",
            None,
            &format!("<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'>{inner}</storage></query>"),
        )
        .await;
    assert_ok(&r);
}

fn legacy_conferences(storage: &Element) -> Vec<&Element> {
    storage
        .children()
        .filter(|c| c.is("conference", LEGACY))
        .collect()
}

/// XEP-0223 §2-§4: a node published with `persist_items` and `whitelist` keeps its items
/// for the owner alone: a contact is refused (`closed-node`) and gets no notification.
#[tokio::test]
async fn xep0223_4_private_node_whitelist_refuses_contacts() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &["urn:x:secret"]).await;
    let mut bob = interested(&server, "bob@localhost/home", &["urn:x:secret"]).await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    let options = [
        ("pubsub#persist_items", "true"),
        ("pubsub#access_model", "whitelist"),
    ];
    let r = publish(
        &mut alice,
        "urn:x:secret",
        Some("current"),
        "<s xmlns='urn:x'>hidden</s>",
        &options,
    )
    .await;
    assert_ok(&r);
    alice.wait_for(|e| is_event(e, ALICE, "urn:x:secret")).await;
    let got = items(&mut alice, None, "urn:x:secret", "", None).await.unwrap();
    assert_eq!(got[0].get_child("s", "urn:x").unwrap().text(), "hidden");
    let r = items(&mut bob, Some(ALICE), "urn:x:secret", "", None)
        .await
        .unwrap_err();
    assert_error(&r, "not-allowed", Some("closed-node"));
    bob.ping_server().await;
    bob.expect_none(SHORT, "a notification of private data", |e| {
        is_event(e, ALICE, "urn:x:secret")
    })
    .await;
    // Republishing with the same options satisfies the preconditions.
    let r = publish(
        &mut alice,
        "urn:x:secret",
        Some("current"),
        "<s xmlns='urn:x'>again</s>",
        &options,
    )
    .await;
    assert_ok(&r);
}

/// XEP-0402 §3 (`#compat`): a bookmark published in PEP is in private storage as a XEP-0048
/// conference; retracting it removes it there; `<url/>` bookmarks are kept.
#[tokio::test]
async fn xep0402_3_pep_bookmarks_appear_in_private_storage() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    private_set(&mut alice, "<url name='Site' url='https://example.org/'/>").await;
    let r = publish(
        &mut alice,
        NODE,
        Some(ROOM),
        &conference("The Room", "ali"),
        OPTIONS,
    )
    .await;
    assert_ok(&r);
    let storage = private_get(&mut alice).await;
    let confs = legacy_conferences(&storage);
    assert_eq!(confs.len(), 1, "{}", xml::to_string(&storage));
    assert_eq!(confs[0].attr("jid"), Some(ROOM));
    assert_eq!(confs[0].attr("name"), Some("The Room"));
    assert_eq!(confs[0].attr("autojoin"), Some("true"));
    assert_eq!(confs[0].get_child("nick", LEGACY).unwrap().text(), "ali");
    assert!(
        storage.children().any(|c| c.is("url", LEGACY)),
        "url kept: {}",
        xml::to_string(&storage)
    );
    let retract = format!(
        "<pubsub xmlns='{}'><retract node='{NODE}' notify='true'><item id='{ROOM}'/></retract></pubsub>",
        pep::PUBSUB
    );
    assert_ok(&alice.iq("set", None, &retract).await);
    let storage = private_get(&mut alice).await;
    assert!(
        legacy_conferences(&storage).is_empty(),
        "{}",
        xml::to_string(&storage)
    );
}

/// XEP-0402 §3 (`#compat-pep`): a XEP-0048 client's private-storage bookmarks become PEP
/// items, notified to the account's interested resources; a removal is a retraction.
#[tokio::test]
async fn xep0402_3_private_bookmarks_appear_in_pep_with_notifications() {
    let server = blocking::server_with(&["alice"]).await;
    let mut modern = interested(&server, "alice@localhost/modern", &[NODE]).await;
    let mut legacy = server.client_jid("alice@localhost/legacy", PW).await;
    private_set(
        &mut legacy,
        &format!(
            "<conference jid='{ROOM}' name='One' autojoin='true'><nick>a</nick></conference>\
             <conference jid='other@conference.localhost' name='Two'/>"
        ),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let got = modern.wait_for(|e| is_event(e, ALICE, NODE)).await;
        seen.push(pep::published_id(event_of(&got, ALICE, NODE).unwrap()).unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["other@conference.localhost", ROOM]);
    let got = items(&mut modern, None, NODE, &format!("<item id='{ROOM}'/>"), None)
        .await
        .unwrap();
    let conf = got[0].get_child("conference", NODE).unwrap();
    assert_eq!(conf.attr("name"), Some("One"));
    assert_eq!(conf.attr("autojoin"), Some("true"));
    assert_eq!(conf.get_child("nick", NODE).unwrap().text(), "a");
    // The node has the XEP-0402 configuration: others are refused.
    private_set(
        &mut legacy,
        &format!("<conference jid='{ROOM}' name='One' autojoin='true'><nick>a</nick></conference>"),
    )
    .await;
    let got = modern.wait_for(|e| is_event(e, ALICE, NODE)).await;
    let retracted = event_of(&got, ALICE, NODE)
        .unwrap()
        .get_child("items", pep::EVENT)
        .and_then(|i| i.get_child("retract", pep::EVENT))
        .and_then(|r| r.attr("id"))
        .map(str::to_owned);
    assert_eq!(retracted.as_deref(), Some("other@conference.localhost"));
    // Unchanged bookmarks are not republished.
    modern.ping_server().await;
    modern
        .expect_none(SHORT, "a notification for an unchanged bookmark", |e| {
            is_event(e, ALICE, NODE)
        })
        .await;
    assert_eq!(items(&mut modern, None, NODE, "", None).await.unwrap().len(), 1);
}

/// XEP-0402 §5: bookmarks are private: another user is refused.
#[tokio::test]
async fn xep0402_5_bookmarks_node_is_private() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = interested(&server, "alice@localhost/desk", &[]).await;
    let mut bob = interested(&server, "bob@localhost/home", &[NODE]).await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    private_set(&mut alice, &format!("<conference jid='{ROOM}' name='One'/>")).await;
    let r = items(&mut bob, Some(ALICE), NODE, "", None).await.unwrap_err();
    assert_error(&r, "not-allowed", Some("closed-node"));
    settle(&mut bob).await;
    bob.expect_none(SHORT, "someone else's bookmarks", |e| is_event(e, ALICE, NODE))
        .await;
}

/// XEP-0402 §3: the account advertises `#compat` (and `#compat-pep`).
#[tokio::test]
async fn xep0402_3_account_advertises_compat() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    let r = alice
        .iq("get", Some(ALICE), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    let features: Vec<String> = r
        .get_child("query", DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect();
    assert!(
        features.iter().any(|f| f == "urn:xmpp:bookmarks:1#compat"),
        "{features:?}"
    );
    assert!(
        features.iter().any(|f| f == "urn:xmpp:bookmarks:1#compat-pep"),
        "{features:?}"
    );
}
