//! XEP-0045 moderation and administration: kick (§8.2), voice (§8.3-8.4), ban (§9.1),
//! member/admin/owner lists (§9.3-9.8, §10.3-10.5), the permission rules (§5), room
//! configuration (§10.2) and its effects, destroy (§10.9), invitations (§7.8).

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, XmppClient, xml};

const DATA: &str = "jabber:x:data";
const SHORT: Duration = Duration::from_millis(400);

async fn admin_list(c: &mut XmppClient, name: &str, attr: &str) -> Element {
    c.iq(
        "get",
        Some(&room(name)),
        &format!("<query xmlns='{NS_ADMIN}'><item {attr}/></query>"),
    )
    .await
}

fn listed(r: &Element) -> Vec<String> {
    r.get_child("query", NS_ADMIN)
        .map(|q| {
            q.children()
                .filter_map(|i| i.attr("jid").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn unavailable_from(c: &mut XmppClient, nick_jid: &str) -> Element {
    c.wait_for(|e| {
        e.name() == "presence" && e.attr("type") == Some("unavailable") && e.attr("from") == Some(nick_jid)
    })
    .await
}

#[tokio::test]
async fn xep0045_8_2_kick() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice", &[]).await;
    join(&mut b, &room("lounge"), "Bob").await;
    join(&mut c, &room("lounge"), "Carol").await;
    // A participant may not kick.
    let r = admin(&mut c, "lounge", "<item nick='Bob' role='none'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    let r = admin(
        &mut a,
        "lounge",
        "<item nick='Bob' role='none'><reason>spam</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let bob_jid = format!("{}/Bob", room("lounge"));
    let own = unavailable_from(&mut b, &bob_jid).await;
    assert!(
        codes(&own).contains(&307) && codes(&own).contains(&110),
        "{}",
        xml::to_string(&own)
    );
    let it = item(&own).unwrap();
    assert_eq!(it.attr("role"), Some("none"));
    assert_eq!(
        it.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("spam")
    );
    let seen = unavailable_from(&mut c, &bob_jid).await;
    assert!(codes(&seen).contains(&307));
    assert!(!codes(&seen).contains(&110));
    // Kicked, not banned: Bob may come back.
    assert!(joined(&join(&mut b, &room("lounge"), "Bob").await));
    // Nobody kicks the owner.
    let r = admin(&mut b, "lounge", "<item nick='Alice' role='none'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    let r = admin(&mut a, "lounge", "<item nick='Nobody' role='none'/>").await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

#[tokio::test]
async fn xep0045_8_3_voice_revoke_and_grant() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice", &[("moderatedroom", "1")]).await;
    let got = join(&mut b, &room("lounge"), "Bob").await;
    let own = got.iter().find(|e| codes(e).contains(&110)).unwrap();
    assert_eq!(item(own).unwrap().attr("role"), Some("visitor"));
    // §7.4: a visitor in a moderated room has no voice.
    b.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>hi</body></message>",
        room("lounge")
    ))
    .await;
    let e = b
        .wait_for(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["forbidden"]);
    // §8.3: grant voice.
    let r = admin(&mut a, "lounge", "<item nick='Bob' role='participant'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    let p = b
        .wait_for(|e| e.name() == "presence" && item(e).and_then(|i| i.attr("role")) == Some("participant"))
        .await;
    assert!(codes(&p).contains(&110));
    b.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>now I speak</body></message>",
        room("lounge")
    ))
    .await;
    a.wait_for(|e| body(e).as_deref() == Some("now I speak")).await;
    // §8.4: revoke it.
    let r = admin(&mut a, "lounge", "<item nick='Bob' role='visitor'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    b.wait_for(|e| e.name() == "presence" && item(e).and_then(|i| i.attr("role")) == Some("visitor"))
        .await;
    // §8.5: the moderator sees the voice list.
    let r = admin_list(&mut a, "lounge", "role='visitor'").await;
    assert_eq!(listed(&r), vec![b.jid().to_string()]);
    let r = admin_list(&mut b, "lounge", "role='visitor'").await;
    xml::assert_stanza_error(&r, &["forbidden"]);
}

#[tokio::test]
async fn xep0045_9_1_ban() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice", &[]).await;
    join(&mut b, &room("lounge"), "Bob").await;
    join(&mut c, &room("lounge"), "Carol").await;
    let r = admin(
        &mut a,
        "lounge",
        "<item affiliation='outcast' jid='bob@localhost'><reason>trolling</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let bob_jid = format!("{}/Bob", room("lounge"));
    let own = unavailable_from(&mut b, &bob_jid).await;
    assert!(codes(&own).contains(&301) && codes(&own).contains(&110));
    assert_eq!(item(&own).unwrap().attr("affiliation"), Some("outcast"));
    let seen = unavailable_from(&mut c, &bob_jid).await;
    assert!(codes(&seen).contains(&301));
    // §7.2.8: banned users cannot enter.
    let got = join(&mut b, &room("lounge"), "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["forbidden"]);
    // §9.2: the ban list.
    let r = admin_list(&mut a, "lounge", "affiliation='outcast'").await;
    assert_eq!(listed(&r), vec!["bob@localhost".to_string()]);
    let reason = r
        .get_child("query", NS_ADMIN)
        .unwrap()
        .children()
        .next()
        .unwrap()
        .get_child("reason", NS_ADMIN);
    assert_eq!(reason.map(|r| r.text()).as_deref(), Some("trolling"));
    // A participant may neither see nor change it.
    let r = admin_list(&mut c, "lounge", "affiliation='outcast'").await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    let r = admin(&mut c, "lounge", "<item affiliation='none' jid='bob@localhost'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    // Unban.
    let r = admin(&mut a, "lounge", "<item affiliation='none' jid='bob@localhost'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(joined(&join(&mut b, &room("lounge"), "Bob").await));
}

#[tokio::test]
async fn xep0045_9_3_member_admin_owner_lists() {
    let s = server(&["alice", "bob", "carol", "dave"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    let mut d = s.client("dave", PW).await;
    create(&mut a, "club", "Alice", &[("membersonly", "1")]).await;
    // §7.2.7: members-only.
    let got = join(&mut b, &room("club"), "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["registration-required"]);
    let r = admin(
        &mut a,
        "club",
        "<item affiliation='member' jid='bob@localhost'/><item affiliation='admin' jid='carol@localhost'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let got = join(&mut b, &room("club"), "Bob").await;
    assert!(joined(&got));
    let own = got.iter().find(|e| codes(e).contains(&110)).unwrap();
    assert_eq!(item(own).unwrap().attr("affiliation"), Some("member"));
    let got = join(&mut c, &room("club"), "Carol").await;
    let own = got.iter().find(|e| codes(e).contains(&110)).unwrap();
    assert_eq!(item(own).unwrap().attr("affiliation"), Some("admin"));
    assert_eq!(item(own).unwrap().attr("role"), Some("moderator"));
    // Lists.
    assert_eq!(
        listed(&admin_list(&mut a, "club", "affiliation='member'").await),
        vec!["bob@localhost"]
    );
    assert_eq!(
        listed(&admin_list(&mut c, "club", "affiliation='admin'").await),
        vec!["carol@localhost"]
    );
    assert_eq!(
        listed(&admin_list(&mut a, "club", "affiliation='owner'").await),
        vec!["alice@localhost"]
    );
    let r = admin_list(&mut b, "club", "affiliation='member'").await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    // §5.2: an admin manages members but not admins or owners.
    let r = admin(
        &mut c,
        "club",
        "<item affiliation='member' jid='dave@localhost'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(joined(&join(&mut d, &room("club"), "Dave").await));
    let r = admin(&mut c, "club", "<item affiliation='owner' jid='dave@localhost'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    let r = admin(&mut c, "club", "<item affiliation='none' jid='alice@localhost'/>").await;
    xml::assert_stanza_error(&r, &["not-allowed"]);
    // §10.6-10.7: the only owner cannot step down.
    let r = admin(
        &mut a,
        "club",
        "<item affiliation='admin' jid='alice@localhost'/>",
    )
    .await;
    xml::assert_stanza_error(&r, &["conflict"]);
    // §10.3: owners grant ownership; the presence reflects it.
    let r = admin(
        &mut a,
        "club",
        "<item affiliation='owner' jid='carol@localhost'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    b.wait_for(|e| {
        e.attr("from") == Some(&format!("{}/Carol", room("club")))
            && item(e).and_then(|i| i.attr("affiliation")) == Some("owner")
    })
    .await;
    // §9.4: removing membership in a members-only room removes the occupant (321).
    let r = admin(&mut a, "club", "<item affiliation='none' jid='bob@localhost'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    let own = unavailable_from(&mut b, &format!("{}/Bob", room("club"))).await;
    assert!(codes(&own).contains(&321));
}

#[tokio::test]
async fn xep0045_10_2_configure_room() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    join(&mut a, &room("lounge"), "Alice").await;
    // The form has the common fields.
    let r = a
        .iq(
            "get",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'/>"),
        )
        .await;
    let form = r
        .get_child("query", NS_OWNER)
        .and_then(|q| q.get_child("x", DATA))
        .expect("form");
    let vars: Vec<_> = form.children().filter_map(|f| f.attr("var")).collect();
    for v in [
        "roomname",
        "roomdesc",
        "persistentroom",
        "publicroom",
        "membersonly",
        "moderatedroom",
        "passwordprotectedroom",
        "roomsecret",
        "maxusers",
        "whois",
        "changesubject",
        "allowinvites",
        "allowpm",
        "historylength",
    ] {
        assert!(
            vars.contains(&format!("muc#roomconfig_{v}").as_str()),
            "{v} in {vars:?}"
        );
    }
    let r = configure(
        &mut a,
        "lounge",
        &[
            ("passwordprotectedroom", "1"),
            ("roomsecret", "s3cret"),
            ("maxusers", "2"),
        ],
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    // §7.2.5: password.
    let got = join(&mut b, &room("lounge"), "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-authorized"]);
    let got = join_with(&mut b, &room("lounge"), "Bob", "<password>wrong</password>").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-authorized"]);
    assert!(joined(
        &join_with(&mut b, &room("lounge"), "Bob", "<password>s3cret</password>").await
    ));
    // §7.2.10: full room.
    let mut b2 = s.client_jid("bob@localhost/two", PW).await;
    let got = join_with(&mut b2, &room("lounge"), "Bob2", "<password>s3cret</password>").await;
    xml::assert_stanza_error(got.last().unwrap(), &["service-unavailable"]);
    // §10.2.1: a change is announced (104), and 172 when the room becomes non-anonymous.
    let r = configure(&mut a, "lounge", &[("whois", "anyone")]).await;
    assert_eq!(r.attr("type"), Some("result"));
    let m = b
        .wait_for(|e| e.name() == "message" && codes(e).contains(&104))
        .await;
    assert!(codes(&m).contains(&172), "{}", xml::to_string(&m));
    assert_eq!(m.attr("from"), Some(room("lounge").as_str()));
    // Non-owners get neither the form nor a say.
    let r = b
        .iq(
            "get",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'/>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    // Invalid values are refused.
    let r = configure(&mut a, "lounge", &[("whois", "everyone")]).await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    // allowpm=none blocks private messages.
    let r = configure(&mut a, "lounge", &[("allowpm", "none")]).await;
    assert_eq!(r.attr("type"), Some("result"));
    b.send_xml(&format!(
        "<message type='chat' to='{}/Alice'><body>x</body></message>",
        room("lounge")
    ))
    .await;
    let e = b
        .wait_for(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["forbidden"]);
}

#[tokio::test]
async fn xep0045_10_1_3_cancel_destroys_new_room() {
    let s = server(&["alice"]).await;
    let mut a = s.client("alice", PW).await;
    join(&mut a, &room("lounge"), "Alice").await;
    let r = a
        .iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='{DATA}' type='cancel'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    let r = a
        .iq(
            "get",
            Some(&room("lounge")),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

#[tokio::test]
async fn xep0045_10_9_destroy() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice", &[("persistentroom", "1")]).await;
    join(&mut b, &room("lounge"), "Bob").await;
    let r = b
        .iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'><destroy/></query>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    let r = a
        .iq(
            "set",
            Some(&room("lounge")),
            &format!(
                "<query xmlns='{NS_OWNER}'><destroy jid='{}'><reason>moved</reason></destroy></query>",
                room("newlounge")
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let p = unavailable_from(&mut b, &format!("{}/Bob", room("lounge"))).await;
    let d = p
        .get_child("x", NS_USER)
        .and_then(|x| x.get_child("destroy", NS_USER))
        .expect("destroy");
    assert_eq!(d.attr("jid"), Some(room("newlounge").as_str()));
    assert_eq!(
        d.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("moved")
    );
    // Gone even though it was persistent.
    let r = b
        .iq(
            "get",
            Some(&room("lounge")),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

#[tokio::test]
async fn xep0045_10_2_persistent_room_survives_empty() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(
        &mut a,
        "lounge",
        "Alice",
        &[("persistentroom", "1"), ("roomname", "The Lounge")],
    )
    .await;
    a.send_xml(&format!(
        "<message type='groupchat' to='{}'><body>kept</body></message>",
        room("lounge")
    ))
    .await;
    a.wait_for(|e| body(e).as_deref() == Some("kept")).await;
    a.send_xml(&format!(
        "<presence type='unavailable' to='{}/Alice'/>",
        room("lounge")
    ))
    .await;
    a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    let got = join(&mut b, &room("lounge"), "Bob").await;
    assert!(joined(&got));
    assert!(!got.iter().any(|e| codes(e).contains(&201)));
    assert!(got.iter().any(|e| body(e).as_deref() == Some("kept")));
}

#[tokio::test]
async fn xep0045_7_8_invitations() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    b.send_presence(0).await;
    a.send_presence(0).await;
    c.send_presence(0).await;
    b.ping_server().await;
    create(
        &mut a,
        "club",
        "Alice",
        &[
            ("membersonly", "1"),
            ("passwordprotectedroom", "1"),
            ("roomsecret", "pw"),
        ],
    )
    .await;
    // §7.8.2: mediated invitation, from the room.
    a.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='bob@localhost'><reason>join us</reason></invite></x></message>",
        room("club")
    ))
    .await;
    let m = b
        .wait_for(|e| e.name() == "message" && e.get_child("x", NS_USER).is_some())
        .await;
    assert_eq!(m.attr("from"), Some(room("club").as_str()));
    let x = m.get_child("x", NS_USER).unwrap();
    let inv = x.get_child("invite", NS_USER).expect("invite");
    assert_eq!(inv.attr("from"), Some(a.jid().to_string().as_str()));
    assert_eq!(
        inv.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("join us")
    );
    assert_eq!(
        x.get_child("password", NS_USER).map(|p| p.text()).as_deref(),
        Some("pw")
    );
    // The invitee of a members-only room became a member.
    assert!(joined(
        &join_with(&mut b, &room("club"), "Bob", "<password>pw</password>").await
    ));
    // §7.8.2: a participant may not invite unless allowinvites.
    b.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><invite to='carol@localhost'/></x></message>",
        room("club")
    ))
    .await;
    let e = b
        .wait_for(|e| e.name() == "message" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["forbidden"]);
    // Decline goes back to the inviter.
    c.send_xml(&format!(
        "<message to='{}'><x xmlns='{NS_USER}'><decline to='alice@localhost'><reason>busy</reason></decline></x></message>",
        room("club")
    ))
    .await;
    let m = a
        .wait_for(|e| {
            e.name() == "message"
                && e.get_child("x", NS_USER)
                    .and_then(|x| x.get_child("decline", NS_USER))
                    .is_some()
        })
        .await;
    let d = m
        .get_child("x", NS_USER)
        .unwrap()
        .get_child("decline", NS_USER)
        .unwrap();
    assert_eq!(d.attr("from"), Some("carol@localhost"));
    assert_eq!(
        d.get_child("reason", NS_USER).map(|r| r.text()).as_deref(),
        Some("busy")
    );
    // XEP-0249 direct invitations are plain messages between users.
    a.send_xml(&format!(
        "<message to='carol@localhost'><x xmlns='jabber:x:conference' jid='{}' password='pw'/></message>",
        room("club")
    ))
    .await;
    let m = c
        .wait_for(|e| e.get_child("x", "jabber:x:conference").is_some())
        .await;
    assert_eq!(
        m.get_child("x", "jabber:x:conference").unwrap().attr("jid"),
        Some(room("club").as_str())
    );
    let _ = SHORT;
}
