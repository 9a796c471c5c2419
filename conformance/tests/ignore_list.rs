//! The incremental ignore-list protocol (`urn:switchboard:ignore:0`), checked against the
//! examples of xep/xep-ignore-list.md, which are quoted verbatim; and the three views of the
//! one model seen from each other (§5.4).

use conformance::blocking::{BLOCKING, IGNORE, SHORT, blocklist, condition, setup};
use conformance::{Element, XmppClient, ns, xml};

// xep/xep-ignore-list.md, Example 2.
const EXAMPLE_2: &str = "<iq type='set' id='add1'>
  <add xmlns='urn:switchboard:ignore:0' version='0'>
    <item type='jid' value='spam@example.net' action='deny'/>
  </add>
</iq>";
// Example 3.
const EXAMPLE_3: &str = "<iq type='result' id='add1' from='alice@localhost' to='alice@localhost/desk'>
  <ack xmlns='urn:switchboard:ignore:0' list='blocklist' version='1'/>
</iq>";
// Example 4.
const EXAMPLE_4: &str = "<iq type='set' id='add2'>
  <add xmlns='urn:switchboard:ignore:0' list='quiet' version='0'>
    <item type='group' value='Work' action='deny' order='5'><message/></item>
  </add>
</iq>";
// Example 5.
const EXAMPLE_5: &str = "<iq type='set' id='rm1'>
  <remove xmlns='urn:switchboard:ignore:0' list='blocklist' version='1'>
    <item type='jid' value='spam@example.net'/>
  </remove>
</iq>";
// Example 6.
const EXAMPLE_6: &str = "<iq type='result' id='rm1' from='alice@localhost' to='alice@localhost/desk'>
  <ack xmlns='urn:switchboard:ignore:0' list='blocklist' version='2'/>
</iq>";
// Example 7.
const EXAMPLE_7: &str = "<iq type='get' id='page1'>
  <list xmlns='urn:switchboard:ignore:0' name='big' start='0' max='2'/>
</iq>";
// Example 8.
const EXAMPLE_8: &str = "<iq type='result' id='page1' from='alice@localhost' to='alice@localhost/desk'>
  <list xmlns='urn:switchboard:ignore:0' name='big' version='3' total='3' start='0'>
    <item type='jid' value='a@example.net' action='deny' order='1'/>
    <item type='jid' value='b@example.net' action='deny' order='2'/>
  </list>
</iq>";
// Example 9.
const EXAMPLE_9: &str = "<iq type='get' id='page2'>
  <list xmlns='urn:switchboard:ignore:0' name='big' version='3' start='2' max='2'/>
</iq>";
// Example 10.
const EXAMPLE_10: &str = "<iq type='get' id='lists1'>
  <lists xmlns='urn:switchboard:ignore:0'/>
</iq>";
const EXAMPLE_10_RESULT: &str =
    "<iq type='result' id='lists1' from='alice@localhost' to='alice@localhost/desk'>
  <lists xmlns='urn:switchboard:ignore:0'>
    <list name='blocklist' version='2' total='0' default='true'/>
    <list name='quiet' version='3' total='1'/>
  </lists>
</iq>";
// Example 11.
const EXAMPLE_11: &str = "<iq type='set' id='privacy-push-0' to='alice@localhost/phone'>
  <delta xmlns='urn:switchboard:ignore:0' list='blocklist' version='1' previous='0'>
    <add>
      <item type='jid' value='spam@example.net' action='deny' order='1'/>
    </add>
  </delta>
</iq>";
// Example 12 (the request inside it).
const EXAMPLE_12_REQUEST: &str = "<iq type='set' id='add3'>
  <add xmlns='urn:switchboard:ignore:0' version='0'>
    <item type='jid' value='other@example.net'/>
  </add>
</iq>";

/// Parses an example in the jabber:client default namespace.
fn parse(example: &str) -> Element {
    let wrapped = example.replacen("<iq ", "<iq xmlns='jabber:client' ", 1);
    wrapped.parse().expect("example parses")
}

/// The element's own text with the examples' indentation removed: whitespace-only text
/// between children is layout, any other text is content and must match.
fn content_text(e: &Element) -> String {
    e.texts().map(str::trim).collect()
}

/// Structural equality ignoring indentation and the ids of pushes.
fn same(a: &Element, b: &Element, ignore_id: bool) -> bool {
    let attrs = |e: &Element| {
        let mut v: Vec<(String, String)> = e
            .attrs()
            .iter()
            .map(|((_, k), v)| (k.to_string(), v.to_string()))
            .filter(|(k, _)| !(ignore_id && k == "id"))
            .collect();
        v.sort();
        v
    };
    a.name() == b.name()
        && a.ns() == b.ns()
        && attrs(a) == attrs(b)
        && content_text(a) == content_text(b)
        && a.children().count() == b.children().count()
        && a.children().zip(b.children()).all(|(x, y)| same(x, y, false))
}

// The comparison itself: indentation is layout, text is content.
#[test]
fn same_compares_text_but_not_indentation() {
    let a: Element = "<a xmlns='x'><b>one</b></a>".parse().unwrap();
    let indented: Element = "<a xmlns='x'>\n  <b> one </b>\n</a>".parse().unwrap();
    let other: Element = "<a xmlns='x'><b>two</b></a>".parse().unwrap();
    assert!(same(&a, &indented, false));
    assert!(!same(&a, &other, false));
}

fn assert_same(got: &Element, example: &str, ignore_id: bool) {
    let want = parse(example);
    assert!(
        same(got, &want, ignore_id),
        "got {}\nwant {}",
        xml::to_string(got),
        xml::to_string(&want)
    );
}

/// Sends an example and waits for the answer with its id.
async fn exchange(c: &mut XmppClient, example: &str) -> Element {
    let el = parse(example);
    let id = el.attr("id").unwrap().to_owned();
    c.send(el).await;
    c.wait_for(|e| {
        e.name() == "iq"
            && e.attr("id") == Some(id.as_str())
            && matches!(e.attr("type"), Some("result" | "error"))
    })
    .await
}

async fn add(c: &mut XmppClient, list: &str, value: &str) -> Element {
    c.iq(
        "set",
        None,
        &format!("<add xmlns='{IGNORE}' list='{list}'><item type='jid' value='{value}'/></add>"),
    )
    .await
}

// §4, Example 1: the feature is advertised.
#[tokio::test]
async fn ignore_4_discovery() {
    let mut s = setup().await;
    let info = s
        .desk
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let q = info.get_child("query", ns::DISCO_INFO).unwrap();
    assert!(q.children().any(|f| f.attr("var") == Some(IGNORE)));
    assert!(q.children().any(|f| f.attr("var") == Some(BLOCKING)));
}

// §6.1, Examples 2 and 3; the item is a block in the default list (§5.3).
#[tokio::test]
async fn ignore_6_1_add_item_with_version() {
    let mut s = setup().await;
    let r = exchange(&mut s.desk, EXAMPLE_2).await;
    assert_same(&r, EXAMPLE_3, false);
    assert_eq!(blocklist(&mut s.desk).await, vec!["spam@example.net"]);
}

// §6.3, Examples 5 and 6; removing an absent item is item-not-found.
#[tokio::test]
async fn ignore_6_3_remove_item() {
    let mut s = setup().await;
    exchange(&mut s.desk, EXAMPLE_2).await;
    let r = exchange(&mut s.desk, EXAMPLE_5).await;
    assert_same(&r, EXAMPLE_6, false);
    let again = s
        .desk
        .iq(
            "set",
            None,
            &format!("<remove xmlns='{IGNORE}' list='blocklist'><item type='jid' value='spam@example.net'/></remove>"),
        )
        .await;
    assert_eq!(condition(&again).as_deref(), Some("item-not-found"));
    // §6.2, Example 4, then §6.4 Example 10.
    let r = exchange(&mut s.desk, EXAMPLE_4).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let r = exchange(&mut s.desk, EXAMPLE_10).await;
    assert_same(&r, EXAMPLE_10_RESULT, false);
}

// §6.4, Examples 7, 8 and 9: pages, pinned to a version.
#[tokio::test]
async fn ignore_6_4_paged_fetch() {
    let mut s = setup().await;
    for v in ["a@example.net", "b@example.net", "c@example.net"] {
        add(&mut s.desk, "big", v).await;
    }
    let r = exchange(&mut s.desk, EXAMPLE_7).await;
    assert_same(&r, EXAMPLE_8, false);
    let r = exchange(&mut s.desk, EXAMPLE_9).await;
    let page = r.get_child("list", IGNORE).expect("list");
    let values: Vec<_> = page.children().filter_map(|i| i.attr("value")).collect();
    assert_eq!(values, vec!["c@example.net"]);
    // The list moves on: the pinned page is refused (§6.6).
    add(&mut s.desk, "big", "d@example.net").await;
    let r = exchange(&mut s.desk, EXAMPLE_9).await;
    assert_eq!(condition(&r).as_deref(), Some("conflict"));
    let mismatch = r
        .get_child("error", ns::CLIENT)
        .and_then(|e| e.get_child("version-mismatch", IGNORE))
        .expect("version-mismatch");
    assert_eq!(mismatch.attr("current"), Some("4"));
}

// §6.5, Example 11: the other resource that used the protocol gets the delta.
#[tokio::test]
async fn ignore_6_5_delta_push() {
    let mut s = setup().await;
    exchange(&mut s.phone, EXAMPLE_10).await;
    exchange(&mut s.desk, EXAMPLE_2).await;
    let push = s.phone.wait_for(|e| e.get_child("delta", IGNORE).is_some()).await;
    assert_same(&push, EXAMPLE_11, true);
    // The requesting resource gets only the acknowledgement.
    s.desk
        .expect_none(SHORT, "delta push", |e| e.get_child("delta", IGNORE).is_some())
        .await;
}

// §6.6, Example 12: a stale version changes nothing and names the current version.
#[tokio::test]
async fn ignore_6_6_stale_version() {
    let mut s = setup().await;
    exchange(&mut s.desk, EXAMPLE_2).await;
    let r = exchange(&mut s.phone, EXAMPLE_12_REQUEST).await;
    assert_eq!(r.attr("type"), Some("error"));
    let error = r.get_child("error", ns::CLIENT).expect("error");
    assert_eq!(error.attr("type"), Some("cancel"));
    assert!(error.get_child("conflict", ns::STANZAS).is_some());
    assert_eq!(
        error
            .get_child("version-mismatch", IGNORE)
            .and_then(|m| m.attr("current")),
        Some("1")
    );
    assert_eq!(blocklist(&mut s.desk).await, vec!["spam@example.net"]);
}

// §9: an unknown element of the namespace, or a known one with the wrong IQ type, is
// `bad-request` (not the `service-unavailable` of a namespace nobody answers).
#[tokio::test]
async fn ignore_9_unknown_element_is_bad_request() {
    let mut s = setup().await;
    for (id, request) in [
        (
            "u1",
            format!("<iq type='get' id='u1'><frobnicate xmlns='{IGNORE}'/></iq>"),
        ),
        (
            "u2",
            format!("<iq type='set' id='u2'><lists xmlns='{IGNORE}'/></iq>"),
        ),
        (
            "u3",
            format!("<iq type='get' id='u3'><add xmlns='{IGNORE}'><item type='jid' value='x@y'/></add></iq>"),
        ),
    ] {
        s.desk.send_xml(&request).await;
        let r = s
            .desk
            .wait_for(|e| e.name() == "iq" && e.attr("id") == Some(id))
            .await;
        assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(&r));
        assert_eq!(
            condition(&r).as_deref(),
            Some("bad-request"),
            "{}",
            xml::to_string(&r)
        );
    }
    assert!(blocklist(&mut s.desk).await.is_empty());
}

// §7.2: an ignored contact (through this protocol) is stopped; §7.1 the other way.
#[tokio::test]
async fn ignore_7_enforced_both_ways() {
    let mut s = setup().await;
    let r = s
        .desk
        .iq(
            "set",
            None,
            &format!("<add xmlns='{IGNORE}'><item type='jid' value='bob@localhost'/></add>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    s.bob
        .send_xml("<message to='alice@localhost' id='x1' type='chat'><body>hi</body></message>")
        .await;
    let e = s.bob.wait_for(|e| e.attr("id") == Some("x1")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    s.desk.expect_no_message(SHORT).await;
    s.desk
        .send_xml("<message to='bob@localhost' id='x2' type='chat'><body>hi</body></message>")
        .await;
    let e = s.desk.wait_for(|e| e.attr("id") == Some("x2")).await;
    assert_eq!(condition(&e).as_deref(), Some("not-acceptable"));
    // A selector-limited item in a non-default list is not enforced until it is the default
    // (§6.7), and then only for its selector; it is not a block (§5.3).
    let r = s
        .desk
        .iq(
            "set",
            None,
            &format!("<remove xmlns='{IGNORE}'><item type='jid' value='bob@localhost'/></remove>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    s.desk
        .iq(
            "set",
            None,
            &format!("<add xmlns='{IGNORE}' list='msgs'><item type='jid' value='bob@localhost'><message/></item></add>"),
        )
        .await;
    s.bob.send_message("alice@localhost/desk", "one").await;
    assert_eq!(
        s.desk.expect_message().await.attr("from"),
        Some("bob@localhost/home")
    );
    let r = s
        .desk
        .iq("set", None, &format!("<default xmlns='{IGNORE}' list='msgs'/>"))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    assert!(blocklist(&mut s.desk).await.is_empty());
    s.bob
        .send_xml("<message to='alice@localhost' id='x3' type='chat'><body>hi</body></message>")
        .await;
    let e = s.bob.wait_for(|e| e.attr("id") == Some("x3")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    // IQs are not selected: they still flow (answered by alice's client or the server).
    let r = s
        .bob
        .iq("get", Some("alice@localhost"), "<query xmlns='jabber:iq:last'/>")
        .await;
    assert_ne!(condition(&r).as_deref(), Some("service-unavailable"));
}

// §5.4: a change through one view is seen through the others.
#[tokio::test]
async fn three_views_consistent() {
    let mut s = setup().await;
    // phone watches XEP-0191, bob is a legacy client of his own.
    blocklist(&mut s.phone).await;
    exchange(&mut s.desk, EXAMPLE_10).await;
    // Ignore view -> XEP-0191 push.
    add(&mut s.desk, "", "romeo@montague.net").await;
    let p = s
        .phone
        .wait_for(|e| e.get_child("block", BLOCKING).is_some())
        .await;
    assert_eq!(
        p.get_child("block", BLOCKING)
            .unwrap()
            .children()
            .next()
            .unwrap()
            .attr("jid"),
        Some("romeo@montague.net")
    );
    // XEP-0191 -> ignore delta to desk, which used the ignore protocol.
    let r = s
        .phone
        .iq(
            "set",
            None,
            &format!("<block xmlns='{BLOCKING}'><item jid='iago@shakespeare.lit'/></block>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let d = s.desk.wait_for(|e| e.get_child("delta", IGNORE).is_some()).await;
    let delta = d.get_child("delta", IGNORE).unwrap();
    assert_eq!(delta.attr("list"), Some("blocklist"));
    let added = delta.get_child("add", IGNORE).expect("add");
    assert_eq!(
        added.children().next().unwrap().attr("value"),
        Some("iago@shakespeare.lit")
    );
    // Both in the ignore fetch of the default list, XEP-0191 order (blocks go first).
    let r = s.desk.iq("get", None, &format!("<list xmlns='{IGNORE}'/>")).await;
    let values: Vec<_> = r
        .get_child("list", IGNORE)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("value").map(str::to_owned))
        .collect();
    assert_eq!(values, vec!["iago@shakespeare.lit", "romeo@montague.net"]);
    // Unblock all through XEP-0191: the ignore view sees both removed.
    s.phone
        .iq("set", None, &format!("<unblock xmlns='{BLOCKING}'/>"))
        .await;
    let d = s
        .desk
        .wait_for(|e| {
            e.get_child("delta", IGNORE)
                .is_some_and(|d| d.get_child("remove", IGNORE).is_some())
        })
        .await;
    assert_eq!(
        d.get_child("delta", IGNORE)
            .unwrap()
            .get_child("remove", IGNORE)
            .unwrap()
            .children()
            .count(),
        2
    );
    // The legacy client saw none of it and still talks to alice.
    s.bob.send_message("alice@localhost/desk", "still here").await;
    s.desk.expect_message().await;
    s.bob
        .expect_none(SHORT, "stanza other than presence", |e| e.name() != "presence")
        .await;
}
