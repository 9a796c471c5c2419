//! XEP-0013 flexible offline message retrieval: count, headers, view, remove, fetch, purge,
//! and no automatic flood for a client that chose it.

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const OFFLINE: &str = "http://jabber.org/protocol/offline";
const SHORT: Duration = Duration::from_millis(300);

fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

/// A server where alice left `texts` for bob (offline) in that order.
async fn messages_for_bob(texts: &[&str]) -> (TestServer, XmppClient) {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    for (i, t) in texts.iter().enumerate() {
        alice
            .send_xml(&format!(
                "<message type='chat' to='bob@localhost' id='m{i}'><body>{t}</body></message>"
            ))
            .await;
    }
    alice.ping_server().await;
    alice
        .expect_none(Duration::from_millis(50), "bounce", |e| {
            e.attr("type") == Some("error")
        })
        .await;
    (server, alice)
}

fn assert_result(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

async fn count(c: &mut XmppClient) -> String {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{}' node='{OFFLINE}'/>", ns::DISCO_INFO),
        )
        .await;
    assert_result(&r);
    let q = r.get_child("query", ns::DISCO_INFO).expect("query");
    assert_eq!(q.attr("node"), Some(OFFLINE));
    let id = q.get_child("identity", ns::DISCO_INFO).expect("identity");
    assert_eq!(id.attr("category"), Some("automation"));
    assert_eq!(id.attr("type"), Some("message-list"));
    let form = q.get_child("x", ns::DATA_FORMS).expect("XEP-0128 form");
    let value = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", ns::DATA_FORMS))
            .map(|v| v.text())
            .unwrap_or_else(|| panic!("field {var} missing: {}", xml::to_string(&r)))
    };
    assert_eq!(value("FORM_TYPE"), OFFLINE);
    value("number_of_messages")
}

/// (node, name) of each header.
async fn headers(c: &mut XmppClient) -> Vec<(String, String)> {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{}' node='{OFFLINE}'/>", ns::DISCO_ITEMS),
        )
        .await;
    assert_result(&r);
    let q = r.get_child("query", ns::DISCO_ITEMS).expect("query");
    assert_eq!(q.attr("node"), Some(OFFLINE));
    q.children()
        .map(|i| {
            assert_eq!(i.attr("jid"), Some("bob@localhost"), "{}", xml::to_string(i));
            (
                i.attr("node").expect("node").to_owned(),
                i.attr("name").expect("name").to_owned(),
            )
        })
        .collect()
}

/// The node a retrieved message is marked with (§2.4).
fn node_of(m: &Element) -> String {
    m.get_child("offline", OFFLINE)
        .and_then(|o| o.get_child("item", OFFLINE))
        .and_then(|i| i.attr("node"))
        .unwrap_or_else(|| panic!("no offline/item node: {}", xml::to_string(m)))
        .to_owned()
}

fn offline_items(action: &str, nodes: &[&str]) -> String {
    let items: String = nodes
        .iter()
        .map(|n| format!("<item action='{action}' node='{}'/>", xml::escape(n)))
        .collect();
    format!("<offline xmlns='{OFFLINE}'>{items}</offline>")
}

// XEP-0013 §2.1-§2.7 in one session: discovery, count, headers (which also turn off the
// flood, §2.2), view (nothing removed), remove, unknown nodes, fetch, purge.
#[tokio::test]
async fn xep0013_view_remove_fetch_purge() {
    let (server, alice) = messages_for_bob(&["one", "two", "three"]).await;
    let sender = alice.jid().to_string();
    let mut bob = server.client("bob", "passw0rd").await;

    // §2.1
    let info = bob
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let features: Vec<&str> = info
        .get_child("query", ns::DISCO_INFO)
        .expect("query")
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(features.contains(&OFFLINE), "{features:?}");
    assert!(features.contains(&"msgoffline"), "XEP-0160 §5: {features:?}");

    // §2.2, §2.3
    assert_eq!(count(&mut bob).await, "3");
    let list = headers(&mut bob).await;
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|(_, name)| *name == sender), "{list:?}");
    let nodes: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(sorted, nodes, "dictionary order of the nodes is arrival order");

    // §2.2: after the headers, initial presence brings no flood.
    bob.send_presence(0).await;
    bob.ping_server().await;
    bob.expect_no_message(SHORT).await;

    // §2.4: view one; it arrives marked with its node, before the result.
    let r = bob.iq("get", None, &offline_items("view", &[nodes[1]])).await;
    assert_result(&r);
    let m = bob.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("two"));
    assert_eq!(node_of(&m), nodes[1]);
    assert_eq!(m.attr("from"), Some(sender.as_str()));
    assert!(m.has_child("delay", "urn:xmpp:delay"), "{}", xml::to_string(&m));
    bob.expect_no_message(SHORT).await;
    assert_eq!(count(&mut bob).await, "3", "viewing removes nothing");

    // Unknown nodes: item-not-found, for view and for remove (which then removes nothing).
    let r = bob
        .iq("get", None, &offline_items("view", &["999999999999"]))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    let r = bob
        .iq("set", None, &offline_items("remove", &[nodes[0], "999999999999"]))
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
    assert_eq!(count(&mut bob).await, "3");

    // §2.5
    let r = bob.iq("set", None, &offline_items("remove", &[nodes[0]])).await;
    assert_result(&r);
    let left = headers(&mut bob).await;
    assert_eq!(
        left.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        &nodes[1..]
    );

    // §2.6: everything left, in order, each marked.
    let r = bob
        .iq(
            "get",
            None,
            &format!("<offline xmlns='{OFFLINE}'><fetch/></offline>"),
        )
        .await;
    assert_result(&r);
    for (text, node) in [("two", nodes[1]), ("three", nodes[2])] {
        let m = bob.expect_message().await;
        assert_eq!(body(&m).as_deref(), Some(text));
        assert_eq!(node_of(&m), node);
    }
    assert_eq!(count(&mut bob).await, "2", "fetching removes nothing");

    // §2.7
    let r = bob
        .iq(
            "set",
            None,
            &format!("<offline xmlns='{OFFLINE}'><purge/></offline>"),
        )
        .await;
    assert_result(&r);
    assert_eq!(count(&mut bob).await, "0");
    assert!(headers(&mut bob).await.is_empty());
    bob.expect_no_message(SHORT).await;
}

// XEP-0013 §2.2: once one session asked for the count, neither it nor a second resource
// that comes online while it is connected gets the flood; the messages stay stored.
// §2.6: a fetch before presence has the same effect.
#[tokio::test]
async fn xep0013_no_flood_for_flexible_sessions() {
    let (server, _alice) = messages_for_bob(&["kept"]).await;
    let mut first = server.client_jid("bob@localhost/first", "passw0rd").await;
    assert_eq!(count(&mut first).await, "1");
    first.send_presence(0).await;
    let mut second = server.client_jid("bob@localhost/second", "passw0rd").await;
    second.send_presence(5).await;
    second.ping_server().await;
    first.expect_no_message(SHORT).await;
    second.expect_no_message(SHORT).await;
    assert_eq!(count(&mut second).await, "1");
    first.close().await;
    second.close().await;

    let mut third = server.client_jid("bob@localhost/third", "passw0rd").await;
    let r = third
        .iq(
            "get",
            None,
            &format!("<offline xmlns='{OFFLINE}'><fetch/></offline>"),
        )
        .await;
    assert_result(&r);
    assert_eq!(body(&third.expect_message().await).as_deref(), Some("kept"));
    third.send_presence(0).await;
    third.ping_server().await;
    third.expect_no_message(SHORT).await;
}
