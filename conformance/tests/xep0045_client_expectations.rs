//! XEP-0045 cases real clients hit beyond the main paths: leaving or bouncing to the bare
//! room (§7.14, §15.5), mediated invitations to full JIDs (§7.8.2), affiliation changes of
//! absent users told to the occupants (§9, §10), cancelling a registration (§7.10), joining
//! again while joined (§7.2), presence probes to occupants, the voice-request form in
//! disco#info (§7.13), the room secret alone (§10.2) and the actor of kicks and bans (§8.2,
//! §9.1).

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, XmppClient, ns, xml};

const INFO: &str = "http://jabber.org/protocol/disco#info";
const REGISTER: &str = "jabber:iq:register";
const REQUEST: &str = "http://jabber.org/protocol/muc#request";
const SHORT: Duration = Duration::from_millis(600);

async fn member_list(c: &mut XmppClient, name: &str) -> Vec<String> {
    let r = c
        .iq(
            "get",
            Some(&room(name)),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='member'/></query>"),
        )
        .await;
    ok(&r);
    r.get_child("query", NS_ADMIN)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect()
}

async fn features(c: &mut XmppClient, name: &str) -> Vec<String> {
    let r = c
        .iq("get", Some(&room(name)), &format!("<query xmlns='{INFO}'/>"))
        .await;
    ok(&r);
    r.get_child("query", INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect()
}

async fn unavailable_from(c: &mut XmppClient, occupant: &str) -> Element {
    c.wait_for(|e| {
        e.name() == "presence" && e.attr("type") == Some("unavailable") && e.attr("from") == Some(occupant)
    })
    .await
}

fn actor(e: &Element) -> Option<&Element> {
    item(e)?.get_child("actor", NS_USER)
}

/// A message from the room about an affiliation (§9 "notice ... to all occupants").
fn is_affiliation_notice(e: &Element, room_jid: &str, jid: &str) -> bool {
    e.name() == "message"
        && e.attr("from") == Some(room_jid)
        && item(e).is_some_and(|i| i.attr("jid") == Some(jid))
}

// §7.14 as ejabberd and Prosody accept it: unavailable presence to the bare room JID leaves;
// the leaver gets its own unavailable presence (110) and the others are told.
#[tokio::test]
async fn xep0045_7_14_unavailable_to_bare_room_leaves() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "exit", "Alice", &[]).await;
    assert!(joined(&join(&mut b, &room("exit"), "Bob").await));
    a.wait_for(|e| e.name() == "presence" && e.attr("from") == Some(&*format!("{}/Bob", room("exit"))))
        .await;
    b.send_xml(&format!(
        "<presence type='unavailable' to='{}'><status>bye</status></presence>",
        room("exit")
    ))
    .await;
    let bob = format!("{}/Bob", room("exit"));
    let own = unavailable_from(&mut b, &bob).await;
    assert!(codes(&own).contains(&110), "{}", xml::to_string(&own));
    let seen = unavailable_from(&mut a, &bob).await;
    assert!(!codes(&seen).contains(&110));
    assert_eq!(
        seen.get_child("status", ns::CLIENT).map(|s| s.text()).as_deref(),
        Some("bye")
    );
    // Bob is gone: his groupchat message is refused.
    b.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>still here?</body></message>",
        room("exit")
    ))
    .await;
    let e = b
        .wait_for(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
}

// §15.5: an error presence sent to the bare room (a client bouncing one of the room's
// stanzas) removes the occupant as a technical problem (333).
#[tokio::test]
async fn xep0045_15_5_error_presence_to_bare_room_removes_333() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "bounce", "Alice", &[]).await;
    assert!(joined(&join(&mut b, &room("bounce"), "Bob").await));
    b.send_xml(&format!(
        "<presence type='error' to='{}'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
        room("bounce")
    ))
    .await;
    let seen = unavailable_from(&mut a, &format!("{}/Bob", room("bounce"))).await;
    assert!(codes(&seen).contains(&333), "{}", xml::to_string(&seen));
}

// §7.8.2: the invitee may be named by a full JID.
#[tokio::test]
async fn xep0045_7_8_2_mediated_invitation_to_full_jid() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    b.send_presence(0).await;
    create(&mut a, "club", "Alice", &[("membersonly", "1")]).await;
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='{}'><reason>come</reason></invite></x></message>",
        room("club"),
        b.jid()
    ))
    .await;
    let m = b
        .wait_for(|e| e.name() == "message" && e.get_child("x", NS_USER).is_some())
        .await;
    assert_eq!(m.attr("from"), Some(room("club").as_str()));
    let inv = m.get_child("x", NS_USER).unwrap().get_child("invite", NS_USER);
    assert_eq!(
        inv.and_then(|i| i.attr("from")),
        Some(a.jid().to_string().as_str())
    );
    // No error went back to the inviter, and the invitee of a members-only room may enter.
    a.expect_none(SHORT, "error", |e| e.attr("type") == Some("error"))
        .await;
    assert!(joined(&join(&mut b, &room("club"), "Bob").await));
}

// §9.1, §9.3, §10.3, §7.10: when the affiliation of a user who is not in the room changes
// (by an admin, or by registering and cancelling), the occupants who may see real JIDs get a
// message from the room with the item, the reason, and 301 for a ban; the others nothing.
#[tokio::test]
async fn xep0045_9_affiliation_change_of_absent_user_told_to_occupants() {
    let s = server(&["alice", "bob", "carol", "dave"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    // Semi-anonymous: the owner (a moderator) sees JIDs, the participant Carol does not.
    create(&mut a, "watch", "Alice", &[("whois", "moderators")]).await;
    assert!(joined(&join(&mut c, &room("watch"), "Carol").await));
    let rj = room("watch");
    ok(&admin(
        &mut a,
        "watch",
        "<item affiliation='outcast' jid='dave@localhost'><reason>spam</reason></item>",
    )
    .await);
    let m = a
        .wait_for(|e| is_affiliation_notice(e, &rj, "dave@localhost"))
        .await;
    let i = item(&m).unwrap();
    assert_eq!(i.attr("affiliation"), Some("outcast"));
    assert_eq!(
        i.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("spam")
    );
    assert!(codes(&m).contains(&301), "{}", xml::to_string(&m));
    ok(&admin(
        &mut a,
        "watch",
        "<item affiliation='admin' jid='dave@localhost'/>",
    )
    .await);
    let m = a
        .wait_for(|e| is_affiliation_notice(e, &rj, "dave@localhost"))
        .await;
    assert_eq!(item(&m).unwrap().attr("affiliation"), Some("admin"));
    assert!(!codes(&m).contains(&301));
    // Through registration (membership) and its cancellation.
    ok(&register(&mut b, "watch", "Bobby").await);
    let m = a
        .wait_for(|e| is_affiliation_notice(e, &rj, "bob@localhost"))
        .await;
    assert_eq!(item(&m).unwrap().attr("affiliation"), Some("member"));
    ok(&b
        .iq(
            "set",
            Some(&rj),
            &format!("<query xmlns='{REGISTER}'><remove/></query>"),
        )
        .await);
    let m = a
        .wait_for(|e| is_affiliation_notice(e, &rj, "bob@localhost"))
        .await;
    assert_eq!(item(&m).unwrap().attr("affiliation"), Some("none"));
    // The participant, who may not see real JIDs, was told nothing of it.
    c.expect_none(SHORT, "affiliation notice", |e| {
        e.name() == "message" && item(e).is_some_and(|i| i.attr("jid").is_some())
    })
    .await;
}

// §7.10 with XEP-0077 <remove/>: cancelling the registration gives up the nickname and the
// membership; in a members-only room the user may no longer enter.
#[tokio::test]
async fn xep0045_7_10_cancel_registration_removes_membership() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "guild", "Alice", &[]).await;
    ok(&register(&mut b, "guild", "Bobby").await);
    assert_eq!(member_list(&mut a, "guild").await, vec!["bob@localhost"]);
    let r = b
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'><remove/></query>"),
        )
        .await;
    ok(&r);
    assert!(member_list(&mut a, "guild").await.is_empty());
    // The nickname is free again, and Bob is not registered any more.
    let r = b
        .iq(
            "get",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'/>"),
        )
        .await;
    ok(&r);
    assert!(
        r.get_child("query", REGISTER)
            .unwrap()
            .get_child("registered", REGISTER)
            .is_none(),
        "{}",
        xml::to_string(&r)
    );
    assert!(joined(&join(&mut c, &room("guild"), "Bobby").await));
    // Cancelling twice: nothing to cancel.
    let r = b
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'><remove/></query>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    // In a members-only room the membership was the way in.
    ok(&configure(&mut a, "guild", &[("membersonly", "1")]).await);
    ok(&admin(
        &mut a,
        "guild",
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await);
    ok(&b
        .iq(
            "set",
            Some(&room("guild")),
            &format!("<query xmlns='{REGISTER}'><remove/></query>"),
        )
        .await);
    let got = join(&mut b, &room("guild"), "Bob").await;
    let e = got.last().unwrap();
    xml::assert_stanza_error(e, &["registration-required"]);
}

// §7.2: a client that sends its join again while joined (it lost track, e.g. after a
// reconnect it did not notice) gets the whole join again: the occupants, its own presence
// (110), the history and the subject. The others see a presence update, not a new occupant.
#[tokio::test]
async fn xep0045_7_2_join_again_while_joined_gets_full_join() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "again", "Alice", &[]).await;
    let rj = room("again");
    a.send_xml(&format!(
        "<message type='groupchat' to='{rj}'><subject>Topic</subject></message>"
    ))
    .await;
    a.send_xml(&format!(
        "<message type='groupchat' to='{rj}'><body>first</body></message>"
    ))
    .await;
    a.wait_for(|e| body(e).as_deref() == Some("first")).await;
    assert!(joined(&join(&mut b, &rj, "Bob").await));
    let again = join(&mut b, &rj, "Bob").await;
    let alice = format!("{rj}/Alice");
    assert!(
        again
            .iter()
            .any(|e| e.name() == "presence" && e.attr("from") == Some(alice.as_str())),
        "no occupant presence in the second join"
    );
    assert!(joined(&again), "no self-presence in the second join");
    assert!(
        again.iter().any(|e| body(e).as_deref() == Some("first")),
        "no history in the second join"
    );
    let subject = again.last().unwrap();
    assert_eq!(
        subject
            .get_child("subject", ns::CLIENT)
            .map(|s| s.text())
            .as_deref(),
        Some("Topic")
    );
    // Alice saw Bob's presence again, without status codes of a new room or of herself.
    let bob = format!("{rj}/Bob");
    let p = a
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some(bob.as_str()))
        .await;
    assert!(codes(&p).is_empty(), "{}", xml::to_string(&p));
    // Still one occupant: Bob's message is broadcast once.
    b.send_xml(&format!(
        "<message type='groupchat' to='{rj}'><body>hello</body></message>"
    ))
    .await;
    a.wait_for(|e| body(e).as_deref() == Some("hello")).await;
    a.expect_none(SHORT, "second copy", |e| body(e).as_deref() == Some("hello"))
        .await;
}

// RFC 6121 §4.3 applied to a room: a presence probe from an occupant to another occupant's
// room JID is answered with that occupant's current presence.
#[tokio::test]
async fn xep0045_7_2_presence_probe_to_occupant_answered() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "probe", "Alice", &[]).await;
    let rj = room("probe");
    assert!(joined(&join(&mut b, &rj, "Bob").await));
    b.send_xml(&format!(
        "<presence to='{rj}/Bob'><show>away</show><status>lunch</status></presence>"
    ))
    .await;
    let bob = format!("{rj}/Bob");
    a.wait_for(|e| e.attr("from") == Some(bob.as_str()) && e.get_child("show", ns::CLIENT).is_some())
        .await;
    a.send_xml(&format!("<presence type='probe' to='{bob}'/>")).await;
    // (Bob's join presence is still queued: the answer is the one with his current show.)
    let p = a
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("from") == Some(bob.as_str())
                && e.get_child("show", ns::CLIENT).is_some()
        })
        .await;
    assert_eq!(p.attr("type"), None, "{}", xml::to_string(&p));
    assert_eq!(
        p.get_child("show", ns::CLIENT).map(|s| s.text()).as_deref(),
        Some("away")
    );
    let i = item(&p).expect("muc#user item");
    assert_eq!(i.attr("role"), Some("participant"));
    // The probe did not take Alice out of the room: her message still goes through.
    a.send_xml(&format!(
        "<message type='groupchat' to='{rj}'><body>after probe</body></message>"
    ))
    .await;
    b.wait_for(|e| body(e).as_deref() == Some("after probe")).await;
    // Someone not in the room learns nothing.
    c.send_xml(&format!("<presence type='probe' to='{bob}'/>")).await;
    c.expect_none(SHORT, "occupant presence", |e| {
        e.attr("from") == Some(bob.as_str())
    })
    .await;
}

// §7.13: the voice-request form is advertised in the room's disco#info.
#[tokio::test]
async fn xep0045_7_13_voice_request_form_in_disco_info() {
    let s = server(&["alice"]).await;
    let mut a = s.client("alice", PW).await;
    create(&mut a, "voice", "Alice", &[("moderatedroom", "1")]).await;
    let f = features(&mut a, "voice").await;
    assert!(f.iter().any(|v| v == REQUEST), "{f:?}");
}

// §10.2: a non-empty muc#roomconfig_roomsecret protects the room even when the form leaves
// out muc#roomconfig_passwordprotectedroom; an empty one unprotects it.
#[tokio::test]
async fn xep0045_10_2_roomsecret_alone_protects_room() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "vault", "Alice", &[("roomsecret", "s3cret")]).await;
    let f = features(&mut a, "vault").await;
    assert!(f.iter().any(|v| v == "muc_passwordprotected"), "{f:?}");
    let got = join(&mut b, &room("vault"), "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-authorized"]);
    assert!(joined(
        &join_with(&mut b, &room("vault"), "Bob", "<password>s3cret</password>").await
    ));
    ok(&configure(&mut a, "vault", &[("roomsecret", "")]).await);
    let f = features(&mut a, "vault").await;
    assert!(f.iter().any(|v| v == "muc_unsecured"), "{f:?}");
}

// §8.2, §9.1: kick and ban notices carry the actor's nick to the occupants, and the actor's
// JID to those the room shows real JIDs to (moderators in a semi-anonymous room, everyone in a
// non-anonymous one).
#[tokio::test]
async fn xep0045_8_2_kick_and_9_1_ban_carry_the_actor() {
    let s = server(&["alice", "bob", "carol", "dave"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    let mut d = s.client("dave", PW).await;
    create(&mut a, "court", "Alice", &[("whois", "moderators")]).await;
    let rj = room("court");
    ok(&admin(
        &mut a,
        "court",
        "<item affiliation='admin' jid='dave@localhost'/>",
    )
    .await);
    assert!(joined(&join(&mut b, &rj, "Bob").await));
    assert!(joined(&join(&mut c, &rj, "Carol").await));
    assert!(joined(&join(&mut d, &rj, "Dave").await));
    ok(&admin(
        &mut a,
        "court",
        "<item nick='Bob' role='none'><reason>noise</reason></item>",
    )
    .await);
    let bob = format!("{rj}/Bob");
    // The participant sees the nick only.
    let seen = unavailable_from(&mut c, &bob).await;
    assert!(codes(&seen).contains(&307));
    let who = actor(&seen).expect("actor");
    assert_eq!(who.attr("nick"), Some("Alice"), "{}", xml::to_string(&seen));
    assert_eq!(who.attr("jid"), None);
    // A moderator (Dave is an admin) sees the JID too.
    let seen = unavailable_from(&mut d, &bob).await;
    let who = actor(&seen).expect("actor");
    assert_eq!(who.attr("nick"), Some("Alice"));
    assert_eq!(who.attr("jid"), Some("alice@localhost"));
    // The kicked participant itself: the nick.
    let own = unavailable_from(&mut b, &bob).await;
    assert_eq!(actor(&own).and_then(|a| a.attr("nick")), Some("Alice"));
    // Non-anonymous: everyone sees the actor's JID.
    ok(&configure(&mut a, "court", &[("whois", "anyone")]).await);
    ok(&admin(
        &mut a,
        "court",
        "<item affiliation='outcast' jid='carol@localhost'/>",
    )
    .await);
    let carol = format!("{rj}/Carol");
    let own = unavailable_from(&mut c, &carol).await;
    assert!(codes(&own).contains(&301));
    let who = actor(&own).expect("actor");
    assert_eq!(who.attr("nick"), Some("Alice"));
    assert_eq!(who.attr("jid"), Some("alice@localhost"));
    let seen = unavailable_from(&mut d, &carol).await;
    assert_eq!(actor(&seen).and_then(|a| a.attr("jid")), Some("alice@localhost"));
}
