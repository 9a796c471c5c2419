//! XEP-0045 §15.5 status codes that other files do not cover: 101 (affiliation changed while
//! absent, §9.3), 210 (nick rewritten by the service, §7.2.3), 322 (removed when the room
//! becomes members-only, §9.4 / §10.2), 173 (room made semi-anonymous, §10.2.1), 332 (removed
//! at system shutdown) and 333 (removed after a technical problem).

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, Incoming, XmppClient, xml};

const DATA: &str = "jabber:x:data";
const CMD: &str = "http://jabber.org/protocol/commands";
const SHORT: Duration = Duration::from_millis(400);

async fn unavailable_from(c: &mut XmppClient, occupant: &str) -> Element {
    c.wait_for(|e| {
        e.name() == "presence" && e.attr("type") == Some("unavailable") && e.attr("from") == Some(occupant)
    })
    .await
}

// §9.3 (status code 101): granting membership to a user who is not in the room sends that
// user a message from the room with the new affiliation.
#[tokio::test]
async fn xep0045_9_3_affiliation_change_while_absent_101() {
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    create(&mut alice, "r101", "owner", &[]).await;
    let r = alice
        .iq(
            "set",
            Some(&room("r101")),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='member' jid='bob@localhost'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let m = bob
        .wait_for(|e| e.name() == "message" && codes(e).contains(&101))
        .await;
    assert_eq!(m.attr("from"), Some(room("r101").as_str()));
    let i = item(&m).expect("an item");
    assert_eq!(i.attr("affiliation"), Some("member"));
    assert_eq!(i.attr("jid"), Some("bob@localhost"));
    // Setting the same affiliation again changes nothing: no second notice.
    alice
        .iq(
            "set",
            Some(&room("r101")),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='member' jid='bob@localhost'/></query>"),
        )
        .await;
    bob.expect_no_message(SHORT).await;
}

// §7.2.3 (status code 210): a nick the service rewrites (resourceprep maps the fullwidth
// 'Ｗ' to 'W') is announced with 210, from the occupant JID actually used.
#[tokio::test]
async fn xep0045_7_2_3_nick_rewritten_210() {
    let server = server(&["alice", "bob"]).await;
    // A raw client: tokio-xmpp would normalize the JID itself before sending.
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    alice
        .send(format!(
            "<presence to='{}/\u{FF37}itch'><x xmlns='{NS_MUC}'/></presence>",
            room("r210")
        ))
        .await;
    let own = alice
        .read_until(|e| e.name() == "presence" && codes(e).contains(&110))
        .await;
    assert_eq!(own.attr("from"), Some(format!("{}/Witch", room("r210")).as_str()));
    assert!(codes(&own).contains(&210), "{}", xml::to_string(&own));
    // A nick used as given carries no 210.
    let mut bob = server.client("bob", PW).await;
    let got = join(&mut bob, &room("r210b"), "Third Witch").await;
    let own = got
        .iter()
        .find(|e| codes(e).contains(&110))
        .expect("self-presence");
    assert_eq!(
        own.attr("from"),
        Some(format!("{}/Third Witch", room("r210b")).as_str())
    );
    assert!(!codes(own).contains(&210), "{}", xml::to_string(own));
}

// §9.4 / §10.2 (status code 322): a room made members-only removes the occupants that are
// not members; each is told with 110 and 322, the others with 322.
#[tokio::test]
async fn xep0045_9_4_members_only_removes_non_members_322() {
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client("bob", PW).await;
    create(&mut alice, "r322", "owner", &[]).await;
    let got = join(&mut bob, &room("r322"), "bob").await;
    assert!(got.iter().any(|e| codes(e).contains(&110)));
    let r = configure(&mut alice, "r322", &[("membersonly", "1")]).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let bob_jid = format!("{}/bob", room("r322"));
    let own = unavailable_from(&mut bob, &bob_jid).await;
    let c = codes(&own);
    assert!(c.contains(&110) && c.contains(&322), "{}", xml::to_string(&own));
    let seen = unavailable_from(&mut alice, &bob_jid).await;
    assert_eq!(codes(&seen), vec![322], "{}", xml::to_string(&seen));
    assert_eq!(item(&seen).and_then(|i| i.attr("role")), Some("none"));
}

// §10.2.1 (status code 173): making a non-anonymous room semi-anonymous tells the occupants.
#[tokio::test]
async fn xep0045_10_2_1_room_now_semi_anonymous_173() {
    let server = server(&["alice"]).await;
    let mut alice = server.client("alice", PW).await;
    create(&mut alice, "r173", "owner", &[("whois", "anyone")]).await;
    let r = configure(&mut alice, "r173", &[("whois", "moderators")]).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let m = alice
        .wait_for(|e| e.name() == "message" && !codes(e).is_empty())
        .await;
    assert_eq!(m.attr("from"), Some(room("r173").as_str()));
    assert_eq!(m.attr("type"), Some("groupchat"));
    assert!(codes(&m).contains(&173), "{}", xml::to_string(&m));
}

// §15.5 (status code 333): an occupant whose client answers the room's presence with an error
// is removed for a technical problem; the others see 333.
#[tokio::test]
async fn xep0045_15_5_error_bounce_removes_333() {
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    let mut bob = server.client("bob", PW).await;
    create(&mut alice, "r333", "owner", &[]).await;
    join(&mut bob, &room("r333"), "bob").await;
    let bob_jid = format!("{}/bob", room("r333"));
    bob.send_xml(&format!(
        "<presence type='error' to='{bob_jid}'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    ))
    .await;
    let seen = unavailable_from(&mut alice, &bob_jid).await;
    assert_eq!(codes(&seen), vec![333], "{}", xml::to_string(&seen));
}

// §15.5 (status code 333): a session that vanishes while in a room, with no unavailable
// presence sent on its behalf (it never sent broadcast presence), is removed with 333.
#[tokio::test]
async fn xep0045_15_5_vanished_session_333() {
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    create(&mut alice, "r333v", "owner", &[]).await;
    let mut bob = server.raw_login("bob", PW, Some("gone")).await;
    bob.send(format!(
        "<presence to='{}/bob'><x xmlns='{NS_MUC}'/></presence>",
        room("r333v")
    ))
    .await;
    bob.read_until(|e| e.name() == "message" && e.get_child("subject", "jabber:client").is_some())
        .await;
    drop(bob);
    let bob_jid = format!("{}/bob", room("r333v"));
    let seen = unavailable_from(&mut alice, &bob_jid).await;
    assert_eq!(codes(&seen), vec![333], "{}", xml::to_string(&seen));
}

// §7.14: an available session that ends has unavailable presence sent on its behalf
// (RFC 6121 §4.5.2): an ordinary exit, without 333.
#[tokio::test]
async fn xep0045_7_14_disconnect_after_broadcast_presence_is_an_exit() {
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    create(&mut alice, "rexit", "owner", &[]).await;
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    join(&mut bob, &room("rexit"), "bob").await;
    drop(bob);
    let seen = unavailable_from(&mut alice, &format!("{}/bob", room("rexit"))).await;
    assert!(codes(&seen).is_empty(), "{}", xml::to_string(&seen));
}

// §15.5 (status code 332): on a graceful shutdown every occupant is removed with 332 before
// its stream ends with system-shutdown.
#[tokio::test]
async fn xep0045_15_5_system_shutdown_332() {
    let mut server = server(&["admin", "bob"]).await;
    let path = server.config_path().to_path_buf();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("admins = [\"admin@localhost\"]\n{config}")).unwrap();
    server.restart().await;
    let mut bob = server.raw_login("bob", PW, Some("r")).await;
    bob.send(format!(
        "<presence to='{}/bob'><x xmlns='{NS_MUC}'/></presence>",
        room("r332")
    ))
    .await;
    bob.read_until(|e| e.name() == "message" && e.get_child("subject", "jabber:client").is_some())
        .await;
    let mut admin = server.client("admin", PW).await;
    let node = "http://jabber.org/protocol/admin#shutdown";
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' action='execute'/>"),
        )
        .await;
    let sid = r
        .get_child("command", CMD)
        .and_then(|c| c.attr("sessionid"))
        .expect("a session id")
        .to_owned();
    admin
        .send_xml(&format!(
            "<iq type='set' id='s2' to='localhost'><command xmlns='{CMD}' node='{node}' \
             sessionid='{sid}' action='complete'><x xmlns='{DATA}' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>\
             <field var='delaytime'><value>0</value></field></x></command></iq>"
        ))
        .await;
    let mut got_332 = false;
    loop {
        match bob.next_within(Duration::from_secs(10)).await {
            Some(Incoming::Element(e)) if e.name() == "presence" => {
                if e.attr("type") == Some("unavailable") && codes(&e).contains(&332) {
                    assert!(codes(&e).contains(&110), "{}", xml::to_string(&e));
                    got_332 = true;
                }
            }
            Some(Incoming::Element(e)) if e.name() == "error" => {
                assert!(e.children().any(|c| c.name() == "system-shutdown"));
                break;
            }
            Some(Incoming::Element(_)) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert!(got_332, "the 332 presence came before system-shutdown");
}
