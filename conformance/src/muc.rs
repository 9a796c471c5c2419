//! Helpers shared by the XEP-0045 tests: addresses, status codes, and joining a room.

use crate::{Element, TestServer, XmppClient, ns};

pub const PW: &str = "passw0rd";
pub const MUC: &str = "conference.localhost";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";

/// A server with these users, all with password [`PW`].
pub async fn server(users: &[&str]) -> TestServer {
    let s = TestServer::start().await;
    for u in users {
        s.add_user(u, PW).await;
    }
    s
}

/// The bare JID of room `name` on the MUC service.
pub fn room(name: &str) -> String {
    format!("{name}@{MUC}")
}

/// The muc#user status codes of a stanza.
pub fn codes(e: &Element) -> Vec<u16> {
    e.get_child("x", NS_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.is("status", NS_USER))
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The muc#user `<item/>` of a stanza.
pub fn item(e: &Element) -> Option<&Element> {
    e.get_child("x", NS_USER)?.get_child("item", NS_USER)
}

pub fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

/// The subject message, the last thing a join sends (§7.2.15).
pub fn is_subject(e: &Element) -> bool {
    e.name() == "message" && e.get_child("subject", ns::CLIENT).is_some() && body(e).is_none()
}

/// Sends a join presence (`extra` goes inside the muc `<x/>`) and collects everything up to
/// and including the subject message, or the error.
pub async fn join_with(c: &mut XmppClient, room_jid: &str, nick: &str, extra: &str) -> Vec<Element> {
    c.send_xml(&format!(
        "<presence to='{room_jid}/{nick}'><x xmlns='{NS_MUC}'>{extra}</x></presence>"
    ))
    .await;
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

pub async fn join(c: &mut XmppClient, room_jid: &str, nick: &str) -> Vec<Element> {
    join_with(c, room_jid, nick, "").await
}

/// Asserts that an IQ answer is a result.
pub fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", crate::xml::to_string(r));
}

/// Whether a join's answers include the self-presence (status 110).
pub fn joined(got: &[Element]) -> bool {
    got.iter().any(|e| codes(e).contains(&110))
}

/// Submits room `name`'s configuration form with `fields` ((var without the
/// `muc#roomconfig_` prefix, value)); returns the answer.
pub async fn configure(c: &mut XmppClient, name: &str, fields: &[(&str, &str)]) -> Element {
    let mut x = String::new();
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='muc#roomconfig_{var}'><value>{}</value></field>",
            crate::xml::escape(value)
        ));
    }
    c.iq(
        "set",
        Some(&room(name)),
        &format!(
            "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{x}</x></query>"
        ),
    )
    .await
}

/// Creates room `name` owned by `c` (status 201) and configures it with `fields`.
pub async fn create(c: &mut XmppClient, name: &str, nick: &str, fields: &[(&str, &str)]) {
    let got = join(c, &room(name), nick).await;
    assert!(got.iter().any(|e| codes(e).contains(&201)));
    ok(&configure(c, name, fields).await);
}

/// A muc#admin set with `items`; returns the answer.
pub async fn admin(c: &mut XmppClient, name: &str, items: &str) -> Element {
    c.iq(
        "set",
        Some(&room(name)),
        &format!("<query xmlns='{NS_ADMIN}'>{items}</query>"),
    )
    .await
}

/// Registers with room `name` under `nick` (§7.10, a submitted muc#register form); returns
/// the answer.
pub async fn register(c: &mut XmppClient, name: &str, nick: &str) -> Element {
    c.iq(
        "set",
        Some(&room(name)),
        &format!(
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
             <field var='muc#register_roomnick'><value>{}</value></field></x></query>",
            crate::xml::escape(nick)
        ),
    )
    .await
}
