//! XEP-0012 last activity: server uptime, and the last logout of an account for those
//! subscribed to its presence.

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const LAST: &str = "jabber:iq:last";
const PW: &str = "passw0rd";

async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

async fn last(c: &mut XmppClient, to: Option<&str>) -> Element {
    c.iq("get", to, &format!("<query xmlns='{LAST}'/>")).await
}

fn seconds(r: &Element) -> u64 {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
    r.get_child("query", LAST)
        .and_then(|q| q.attr("seconds"))
        .unwrap_or_else(|| panic!("no seconds: {}", xml::to_string(r)))
        .parse()
        .expect("seconds is a number")
}

async fn send_sub(c: &mut XmppClient, ptype: &str, to: &str) {
    c.send_xml(&format!("<presence type='{ptype}' to='{to}'/>")).await;
    c.ping_server().await;
}

// XEP-0012 §5: the server's uptime; the feature is advertised.
#[tokio::test]
async fn xep0012_5_server_uptime() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    let info = alice
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(
        info.get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some(LAST)),
        "{}",
        xml::to_string(&info)
    );
    let s = seconds(&last(&mut alice, Some("localhost")).await);
    assert!(s < 600, "uptime of a test server: {s}");
}

// XEP-0012 §4: for an offline contact the user is subscribed to: the seconds since its
// last session ended and the status it left with; 0 while it is available.
#[tokio::test]
async fn xep0012_4_offline_contact_last_logout() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client_jid("bob@localhost/b", PW).await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    bob.send_xml("<presence><status>working</status></presence>")
        .await;
    bob.ping_server().await;
    let r = last(&mut alice, Some("bob@localhost")).await;
    assert_eq!(seconds(&r), 0, "online: {}", xml::to_string(&r));
    bob.send_xml("<presence type='unavailable'><status>gone fishing</status></presence>")
        .await;
    bob.close().await;
    // Wait for the server to end bob's session.
    let mut tries = 0;
    let r = loop {
        let r = last(&mut alice, Some("bob@localhost")).await;
        if r.attr("type") == Some("result")
            && seconds(&r) < 5
            && r.get_child("query", LAST).unwrap().text() == "gone fishing"
        {
            break r;
        }
        tries += 1;
        assert!(tries < 50, "last logout never recorded: {}", xml::to_string(&r));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(seconds(&r) < 5);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = last(&mut alice, Some("bob@localhost")).await;
    assert!(seconds(&r) >= 2, "{}", xml::to_string(&r));
}

// XEP-0012 §4: without a subscription to the contact's presence: <forbidden/>, whether the
// account exists or not.
#[tokio::test]
async fn xep0012_4_not_subscribed_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    let bob = server.client("bob", PW).await;
    bob.close().await;
    for to in ["bob@localhost", "nobody@localhost"] {
        let r = last(&mut alice, Some(to)).await;
        xml::assert_stanza_error(&r, &["forbidden"]);
    }
    // A pending request is not a subscription.
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    let r = last(&mut alice, Some("bob@localhost")).await;
    xml::assert_stanza_error(&r, &["forbidden"]);
}

// XEP-0012 §4: one's own account may be asked.
#[tokio::test]
async fn xep0012_4_own_account() {
    let server = server_with(&["alice"]).await;
    let first = server.client_jid("alice@localhost/first", PW).await;
    first.close().await;
    let mut alice = server.client_jid("alice@localhost/second", PW).await;
    alice.send_presence(0).await;
    let r = last(&mut alice, Some("alice@localhost")).await;
    assert_eq!(seconds(&r), 0);
    let r = last(&mut alice, None).await;
    assert_eq!(seconds(&r), 0);
}
