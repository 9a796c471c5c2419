//! XEP-0045 §6.3 room discovery on the service: public rooms, loaded or only stored, paged
//! with XEP-0059 Result Set Management.

use conformance::muc::*;
use conformance::{Element, TestServer, XmppClient, xml};

const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";
const RSM: &str = "http://jabber.org/protocol/rsm";

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// Creates room `name` owned by `c` with these roomconfig fields (`c` stays in it).
async fn create(c: &mut XmppClient, name: &str, fields: &[(&str, &str)]) {
    let got = join(c, &room(name), "Owner").await;
    assert!(got.iter().any(|e| codes(e).contains(&201)), "{name} created");
    let mut x = String::new();
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='muc#roomconfig_{var}'><value>{value}</value></field>"
        ));
    }
    let r = c
        .iq(
            "set",
            Some(&room(name)),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>{x}</x></query>"),
        )
        .await;
    ok(&r);
}

/// disco#items of the service with `set` (XML inside `<set/>`, or none).
async fn items(c: &mut XmppClient, set: Option<&str>) -> Element {
    let set = set.map_or(String::new(), |s| format!("<set xmlns='{RSM}'>{s}</set>"));
    c.iq("get", Some(MUC), &format!("<query xmlns='{ITEMS}'>{set}</query>"))
        .await
}

fn jids(r: &Element) -> Vec<String> {
    let q = r
        .get_child("query", ITEMS)
        .unwrap_or_else(|| panic!("no items: {}", xml::to_string(r)));
    q.children()
        .filter(|i| i.is("item", ITEMS))
        .map(|i| {
            i.attr("jid")
                .unwrap()
                .trim_end_matches(&format!("@{MUC}"))
                .to_owned()
        })
        .collect()
}

/// (first, first's index, last, count) of the answer's `<set/>`.
fn set_of(r: &Element) -> (Option<String>, Option<String>, Option<String>, String) {
    let set = r
        .get_child("query", ITEMS)
        .and_then(|q| q.get_child("set", RSM))
        .unwrap_or_else(|| panic!("no set: {}", xml::to_string(r)));
    let first = set.get_child("first", RSM);
    (
        first.map(|f| f.text()),
        first.and_then(|f| f.attr("index").map(str::to_owned)),
        set.get_child("last", RSM).map(|l| l.text()),
        set.get_child("count", RSM).unwrap().text(),
    )
}

#[tokio::test]
async fn xep0045_6_3_stored_rooms_listed_when_not_loaded() {
    let mut s = TestServer::start().await;
    s.add_user("alice", PW).await;
    {
        let mut a = s.client("alice", PW).await;
        create(&mut a, "kept", &[("persistentroom", "1"), ("roomname", "Kept")]).await;
        create(&mut a, "secret", &[("persistentroom", "1"), ("publicroom", "0")]).await;
        a.close().await;
    }
    // After a restart no room is loaded: the list comes from storage.
    s.restart().await;
    let mut a = s.client("alice", PW).await;
    let r = items(&mut a, None).await;
    assert_eq!(jids(&r), vec!["kept"]);
    let item = r.get_child("query", ITEMS).unwrap().children().next().unwrap();
    assert_eq!(item.attr("name"), Some("Kept"));
    assert!(
        r.get_child("query", ITEMS)
            .unwrap()
            .get_child("set", RSM)
            .is_none()
    );
    // Destroyed (it is loaded for that), it leaves the list.
    let d = a
        .iq(
            "set",
            Some(&room("kept")),
            &format!("<query xmlns='{NS_OWNER}'><destroy/></query>"),
        )
        .await;
    ok(&d);
    assert_eq!(jids(&items(&mut a, None).await), Vec::<String>::new());
}

#[tokio::test]
async fn xep0045_6_3_result_set_management() {
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = "[muc]\nmax_items_per_page = 3\n".into();
    })
    .await;
    s.add_user("alice", PW).await;
    let mut a = s.client("alice", PW).await;
    let info = a.iq("get", Some(MUC), &format!("<query xmlns='{INFO}'/>")).await;
    let features: Vec<_> = info
        .get_child("query", INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(features.contains(&RSM), "{features:?}");
    for name in ["r1", "r2", "r3", "r4", "r5"] {
        create(&mut a, name, &[]).await;
    }
    // No request: the service's page size, and a set saying there is more.
    let r = items(&mut a, None).await;
    assert_eq!(jids(&r), ["r1", "r2", "r3"]);
    let r1 = room("r1");
    let r3 = room("r3");
    assert_eq!(
        set_of(&r),
        (Some(r1.clone()), Some("0".into()), Some(r3.clone()), "5".into())
    );
    // XEP-0059 §2.2: forward paging.
    let r = items(&mut a, Some("<max>2</max>")).await;
    assert_eq!(jids(&r), ["r1", "r2"]);
    let last = set_of(&r).2.unwrap();
    let r = items(&mut a, Some(&format!("<max>2</max><after>{last}</after>"))).await;
    assert_eq!(jids(&r), ["r3", "r4"]);
    assert_eq!(set_of(&r).1.as_deref(), Some("2"));
    let r = items(
        &mut a,
        Some(&format!("<max>2</max><after>{}</after>", room("r4"))),
    )
    .await;
    assert_eq!(jids(&r), ["r5"]);
    // §2.3: backward paging; an empty <before/> is the last page.
    let r = items(&mut a, Some("<max>2</max><before/>")).await;
    assert_eq!(jids(&r), ["r4", "r5"]);
    let r = items(&mut a, Some(&format!("<max>2</max><before>{r3}</before>"))).await;
    assert_eq!(jids(&r), ["r1", "r2"]);
    // §2.4: by index; a larger max is capped by the service.
    let r = items(&mut a, Some("<max>10</max><index>1</index>")).await;
    assert_eq!(jids(&r), ["r2", "r3", "r4"]);
    // §2.6: the count alone.
    let r = items(&mut a, Some("<max>0</max>")).await;
    assert_eq!(jids(&r), Vec::<String>::new());
    assert_eq!(set_of(&r), (None, None, None, "5".into()));
    // An unknown item to page from, and a malformed max.
    let r = items(&mut a, Some(&format!("<after>{}</after>", room("nope")))).await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    let r = items(&mut a, Some("<max>many</max>")).await;
    xml::assert_stanza_error(&r, &["bad-request"]);
}

#[tokio::test]
async fn xep0045_6_4_roominfo_form() {
    let s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.add_user(u, PW).await;
    }
    let mut a = s.client("alice", PW).await;
    let mut b = s.client("bob", PW).await;
    create(
        &mut a,
        "lounge",
        &[
            ("roomname", "The Lounge"),
            ("roomdesc", "Chat about anything"),
            ("changesubject", "1"),
            ("historylength", "7"),
        ],
    )
    .await;
    a.send_xml(&format!(
        "<message type='groupchat' to='{}'><subject>Tea</subject></message>",
        room("lounge")
    ))
    .await;
    a.wait_for(is_subject).await;
    let info = b
        .iq("get", Some(&room("lounge")), &format!("<query xmlns='{INFO}'/>"))
        .await;
    let form = info
        .get_child("query", INFO)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .unwrap_or_else(|| panic!("no roominfo form: {}", xml::to_string(&info)));
    assert_eq!(form.attr("type"), Some("result"));
    let value = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", "jabber:x:data"))
            .map(|v| v.text())
            .unwrap_or_else(|| panic!("no {var}: {}", xml::to_string(form)))
    };
    let form_type = form
        .children()
        .find(|f| f.attr("var") == Some("FORM_TYPE"))
        .unwrap();
    assert_eq!(form_type.attr("type"), Some("hidden"));
    assert_eq!(value("FORM_TYPE"), "http://jabber.org/protocol/muc#roominfo");
    assert_eq!(value("muc#maxhistoryfetch"), "7");
    assert_eq!(value("muc#roominfo_description"), "Chat about anything");
    assert_eq!(value("muc#roominfo_occupants"), "1");
    assert_eq!(value("muc#roominfo_subject"), "Tea");
    assert_eq!(value("muc#roominfo_subjectmod"), "1");
    assert_eq!(value("muc#roomconfig_roomname"), "The Lounge");
    assert_eq!(value("muc#roomconfig_changesubject"), "1");
    assert_eq!(value("muc#roomconfig_allowinvites"), "0");
    assert_eq!(value("muc#roomconfig_allowpm"), "anyone");
}

#[tokio::test]
async fn xep0045_6_3_idle_room_listed_after_unload() {
    let s = TestServer::start_with(|cfg| {
        cfg.extra_toml = "[muc]\nidle_unload_secs = 1\n".into();
        cfg.log_level = "info,switchboard::modules::muc=debug".into();
    })
    .await;
    s.add_user("alice", PW).await;
    let mut a = s.client("alice", PW).await;
    // The directory of stored rooms is read now (empty), then kept by the rooms themselves.
    assert_eq!(jids(&items(&mut a, None).await), Vec::<String>::new());
    create(&mut a, "kept", &[("persistentroom", "1"), ("roomname", "Kept")]).await;
    a.send_xml(&format!(
        "<presence type='unavailable' to='{}/Owner'/>",
        room("kept")
    ))
    .await;
    a.wait_for(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await;
    assert!(
        s.wait_for_log("idle room unloaded", 1, std::time::Duration::from_secs(10))
            .await,
        "the empty room unloads"
    );
    let r = items(&mut a, None).await;
    assert_eq!(jids(&r), ["kept"]);
    let item = r.get_child("query", ITEMS).unwrap().children().next().unwrap();
    assert_eq!(item.attr("name"), Some("Kept"));
}
