//! Shared helpers for the publish-subscribe tests (XEP-0060, XEP-0163 and the PEP-based
//! protocols): announcing XEP-0115 capabilities and answering the server's disco#info query,
//! publishing, reading items, and recognizing notifications.

use minidom::Element;

use crate::blocking::{self, PW};
use crate::{TestServer, XmppClient, xml};

pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const CAPS: &str = "http://jabber.org/protocol/caps";
pub const TUNE: &str = "http://jabber.org/protocol/tune";

/// The disco#info `<query/>` a client with `features` announces (one identity client/pc).
pub fn disco_query(features: &[&str]) -> Element {
    let mut s =
        format!("<query xmlns='{DISCO_INFO}'><identity category='client' type='pc' name='conformance'/>");
    for f in features {
        s.push_str(&format!("<feature var='{}'/>", xml::escape(f)));
    }
    s.push_str("</query>");
    s.parse().unwrap()
}

/// Sends available presence with XEP-0115 caps for `features` and answers the server's
/// disco#info query for them when `expect_query` (the server asks once per unknown `ver`).
/// Returns the `ver`.
pub async fn announce(c: &mut XmppClient, features: &[&str], expect_query: bool) -> String {
    let query = disco_query(features);
    let ver = xml::caps_ver_sha1(&query);
    c.send_xml(&format!(
        "<presence><c xmlns='{CAPS}' hash='sha-1' node='urn:conformance' ver='{ver}'/></presence>"
    ))
    .await;
    if expect_query {
        answer_caps_query(c, &query, &ver).await;
    }
    c.ping_server().await;
    ver
}

/// Waits for the server's disco#info query about `ver` and answers it with `query`.
pub async fn answer_caps_query(c: &mut XmppClient, query: &Element, ver: &str) {
    let node = format!("urn:conformance#{ver}");
    let ask = c
        .wait_for(|e| {
            e.name() == "iq"
                && e.attr("type") == Some("get")
                && e.get_child("query", DISCO_INFO)
                    .is_some_and(|q| q.attr("node") == Some(node.as_str()))
        })
        .await;
    let q = xml::to_string(query).replacen("<query ", &format!("<query node='{node}' "), 1);
    let id = ask.attr("id").unwrap();
    let from = ask.attr("from").unwrap();
    c.send_xml(&format!("<iq type='result' id='{id}' to='{from}'>{q}</iq>"))
        .await;
}

/// `features` with `node+notify` for each node.
pub fn notify(nodes: &[&str]) -> Vec<String> {
    nodes.iter().map(|n| format!("{n}+notify")).collect()
}

/// An online client with roster (see [`blocking::online`]) that announces interest in
/// `nodes` (plus a feature unique to it, so its caps `ver` is new and the server asks).
pub async fn interested(server: &TestServer, jid: &str, nodes: &[&str]) -> XmppClient {
    let mut c = server.client_jid(jid, PW).await;
    blocking::roster_get(&mut c).await;
    let own = format!("urn:conformance:client:{jid}");
    let mut features: Vec<String> = notify(nodes);
    features.push(own);
    let refs: Vec<&str> = features.iter().map(String::as_str).collect();
    announce(&mut c, &refs, true).await;
    blocking::settle(&mut c).await;
    c
}

/// Publishes `payload` (XML text) as item `id` (none: the server picks) to `node` with
/// optional publish-options fields; returns the response.
pub async fn publish(
    c: &mut XmppClient,
    node: &str,
    id: Option<&str>,
    payload: &str,
    options: &[(&str, &str)],
) -> Element {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    let options = publish_options(options);
    c.iq(
        "set",
        None,
        &format!("<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{id}>{payload}</item></publish>{options}</pubsub>"),
    )
    .await
}

/// A `<publish-options/>` form (empty string for no fields).
pub fn publish_options(fields: &[(&str, &str)]) -> String {
    if fields.is_empty() {
        return String::new();
    }
    format!(
        "<publish-options>{}</publish-options>",
        form("http://jabber.org/protocol/pubsub#publish-options", fields)
    )
}

/// A submitted data form with these fields.
pub fn form(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{form_type}</value></field>"
    );
    for (var, value) in fields {
        s.push_str(&format!(
            "<field var='{var}'><value>{}</value></field>",
            xml::escape(value)
        ));
    }
    s.push_str("</x>");
    s
}

/// Items of `node` at `owner` (`None`: the sender's own account), as `<item/>` elements;
/// `Err` the error response.
pub async fn items(
    c: &mut XmppClient,
    owner: Option<&str>,
    node: &str,
    inner: &str,
    max: Option<u32>,
) -> Result<Vec<Element>, Element> {
    let max = max.map(|m| format!(" max_items='{m}'")).unwrap_or_default();
    let r = c
        .iq(
            "get",
            owner,
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'{max}>{inner}</items></pubsub>"),
        )
        .await;
    if r.attr("type") != Some("result") {
        return Err(r);
    }
    let list = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .unwrap_or_else(|| panic!("no <items/> in {}", xml::to_string(&r)));
    assert_eq!(list.attr("node"), Some(node));
    Ok(list.children().cloned().collect())
}

/// An owner request (`pubsub#owner`).
pub async fn owner(c: &mut XmppClient, type_: &str, inner: &str) -> Element {
    c.iq(type_, None, &format!("<pubsub xmlns='{OWNER}'>{inner}</pubsub>"))
        .await
}

/// The `<event/>` of a PEP notification from `from` about `node`.
pub fn event_of<'a>(e: &'a Element, from: &str, node: &str) -> Option<&'a Element> {
    if e.name() != "message" || e.attr("from") != Some(from) {
        return None;
    }
    let event = e.get_child("event", EVENT)?;
    let about = event.children().next()?;
    (about.attr("node") == Some(node)).then_some(event)
}

/// Whether `e` is a notification from `from` about `node`.
pub fn is_event(e: &Element, from: &str, node: &str) -> bool {
    event_of(e, from, node).is_some()
}

/// The id of the (first) published item of a notification.
pub fn published_id(event: &Element) -> Option<String> {
    let items = event.get_child("items", EVENT)?;
    items.get_child("item", EVENT)?.attr("id").map(str::to_owned)
}

/// Asserts an IQ error with `condition` and, if given, the pubsub#errors `app` condition.
pub fn assert_error(r: &Element, condition: &str, app: Option<&str>) {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    let error = r.get_child("error", "jabber:client").unwrap();
    assert!(
        error.get_child(condition, crate::ns::STANZAS).is_some(),
        "expected {condition}: {}",
        xml::to_string(r)
    );
    if let Some(app) = app {
        assert!(
            error.get_child(app, ERRORS).is_some(),
            "expected <{app} xmlns='{ERRORS}'/>: {}",
            xml::to_string(r)
        );
    }
}

/// Asserts a result.
pub fn assert_ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// A tune payload (XEP-0118) with `title`.
pub fn tune(title: &str) -> String {
    format!("<tune xmlns='{TUNE}'><title>{title}</title></tune>")
}
