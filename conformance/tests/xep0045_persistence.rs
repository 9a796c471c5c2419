//! XEP-0045 persistent rooms across a server restart (§10.2 persistentroom): configuration,
//! affiliations and subject come back from SQL when the room is next addressed.

use conformance::muc::*;
use conformance::{Element, TestServer, ns, xml};

const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";

async fn ok(r: Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

#[tokio::test]
async fn xep0045_10_2_persistent_room_survives_restart() {
    let mut s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.add_user(u, PW).await;
    }
    {
        let mut a = s.client("alice", PW).await;
        join_with(&mut a, &room("lounge"), "Alice", "").await;
        ok(a.iq(
            "set",
            Some(&room("lounge")),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
                 <field var='muc#roomconfig_roomname'><value>The Lounge</value></field>\
                 <field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>\
                 <field var='muc#roomconfig_roomsecret'><value>pw</value></field></x></query>"
            ),
        )
        .await)
        .await;
        ok(a.iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_ADMIN}'><item affiliation='outcast' jid='carol@localhost'/><item affiliation='admin' jid='bob@localhost'/></query>"),
        )
        .await)
            .await;
        a.send_xml(&format!(
            "<message type='groupchat' to='{}'><subject>Kept subject</subject></message>",
            room("lounge")
        ))
        .await;
        a.wait_for(is_subject).await;
        // A temporary room is not kept.
        join_with(&mut a, &room("temp"), "Alice", "").await;
        ok(a.iq(
            "set",
            Some(&room("temp")),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await)
        .await;
        a.close().await;
    }
    s.restart().await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    // Found by disco before anyone enters.
    let info = b
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let q = info.get_child("query", INFO).expect("room info after restart");
    let id = q.get_child("identity", INFO).unwrap();
    assert_eq!(id.attr("name"), Some("The Lounge"));
    assert!(q.children().any(|f| f.attr("var") == Some("muc_persistent")));
    assert!(
        q.children()
            .any(|f| f.attr("var") == Some("muc_passwordprotected"))
    );
    let r = b
        .iq("get", Some(&room("temp")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    // Password, affiliations and subject were kept.
    let got = join_with(&mut b, &room("lounge"), "Bob", "").await;
    xml::assert_stanza_error(got.last().unwrap(), &["not-authorized"]);
    let got = join_with(&mut b, &room("lounge"), "Bob", "<password>pw</password>").await;
    let own = got.iter().find(|e| codes(e).contains(&110)).expect("joined");
    assert!(!codes(own).contains(&201));
    let it = own
        .get_child("x", NS_USER)
        .unwrap()
        .get_child("item", NS_USER)
        .unwrap();
    assert_eq!(it.attr("affiliation"), Some("admin"));
    assert_eq!(
        got.last()
            .unwrap()
            .get_child("subject", ns::CLIENT)
            .unwrap()
            .text(),
        "Kept subject"
    );
    let got = join_with(&mut c, &room("lounge"), "Carol", "<password>pw</password>").await;
    xml::assert_stanza_error(got.last().unwrap(), &["forbidden"]);
    // Listed by the service once loaded.
    let items = b.iq("get", Some(MUC), &format!("<query xmlns='{ITEMS}'/>")).await;
    assert!(
        items
            .get_child("query", ITEMS)
            .unwrap()
            .children()
            .any(|i| i.attr("jid") == Some(room("lounge").as_str()))
    );
}

#[tokio::test]
async fn xep0045_10_9_destroyed_persistent_room_is_forgotten() {
    let mut s = TestServer::start().await;
    s.add_user("alice", PW).await;
    {
        let mut a = s.client("alice", PW).await;
        join_with(&mut a, &room("lounge"), "Alice", "").await;
        ok(a.iq(
            "set",
            Some(&room("lounge")),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>"
            ),
        )
        .await)
        .await;
        ok(a.iq(
            "set",
            Some(&room("lounge")),
            &format!("<query xmlns='{NS_OWNER}'><destroy/></query>"),
        )
        .await)
        .await;
        a.close().await;
    }
    s.restart().await;
    let mut a = s.client("alice", PW).await;
    let r = a
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    let got = join_with(&mut a, &room("lounge"), "Alice", "").await;
    assert!(got.iter().any(|e| codes(e).contains(&201)));
}

/// Creates a persistent room `name` owned by `a` with `extra` configuration fields.
async fn persistent_room(a: &mut conformance::XmppClient, name: &str, extra: &str) {
    join_with(a, &room(name), "Alice", "").await;
    ok(a.iq(
        "set",
        Some(&room(name)),
        &format!(
            "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='muc#roomconfig_persistentroom'><value>1</value></field>{extra}</x></query>"
        ),
    )
    .await)
    .await;
}

#[tokio::test]
async fn xep0045_7_2_13_history_survives_restart() {
    let mut s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.add_user(u, PW).await;
    }
    {
        let mut a = s.client("alice", PW).await;
        persistent_room(
            &mut a,
            "lounge",
            "<field var='muc#roomconfig_historylength'><value>3</value></field>",
        )
        .await;
        for i in 0..5 {
            a.send_xml(&format!(
                "<message type='groupchat' to='{}'><body>m{i}</body></message>",
                room("lounge")
            ))
            .await;
            a.wait_for(|e| body(e) == Some(format!("m{i}"))).await;
        }
        a.close().await;
    }
    s.restart().await;
    let mut b = s.client("bob", PW).await;
    let got = join_with(&mut b, &room("lounge"), "Bob", "").await;
    // The last three, oldest first, still stamped from the room.
    let replayed: Vec<_> = got.iter().filter_map(body).collect();
    assert_eq!(replayed, ["m2", "m3", "m4"]);
    let first = got.iter().find(|e| body(e).is_some()).unwrap();
    assert_eq!(
        first.attr("from"),
        Some(format!("{}/Alice", room("lounge")).as_str())
    );
    let delay = first.get_child("delay", "urn:xmpp:delay").expect("delay");
    assert_eq!(delay.attr("from"), Some(room("lounge").as_str()));
    // A limit asked on joining still applies.
    let mut b2 = s.client_jid("bob@localhost/other", PW).await;
    let got = join_with(&mut b2, &room("lounge"), "Bob2", "<history maxstanzas='1'/>").await;
    let replayed: Vec<_> = got.iter().filter_map(body).collect();
    assert_eq!(replayed, ["m4"]);
}

#[tokio::test]
async fn xep0045_7_10_registration_survives_restart() {
    let mut s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.add_user(u, PW).await;
    }
    {
        let mut a = s.client("alice", PW).await;
        persistent_room(&mut a, "guild", "").await;
        let mut b = s.client("bob", PW).await;
        ok(b.iq(
            "set",
            Some(&room("guild")),
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
             <field var='muc#register_roomnick'><value>Bobby</value></field></x></query>",
        )
        .await)
        .await;
        a.close().await;
        b.close().await;
    }
    s.restart().await;
    let mut b = s.client("bob", PW).await;
    let mut c = s.client("carol", PW).await;
    let r = b
        .iq(
            "get",
            Some(&room("guild")),
            &format!("<query xmlns='{INFO}' node='x-roomuser-item'/>"),
        )
        .await;
    let id = r
        .get_child("query", INFO)
        .and_then(|q| q.get_child("identity", INFO))
        .expect("reserved nick after restart");
    assert_eq!(id.attr("name"), Some("Bobby"));
    let got = join_with(&mut c, &room("guild"), "Bobby", "").await;
    xml::assert_stanza_error(got.last().unwrap(), &["conflict"]);
    let got = join_with(&mut b, &room("guild"), "Bobby", "").await;
    let own = got.iter().find(|e| codes(e).contains(&110)).expect("joined");
    assert_eq!(item(own).unwrap().attr("affiliation"), Some("member"));
}
