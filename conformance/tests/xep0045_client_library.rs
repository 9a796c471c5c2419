//! XEP-0045 as a client library sees it: stanzas are built and parsed with xmpp-parsers (the
//! xmpp-rs types tokio-xmpp clients use) rather than written by hand, so every room stanza
//! must satisfy that library's schema checks. A session from start to end: create a
//! persistent room, chat, kick (§8.2), ban (§9.1), restart the server, and find the room,
//! its history and the ban again.

use std::str::FromStr;

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, xml};
use xmpp_parsers::delay::Delay;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::message::{Lang, Message, MessageType};
use xmpp_parsers::muc::user::{Affiliation, Role, Status};
use xmpp_parsers::muc::{Muc, MucUser};
use xmpp_parsers::presence::{Presence, Type as PresenceType};

fn occupant(room_name: &str, nick: &str) -> FullJid {
    FullJid::from_str(&format!("{}/{nick}", room(room_name))).expect("occupant JID")
}

/// Enters `room_name` as `nick` with the library's `<x xmlns='muc'/>` payload.
async fn enter(c: &mut XmppClient, room_name: &str, nick: &str) -> Vec<Element> {
    let presence = Presence::available()
        .with_to(occupant(room_name, nick))
        .with_payload(Muc::new());
    c.send(presence.into()).await;
    let mut got = Vec::new();
    loop {
        let e = c.recv().await;
        let done = is_subject(&e) || e.attr("type") == Some("error");
        got.push(e);
        if done {
            return got;
        }
    }
}

/// Parses a room presence with the library: the presence and its muc#user payload.
fn parse_presence(e: &Element) -> (Presence, MucUser) {
    let p = Presence::try_from(e.clone()).unwrap_or_else(|err| panic!("{err:?}: {}", xml::to_string(e)));
    let user = p
        .payloads
        .iter()
        .find_map(|pl| MucUser::try_from(pl.clone()).ok())
        .unwrap_or_else(|| panic!("no muc#user: {}", xml::to_string(e)));
    (p, user)
}

fn own(got: &[Element]) -> MucUser {
    let e = got
        .iter()
        .find(|e| e.name() == "presence" && codes(e).contains(&110))
        .expect("self-presence");
    parse_presence(e).1
}

async fn say(c: &mut XmppClient, room_name: &str, text: &str) {
    let to = Jid::from(BareJid::from_str(&room(room_name)).unwrap());
    let m = Message::groupchat(Some(to)).with_body(Lang(String::new()), text.to_string());
    c.send(m.into()).await;
}

fn parse_message(e: &Element) -> Message {
    Message::try_from(e.clone()).unwrap_or_else(|err| panic!("{err:?}: {}", xml::to_string(e)))
}

fn text(m: &Message) -> Option<String> {
    m.get_best_body_cloned(vec![]).map(|(_, b)| b)
}

async fn admin(c: &mut XmppClient, room_name: &str, item: &str) {
    let r = c
        .iq(
            "set",
            Some(&room(room_name)),
            &format!("<query xmlns='{NS_ADMIN}'>{item}</query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

/// Waits for the unavailable presence `c` gets about itself, parsed.
async fn removed(c: &mut XmppClient) -> MucUser {
    let e = c
        .wait_for(|e| {
            e.name() == "presence" && e.attr("type") == Some("unavailable") && codes(e).contains(&110)
        })
        .await;
    let (p, user) = parse_presence(&e);
    assert_eq!(p.type_, PresenceType::Unavailable);
    user
}

#[tokio::test]
async fn xep0045_client_library_session_survives_restart() {
    let mut s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.add_user(u, PW).await;
    }
    {
        let mut a = s.client("alice", PW).await;
        let mut b = s.client("bob", PW).await;
        // §10.1: the creator is the owner, told the room is new.
        let user = own(&enter(&mut a, "tavern", "Alice").await);
        assert!(user.status.contains(&Status::RoomHasBeenCreated));
        assert!(user.status.contains(&Status::SelfPresence));
        assert_eq!(user.items[0].affiliation, Affiliation::Owner);
        assert_eq!(user.items[0].role, Role::Moderator);
        let r = a
            .iq(
                "set",
                Some(&room("tavern")),
                &format!(
                    "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                     <field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>"
                ),
            )
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
        // Bob enters and chats.
        let user = own(&enter(&mut b, "tavern", "Bob").await);
        assert_eq!(user.items[0].role, Role::Participant);
        say(&mut b, "tavern", "a round for everyone").await;
        let m = a
            .wait_for(|e| e.name() == "message" && body(e).as_deref() == Some("a round for everyone"))
            .await;
        let m = parse_message(&m);
        assert_eq!(m.type_, MessageType::Groupchat);
        assert_eq!(m.from, Some(Jid::from(occupant("tavern", "Bob"))));
        // §8.2: kicked.
        admin(
            &mut a,
            "tavern",
            "<item nick='Bob' role='none'><reason>closing time</reason></item>",
        )
        .await;
        let user = removed(&mut b).await;
        assert!(user.status.contains(&Status::Kicked));
        assert_eq!(user.items[0].role, Role::None);
        assert_eq!(
            user.items[0].reason.as_ref().map(|r| r.0.as_str()),
            Some("closing time")
        );
        // Back in, then §9.1: banned.
        own(&enter(&mut b, "tavern", "Bob").await);
        admin(
            &mut a,
            "tavern",
            "<item affiliation='outcast' jid='bob@localhost'/>",
        )
        .await;
        let user = removed(&mut b).await;
        assert!(user.status.contains(&Status::Banned));
        assert_eq!(user.items[0].affiliation, Affiliation::Outcast);
        let got = enter(&mut b, "tavern", "Bob").await;
        xml::assert_stanza_error(got.last().unwrap(), &["forbidden"]);
        say(&mut a, "tavern", "last orders").await;
        a.wait_for(|e| body(e).as_deref() == Some("last orders")).await;
        a.close().await;
        b.close().await;
    }
    s.restart().await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    // The ban was kept.
    let got = enter(&mut b, "tavern", "Bob").await;
    xml::assert_stanza_error(got.last().unwrap(), &["forbidden"]);
    // Carol gets the history, stamped with XEP-0203 delays from the room.
    let got = enter(&mut c, "tavern", "Carol").await;
    let user = own(&got);
    assert!(!user.status.contains(&Status::RoomHasBeenCreated));
    let history: Vec<Message> = got
        .iter()
        .filter(|e| e.name() == "message" && body(e).is_some())
        .map(parse_message)
        .collect();
    let texts: Vec<_> = history.iter().filter_map(text).collect();
    assert_eq!(texts, ["a round for everyone", "last orders"]);
    for m in &history {
        let delay = m
            .payloads
            .iter()
            .find_map(|p| Delay::try_from(p.clone()).ok())
            .expect("delay");
        assert_eq!(
            delay.from,
            Some(Jid::from(BareJid::from_str(&room("tavern")).unwrap()))
        );
    }
}
