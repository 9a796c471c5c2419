//! XEP-0386 Bind 2 inline in a SASL2 `<authenticate/>`, raw XML: the resource derived from
//! the client's tag and user-agent id (the same installation keeps its resource across
//! logins), `<bound/>` in the success, and inline features (XEP-0280 carbons).

use std::time::Duration;

use conformance::sasl2::{self, BIND2, CARBONS};
use conformance::{RawClient, TestServer, ns, xml};

async fn with_users() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    server.add_user("bob", "secret").await;
    server
}

/// A SASL2 login of alice with a Bind2 request; returns the client and the bound JID.
async fn bind2_login(server: &TestServer, ua_id: &str, bind_children: &str) -> (RawClient, String) {
    let mut c = server.raw_starttls().await;
    let extra = format!(
        "{}<bind xmlns='{BIND2}'><tag>AwesomeXMPP</tag>{bind_children}</bind>",
        sasl2::user_agent(ua_id)
    );
    let success = sasl2::login(&mut c, "alice", "secret", &extra).await;
    assert!(
        success.get_child("bound", BIND2).is_some(),
        "XEP-0386 §4: <bound/> in the success: {}",
        xml::to_string(&success)
    );
    let jid = sasl2::authorization_identifier(&success);
    let f = sasl2::features_after_success(&mut c).await;
    assert!(
        f.get_child("bind", ns::BIND).is_none(),
        "bound already: no resource binding offered: {}",
        xml::to_string(&f)
    );
    (c, jid)
}

async fn ping(c: &mut RawClient) {
    let r = c
        .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

// §4: the authorization identifier is the full JID, whose resource starts with the tag;
// the session works at once (no bind IQ, no restart).
#[tokio::test]
async fn xep0386_4_bind_with_tag_binds_a_resource() {
    let server = with_users().await;
    let (mut c, jid) = bind2_login(&server, "0a4b8f3e-ua", "").await;
    assert!(jid.starts_with("alice@localhost/AwesomeXMPP."), "{jid}");
    ping(&mut c).await;
}

// §4: the same user-agent id gets the same resource on every login, and the new login
// replaces the stale session (RFC 6120 §7.7.2.2 conflict); another id gets another one.
#[tokio::test]
async fn xep0386_4_resource_stable_across_logins_with_the_same_user_agent() {
    let server = with_users().await;
    let (mut first, jid1) = bind2_login(&server, "device-one", "").await;
    let (mut second, jid2) = bind2_login(&server, "device-one", "").await;
    assert_eq!(jid1, jid2, "the same installation keeps its resource");
    first.expect_stream_error().await.assert_condition(&["conflict"]);
    ping(&mut second).await;
    let (mut other, jid3) = bind2_login(&server, "device-two", "").await;
    assert_ne!(jid1, jid3, "another installation gets another resource");
    ping(&mut other).await;
    ping(&mut second).await;
}

// §5 with XEP-0280: `<enable xmlns='urn:xmpp:carbons:2'/>` inline turns carbons on for the
// new session; without it, the session gets no copies.
#[tokio::test]
async fn xep0386_5_inline_carbons_enable() {
    let server = with_users().await;
    let (mut phone, _) = bind2_login(&server, "phone", &format!("<enable xmlns='{CARBONS}'/>")).await;
    let (mut tablet, _) = bind2_login(&server, "tablet", "").await;
    let mut desk = server.raw_login("alice", "secret", Some("desk")).await;
    let mut bob = server.raw_login("bob", "secret", Some("b")).await;
    bob.send("<message type='chat' to='alice@localhost/desk' id='m1'><body>hi</body></message>")
        .await;
    let original = desk.read_until(|e| e.name() == "message").await;
    assert_eq!(original.attr("id"), Some("m1"));
    let copy = phone.read_until(|e| e.name() == "message").await;
    assert!(
        copy.has_child("received", CARBONS),
        "the inline-enabled session gets the carbon: {}",
        xml::to_string(&copy)
    );
    tablet
        .expect_none(Duration::from_millis(800), "carbon without enabling", |e| {
            e.name() == "message"
        })
        .await;
}
