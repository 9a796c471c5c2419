//! XEP-0060 publish-subscribe service at `pubsub.localhost`, in raw XML: discovery (§5),
//! subscriptions and their options (§6), publish and retract with notifications (§7), node
//! ownership (§8): creation, configuration, deletion, purge, subscriptions and affiliations,
//! the `authorize` access model's approval form, and every error path named by its section.

use std::time::Duration;

use conformance::{Element, RawClient, TestServer, ns, xml};

const PW: &str = "passw0rd";
const SERVICE: &str = "pubsub.localhost";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DATA: &str = "jabber:x:data";
const QUIET: Duration = Duration::from_millis(700);

async fn server_with(extra: &str) -> TestServer {
    let toml = format!("[pubsub]\nenabled = true\n{extra}\n");
    let server = TestServer::start_with(|c| {
        c.extra_toml = toml;
        c.admins = vec!["admin@localhost".into()];
    })
    .await;
    for u in ["alice", "bob", "carol", "admin"] {
        server.add_user(u, PW).await;
    }
    server
}

async fn server() -> TestServer {
    server_with("").await
}

/// Logged in and available (bare-JID subscriptions reach available resources).
async fn online(server: &TestServer, user: &str) -> RawClient {
    let mut c = server.raw_login(user, PW, Some("r")).await;
    c.send("<presence/>").await;
    // Available once the server echoes the presence.
    c.read_until(|e| e.name() == "presence" && e.attr("from").is_some_and(|f| f.starts_with(user)))
        .await;
    c
}

async fn iq(c: &mut RawClient, kind: &str, inner: &str) -> Element {
    let id = c.id();
    c.iq(&format!(
        "<iq type='{kind}' id='{id}' to='{SERVICE}'>{inner}</iq>"
    ))
    .await
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// (defined condition, pubsub#errors condition).
fn error(r: &Element) -> (String, Option<String>) {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    let e = r.get_child("error", ns::CLIENT).expect("an <error/>");
    let defined = e
        .children()
        .find(|c| c.ns() == ns::STANZAS)
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    let app = e
        .children()
        .find(|c| c.ns() == ERRORS)
        .map(|c| c.name().to_string());
    (defined, app)
}

fn assert_error(r: &Element, defined: &str, app: Option<&str>) {
    let (d, a) = error(r);
    assert_eq!(
        (d.as_str(), a.as_deref()),
        (defined, app),
        "{}",
        xml::to_string(r)
    );
}

fn form(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{form_type}</value></field>"
    );
    for (k, v) in fields {
        s.push_str(&format!("<field var='{k}'><value>{v}</value></field>"));
    }
    s.push_str("</x>");
    s
}

fn config_form(fields: &[(&str, &str)]) -> String {
    form("http://jabber.org/protocol/pubsub#node_config", fields)
}

async fn create(c: &mut RawClient, node: &str, fields: &[(&str, &str)]) {
    let configure = if fields.is_empty() {
        "<configure/>".to_owned()
    } else {
        format!("<configure>{}</configure>", config_form(fields))
    };
    let r = iq(
        c,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><create node='{node}'/>{configure}</pubsub>"),
    )
    .await;
    ok(&r);
}

async fn publish(c: &mut RawClient, node: &str, id: &str, n: u32) -> Element {
    iq(
        c,
        "set",
        &format!(
            "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'><entry xmlns='urn:example' n='{n}'/></item></publish></pubsub>"
        ),
    )
    .await
}

async fn subscribe(c: &mut RawClient, node: &str, jid: &str) -> Element {
    iq(
        c,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='{jid}'/></pubsub>"),
    )
    .await
}

async fn owner_set(c: &mut RawClient, inner: &str) -> Element {
    iq(c, "set", &format!("<pubsub xmlns='{OWNER}'>{inner}</pubsub>")).await
}

fn is_event(e: &Element) -> bool {
    e.name() == "message" && e.attr("from") == Some(SERVICE) && e.get_child("event", EVENT).is_some()
}

async fn next_event(c: &mut RawClient) -> Element {
    let m = c.read_until(is_event).await;
    assert_eq!(m.attr("type"), Some("headline"));
    m.get_child("event", EVENT).unwrap().clone()
}

fn subscription_state(r: &Element) -> String {
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("subscription", PUBSUB))
        .and_then(|s| s.attr("subscription"))
        .unwrap_or_default()
        .to_owned()
}

async fn item_ids(c: &mut RawClient, node: &str) -> Vec<String> {
    let r = iq(
        c,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub>"),
    )
    .await;
    ok(&r);
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.children()
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---- §5 discovery ----

#[tokio::test]
async fn xep0060_5_1_disco_info_of_service_and_node() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let r = iq(
        &mut alice,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    ok(&r);
    let q = r.get_child("query", ns::DISCO_INFO).unwrap();
    let identity = q.get_child("identity", ns::DISCO_INFO).unwrap();
    assert_eq!(
        (identity.attr("category"), identity.attr("type")),
        (Some("pubsub"), Some("service"))
    );
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#subscribe",
        "http://jabber.org/protocol/pubsub#access-authorize",
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
    // Not implemented, so not advertised.
    assert!(!features.contains(&"http://jabber.org/protocol/pubsub#collections"));
    create(&mut alice, "news", &[("pubsub#title", "News")]).await;
    let r = iq(
        &mut alice,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='news'/>",
    )
    .await;
    ok(&r);
    let identity = r
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .get_child("identity", ns::DISCO_INFO)
        .unwrap();
    assert_eq!(
        (identity.attr("type"), identity.attr("name")),
        (Some("leaf"), Some("News"))
    );
    let r = iq(
        &mut alice,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>",
    )
    .await;
    assert_error(&r, "item-not-found", None);
    // The server lists the service.
    let id = alice.id();
    let r = alice
        .iq(&format!(
            "<iq type='get' id='{id}' to='localhost'><query xmlns='{}'/></iq>",
            ns::DISCO_ITEMS
        ))
        .await;
    assert!(xml::to_string(&r).contains(SERVICE), "{}", xml::to_string(&r));
}

#[tokio::test]
async fn xep0060_5_2_disco_items_nodes_and_5_5_items() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "open", &[]).await;
    create(&mut alice, "closed", &[("pubsub#access_model", "whitelist")]).await;
    ok(&publish(&mut alice, "open", "i1", 1).await);
    let nodes = |r: &Element| -> Vec<String> {
        ok(r);
        r.get_child("query", ns::DISCO_ITEMS)
            .unwrap()
            .children()
            .filter_map(|i| i.attr("node").map(str::to_owned))
            .collect()
    };
    let r = iq(
        &mut alice,
        "get",
        &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS),
    )
    .await;
    assert_eq!(nodes(&r), ["closed", "open"]);
    // Bob may not see the whitelist node.
    let r = iq(&mut bob, "get", &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS)).await;
    assert_eq!(nodes(&r), ["open"]);
    let r = iq(
        &mut bob,
        "get",
        &format!("<query xmlns='{}' node='open'/>", ns::DISCO_ITEMS),
    )
    .await;
    ok(&r);
    let names: Vec<&str> = r
        .get_child("query", ns::DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("name"))
        .collect();
    assert_eq!(names, ["i1"]);
}

// ---- §8.1 create ----

#[tokio::test]
async fn xep0060_8_1_create_named_instant_and_conflict() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    create(&mut alice, "news", &[]).await;
    let r = iq(
        &mut alice,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><create node='news'/></pubsub>"),
    )
    .await;
    assert_error(&r, "conflict", None); // §8.1.3.4 (not the owner's business who has it)
    // §8.1.2 instant node: the service names it.
    let r = iq(
        &mut alice,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><create/></pubsub>"),
    )
    .await;
    ok(&r);
    let name = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("create", PUBSUB))
        .and_then(|c| c.attr("node"))
        .expect("the instant node's name")
        .to_owned();
    ok(&publish(&mut alice, &name, "x", 1).await);
    // §8.1.3 create and configure: the options hold.
    create(
        &mut alice,
        "small",
        &[("pubsub#max_items", "1"), ("pubsub#title", "Small")],
    )
    .await;
    let r = iq(
        &mut alice,
        "get",
        &format!("<pubsub xmlns='{OWNER}'><configure node='small'/></pubsub>"),
    )
    .await;
    ok(&r);
    let s = xml::to_string(&r);
    assert!(s.contains("Small"), "{s}");
    // §8.1.3.x a bad option refuses the whole request.
    let r = iq(
        &mut alice,
        "set",
        &format!(
            "<pubsub xmlns='{PUBSUB}'><create node='bad'/><configure>{}</configure></pubsub>",
            config_form(&[("pubsub#max_items", "zero")])
        ),
    )
    .await;
    assert_error(&r, "not-acceptable", None);
    let r = iq(
        &mut alice,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='bad'/>",
    )
    .await;
    assert_error(&r, "item-not-found", None);
}

#[tokio::test]
async fn xep0060_8_1_3_1_create_forbidden_when_only_admins_create() {
    let server = server_with("creators = \"admins\"").await;
    let mut alice = online(&server, "alice").await;
    let r = iq(
        &mut alice,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><create node='x'/></pubsub>"),
    )
    .await;
    assert_error(&r, "forbidden", None);
    let mut admin = online(&server, "admin").await;
    create(&mut admin, "x", &[]).await;
}

// ---- §7 publish and retract, §6.1 subscribe ----

#[tokio::test]
async fn xep0060_7_1_publish_notifies_subscribers() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    let r = subscribe(&mut bob, "news", "bob@localhost").await;
    ok(&r);
    assert_eq!(subscription_state(&r), "subscribed");
    ok(&publish(&mut alice, "news", "a", 1).await);
    let event = next_event(&mut bob).await;
    let items = event.get_child("items", EVENT).unwrap();
    assert_eq!(items.attr("node"), Some("news"));
    let item = items.get_child("item", EVENT).unwrap();
    assert_eq!(item.attr("id"), Some("a"));
    assert!(
        item.get_child("entry", "urn:example").is_some(),
        "payload delivered"
    );
    // Without payloads (§7.1.2.2): the id only.
    ok(&owner_set(
        &mut alice,
        &format!(
            "<configure node='news'>{}</configure>",
            config_form(&[("pubsub#deliver_payloads", "0")])
        ),
    )
    .await);
    ok(&publish(&mut alice, "news", "b", 2).await);
    let event = next_event(&mut bob).await;
    let item = event
        .get_child("items", EVENT)
        .unwrap()
        .get_child("item", EVENT)
        .unwrap();
    assert_eq!(item.attr("id"), Some("b"));
    assert!(
        item.children().next().is_none(),
        "no payload: {}",
        xml::to_string(&event)
    );
    // deliver_notifications off: nothing at all.
    ok(&owner_set(
        &mut alice,
        &format!(
            "<configure node='news'>{}</configure>",
            config_form(&[("pubsub#deliver_notifications", "0")])
        ),
    )
    .await);
    ok(&publish(&mut alice, "news", "c", 3).await);
    bob.expect_none(QUIET, "a notification", is_event).await;
}

#[tokio::test]
async fn xep0060_7_1_3_service_publish_errors() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    // §7.1.3.1 insufficient privileges.
    assert_error(&publish(&mut bob, "news", "x", 1).await, "forbidden", None);
    // §7.1.3.3 no such node.
    assert_error(&publish(&mut alice, "nope", "x", 1).await, "item-not-found", None);
    // §7.1.3.6 no payload.
    let r = iq(
        &mut alice,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><publish node='news'><item id='e'/></publish></pubsub>"),
    )
    .await;
    assert_error(&r, "bad-request", Some("payload-required"));
    // §7.1.5 publish-options precondition.
    let r = iq(
        &mut alice,
        "set",
        &format!(
            "<pubsub xmlns='{PUBSUB}'><publish node='news'><item><entry xmlns='urn:example'/></item></publish><publish-options>{}</publish-options></pubsub>",
            form("http://jabber.org/protocol/pubsub#publish-options", &[("pubsub#access_model", "whitelist")])
        ),
    )
    .await;
    assert_error(&r, "conflict", Some("precondition-not-met"));
    // A publisher may publish (§8.9), and an id is generated when absent.
    ok(&owner_set(
        &mut alice,
        "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='publisher'/></affiliations>",
    )
    .await);
    let r = iq(&mut bob, "set", &format!("<pubsub xmlns='{PUBSUB}'><publish node='news'><item><entry xmlns='urn:example'/></item></publish></pubsub>")).await;
    ok(&r);
    let id = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .and_then(|p| p.get_child("item", PUBSUB))
        .and_then(|i| i.attr("id"));
    assert!(id.is_some_and(|i| !i.is_empty()), "{}", xml::to_string(&r));
}

#[tokio::test]
async fn xep0060_6_1_3_1_subscribe_invalid_jid() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    assert_error(
        &subscribe(&mut bob, "news", "carol@localhost").await,
        "bad-request",
        Some("invalid-jid"),
    );
}

#[tokio::test]
async fn xep0060_6_1_3_errors_node_missing_closed_outcast() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    // §6.1.3.12 no such node.
    assert_error(
        &subscribe(&mut bob, "nope", "bob@localhost").await,
        "item-not-found",
        None,
    );
    // §6.1.3.? nodeid required.
    let r = iq(
        &mut bob,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><subscribe jid='bob@localhost'/></pubsub>"),
    )
    .await;
    assert_error(&r, "bad-request", Some("nodeid-required"));
    // §6.1.3.4 whitelist.
    create(&mut alice, "closed", &[("pubsub#access_model", "whitelist")]).await;
    assert_error(
        &subscribe(&mut bob, "closed", "bob@localhost").await,
        "not-allowed",
        Some("closed-node"),
    );
    // A member may.
    ok(&owner_set(
        &mut alice,
        "<affiliations node='closed'><affiliation jid='bob@localhost' affiliation='member'/></affiliations>",
    )
    .await);
    ok(&subscribe(&mut bob, "closed", "bob@localhost").await);
    // §6.1.3.8 an outcast: the subscription is gone and a new one is refused.
    ok(&owner_set(
        &mut alice,
        "<affiliations node='closed'><affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>",
    )
    .await);
    assert_error(
        &subscribe(&mut bob, "closed", "bob@localhost").await,
        "forbidden",
        None,
    );
    let r = iq(
        &mut bob,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><items node='closed'/></pubsub>"),
    )
    .await;
    assert_error(&r, "forbidden", None);
}

#[tokio::test]
async fn xep0060_6_1_7_last_item_on_subscribe() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    ok(&publish(&mut alice, "news", "old", 1).await);
    ok(&publish(&mut alice, "news", "last", 2).await);
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    let event = next_event(&mut bob).await;
    let ids: Vec<&str> = event
        .get_child("items", EVENT)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("id"))
        .collect();
    assert_eq!(ids, ["last"]);
    // Never, when so configured.
    create(
        &mut alice,
        "quiet",
        &[("pubsub#send_last_published_item", "never")],
    )
    .await;
    ok(&publish(&mut alice, "quiet", "x", 1).await);
    ok(&subscribe(&mut bob, "quiet", "bob@localhost").await);
    bob.expect_none(QUIET, "a last item", is_event).await;
}

#[tokio::test]
async fn xep0060_7_2_retract_with_notify_retract() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(
        &mut alice,
        "news",
        &[("pubsub#send_last_published_item", "never")],
    )
    .await;
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    ok(&publish(&mut alice, "news", "a", 1).await);
    next_event(&mut bob).await;
    let retract = |id: &str| {
        format!("<pubsub xmlns='{PUBSUB}'><retract node='news'><item id='{id}'/></retract></pubsub>")
    };
    // §7.2.3.1 only owners and publishers.
    assert_error(&iq(&mut bob, "set", &retract("a")).await, "forbidden", None);
    // §7.2.3.3 no such item.
    assert_error(
        &iq(&mut alice, "set", &retract("zz")).await,
        "item-not-found",
        None,
    );
    ok(&iq(&mut alice, "set", &retract("a")).await);
    let event = next_event(&mut bob).await;
    let r = event
        .get_child("items", EVENT)
        .unwrap()
        .get_child("retract", EVENT)
        .unwrap();
    assert_eq!(r.attr("id"), Some("a"));
    assert!(item_ids(&mut alice, "news").await.is_empty());
    // notify_retract off: retracted silently.
    ok(&owner_set(
        &mut alice,
        &format!(
            "<configure node='news'>{}</configure>",
            config_form(&[("pubsub#notify_retract", "0")])
        ),
    )
    .await);
    ok(&publish(&mut alice, "news", "b", 2).await);
    next_event(&mut bob).await;
    ok(&iq(&mut alice, "set", &retract("b")).await);
    bob.expect_none(QUIET, "a retraction", is_event).await;
}

#[tokio::test]
async fn xep0060_6_5_items_max_items_and_persist_items() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[("pubsub#max_items", "2")]).await;
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        ok(&publish(&mut alice, "news", id, i as u32).await);
    }
    assert_eq!(item_ids(&mut bob, "news").await, ["b", "c"]);
    let r = iq(
        &mut bob,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><items node='news' max_items='1'/></pubsub>"),
    )
    .await;
    assert!(
        xml::to_string(&r).contains("'c'") || xml::to_string(&r).contains("\"c\""),
        "{}",
        xml::to_string(&r)
    );
    let r = iq(
        &mut bob,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><items node='news'><item id='b'/></items></pubsub>"),
    )
    .await;
    ok(&r);
    // §6.5.x items of a missing node.
    let r = iq(
        &mut bob,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><items node='nope'/></pubsub>"),
    )
    .await;
    assert_error(&r, "item-not-found", None);
    // persist_items off: notifications, nothing kept.
    create(&mut alice, "live", &[("pubsub#persist_items", "0")]).await;
    ok(&subscribe(&mut bob, "live", "bob@localhost").await);
    ok(&publish(&mut alice, "live", "x", 1).await);
    next_event(&mut bob).await;
    assert!(item_ids(&mut bob, "live").await.is_empty());
}

// ---- §6.2 unsubscribe, §6.3 options, §5.6/§5.7 lists ----

#[tokio::test]
async fn xep0060_6_2_3_unsubscribe_errors_and_success() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    let unsub = |jid: &str, extra: &str| {
        format!("<pubsub xmlns='{PUBSUB}'><unsubscribe node='news' jid='{jid}'{extra}/></pubsub>")
    };
    // §6.2.3.2 not subscribed.
    assert_error(
        &iq(&mut bob, "set", &unsub("bob@localhost", "")).await,
        "unexpected-request",
        Some("not-subscribed"),
    );
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    // §6.2.3.3 someone else's subscription.
    assert_error(
        &iq(&mut carol_or(&server).await, "set", &unsub("bob@localhost", "")).await,
        "forbidden",
        None,
    );
    // §6.2.3.5 a wrong subid.
    assert_error(
        &iq(&mut bob, "set", &unsub("bob@localhost", " subid='nope'")).await,
        "not-acceptable",
        Some("invalid-subid"),
    );
    // §6.2.3.4 no such node.
    let r = iq(
        &mut bob,
        "set",
        &format!("<pubsub xmlns='{PUBSUB}'><unsubscribe node='nope' jid='bob@localhost'/></pubsub>"),
    )
    .await;
    assert_error(&r, "item-not-found", None);
    ok(&iq(&mut bob, "set", &unsub("bob@localhost", "")).await);
    ok(&publish(&mut alice, "news", "a", 1).await);
    bob.expect_none(QUIET, "a notification after unsubscribing", is_event)
        .await;
}

async fn carol_or(server: &TestServer) -> RawClient {
    online(server, "carol").await
}

#[tokio::test]
async fn xep0060_6_3_subscription_options_deliver() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    let get = format!("<pubsub xmlns='{PUBSUB}'><options node='news' jid='bob@localhost'/></pubsub>");
    // §6.3.4.2 not subscribed.
    assert_error(
        &iq(&mut bob, "get", &get).await,
        "unexpected-request",
        Some("not-subscribed"),
    );
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    let r = iq(&mut bob, "get", &get).await;
    ok(&r);
    assert!(
        xml::to_string(&r).contains("pubsub#deliver"),
        "{}",
        xml::to_string(&r)
    );
    // §6.3.4.1 someone else's options.
    let mut carol = online(&server, "carol").await;
    assert_error(&iq(&mut carol, "get", &get).await, "forbidden", None);
    // §6.3.5 submit deliver=false: no more notifications.
    let opts = |v: &str| {
        format!(
            "<pubsub xmlns='{PUBSUB}'><options node='news' jid='bob@localhost'>{}</options></pubsub>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                &[("pubsub#deliver", v)]
            )
        )
    };
    ok(&iq(&mut bob, "set", &opts("false")).await);
    ok(&publish(&mut alice, "news", "a", 1).await);
    bob.expect_none(QUIET, "a notification with deliver=false", is_event)
        .await;
    // §6.3.6 invalid options.
    assert_error(
        &iq(&mut bob, "set", &opts("perhaps")).await,
        "bad-request",
        Some("invalid-options"),
    );
    ok(&iq(&mut bob, "set", &opts("1")).await);
    ok(&publish(&mut alice, "news", "b", 2).await);
    next_event(&mut bob).await;
}

#[tokio::test]
async fn xep0060_5_6_subscriptions_and_5_7_affiliations() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "a", &[]).await;
    create(&mut alice, "b", &[]).await;
    ok(&subscribe(&mut bob, "a", "bob@localhost").await);
    ok(&subscribe(&mut bob, "b", "bob@localhost/r").await);
    let r = iq(
        &mut bob,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><subscriptions/></pubsub>"),
    )
    .await;
    ok(&r);
    let subs: Vec<(String, String)> = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("subscriptions", PUBSUB)
        .unwrap()
        .children()
        .map(|s| {
            (
                s.attr("node").unwrap().to_owned(),
                s.attr("jid").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        subs,
        [
            ("a".into(), "bob@localhost".into()),
            ("b".into(), "bob@localhost/r".into())
        ]
    );
    let r = iq(
        &mut alice,
        "get",
        &format!("<pubsub xmlns='{PUBSUB}'><affiliations/></pubsub>"),
    )
    .await;
    ok(&r);
    let affs: Vec<(String, String)> = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("affiliations", PUBSUB)
        .unwrap()
        .children()
        .map(|s| {
            (
                s.attr("node").unwrap().to_owned(),
                s.attr("affiliation").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(affs, [("a".into(), "owner".into()), ("b".into(), "owner".into())]);
}

// ---- §8 owner use cases ----

#[tokio::test]
async fn xep0060_8_2_configure_errors() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    let get = format!("<pubsub xmlns='{OWNER}'><configure node='news'/></pubsub>");
    // §8.2.3.2 not an owner.
    assert_error(&iq(&mut bob, "get", &get).await, "forbidden", None);
    // §8.2.3.4 no such node.
    assert_error(
        &iq(
            &mut alice,
            "get",
            &format!("<pubsub xmlns='{OWNER}'><configure node='x'/></pubsub>"),
        )
        .await,
        "item-not-found",
        None,
    );
    // §8.2.3.3 nodeid required.
    assert_error(
        &iq(
            &mut alice,
            "get",
            &format!("<pubsub xmlns='{OWNER}'><configure/></pubsub>"),
        )
        .await,
        "bad-request",
        Some("nodeid-required"),
    );
    // §8.2.5.3 an unsupported option.
    let r = owner_set(
        &mut alice,
        &format!(
            "<configure node='news'>{}</configure>",
            config_form(&[("pubsub#no_such_option", "1")])
        ),
    )
    .await;
    assert_error(&r, "not-acceptable", None);
    // §8.3 default configuration.
    let r = iq(
        &mut alice,
        "get",
        &format!("<pubsub xmlns='{OWNER}'><default/></pubsub>"),
    )
    .await;
    ok(&r);
}

#[tokio::test]
async fn xep0060_8_4_delete_and_8_5_purge_notify_subscribers() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(
        &mut alice,
        "news",
        &[("pubsub#send_last_published_item", "never")],
    )
    .await;
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    ok(&publish(&mut alice, "news", "a", 1).await);
    next_event(&mut bob).await;
    // §8.5.3.2 / §8.4.3.1 not an owner.
    assert_error(
        &owner_set(&mut bob, "<purge node='news'/>").await,
        "forbidden",
        None,
    );
    assert_error(
        &owner_set(&mut bob, "<delete node='news'/>").await,
        "forbidden",
        None,
    );
    ok(&owner_set(&mut alice, "<purge node='news'/>").await);
    let event = next_event(&mut bob).await;
    assert!(
        event.get_child("purge", EVENT).is_some(),
        "{}",
        xml::to_string(&event)
    );
    assert!(item_ids(&mut alice, "news").await.is_empty());
    ok(&owner_set(&mut alice, "<delete node='news'/>").await);
    let event = next_event(&mut bob).await;
    assert_eq!(
        event.get_child("delete", EVENT).and_then(|d| d.attr("node")),
        Some("news")
    );
    // §8.4.3.2 no such node.
    assert_error(
        &owner_set(&mut alice, "<delete node='news'/>").await,
        "item-not-found",
        None,
    );
    // notify_delete off: deleted silently.
    create(&mut alice, "quiet", &[("pubsub#notify_delete", "0")]).await;
    ok(&subscribe(&mut bob, "quiet", "bob@localhost").await);
    ok(&owner_set(&mut alice, "<delete node='quiet'/>").await);
    bob.expect_none(QUIET, "a delete notification", is_event).await;
}

#[tokio::test]
async fn xep0060_8_8_manage_subscriptions() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    let get = format!("<pubsub xmlns='{OWNER}'><subscriptions node='news'/></pubsub>");
    // §8.8.1.3 not an owner.
    assert_error(&iq(&mut bob, "get", &get).await, "forbidden", None);
    let r = iq(&mut alice, "get", &get).await;
    ok(&r);
    assert!(
        xml::to_string(&r).contains("bob@localhost"),
        "{}",
        xml::to_string(&r)
    );
    // §8.8.2 the owner removes bob; bob is told (§8.8.4).
    ok(&owner_set(
        &mut alice,
        "<subscriptions node='news'><subscription jid='bob@localhost' subscription='none'/></subscriptions>",
    )
    .await);
    let event = next_event(&mut bob).await;
    assert_eq!(
        event
            .get_child("subscription", EVENT)
            .and_then(|s| s.attr("subscription")),
        Some("none")
    );
    ok(&publish(&mut alice, "news", "a", 1).await);
    bob.expect_none(QUIET, "a notification after removal", is_event)
        .await;
    // And subscribes carol.
    let mut carol = online(&server, "carol").await;
    ok(&owner_set(&mut alice, "<subscriptions node='news'><subscription jid='carol@localhost' subscription='subscribed'/></subscriptions>").await);
    next_event(&mut carol).await;
    ok(&publish(&mut alice, "news", "b", 2).await);
    let event = next_event(&mut carol).await;
    assert!(event.get_child("items", EVENT).is_some());
}

#[tokio::test]
async fn xep0060_8_9_manage_affiliations() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[]).await;
    let get = format!("<pubsub xmlns='{OWNER}'><affiliations node='news'/></pubsub>");
    // §8.9.1.3 not an owner.
    assert_error(&iq(&mut bob, "get", &get).await, "forbidden", None);
    // §8.9.2.4 a node keeps an owner; nothing changes.
    let r = owner_set(&mut alice, "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='publisher'/><affiliation jid='alice@localhost' affiliation='none'/></affiliations>").await;
    assert_error(&r, "not-acceptable", None);
    assert_error(&publish(&mut bob, "news", "x", 1).await, "forbidden", None);
    // A second owner, then the first may leave.
    ok(&owner_set(
        &mut alice,
        "<affiliations node='news'><affiliation jid='bob@localhost' affiliation='owner'/></affiliations>",
    )
    .await);
    ok(&owner_set(
        &mut alice,
        "<affiliations node='news'><affiliation jid='alice@localhost' affiliation='none'/></affiliations>",
    )
    .await);
    assert_error(&iq(&mut alice, "get", &get).await, "forbidden", None);
    let r = iq(&mut bob, "get", &get).await;
    ok(&r);
    let affs: Vec<(&str, &str)> = r
        .get_child("pubsub", OWNER)
        .unwrap()
        .get_child("affiliations", OWNER)
        .unwrap()
        .children()
        .map(|a| (a.attr("jid").unwrap(), a.attr("affiliation").unwrap()))
        .collect();
    assert_eq!(affs, [("bob@localhost", "owner")]);
    // A bad affiliation value.
    let r = owner_set(
        &mut bob,
        "<affiliations node='news'><affiliation jid='carol@localhost' affiliation='king'/></affiliations>",
    )
    .await;
    assert_error(&r, "bad-request", None);
}

#[tokio::test]
async fn xep0060_8_6_authorize_access_model_approval() {
    let server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    let mut carol = online(&server, "carol").await;
    create(&mut alice, "club", &[("pubsub#access_model", "authorize")]).await;
    ok(&publish(&mut alice, "club", "a", 1).await);
    // §6.1.3.x items before approval.
    let items = format!("<pubsub xmlns='{PUBSUB}'><items node='club'/></pubsub>");
    assert_error(
        &iq(&mut bob, "get", &items).await,
        "not-authorized",
        Some("not-subscribed"),
    );
    // §6.1.4 pending, and the owner gets the approval form (§8.6.1).
    let r = subscribe(&mut bob, "club", "bob@localhost").await;
    ok(&r);
    assert_eq!(subscription_state(&r), "pending");
    let ask = alice
        .read_until(|e| e.name() == "message" && e.get_child("x", DATA).is_some())
        .await;
    let x = ask.get_child("x", DATA).unwrap();
    let value = |var: &str| {
        x.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", DATA))
            .map(|v| v.text())
            .unwrap()
    };
    assert_eq!(value("pubsub#subscriber_jid"), "bob@localhost");
    assert_eq!(value("pubsub#node"), "club");
    let subid = value("pubsub#subid");
    // Carol's subscription is pending too; she is refused below.
    ok(&subscribe(&mut carol, "club", "carol@localhost").await);
    alice
        .read_until(|e| e.name() == "message" && xml::to_string(e).contains("carol@localhost"))
        .await;
    let answer = |jid: &str, allow: &str, subid: &str| {
        format!(
            "<message to='{SERVICE}'>{}</message>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_authorization",
                &[
                    ("pubsub#subid", subid),
                    ("pubsub#node", "club"),
                    ("pubsub#subscriber_jid", jid),
                    ("pubsub#allow", allow)
                ]
            )
        )
    };
    // Only an owner may answer.
    bob.send(answer("bob@localhost", "true", &subid)).await;
    let bounced = bob
        .read_until(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await;
    assert_error(&bounced, "forbidden", None);
    alice.send(answer("bob@localhost", "true", &subid)).await;
    let event = next_event(&mut bob).await;
    assert_eq!(
        event
            .get_child("subscription", EVENT)
            .and_then(|s| s.attr("subscription")),
        Some("subscribed")
    );
    let r = iq(&mut bob, "get", &items).await;
    ok(&r);
    alice.send(answer("carol@localhost", "false", "")).await;
    let event = next_event(&mut carol).await;
    assert_eq!(
        event
            .get_child("subscription", EVENT)
            .and_then(|s| s.attr("subscription")),
        Some("none")
    );
    assert_error(
        &iq(&mut carol, "get", &items).await,
        "not-authorized",
        Some("not-subscribed"),
    );
    ok(&publish(&mut alice, "club", "b", 2).await);
    next_event(&mut bob).await;
    carol
        .expect_none(QUIET, "a notification for a refused subscriber", is_event)
        .await;
}

#[tokio::test]
async fn xep0060_nodes_items_and_subscriptions_survive_a_restart() {
    let mut server = server().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    create(&mut alice, "news", &[("pubsub#title", "Kept")]).await;
    ok(&publish(&mut alice, "news", "a", 1).await);
    ok(&subscribe(&mut bob, "news", "bob@localhost").await);
    drop((alice, bob));
    server.restart().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;
    assert_eq!(item_ids(&mut bob, "news").await, ["a"]);
    ok(&publish(&mut alice, "news", "b", 2).await);
    let event = next_event(&mut bob).await;
    assert!(xml::to_string(&event).contains("'b'") || xml::to_string(&event).contains("\"b\""));
}
