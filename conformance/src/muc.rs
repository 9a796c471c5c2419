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
