//! XEP-0352 client state indication: an inactive client gets presence (collapsed per
//! sender) and chat states held, messages with a body at once after what was held, and
//! everything on `<active/>`. Raw XML on the inactive side: what it receives, in order.

use std::time::Duration;

use conformance::raw::RawClient;
use conformance::{Element, TestServer, XmppClient, ns, xml};

const CSI: &str = "urn:xmpp:csi:0";
const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const PHONE: &str = "alice@localhost/phone";
/// How long "held" is watched for.
const HELD: Duration = Duration::from_millis(700);

struct Setup {
    server: TestServer,
    /// alice@localhost/phone, raw.
    phone: RawClient,
    /// bob@localhost/home.
    bob: XmppClient,
}

async fn setup_with(max_held: Option<usize>) -> Setup {
    let server = TestServer::start_with(|c| {
        if let Some(max) = max_held {
            c.limits_toml = format!("csi_max_held = {max}");
        }
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut phone = server.raw_login("alice", "passw0rd", Some("phone")).await;
    phone.send("<presence/>").await;
    let mut bob = server.client_jid("bob@localhost/home", "passw0rd").await;
    bob.send_presence(0).await;
    ping(&mut phone).await;
    Setup { server, phone, bob }
}

/// A ping the server answers: once answered, what the client sent before was handled.
async fn ping(c: &mut RawClient) {
    let id = c.id();
    let r = c
        .iq(&format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='{}'/></iq>",
            ns::PING
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

async fn set_state(c: &mut RawClient, state: &str) {
    c.send(format!("<{state} xmlns='{CSI}'/>")).await;
    ping(c).await;
}

/// Directed presence from bob with `status`, a chat state, both to the phone.
async fn presence(bob: &mut XmppClient, status: &str) {
    bob.send_xml(&format!(
        "<presence to='{PHONE}'><status>{status}</status></presence>"
    ))
    .await;
}

async fn chat_state(bob: &mut XmppClient, id: &str) {
    bob.send_xml(&format!(
        "<message to='{PHONE}' type='chat' id='{id}'><composing xmlns='{CHATSTATES}'/></message>"
    ))
    .await;
}

fn from_bob(e: &Element) -> bool {
    e.attr("from") == Some("bob@localhost/home")
}

fn status(e: &Element) -> Option<String> {
    e.get_child("status", ns::CLIENT).map(|s| s.text())
}

/// The next element from bob (the phone's own presence echo and the like skipped).
async fn next_from_bob(c: &mut RawClient) -> Element {
    c.read_until(from_bob).await
}

async fn expect_nothing_from_bob(c: &mut RawClient) {
    c.expect_none(HELD, "stanza from bob (held while inactive)", from_bob)
        .await;
}

// XEP-0352 §2: the feature is offered in the stream features after authentication.
#[tokio::test]
async fn xep0352_2_feature_advertised_after_authentication() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let c = server.raw_login("alice", "passw0rd", None).await;
    let features = c.features.as_ref().expect("features");
    assert!(features.has_child("csi", CSI), "{}", xml::to_string(features));
}

// XEP-0352 §5 (business rules): while inactive, presence is held and collapsed per sender
// (only the latest is delivered) and chat states are held; a message with a body is
// delivered at once, after everything held, in the order it arrived.
#[tokio::test]
async fn xep0352_5_inactive_holds_presence_flushes_on_message() {
    let Setup {
        server,
        mut phone,
        mut bob,
    } = setup_with(None).await;
    set_state(&mut phone, "inactive").await;
    presence(&mut bob, "one").await;
    chat_state(&mut bob, "cs1").await;
    presence(&mut bob, "two").await;
    bob.ping_server().await;
    expect_nothing_from_bob(&mut phone).await;

    bob.send_xml(&format!(
        "<message to='{PHONE}' type='chat' id='m1'><body>wake up</body></message>"
    ))
    .await;
    let first = next_from_bob(&mut phone).await;
    assert_eq!(first.attr("id"), Some("cs1"), "{}", xml::to_string(&first));
    let second = next_from_bob(&mut phone).await;
    assert_eq!(second.name(), "presence", "{}", xml::to_string(&second));
    assert_eq!(
        status(&second).as_deref(),
        Some("two"),
        "the latest presence wins"
    );
    let third = next_from_bob(&mut phone).await;
    assert_eq!(third.attr("id"), Some("m1"), "{}", xml::to_string(&third));
    // The first presence was replaced, not delayed.
    expect_nothing_from_bob(&mut phone).await;

    let metrics = server.http_get("/metrics").await;
    for series in [
        "switchboard_csi_held_total{kind=\"presence\"} 2",
        "switchboard_csi_held_total{kind=\"message\"} 1",
        "switchboard_csi_collapsed_total 1",
        "switchboard_csi_flushes_total{reason=\"urgent\"} 1",
        "switchboard_csi_flushed_total{reason=\"urgent\"} 2",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
}

// XEP-0352 §5: <active/> delivers everything held; afterwards nothing is held.
#[tokio::test]
async fn xep0352_5_active_flushes_everything_held() {
    let Setup {
        server: _server,
        mut phone,
        mut bob,
    } = setup_with(None).await;
    set_state(&mut phone, "inactive").await;
    chat_state(&mut bob, "cs1").await;
    presence(&mut bob, "away").await;
    bob.ping_server().await;
    expect_nothing_from_bob(&mut phone).await;

    phone.send(format!("<active xmlns='{CSI}'/>")).await;
    let first = next_from_bob(&mut phone).await;
    assert_eq!(first.attr("id"), Some("cs1"), "{}", xml::to_string(&first));
    let second = next_from_bob(&mut phone).await;
    assert_eq!(status(&second).as_deref(), Some("away"));

    // Active again: a chat state arrives without anything to wake it.
    chat_state(&mut bob, "cs2").await;
    let third = next_from_bob(&mut phone).await;
    assert_eq!(third.attr("id"), Some("cs2"));
}

// XEP-0352 §5: IQs are not held (the client waits for answers); what was held goes first.
#[tokio::test]
async fn xep0352_5_iq_results_are_not_held() {
    let Setup {
        server: _server,
        mut phone,
        mut bob,
    } = setup_with(None).await;
    set_state(&mut phone, "inactive").await;
    chat_state(&mut bob, "cs1").await;
    bob.ping_server().await;
    let id = phone.id();
    phone
        .send(format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='{}'/></iq>",
            ns::PING
        ))
        .await;
    let held = phone.read_until(|e| from_bob(e) || e.name() == "iq").await;
    assert_eq!(
        held.attr("id"),
        Some("cs1"),
        "held first: {}",
        xml::to_string(&held)
    );
    let answer = phone.read_until(|e| e.name() == "iq").await;
    assert_eq!(answer.attr("id"), Some(id.as_str()));
}

// XEP-0352 §5: holding is bounded; past `limits.csi_max_held` everything held is delivered
// (flushed, never dropped).
#[tokio::test]
async fn xep0352_5_overflow_flushes_instead_of_dropping() {
    let Setup {
        server: _server,
        mut phone,
        mut bob,
    } = setup_with(Some(3)).await;
    set_state(&mut phone, "inactive").await;
    for i in 0..3 {
        chat_state(&mut bob, &format!("cs{i}")).await;
    }
    bob.ping_server().await;
    expect_nothing_from_bob(&mut phone).await;
    chat_state(&mut bob, "cs3").await;
    for i in 0..4 {
        let e = next_from_bob(&mut phone).await;
        assert_eq!(
            e.attr("id"),
            Some(format!("cs{i}").as_str()),
            "{}",
            xml::to_string(&e)
        );
    }
}
