//! XEP-0045 multi-user chat: service discovery, room creation, entering and leaving, nick
//! changes, groupchat and private messages, subject, history (§6, §7, §8.1, §10.1).
//! Sections are in each test's name.

use std::time::Duration;

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, ns, xml};

const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";
const SHORT: Duration = Duration::from_millis(400);

/// Creates an instant room (§10.1.2) owned by `c`.
async fn create(c: &mut XmppClient, name: &str, nick: &str) {
    let got = join(c, &room(name), nick).await;
    let own = got
        .iter()
        .find(|e| codes(e).contains(&110))
        .expect("self-presence");
    assert!(codes(own).contains(&201), "{}", xml::to_string(own));
    let r = c
        .iq(
            "set",
            Some(&room(name)),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

async fn say(c: &mut XmppClient, to: &str, body: &str) {
    c.send_xml(&format!(
        "<message type='groupchat' to='{to}' id='m-{}'><body>{}</body></message>",
        xml::escape(body),
        xml::escape(body)
    ))
    .await;
}

async fn groupchat_body(c: &mut XmppClient, text: &str) -> Element {
    c.wait_for(|e| e.name() == "message" && body(e).as_deref() == Some(text))
        .await
}

#[tokio::test]
async fn xep0045_6_1_service_discovery() {
    let s = server(&["alice"]).await;
    let mut a = s.client("alice", PW).await;
    // The server lists the service among its items.
    let items = a
        .iq("get", Some("localhost"), &format!("<query xmlns='{ITEMS}'/>"))
        .await;
    let q = items.get_child("query", ITEMS).expect("items");
    assert!(
        q.children().any(|i| i.attr("jid") == Some(MUC)),
        "{}",
        xml::to_string(&items)
    );
    let info = a.iq("get", Some(MUC), &format!("<query xmlns='{INFO}'/>")).await;
    let q = info.get_child("query", INFO).expect("info");
    let id = q.get_child("identity", INFO).expect("identity");
    assert_eq!(id.attr("category"), Some("conference"));
    assert_eq!(id.attr("type"), Some("text"));
    let features: Vec<_> = q.children().filter_map(|f| f.attr("var")).collect();
    assert!(features.contains(&NS_MUC), "{features:?}");
    // Unknown requests to the service are refused.
    let r = a.iq("get", Some(MUC), "<query xmlns='jabber:iq:version'/>").await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
}

#[tokio::test]
async fn xep0045_10_1_create_locked_then_instant() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let got = join(&mut a, &room("lounge"), "Alice").await;
    let own = got
        .iter()
        .find(|e| codes(e).contains(&110))
        .expect("self-presence");
    assert!(codes(own).contains(&201), "{}", xml::to_string(own));
    let it = item(own).unwrap();
    assert_eq!(it.attr("affiliation"), Some("owner"));
    assert_eq!(it.attr("role"), Some("moderator"));
    // §10.1.1: locked until configured: others cannot enter.
    let got = join(&mut b, &room("lounge"), "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["item-not-found"]);
    // Only the owner may configure.
    let r = b
        .iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await;
    xml::assert_stanza_error(&r, &["forbidden"]);
    let r = a
        .iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got = join(&mut b, &room("lounge"), "Bob").await;
    let own = got
        .iter()
        .find(|e| codes(e).contains(&110))
        .expect("bob self-presence");
    assert!(!codes(own).contains(&201));
    assert_eq!(item(own).unwrap().attr("role"), Some("participant"));
}

#[tokio::test]
async fn xep0045_7_2_enter_room() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    let got = join(&mut b, &room("lounge"), "Bob").await;
    // §7.2.3: existing occupants first, self-presence (110) last among presences, then subject.
    let presences: Vec<&Element> = got.iter().filter(|e| e.name() == "presence").collect();
    assert_eq!(
        presences.len(),
        2,
        "{:?}",
        got.iter().map(xml::to_string).collect::<Vec<_>>()
    );
    assert_eq!(
        presences[0].attr("from"),
        Some(format!("{}/Alice", room("lounge")).as_str())
    );
    let alice_item = item(presences[0]).unwrap();
    assert_eq!(alice_item.attr("affiliation"), Some("owner"));
    // Semi-anonymous: a participant does not see real JIDs.
    assert_eq!(alice_item.attr("jid"), None);
    assert_eq!(
        presences[1].attr("from"),
        Some(format!("{}/Bob", room("lounge")).as_str())
    );
    assert!(codes(presences[1]).contains(&110));
    assert!(!codes(presences[1]).contains(&100));
    // XEP-0421 occupant ids.
    let bob_id = presences[1]
        .get_child("occupant-id", NS_OCCUPANT_ID)
        .expect("occupant-id");
    assert!(!bob_id.attr("id").unwrap_or("").is_empty());
    assert!(is_subject(got.last().unwrap()));
    // Alice (moderator) learns of Bob, with his real JID.
    let p = a
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some(&format!("{}/Bob", room("lounge"))))
        .await;
    assert_eq!(item(&p).unwrap().attr("jid"), Some(b.jid().to_string().as_str()));
    assert_eq!(
        p.get_child("occupant-id", NS_OCCUPANT_ID).unwrap().attr("id"),
        bob_id.attr("id")
    );
}

#[tokio::test]
async fn xep0045_7_2_9_nick_conflict() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    let got = join(&mut b, &room("lounge"), "Alice").await;
    let err = got.last().unwrap();
    assert_eq!(err.name(), "presence");
    xml::assert_stanza_error(err, &["conflict"]);
    // §7.2.1: no nickname.
    b.send_xml(&format!(
        "<presence to='{}'><x xmlns='{NS_MUC}'/></presence>",
        room("lounge")
    ))
    .await;
    let err = b
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&err, &["jid-malformed"]);
}

#[tokio::test]
async fn xep0045_7_2_multi_session_nick() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut a2 = s.client_jid("alice@localhost/second", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    let got = join(&mut a2, &room("lounge"), "Alice").await;
    assert!(
        got.iter().any(|e| codes(e).contains(&110)),
        "second session joins the same occupant"
    );
    join(&mut b, &room("lounge"), "Bob").await;
    // Both sessions get the room's messages; Bob sees one occupant named Alice.
    say(&mut b, &room("lounge"), "hello both").await;
    groupchat_body(&mut a, "hello both").await;
    groupchat_body(&mut a2, "hello both").await;
    // One session leaving keeps the occupant.
    a2.send_xml(&format!(
        "<presence type='unavailable' to='{}/Alice'/>",
        room("lounge")
    ))
    .await;
    let own = a2.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    assert!(codes(&own).contains(&110));
    say(&mut b, &room("lounge"), "still there").await;
    groupchat_body(&mut a, "still there").await;
    b.ping_server().await;
    let alice_nick = format!("{}/Alice", room("lounge"));
    b.expect_none(SHORT, "unavailable presence of Alice", |e| {
        e.name() == "presence"
            && e.attr("from") == Some(alice_nick.as_str())
            && e.attr("type") == Some("unavailable")
    })
    .await;
}

#[tokio::test]
async fn xep0045_7_4_groupchat_message() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    say(&mut b, &room("lounge"), "hi all").await;
    for cl in [&mut a, &mut b] {
        let m = groupchat_body(cl, "hi all").await;
        assert_eq!(m.attr("from"), Some(format!("{}/Bob", room("lounge")).as_str()));
        assert_eq!(m.attr("type"), Some("groupchat"));
        assert_eq!(m.attr("id"), Some("m-hi all"));
        assert!(m.get_child("occupant-id", NS_OCCUPANT_ID).is_some());
    }
    // §7.4: a non-occupant cannot send.
    say(&mut c, &room("lounge"), "intruder").await;
    let e = c.wait_for(|e| e.name() == "message").await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
    a.expect_no_message(SHORT).await;
}

#[tokio::test]
async fn xep0045_7_5_private_message() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    b.send_xml(&format!(
        "<message type='chat' to='{}/Alice'><body>psst</body></message>",
        room("lounge")
    ))
    .await;
    let m = a.expect_message().await;
    assert_eq!(m.attr("from"), Some(format!("{}/Bob", room("lounge")).as_str()));
    assert_eq!(body(&m).as_deref(), Some("psst"));
    assert!(m.get_child("x", NS_USER).is_some());
    // To a nick not in the room.
    b.send_xml(&format!(
        "<message type='chat' to='{}/Nobody'><body>x</body></message>",
        room("lounge")
    ))
    .await;
    let e = b.expect_message().await;
    xml::assert_stanza_error(&e, &["item-not-found"]);
    // From a non-occupant.
    c.send_xml(&format!(
        "<message type='chat' to='{}/Alice'><body>x</body></message>",
        room("lounge")
    ))
    .await;
    let e = c.expect_message().await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
    // groupchat type to an occupant is refused.
    b.send_xml(&format!(
        "<message type='groupchat' to='{}/Alice'><body>x</body></message>",
        room("lounge")
    ))
    .await;
    let e = b.expect_message().await;
    xml::assert_stanza_error(&e, &["bad-request"]);
}

#[tokio::test]
async fn xep0045_7_6_change_nick() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    // Conflict with Alice.
    b.send_xml(&format!("<presence to='{}/Alice'/>", room("lounge")))
        .await;
    let e = b
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["conflict"]);
    b.send_xml(&format!("<presence to='{}/Robert'/>", room("lounge")))
        .await;
    for (cl, own) in [(&mut b, true), (&mut a, false)] {
        let u = cl
            .wait_for(|e| {
                e.attr("type") == Some("unavailable")
                    && e.attr("from") == Some(&format!("{}/Bob", room("lounge")))
            })
            .await;
        assert!(codes(&u).contains(&303));
        assert_eq!(codes(&u).contains(&110), own);
        assert_eq!(item(&u).unwrap().attr("nick"), Some("Robert"));
        let p = cl
            .wait_for(|e| {
                e.name() == "presence" && e.attr("from") == Some(&format!("{}/Robert", room("lounge")))
            })
            .await;
        assert_eq!(p.attr("type"), None);
        assert_eq!(codes(&p).contains(&110), own);
    }
    say(&mut b, &room("lounge"), "renamed").await;
    let m = groupchat_body(&mut a, "renamed").await;
    assert_eq!(
        m.attr("from"),
        Some(format!("{}/Robert", room("lounge")).as_str())
    );
}

#[tokio::test]
async fn xep0045_7_14_exit_room() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    b.send_xml(&format!(
        "<presence type='unavailable' to='{}/Bob'><status>bye</status></presence>",
        room("lounge")
    ))
    .await;
    let own = b.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    assert!(codes(&own).contains(&110));
    assert_eq!(item(&own).unwrap().attr("role"), Some("none"));
    let seen = a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    assert_eq!(
        seen.attr("from"),
        Some(format!("{}/Bob", room("lounge")).as_str())
    );
    assert_eq!(
        seen.get_child("status", ns::CLIENT).map(|s| s.text()).as_deref(),
        Some("bye")
    );
    // Now not an occupant.
    say(&mut b, &room("lounge"), "gone").await;
    let e = b.expect_message().await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
    // A disconnect is an exit too.
    join(&mut b, &room("lounge"), "Bob").await;
    b.close().await;
    let seen = a
        .wait_for(|e| {
            e.attr("type") == Some("unavailable")
                && e.attr("from") == Some(&format!("{}/Bob", room("lounge")))
        })
        .await;
    assert_eq!(item(&seen).unwrap().attr("role"), Some("none"));
}

#[tokio::test]
async fn xep0045_10_1_temporary_room_destroyed_when_empty() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    say(&mut a, &room("lounge"), "before").await;
    groupchat_body(&mut a, "before").await;
    a.send_xml(&format!(
        "<presence type='unavailable' to='{}/Alice'/>",
        room("lounge")
    ))
    .await;
    a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    // Gone: not listed, and Bob creates a fresh room (201) without the old history.
    let r = b
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    let got = join(&mut b, &room("lounge"), "Bob").await;
    assert!(got.iter().any(|e| codes(e).contains(&201)));
    assert!(!got.iter().any(|e| body(e).is_some()));
}

#[tokio::test]
async fn xep0045_8_1_subject() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    a.send_xml(&format!(
        "<message type='groupchat' to='{}'><subject>Tea time</subject></message>",
        room("lounge")
    ))
    .await;
    let m = b.wait_for(is_subject).await;
    assert_eq!(m.get_child("subject", ns::CLIENT).unwrap().text(), "Tea time");
    assert_eq!(m.attr("from"), Some(format!("{}/Alice", room("lounge")).as_str()));
    // A participant may not change it by default.
    b.send_xml(&format!(
        "<message type='groupchat' to='{}'><subject>Coffee</subject></message>",
        room("lounge")
    ))
    .await;
    let e = b.wait_for(|e| e.attr("type") == Some("error")).await;
    xml::assert_stanza_error(&e, &["forbidden"]);
    // A new occupant gets it last.
    let mut b2 = s.client_jid("bob@localhost/other", PW).await;
    let got = join(&mut b2, &room("lounge"), "Bob2").await;
    assert_eq!(
        got.last()
            .unwrap()
            .get_child("subject", ns::CLIENT)
            .unwrap()
            .text(),
        "Tea time"
    );
}

#[tokio::test]
async fn xep0045_7_2_13_history() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    create(&mut a, "lounge", "Alice").await;
    for i in 0..5 {
        say(&mut a, &room("lounge"), &format!("m{i}")).await;
        groupchat_body(&mut a, &format!("m{i}")).await;
    }
    let mut b = s.client("bob", PW).await;
    let got = join(&mut b, &room("lounge"), "Bob").await;
    let bodies: Vec<String> = got.iter().filter_map(body).collect();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
    let first = got.iter().find(|e| body(e).is_some()).unwrap();
    let delay = first
        .get_child("delay", "urn:xmpp:delay")
        .expect("XEP-0203 delay");
    assert_eq!(delay.attr("from"), Some(room("lounge").as_str()));
    assert!(delay.attr("stamp").is_some());
    assert_eq!(
        first.attr("from"),
        Some(format!("{}/Alice", room("lounge")).as_str())
    );
    // The subject comes after the history.
    assert!(is_subject(got.last().unwrap()));
    // §7.2.14 limits.
    for (extra, want) in [
        ("<history maxstanzas='2'/>", vec!["m3", "m4"]),
        ("<history maxstanzas='0'/>", vec![]),
        ("<history maxchars='0'/>", vec![]),
        ("<history seconds='3600'/>", vec!["m0", "m1", "m2", "m3", "m4"]),
        ("<history since='2099-01-01T00:00:00Z'/>", vec![]),
        (
            "<history since='2000-01-01T00:00:00Z' maxstanzas='1'/>",
            vec!["m4"],
        ),
    ] {
        let mut c = s.client_jid("bob@localhost/h", PW).await;
        let got = join_with(&mut c, &room("lounge"), "Hist", extra).await;
        let bodies: Vec<String> = got.iter().filter_map(body).collect();
        assert_eq!(bodies, want, "{extra}");
        c.close().await;
        a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    }
}

#[tokio::test]
async fn xep0045_6_4_room_info_and_items() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    let info = b
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let q = info.get_child("query", INFO).expect("room info");
    let features: Vec<_> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "muc_temporary",
        "muc_public",
        "muc_open",
        "muc_unmoderated",
        "muc_unsecured",
        "muc_semianonymous",
    ] {
        assert!(features.contains(&f), "{f} in {features:?}");
    }
    let form = q.get_child("x", "jabber:x:data").expect("muc#roominfo form");
    assert!(
        form.children()
            .any(|f| f.attr("var") == Some("muc#roominfo_occupants"))
    );
    let items = b.iq("get", Some(MUC), &format!("<query xmlns='{ITEMS}'/>")).await;
    let q = items.get_child("query", ITEMS).unwrap();
    assert!(
        q.children()
            .any(|i| i.attr("jid") == Some(room("lounge").as_str())),
        "{}",
        xml::to_string(&items)
    );
}

#[tokio::test]
async fn xep0045_7_14_unavailable_broadcast_leaves_rooms() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    b.send_xml("<presence type='unavailable'/>").await;
    let seen = a
        .wait_for(|e| {
            e.attr("type") == Some("unavailable")
                && e.attr("from") == Some(&format!("{}/Bob", room("lounge")))
        })
        .await;
    assert_eq!(item(&seen).unwrap().attr("role"), Some("none"));
}

#[tokio::test]
async fn xep0045_10_1_creation_policy() {
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = "[muc]\ncreators = \"admins\"\n".into();
    })
    .await;
    s.add_user("alice", PW).await;
    let mut a = s.client("alice", PW).await;
    let got = join(&mut a, &room("lounge"), "Alice").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-allowed"]);
}

#[tokio::test]
async fn xep0045_7_2_non_anonymous_room_status_100() {
    let s = server(&["alice", "bob"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    join(&mut a, &room("open"), "Alice").await;
    let r = a
        .iq(
            "set",
            Some(&room("open")),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_whois'><value>anyone</value></field></x></query>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got = join(&mut b, &room("open"), "Bob").await;
    let own = got.iter().find(|e| codes(e).contains(&110)).unwrap();
    assert!(codes(own).contains(&100), "{}", xml::to_string(own));
    // Everyone sees real JIDs.
    let alice = got
        .iter()
        .find(|e| e.attr("from") == Some(&format!("{}/Alice", room("open"))))
        .unwrap();
    assert_eq!(
        item(alice).unwrap().attr("jid"),
        Some(a.jid().to_string().as_str())
    );
}

#[tokio::test]
async fn xep0045_7_5_iq_between_occupants() {
    let s = server(&["alice", "bob", "carol"]).await;
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    create(&mut a, "lounge", "Alice").await;
    join(&mut b, &room("lounge"), "Bob").await;
    b.send_xml(&format!(
        "<iq type='get' id='q1' to='{}/Alice'><query xmlns='urn:example:q'/></iq>",
        room("lounge")
    ))
    .await;
    let req = a
        .wait_for(|e| e.name() == "iq" && e.attr("type") == Some("get"))
        .await;
    // Forwarded from Bob's room JID: his real JID stays hidden.
    assert_eq!(req.attr("from"), Some(format!("{}/Bob", room("lounge")).as_str()));
    let id = req.attr("id").unwrap().to_owned();
    a.send_xml(&format!(
        "<iq type='result' id='{id}' to='{}/Bob'><query xmlns='urn:example:q'><answer/></query></iq>",
        room("lounge")
    ))
    .await;
    let res = b
        .wait_for(|e| e.name() == "iq" && e.attr("id") == Some("q1"))
        .await;
    assert_eq!(res.attr("type"), Some("result"));
    assert_eq!(
        res.attr("from"),
        Some(format!("{}/Alice", room("lounge")).as_str())
    );
    assert!(
        res.get_child("query", "urn:example:q")
            .unwrap()
            .has_child("answer", "urn:example:q")
    );
    // Non-occupants and unknown nicks are refused.
    let r = c
        .iq(
            "get",
            Some(&format!("{}/Alice", room("lounge"))),
            "<query xmlns='urn:example:q'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    let r = b
        .iq(
            "get",
            Some(&format!("{}/Nobody", room("lounge"))),
            "<query xmlns='urn:example:q'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

#[tokio::test]
async fn xep0045_6_3_hidden_rooms_not_listed() {
    let s = server(&["alice"]).await;
    let mut a = s.client("alice", PW).await;
    join(&mut a, &room("secret"), "Alice").await;
    // Locked rooms are not listed.
    let items = a.iq("get", Some(MUC), &format!("<query xmlns='{ITEMS}'/>")).await;
    assert_eq!(items.get_child("query", ITEMS).unwrap().children().count(), 0);
    let r = a
        .iq(
            "set",
            Some(&room("secret")),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_publicroom'><value>0</value></field></x></query>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let items = a.iq("get", Some(MUC), &format!("<query xmlns='{ITEMS}'/>")).await;
    assert_eq!(items.get_child("query", ITEMS).unwrap().children().count(), 0);
    let info = a
        .iq("get", Some(&room("secret")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let q = info.get_child("query", INFO).unwrap();
    assert!(q.children().any(|f| f.attr("var") == Some("muc_hidden")));
}

#[tokio::test]
async fn xep0045_10_1_rooms_per_user() {
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = "[muc]\nrooms_per_user = 1\n".into();
    })
    .await;
    s.add_user("alice", PW).await;
    let mut a = s.client("alice", PW).await;
    create(&mut a, "one", "Alice").await;
    let got = join(&mut a, &room("two"), "Alice").await;
    xml::assert_stanza_error(got.last().unwrap(), &["resource-constraint"]);
    // Once the first room is gone, another may be created.
    a.send_xml(&format!(
        "<presence type='unavailable' to='{}/Alice'/>",
        room("one")
    ))
    .await;
    a.wait_for(|e| e.attr("type") == Some("unavailable")).await;
    let got = join(&mut a, &room("two"), "Alice").await;
    assert!(got.iter().any(|e| codes(e).contains(&201)));
}
