//! XEP-0357 push notifications, end to end: alice registers an app server (app@localhost's
//! raw session stands in for one: without s2s any routable JID is an app server), leaves,
//! bob writes, and the app server receives the publish, as raw XML.

use std::time::Duration;

use conformance::raw::RawClient;
use conformance::{Element, TestServer, XmppClient, ns, xml};

const PUSH: &str = "urn:xmpp:push:0";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const DATA: &str = "jabber:x:data";
const APP: &str = "app@localhost/server";
const SILENT: Duration = Duration::from_millis(800);

struct Setup {
    server: TestServer,
    app: RawClient,
    bob: XmppClient,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    for user in ["alice", "bob", "app"] {
        server.add_user(user, "passw0rd").await;
    }
    let app = server.raw_login("app", "passw0rd", Some("server")).await;
    let mut bob = server.client_jid("bob@localhost/home", "passw0rd").await;
    bob.send_presence(0).await;
    Setup { server, app, bob }
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

fn condition(r: &Element) -> Option<String> {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    r.get_child("error", ns::CLIENT)?
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
}

const OPTIONS: &str = "<x xmlns='jabber:x:data' type='submit'>\
     <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
     <field var='secret'><value>eruio234vzxc2kla-91</value></field></x>";

/// alice@localhost/phone logs in, runs `enable` (each an `<enable/>`/`<disable/>` element),
/// and leaves; returns once bob saw her go (her session is gone).
async fn register_and_leave(s: &mut Setup, requests: &[String]) {
    let mut alice = s.server.client_jid("alice@localhost/phone", "passw0rd").await;
    for request in requests {
        ok(&alice.iq("set", None, request).await);
    }
    alice.send_xml("<presence to='bob@localhost/home'/>").await;
    s.bob
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/phone"))
        .await;
    alice.close().await;
    s.bob
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("from") == Some("alice@localhost/phone")
                && e.attr("type") == Some("unavailable")
        })
        .await;
}

fn enable(node: &str, form: &str) -> String {
    format!("<enable xmlns='{PUSH}' jid='{APP}' node='{node}'>{form}</enable>")
}

fn is_publish(e: &Element) -> bool {
    e.name() == "iq" && e.attr("type") == Some("set") && e.has_child("pubsub", PUBSUB)
}

/// The summary form's fields of a publish, checking the envelope (§7).
fn summary(iq: &Element, node: &str) -> Vec<(String, String)> {
    assert_eq!(iq.attr("from"), Some("alice@localhost"), "{}", xml::to_string(iq));
    assert_eq!(iq.attr("to"), Some(APP));
    let publish = iq
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .unwrap_or_else(|| panic!("no publish: {}", xml::to_string(iq)));
    assert_eq!(publish.attr("node"), Some(node));
    let form = publish
        .get_child("item", PUBSUB)
        .and_then(|i| i.get_child("notification", PUSH))
        .and_then(|n| n.get_child("x", DATA))
        .unwrap_or_else(|| panic!("no notification form: {}", xml::to_string(iq)));
    form.children()
        .filter(|f| f.name() == "field")
        .map(|f| {
            let value = f.get_child("value", DATA).map(|v| v.text()).unwrap_or_default();
            (f.attr("var").unwrap_or("").to_owned(), value)
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], var: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(v, _)| v == var)
        .map(|(_, value)| value.as_str())
}

async fn answer(app: &mut RawClient, publish: &Element, error: Option<(&str, &str)>) {
    let id = publish.attr("id").expect("id");
    let reply = match error {
        None => format!("<iq type='result' to='alice@localhost' id='{id}'/>"),
        Some((kind, condition)) => format!(
            "<iq type='error' to='alice@localhost' id='{id}'><error type='{kind}'>\
             <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    };
    app.send(reply).await;
}

async fn no_publish(app: &mut RawClient) {
    app.expect_none(SILENT, "push publish", is_publish).await;
}

// XEP-0357 §4, §5: the account advertises the feature; enable needs a jid and a node, and
// a form must be publish-options; disable needs a jid.
#[tokio::test]
async fn xep0357_5_enable_and_disable_requests() {
    let s = setup().await;
    let mut alice = s.server.client_jid("alice@localhost/phone", "passw0rd").await;
    let info = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let advertised = info
        .get_child("query", ns::DISCO_INFO)
        .is_some_and(|q| q.children().any(|f| f.attr("var") == Some(PUSH)));
    assert!(advertised, "{}", xml::to_string(&info));

    ok(&alice.iq("set", None, &enable("n1", OPTIONS)).await);
    ok(&alice.iq("set", None, &enable("n1", "")).await);
    let no_node = alice
        .iq("set", None, &format!("<enable xmlns='{PUSH}' jid='{APP}'/>"))
        .await;
    assert_eq!(condition(&no_node).as_deref(), Some("bad-request"));
    let no_jid = alice
        .iq("set", None, &format!("<enable xmlns='{PUSH}' node='n'/>"))
        .await;
    assert_eq!(condition(&no_jid).as_deref(), Some("bad-request"));
    let wrong_form = "<x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE'><value>urn:example:other</value></field></x>";
    let wrong = alice.iq("set", None, &enable("n2", wrong_form)).await;
    assert_eq!(condition(&wrong).as_deref(), Some("bad-request"));
    let bad_jid = alice
        .iq(
            "set",
            None,
            &format!("<enable xmlns='{PUSH}' jid='@@' node='n'/>"),
        )
        .await;
    assert_eq!(condition(&bad_jid).as_deref(), Some("jid-malformed"));
    let disable_no_jid = alice.iq("set", None, &format!("<disable xmlns='{PUSH}'/>")).await;
    assert_eq!(condition(&disable_no_jid).as_deref(), Some("bad-request"));
    // Disabling what is not registered succeeds.
    ok(&alice
        .iq(
            "set",
            None,
            &format!("<disable xmlns='{PUSH}' jid='other@localhost' node='x'/>"),
        )
        .await);
    ok(&alice
        .iq("set", None, &format!("<disable xmlns='{PUSH}' jid='{APP}'/>"))
        .await);
}

// XEP-0357 §7: a message with a body for an account with no session is published to the
// app server: the summary form (message-count counting up, last-message-sender, no body),
// the publish-options the client gave, from the account's bare JID. The message is still
// stored offline.
#[tokio::test]
async fn xep0357_7_offline_message_publishes_summary_to_app_server() {
    let mut s = setup().await;
    register_and_leave(&mut s, &[enable("yxs32uqsflafdk3iuqo", OPTIONS)]).await;

    s.bob
        .send_message("alice@localhost", "Wherefore art thou, Romeo?")
        .await;
    let first = s.app.read_until(is_publish).await;
    let fields = summary(&first, "yxs32uqsflafdk3iuqo");
    assert_eq!(field(&fields, "FORM_TYPE"), Some("urn:xmpp:push:summary"));
    assert_eq!(field(&fields, "message-count"), Some("1"));
    assert_eq!(field(&fields, "last-message-sender"), Some("bob@localhost/home"));
    assert_eq!(field(&fields, "last-message-body"), None, "bodies are not sent");
    let options = first
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish-options", PUBSUB))
        .map(xml::to_string)
        .unwrap_or_default();
    assert!(
        options.contains("eruio234vzxc2kla-91"),
        "publish-options: {}",
        xml::to_string(&first)
    );
    answer(&mut s.app, &first, None).await;

    // A chat state (no body) is not pushed; the next message counts 2.
    s.bob
        .send_xml("<message to='alice@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    no_publish(&mut s.app).await;
    s.bob.send_message("alice@localhost", "second").await;
    let second = s.app.read_until(is_publish).await;
    assert_eq!(
        field(&summary(&second, "yxs32uqsflafdk3iuqo"), "message-count"),
        Some("2")
    );
    answer(&mut s.app, &second, None).await;

    // Both messages were stored: alice gets them when she comes back, and the count restarts.
    let mut alice = s.server.client_jid("alice@localhost/phone", "passw0rd").await;
    alice.send_presence(0).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let m = alice.expect_message().await;
        bodies.push(
            m.get_child("body", ns::CLIENT)
                .map(|b| b.text())
                .unwrap_or_default(),
        );
    }
    assert_eq!(bodies, ["Wherefore art thou, Romeo?", "second"]);
}

// XEP-0357 §7: no notification while the account has a session (it gets the message, or
// will when it becomes available).
#[tokio::test]
async fn xep0357_7_no_push_while_a_session_is_connected() {
    let mut s = setup().await;
    let mut alice = s.server.client_jid("alice@localhost/phone", "passw0rd").await;
    ok(&alice.iq("set", None, &enable("n1", "")).await);
    // Connected but not available: offline storage takes the message, push does not.
    s.bob.send_message("alice@localhost", "hello").await;
    no_publish(&mut s.app).await;
    alice.send_presence(0).await;
    alice.expect_message().await;
}

// XEP-0357 §6: disable with a node removes that registration only; without one, all of the
// app server's.
#[tokio::test]
async fn xep0357_6_disable_one_node_then_all() {
    let mut s = setup().await;
    register_and_leave(
        &mut s,
        &[
            enable("n1", ""),
            enable("n2", ""),
            format!("<disable xmlns='{PUSH}' jid='{APP}' node='n1'/>"),
        ],
    )
    .await;
    s.bob.send_message("alice@localhost", "one").await;
    let publish = s.app.read_until(is_publish).await;
    summary(&publish, "n2");
    answer(&mut s.app, &publish, None).await;
    no_publish(&mut s.app).await;

    register_and_leave(&mut s, &[format!("<disable xmlns='{PUSH}' jid='{APP}'/>")]).await;
    s.bob.send_message("alice@localhost", "two").await;
    no_publish(&mut s.app).await;
}

// XEP-0357 §7: an app server answering with an error of type cancel (the node is gone)
// loses its registration; a wait error keeps it.
#[tokio::test]
async fn xep0357_7_app_server_error_removes_the_registration() {
    let mut s = setup().await;
    register_and_leave(&mut s, &[enable("n1", "")]).await;
    s.bob.send_message("alice@localhost", "one").await;
    let first = s.app.read_until(is_publish).await;
    answer(&mut s.app, &first, Some(("wait", "resource-constraint"))).await;

    s.bob.send_message("alice@localhost", "two").await;
    let second = s.app.read_until(is_publish).await;
    answer(&mut s.app, &second, Some(("cancel", "item-not-found"))).await;
    // The app server's session routes its stanzas one after the other: once its ping is
    // answered, the error before it was handled (and the registration removed).
    let id = s.app.id();
    let pong = s
        .app
        .iq(&format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='{}'/></iq>",
            ns::PING
        ))
        .await;
    ok(&pong);

    s.bob.send_message("alice@localhost", "three").await;
    no_publish(&mut s.app).await;
}
