//! XEP-0280 message carbons (with the XEP-0334 no-copy hint), and the IM payloads that are
//! plain routed messages: XEP-0184 receipts, XEP-0085 chat states, XEP-0333 markers.

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";
const SHORT: Duration = Duration::from_millis(300);

fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

struct Setup {
    _server: TestServer,
    /// alice@localhost/desk, priority 5, carbons enabled.
    desk: XmppClient,
    /// alice@localhost/phone, priority 0, carbons enabled.
    phone: XmppClient,
    /// bob@localhost/home, available.
    bob: XmppClient,
}

async fn enable(c: &mut XmppClient, element: &str) {
    let r = c
        .iq("set", None, &format!("<{element} xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut desk = server.client_jid("alice@localhost/desk", "passw0rd").await;
    let mut phone = server.client_jid("alice@localhost/phone", "passw0rd").await;
    let mut bob = server.client_jid("bob@localhost/home", "passw0rd").await;
    desk.send_presence(5).await;
    phone.send_presence(0).await;
    bob.send_presence(0).await;
    enable(&mut desk, "enable").await;
    enable(&mut phone, "enable").await;
    bob.ping_server().await;
    Setup {
        _server: server,
        desk,
        phone,
        bob,
    }
}

/// The message inside a carbon copy, checking the wrapper (§6, §7).
fn unwrap_carbon<'a>(copy: &'a Element, direction: &str, to: &str) -> &'a Element {
    assert_eq!(
        copy.attr("from"),
        Some("alice@localhost"),
        "{}",
        xml::to_string(copy)
    );
    assert_eq!(copy.attr("to"), Some(to), "{}", xml::to_string(copy));
    copy.get_child(direction, CARBONS)
        .and_then(|d| d.get_child("forwarded", FORWARD))
        .and_then(|f| f.get_child("message", ns::CLIENT))
        .unwrap_or_else(|| panic!("not a <{direction}/> carbon: {}", xml::to_string(copy)))
}

// XEP-0280 §3, §4, §9.1: the feature is advertised; enable and disable are acknowledged,
// repeatedly.
#[tokio::test]
async fn xep0280_discovery_and_enable() {
    let mut s = setup().await;
    let info = s
        .desk
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let advertised = info
        .get_child("query", ns::DISCO_INFO)
        .expect("query")
        .children()
        .any(|f| f.attr("var") == Some(CARBONS));
    assert!(advertised, "{}", xml::to_string(&info));
    enable(&mut s.desk, "enable").await;
    enable(&mut s.desk, "disable").await;
    enable(&mut s.desk, "disable").await;
}

// XEP-0280 §7: a message one resource sends reaches the other carbons-enabled resources as
// <sent/>, not the sender itself; the original is delivered as usual.
#[tokio::test]
async fn xep0280_sent_copies() {
    let mut s = setup().await;
    s.desk
        .send_xml(
            "<message type='chat' to='bob@localhost/home' id='s1'><body>hi bob</body>\
             <thread>t1</thread></message>",
        )
        .await;
    let original = s.bob.expect_message().await;
    assert_eq!(body(&original).as_deref(), Some("hi bob"));
    assert!(!original.has_child("sent", CARBONS));

    let copy = s.phone.expect_message().await;
    assert_eq!(copy.attr("type"), Some("chat"), "the wrapper keeps the type");
    let inner = unwrap_carbon(&copy, "sent", "alice@localhost/phone");
    assert_eq!(inner.attr("from"), Some("alice@localhost/desk"));
    assert_eq!(inner.attr("to"), Some("bob@localhost/home"));
    assert_eq!(inner.attr("id"), Some("s1"));
    assert_eq!(body(inner).as_deref(), Some("hi bob"));
    assert_eq!(
        inner.get_child("thread", ns::CLIENT).map(|t| t.text()).as_deref(),
        Some("t1")
    );
    s.desk.expect_no_message(SHORT).await;

    // §5: a normal message with a body is eligible too; a headline is not.
    s.desk
        .send_xml("<message to='bob@localhost/home' id='s2'><body>normal</body></message>")
        .await;
    let copy = s.phone.expect_message().await;
    assert_eq!(
        body(unwrap_carbon(&copy, "sent", "alice@localhost/phone")).as_deref(),
        Some("normal")
    );
    s.desk
        .send_xml("<message type='headline' to='bob@localhost/home' id='s3'><body>news</body></message>")
        .await;
    s.bob.wait_for(|m| m.attr("id") == Some("s3")).await;
    s.phone.expect_no_message(SHORT).await;
}

// XEP-0280 §6: a message delivered to one resource (to its full JID, or to the bare JID
// where it is the most available) reaches the other carbons-enabled resources as
// <received/>; the resource that got the original gets no copy.
#[tokio::test]
async fn xep0280_received_copies() {
    let mut s = setup().await;
    s.bob
        .send_xml(
            "<message type='chat' to='alice@localhost/phone' id='r1'><body>to the phone</body></message>",
        )
        .await;
    let original = s.phone.expect_message().await;
    assert_eq!(body(&original).as_deref(), Some("to the phone"));
    assert!(!original.has_child("received", CARBONS));
    let copy = s.desk.expect_message().await;
    let inner = unwrap_carbon(&copy, "received", "alice@localhost/desk");
    assert_eq!(inner.attr("from"), Some("bob@localhost/home"));
    assert_eq!(inner.attr("to"), Some("alice@localhost/phone"));
    assert_eq!(inner.attr("id"), Some("r1"));
    s.phone.expect_no_message(SHORT).await;

    // To the bare JID: the desk (priority 5) gets it, the phone a copy.
    s.bob.send_message("alice@localhost", "to your account").await;
    let original = s.desk.expect_message().await;
    assert_eq!(body(&original).as_deref(), Some("to your account"));
    let copy = s.phone.expect_message().await;
    let inner = unwrap_carbon(&copy, "received", "alice@localhost/phone");
    assert_eq!(body(inner).as_deref(), Some("to your account"));
    s.desk.expect_no_message(SHORT).await;

    // Errors are not copied (§5).
    s.bob
        .send_xml(
            "<message type='error' to='alice@localhost/phone' id='e1'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        )
        .await;
    s.phone.wait_for(|m| m.attr("id") == Some("e1")).await;
    s.desk.expect_no_message(SHORT).await;
}

// XEP-0280 §8 and XEP-0334: <private/> and <no-copy/> messages are delivered, never copied,
// in either direction.
#[tokio::test]
async fn xep0280_private_not_copied() {
    let mut s = setup().await;
    let hints = [
        "<private xmlns='urn:xmpp:carbons:2'/>",
        "<no-copy xmlns='urn:xmpp:hints'/>",
    ];
    for (i, hint) in hints.iter().enumerate() {
        s.desk
            .send_xml(&format!(
                "<message type='chat' to='bob@localhost/home' id='p{i}'><body>secret</body>{hint}</message>"
            ))
            .await;
        let m = s.bob.expect_message().await;
        assert_eq!(m.attr("id"), Some(format!("p{i}").as_str()));
        s.bob
            .send_xml(&format!(
                "<message type='chat' to='alice@localhost/desk' id='q{i}'><body>secret</body>{hint}</message>"
            ))
            .await;
        let m = s.desk.expect_message().await;
        assert_eq!(m.attr("id"), Some(format!("q{i}").as_str()));
    }
    s.phone.expect_no_message(SHORT).await;
}

// XEP-0280 §5 (disabling): a resource that disabled carbons gets no copies; the other
// still does. A resource that never enabled them gets none either.
#[tokio::test]
async fn xep0280_disable() {
    let mut s = setup().await;
    enable(&mut s.phone, "disable").await;
    s.desk.send_message("bob@localhost/home", "one").await;
    s.bob.expect_message().await;
    s.bob.send_message("alice@localhost/desk", "two").await;
    s.desk.expect_message().await;
    s.phone.expect_no_message(SHORT).await;

    // The desk still gets copies of what the phone sends and receives.
    s.phone.send_message("bob@localhost/home", "three").await;
    s.bob.expect_message().await;
    let copy = s.desk.expect_message().await;
    assert_eq!(
        body(unwrap_carbon(&copy, "sent", "alice@localhost/desk")).as_deref(),
        Some("three")
    );

    // bob never enabled carbons: a second bob resource gets nothing.
    let mut bob2 = s._server.client_jid("bob@localhost/work", "passw0rd").await;
    bob2.send_presence(0).await;
    bob2.ping_server().await;
    s.desk.send_message("bob@localhost/home", "four").await;
    s.bob.expect_message().await;
    bob2.expect_no_message(SHORT).await;
}

// XEP-0184 receipts, XEP-0085 chat states and XEP-0333 markers are ordinary messages: they
// pass through untouched.
#[tokio::test]
async fn xep0184_xep0085_receipts_and_chat_states_pass_through() {
    let mut s = setup().await;
    s.bob
        .send_xml(
            "<message type='chat' to='alice@localhost/desk' id='rq1'><body>did you get this?</body>\
             <request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/>\
             <markable xmlns='urn:xmpp:chat-markers:0'/></message>",
        )
        .await;
    let m = s.desk.expect_message().await;
    assert_eq!(m.attr("id"), Some("rq1"));
    assert!(
        m.has_child("request", "urn:xmpp:receipts"),
        "{}",
        xml::to_string(&m)
    );
    assert!(m.has_child("active", "http://jabber.org/protocol/chatstates"));
    assert!(m.has_child("markable", "urn:xmpp:chat-markers:0"));

    s.desk
        .send_xml(
            "<message type='chat' to='bob@localhost/home' id='ack1'>\
             <received xmlns='urn:xmpp:receipts' id='rq1'/>\
             <displayed xmlns='urn:xmpp:chat-markers:0' id='rq1'/></message>",
        )
        .await;
    let ack = s.bob.expect_message().await;
    assert_eq!(ack.attr("id"), Some("ack1"));
    assert_eq!(ack.attr("from"), Some("alice@localhost/desk"));
    let received = ack
        .get_child("received", "urn:xmpp:receipts")
        .unwrap_or_else(|| panic!("{}", xml::to_string(&ack)));
    assert_eq!(received.attr("id"), Some("rq1"));
    let displayed = ack
        .get_child("displayed", "urn:xmpp:chat-markers:0")
        .expect("marker");
    assert_eq!(displayed.attr("id"), Some("rq1"));

    s.bob
        .send_xml(
            "<message type='chat' to='alice@localhost/desk' id='cs1'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )
        .await;
    let state = s.desk.expect_message().await;
    assert_eq!(state.attr("id"), Some("cs1"));
    assert!(state.has_child("composing", "http://jabber.org/protocol/chatstates"));
    assert!(body(&state).is_none());
}
