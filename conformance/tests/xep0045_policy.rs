//! XEP-0045 service policy set in `[muc]`: who may make rooms persistent (§10.2), the length
//! of room addresses (§10.1.1), room names and descriptions (§10.2) and nicknames (§7.2, §7.6,
//! §7.10).

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, xml};

const DATA: &str = "jabber:x:data";

async fn policy_server(muc: &str) -> TestServer {
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = format!("[muc]\n{muc}\n");
        cfg.admins = vec!["admin@localhost".into()];
    })
    .await;
    for u in ["alice", "admin"] {
        s.add_user(u, PW).await;
    }
    s
}

async fn configure(c: &mut XmppClient, name: &str, fields: &[(&str, &str)]) -> Element {
    let mut x = String::new();
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='muc#roomconfig_{var}'><value>{}</value></field>",
            xml::escape(value)
        ));
    }
    c.iq(
        "set",
        Some(&room(name)),
        &format!("<query xmlns='{NS_OWNER}'><x xmlns='{DATA}' type='submit'>{x}</x></query>"),
    )
    .await
}

fn created(got: &[Element]) -> bool {
    got.iter().any(|e| codes(e).contains(&201))
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

#[tokio::test]
async fn xep0045_10_2_persistent_rooms_by_admins_only() {
    let s = policy_server("persistent_creators = \"admins\"").await;
    let mut alice = s.client("alice", PW).await;
    assert!(created(&join(&mut alice, &room("lounge"), "Alice").await));
    // §10.2: a value the service does not accept refuses the whole form.
    let r = configure(
        &mut alice,
        "lounge",
        &[("roomname", "Lounge"), ("persistentroom", "1")],
    )
    .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    let info = alice
        .iq(
            "get",
            Some(&room("lounge")),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let temporary = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .any(|f| f.attr("var") == Some("muc_temporary"));
    assert!(temporary, "{}", xml::to_string(&info));
    // The same form without persistence is accepted.
    ok(&configure(&mut alice, "lounge", &[("roomname", "Lounge")]).await);
    // An administrator may.
    let mut admin = s.client("admin", PW).await;
    assert!(created(&join(&mut admin, &room("kept"), "Admin").await));
    ok(&configure(&mut admin, "kept", &[("persistentroom", "1")]).await);
}

#[tokio::test]
async fn xep0045_10_1_1_room_address_length() {
    let s = policy_server("max_room_address_length = 8").await;
    let mut alice = s.client("alice", PW).await;
    let got = join(&mut alice, &room("ninechars"), "Alice").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-acceptable"]);
    assert!(created(&join(&mut alice, &room("eightchr"), "Alice").await));
}

#[tokio::test]
async fn xep0045_10_2_room_name_and_description_length() {
    let s = policy_server("max_room_name_length = 5\nmax_description_length = 10").await;
    let mut alice = s.client("alice", PW).await;
    assert!(created(&join(&mut alice, &room("lounge"), "Alice").await));
    let r = configure(&mut alice, "lounge", &[("roomname", "Lounge")]).await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    let r = configure(&mut alice, "lounge", &[("roomdesc", "Far too long")]).await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    // Characters, not bytes: five non-ASCII characters fit.
    ok(&configure(
        &mut alice,
        "lounge",
        &[("roomname", "Lüñgé"), ("roomdesc", "Chat here")],
    )
    .await);
}

#[tokio::test]
async fn xep0045_7_2_nickname_length() {
    let s = policy_server("max_nick_length = 4").await;
    let mut alice = s.client("alice", PW).await;
    // Creating the room with a nickname too long creates nothing.
    let got = join(&mut alice, &room("lounge"), "Alice").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-acceptable"]);
    assert!(created(&join(&mut alice, &room("lounge"), "Ali").await));
    ok(&configure(&mut alice, "lounge", &[]).await);
    // §7.6: changing to a nickname too long.
    alice
        .send_xml(&format!("<presence to='{}/Alice'/>", room("lounge")))
        .await;
    let e = alice.wait_for(|e| e.name() == "presence").await;
    xml::assert_stanza_error(&e, &["not-acceptable"]);
    // §7.10: reserving one.
    let r = alice
        .iq(
            "set",
            Some(&room("lounge")),
            &format!(
                "<query xmlns='jabber:iq:register'><x xmlns='{DATA}' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
                 <field var='muc#register_roomnick'><value>Alice</value></field></x></query>"
            ),
        )
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
}
