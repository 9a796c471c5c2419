//! XEP-0045 occupant features: voice requests and their approval (§7.13, §8.6), registering
//! with a room and reserved nicknames (§7.10, §7.12), IQs to occupants (§7.5: vCard from the
//! account, XEP-0410 self-ping), offline mediated invitations (§7.8.2), and the recipient's
//! XEP-0191 block list applied to private messages and invitations the room delivers.

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, XmppClient, ns, xml};

const DATA: &str = "jabber:x:data";
const REQUEST: &str = "http://jabber.org/protocol/muc#request";
const REGISTER: &str = "jabber:iq:register";
const INFO: &str = "http://jabber.org/protocol/disco#info";
const BLOCKING: &str = "urn:xmpp:blocking";
const SHORT: Duration = Duration::from_millis(400);

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

fn self_presence(got: &[Element]) -> &Element {
    got.iter().find(|e| codes(e).contains(&110)).unwrap_or_else(|| {
        panic!(
            "no self-presence in {:?}",
            got.iter().map(xml::to_string).collect::<Vec<_>>()
        )
    })
}

/// Creates a room owned by `c`, configured with `fields` ((var without prefix, value)).
async fn create(c: &mut XmppClient, name: &str, nick: &str, fields: &[(&str, &str)]) {
    let got = join(c, &room(name), nick).await;
    assert!(codes(self_presence(&got)).contains(&201));
    let mut x = String::new();
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='muc#roomconfig_{var}'><value>{}</value></field>",
            xml::escape(value)
        ));
    }
    let r = c
        .iq(
            "set",
            Some(&room(name)),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='{DATA}' type='submit'>{x}</x></query>"),
        )
        .await;
    ok(&r);
}

fn field<'a>(form: &'a Element, var: &str) -> Option<&'a Element> {
    form.children()
        .find(|f| f.is("field", DATA) && f.attr("var") == Some(var))
}

fn value(form: &Element, var: &str) -> Option<String> {
    field(form, var)?.get_child("value", DATA).map(|v| v.text())
}

fn voice_request_xml(to: &str) -> String {
    format!(
        "<message to='{to}'><x xmlns='{DATA}' type='submit'>\
         <field var='FORM_TYPE'><value>{REQUEST}</value></field>\
         <field var='muc#role' type='text-single'><value>participant</value></field></x></message>"
    )
}

async fn message_error(c: &mut XmppClient) -> Element {
    c.wait_for(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await
}

#[tokio::test]
async fn xep0045_7_13_voice_request_and_8_6_approval() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "stage", "Alice", &[("moderatedroom", "1")]).await;
    let got = join(&mut b, &room("stage"), "Bob").await;
    assert_eq!(item(self_presence(&got)).unwrap().attr("role"), Some("visitor"));
    // §7.13: the visitor asks; §8.6: the moderator gets the approval form.
    b.send_xml(&voice_request_xml(&room("stage"))).await;
    let m = a
        .wait_for(|e| e.name() == "message" && e.get_child("x", DATA).is_some())
        .await;
    assert_eq!(m.attr("from"), Some(room("stage").as_str()));
    let form = m.get_child("x", DATA).unwrap();
    assert_eq!(form.attr("type"), Some("form"));
    assert_eq!(value(form, "FORM_TYPE").as_deref(), Some(REQUEST));
    assert_eq!(value(form, "muc#role").as_deref(), Some("participant"));
    assert_eq!(value(form, "muc#roomnick").as_deref(), Some("Bob"));
    assert_eq!(value(form, "muc#jid"), Some(b.jid().to_string()));
    assert_eq!(value(form, "muc#request_allow").as_deref(), Some("false"));
    assert_eq!(
        field(form, "muc#request_allow").unwrap().attr("type"),
        Some("boolean")
    );
    // Only moderators get it.
    b.expect_no_message(SHORT).await;
    // A non-moderator's approval is refused.
    let approval = |allow: &str| {
        format!(
            "<message to='{}'><x xmlns='{DATA}' type='submit'>\
             <field var='FORM_TYPE'><value>{REQUEST}</value></field>\
             <field var='muc#role'><value>participant</value></field>\
             <field var='muc#jid'><value>{}</value></field>\
             <field var='muc#roomnick'><value>Bob</value></field>\
             <field var='muc#request_allow'><value>{allow}</value></field></x></message>",
            room("stage"),
            b.jid()
        )
    };
    let (deny, allow) = (approval("false"), approval("true"));
    b.send_xml(&allow).await;
    xml::assert_stanza_error(&message_error(&mut b).await, &["forbidden"]);
    // Denial changes nothing; approval grants voice, seen by everyone (§8.3).
    a.send_xml(&deny).await;
    a.ping_server().await;
    b.expect_no_message(SHORT).await;
    a.send_xml(&allow).await;
    let nick_jid = format!("{}/Bob", room("stage"));
    for c in [&mut a, &mut b] {
        // (Earlier presence from Bob, as a visitor, may still be queued.)
        c.wait_for(|e| {
            e.name() == "presence"
                && e.attr("from") == Some(nick_jid.as_str())
                && item(e).and_then(|i| i.attr("role")) == Some("participant")
        })
        .await;
    }
    b.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>thanks</body></message>",
        room("stage")
    ))
    .await;
    a.wait_for(|e| body(e).as_deref() == Some("thanks")).await;
    // A participant already has voice.
    b.send_xml(&voice_request_xml(&room("stage"))).await;
    xml::assert_stanza_error(&message_error(&mut b).await, &["not-acceptable"]);
    // Non-occupants are refused; unmoderated rooms have no voice to request.
    c.send_xml(&voice_request_xml(&room("stage"))).await;
    xml::assert_stanza_error(&message_error(&mut c).await, &["not-acceptable"]);
    create(&mut a, "open", "Alice", &[]).await;
    join(&mut c, &room("open"), "Carol").await;
    c.send_xml(&voice_request_xml(&room("open"))).await;
    xml::assert_stanza_error(&message_error(&mut c).await, &["not-allowed"]);
}

async fn reserved_nick(c: &mut XmppClient, name: &str) -> Option<String> {
    let r = c
        .iq(
            "get",
            Some(&room(name)),
            &format!("<query xmlns='{INFO}' node='x-roomuser-item'/>"),
        )
        .await;
    ok(&r);
    let q = r.get_child("query", INFO).expect("query");
    assert_eq!(q.attr("node"), Some("x-roomuser-item"));
    let id = q.get_child("identity", INFO)?;
    assert_eq!(id.attr("category"), Some("conference"));
    assert_eq!(id.attr("type"), Some("text"));
    id.attr("name").map(str::to_owned)
}

#[tokio::test]
async fn xep0045_7_10_register_with_room() {
    let s = server(&["alice", "bob", "carol", "dave"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    let mut d = s.client("dave", PW).await;
    create(&mut a, "guild", "Alice", &[]).await;
    // The room advertises registration.
    let info = b
        .iq("get", Some(&room("guild")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert!(
        info.get_child("query", INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some(REGISTER))
    );
    // The form (§7.10).
    let r = b
        .iq(
            "get",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'/>"),
        )
        .await;
    ok(&r);
    let form = r
        .get_child("query", REGISTER)
        .and_then(|q| q.get_child("x", DATA))
        .expect("registration form");
    assert_eq!(form.attr("type"), Some("form"));
    assert_eq!(
        value(form, "FORM_TYPE").as_deref(),
        Some("http://jabber.org/protocol/muc#register")
    );
    assert!(field(form, "muc#register_roomnick").is_some());
    // Bob is in the room when he registers: occupants see him become a member.
    join(&mut b, &room("guild"), "Bob").await;
    ok(&register(&mut b, "guild", "Bobby").await);
    let p = a
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("from") == Some(format!("{}/Bob", room("guild")).as_str())
                && item(e).and_then(|i| i.attr("affiliation")) == Some("member")
        })
        .await;
    assert_eq!(item(&p).unwrap().attr("role"), Some("participant"));
    // Registered: the get says so.
    let r = b
        .iq(
            "get",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'/>"),
        )
        .await;
    ok(&r);
    let q = r.get_child("query", REGISTER).unwrap();
    assert!(
        q.get_child("registered", REGISTER).is_some(),
        "{}",
        xml::to_string(&r)
    );
    assert_eq!(
        q.get_child("username", REGISTER).map(|u| u.text()).as_deref(),
        Some("Bobby")
    );
    // §7.10: a nickname reserved by someone else is a conflict.
    xml::assert_stanza_error(&register(&mut c, "guild", "Bobby").await, &["conflict"]);
    // No valid form: bad-request.
    let r = c
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'><x xmlns='{DATA}' type='submit'/></query>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["bad-request"]);
    xml::assert_stanza_error(&register(&mut c, "guild", "").await, &["bad-request"]);
    // Outcasts may not register (not-allowed).
    ok(&a
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='outcast' jid='dave@localhost'/></query>"),
        )
        .await);
    xml::assert_stanza_error(&register(&mut d, "guild", "Dave").await, &["not-allowed"]);
    let r = d
        .iq(
            "get",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'/>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    // A room that does not exist.
    let r = c
        .iq(
            "get",
            Some(&room("nowhere")),
            &format!("<query xmlns='{REGISTER}'/>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    // Members-only rooms: membership is for admins to grant.
    create(&mut a, "club", "Alice", &[("membersonly", "1")]).await;
    xml::assert_stanza_error(&register(&mut c, "club", "Carol").await, &["not-allowed"]);
    // Giving the nickname up.
    let r = b
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'><remove/></query>"),
        )
        .await;
    ok(&r);
    ok(&register(&mut c, "guild", "Bobby").await);
}

#[tokio::test]
async fn xep0045_7_12_reserved_nick() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "guild", "Alice", &[]).await;
    // None yet: an empty query.
    assert_eq!(reserved_nick(&mut b, "guild").await, None);
    ok(&register(&mut b, "guild", "Bobby").await);
    assert_eq!(reserved_nick(&mut b, "guild").await.as_deref(), Some("Bobby"));
    assert_eq!(reserved_nick(&mut c, "guild").await, None);
    // Another user cannot take it (§7.12: conflict), neither on entering nor by a nick change.
    let got = join(&mut c, &room("guild"), "Bobby").await;
    xml::assert_stanza_error(got.last().unwrap(), &["conflict"]);
    join(&mut c, &room("guild"), "Carol").await;
    c.send_xml(&format!("<presence to='{}/Bobby'/>", room("guild")))
        .await;
    let e = c
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["conflict"]);
    // Its owner can, and may use another nick too.
    let got = join(&mut b, &room("guild"), "Bobby").await;
    assert_eq!(
        item(self_presence(&got)).unwrap().attr("affiliation"),
        Some("member")
    );
    // Asking after joining is fine (§7.12).
    assert_eq!(reserved_nick(&mut b, "guild").await.as_deref(), Some("Bobby"));
    // §9.1: banning releases the nickname.
    ok(&a
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='outcast' jid='bob@localhost'/></query>"),
        )
        .await);
    c.send_xml(&format!("<presence to='{}/Bobby'/>", room("guild")))
        .await;
    c.wait_for(|e| {
        e.name() == "presence"
            && e.attr("from") == Some(format!("{}/Bobby", room("guild")).as_str())
            && e.attr("type").is_none()
    })
    .await;
}

#[tokio::test]
async fn xep0045_7_5_vcard_and_xep0410_self_ping() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    // Alice publishes a vCard.
    ok(&a
        .iq("set", None, "<vCard xmlns='vcard-temp'><FN>Alice A.</FN></vCard>")
        .await);
    create(&mut a, "lounge", "Alice", &[]).await;
    join(&mut b, &room("lounge"), "Bob").await;
    // Bob asks Alice's occupant JID: the server answers for her account, from that JID.
    let nick_jid = format!("{}/Alice", room("lounge"));
    let r = b.iq("get", Some(&nick_jid), "<vCard xmlns='vcard-temp'/>").await;
    ok(&r);
    assert_eq!(r.attr("from"), Some(nick_jid.as_str()));
    let card = r.get_child("vCard", "vcard-temp").expect("vCard");
    assert_eq!(
        card.get_child("FN", "vcard-temp").map(|f| f.text()).as_deref(),
        Some("Alice A.")
    );
    // Alice's client saw nothing of it.
    a.expect_none(SHORT, "iq", |e| e.name() == "iq").await;
    // Non-occupants are refused.
    let r = c.iq("get", Some(&nick_jid), "<vCard xmlns='vcard-temp'/>").await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    // XEP-0410: the room answers a self-ping itself, and advertises that it does.
    let bob_jid = format!("{}/Bob", room("lounge"));
    let r = b.iq("get", Some(&bob_jid), "<ping xmlns='urn:xmpp:ping'/>").await;
    ok(&r);
    assert_eq!(r.attr("from"), Some(bob_jid.as_str()));
    let info = b
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    assert!(
        info.get_child("query", INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some("http://jabber.org/protocol/muc#self-ping-optimization"))
    );
    // Not joined: not-acceptable, so the client knows to rejoin.
    let r = c
        .iq(
            "get",
            Some(&format!("{}/Carol", room("lounge"))),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    // A ping to another occupant still goes to that occupant's client.
    b.send_xml(&format!(
        "<iq type='get' id='p1' to='{nick_jid}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let req = a
        .wait_for(|e| e.name() == "iq" && e.attr("type") == Some("get"))
        .await;
    assert_eq!(req.attr("from"), Some(bob_jid.as_str()));
}

fn is_invitation(e: &Element) -> bool {
    e.name() == "message"
        && e.get_child("x", NS_USER)
            .is_some_and(|x| x.get_child("invite", NS_USER).is_some())
}

#[tokio::test]
async fn xep0045_7_8_2_invitation_to_offline_user_is_stored() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    create(&mut a, "club", "Alice", &[]).await;
    // Bob has no session at all.
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='bob@localhost'><reason>later</reason></invite></x></message>",
        room("club")
    ))
    .await;
    a.ping_server().await;
    a.expect_none(SHORT, "error for a stored invitation", |e| {
        e.attr("type") == Some("error")
    })
    .await;
    let mut b = s.client("bob", PW).await;
    b.send_presence(0).await;
    let m = b.wait_for(is_invitation).await;
    assert_eq!(m.attr("from"), Some(room("club").as_str()));
    let inv = m
        .get_child("x", NS_USER)
        .unwrap()
        .get_child("invite", NS_USER)
        .unwrap();
    assert_eq!(inv.attr("from"), Some(a.jid().to_string().as_str()));
    assert_eq!(
        inv.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("later")
    );
    // Stamped as held offline.
    assert!(m.get_child("delay", "urn:xmpp:delay").is_some());
    // An account that does not exist: the inviter is told.
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='nobody@localhost'/></x></message>",
        room("club")
    ))
    .await;
    xml::assert_stanza_error(&message_error(&mut a).await, &["service-unavailable"]);
}

async fn block(c: &mut XmppClient, jid: &str) {
    ok(&c
        .iq(
            "set",
            None,
            &format!("<block xmlns='{BLOCKING}'><item jid='{jid}'/></block>"),
        )
        .await);
}

#[tokio::test]
async fn xep0191_blocked_inviter_invitation_not_delivered() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    b.send_presence(0).await;
    block(&mut b, "alice@localhost").await;
    create(&mut a, "club", "Alice", &[]).await;
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='bob@localhost'/></x></message>",
        room("club")
    ))
    .await;
    // Refused like a message from a blocked contact (XEP-0191 §3.4): service-unavailable.
    xml::assert_stanza_error(&message_error(&mut a).await, &["service-unavailable"]);
    b.expect_no_message(SHORT).await;
    // Once unblocked, invitations arrive again.
    ok(&b
        .iq(
            "set",
            None,
            &format!("<unblock xmlns='{BLOCKING}'><item jid='alice@localhost'/></unblock>"),
        )
        .await);
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='bob@localhost'/></x></message>",
        room("club")
    ))
    .await;
    b.wait_for(is_invitation).await;
}

#[tokio::test]
async fn xep0191_blocked_occupant_private_messages() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice", &[]).await;
    join(&mut b, &room("lounge"), "Bob").await;
    join(&mut c, &room("lounge"), "Carol").await;
    let alice_nick = format!("{}/Alice", room("lounge"));
    let bob_nick = format!("{}/Bob", room("lounge"));
    block(&mut b, &alice_nick).await;
    // Alice's private message does not reach Bob; she gets service-unavailable from his
    // occupant JID (XEP-0191 §3.4).
    a.send_xml(&format!(
        "<message type='chat' to='{bob_nick}'><body>psst</body></message>"
    ))
    .await;
    let e = message_error(&mut a).await;
    xml::assert_stanza_error(&e, &["service-unavailable"]);
    assert_eq!(e.attr("from"), Some(bob_nick.as_str()));
    // Groupchat is not private: Bob still sees the room.
    a.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>all</body></message>",
        room("lounge")
    ))
    .await;
    b.wait_for(|e| body(e).as_deref() == Some("all")).await;
    b.expect_none(SHORT, "Alice's private message", |e| {
        body(e).as_deref() == Some("psst")
    })
    .await;
    // Others still reach him, in order.
    for i in 0..5 {
        c.send_xml(&format!(
            "<message type='chat' to='{bob_nick}'><body>c{i}</body></message>"
        ))
        .await;
    }
    for i in 0..5 {
        let m = b
            .wait_for(|e| e.name() == "message" && e.attr("type") == Some("chat"))
            .await;
        assert_eq!(body(&m), Some(format!("c{i}")));
        assert_eq!(
            m.get_child("body", ns::CLIENT).map(|b| b.text()),
            Some(format!("c{i}"))
        );
    }
    // The other direction: Bob cannot write to the nick he blocked (XEP-0191 §3.3.1).
    b.send_xml(&format!(
        "<message type='chat' to='{alice_nick}'><body>hi</body></message>"
    ))
    .await;
    let e = message_error(&mut b).await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
    a.expect_none(SHORT, "Bob's private message", |e| {
        body(e).as_deref() == Some("hi")
    })
    .await;
}
