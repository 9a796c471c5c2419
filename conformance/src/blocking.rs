//! Shared helpers for the blocking tests (XEP-0191, XEP-0016, the ignore list) and the
//! presence subscriptions they build on (RFC 6121 §3): the usual sessions, the requests of
//! each protocol, and checks on what arrives.

use std::time::Duration;

use minidom::Element;

use crate::{TestServer, XmppClient, ns, xml};

pub const BLOCKING: &str = "urn:xmpp:blocking";
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
pub const PRIVACY: &str = "jabber:iq:privacy";
pub const IGNORE: &str = "urn:switchboard:ignore:0";
pub const ROSTER: &str = "jabber:iq:roster";
/// The password of every account these helpers create.
pub const PW: &str = "passw0rd";
/// How long "nothing more arrives" is waited for.
pub const SHORT: Duration = Duration::from_millis(400);

/// alice with two resources and bob, all available.
pub struct Setup {
    pub server: TestServer,
    /// alice@localhost/desk, priority 1.
    pub desk: XmppClient,
    /// alice@localhost/phone.
    pub phone: XmppClient,
    /// bob@localhost/home, priority 0.
    pub bob: XmppClient,
}

/// [`Setup`] with the phone at priority 0 (below the desk).
pub async fn setup() -> Setup {
    setup_with(0).await
}

/// [`Setup`] with the phone at `phone_priority`.
pub async fn setup_with(phone_priority: i8) -> Setup {
    let server = server_with(&["alice", "bob"]).await;
    let mut desk = server.client_jid("alice@localhost/desk", PW).await;
    let mut phone = server.client_jid("alice@localhost/phone", PW).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    desk.send_presence(1).await;
    phone.send_presence(phone_priority).await;
    bob.send_presence(0).await;
    desk.ping_server().await;
    phone.ping_server().await;
    bob.ping_server().await;
    Setup {
        server,
        desk,
        phone,
        bob,
    }
}

/// A server with these accounts (password [`PW`]).
pub async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

/// Asserts an IQ result.
pub fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// The defined condition of an error stanza (RFC 6120 §8.3.3), if it is one.
pub fn condition(r: &Element) -> Option<String> {
    let e = r.get_child("error", ns::CLIENT)?;
    e.children()
        .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// XEP-0191 §3.1: the blocked JIDs.
pub async fn blocklist(c: &mut XmppClient) -> Vec<String> {
    let r = c
        .iq("get", None, &format!("<blocklist xmlns='{BLOCKING}'/>"))
        .await;
    ok(&r);
    r.get_child("blocklist", BLOCKING)
        .expect("blocklist")
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect()
}

/// XEP-0191 §3.2/§3.4: `op` is "block" or "unblock".
pub async fn block(c: &mut XmppClient, op: &str, jids: &[&str]) -> Element {
    let items: String = jids.iter().map(|j| format!("<item jid='{j}'/>")).collect();
    c.iq("set", None, &format!("<{op} xmlns='{BLOCKING}'>{items}</{op}>"))
        .await
}

/// The next XEP-0191 push of `op` (block/unblock) and its JIDs.
pub async fn block_push(c: &mut XmppClient, op: &str) -> Vec<String> {
    let p = c
        .wait_for(|e| e.name() == "iq" && e.get_child(op, BLOCKING).is_some())
        .await;
    assert_eq!(p.attr("type"), Some("set"));
    p.get_child(op, BLOCKING)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect()
}

/// A XEP-0016 set with `inner` as the query's content.
pub async fn privacy_set(c: &mut XmppClient, inner: &str) -> Element {
    c.iq("set", None, &format!("<query xmlns='{PRIVACY}'>{inner}</query>"))
        .await
}

/// Whether `e` is presence of `kind` (None: available) from exactly `from`.
pub fn presence_from(e: &Element, from: &str, kind: Option<&str>) -> bool {
    e.name() == "presence" && e.attr("from") == Some(from) && e.attr("type") == kind
}

/// Drains `c` until it stays quiet for [`SHORT`].
pub async fn drain(c: &mut XmppClient) {
    while c.recv_within(SHORT).await.is_some() {}
}

/// Asserts that no presence from `from` (a bare JID: any of its resources) is buffered or
/// arrives within [`SHORT`].
pub async fn no_presence_from(c: &mut XmppClient, from: &str) {
    c.expect_none(SHORT, &format!("presence from {from}"), |e| {
        e.name() == "presence" && e.attr("from").is_some_and(|f| same_account(f, from))
    })
    .await;
}

/// Whether `jid` is `bare` or one of its full JIDs.
fn same_account(jid: &str, bare: &str) -> bool {
    jid.strip_prefix(bare)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `a` subscribes to `b`'s presence and `b` approves, then both settle.
pub async fn subscribe(a: &mut XmppClient, b: &mut XmppClient, b_bare: &str, a_bare: &str) {
    a.send_xml(&format!("<presence to='{b_bare}' type='subscribe'/>"))
        .await;
    b.send_xml(&format!("<presence to='{a_bare}' type='subscribed'/>"))
        .await;
    a.ping_server().await;
    b.ping_server().await;
}

/// Whether `e` is a roster push (RFC 6121 §2.1.6).
pub fn is_roster_push(e: &Element) -> bool {
    e.name() == "iq" && e.attr("type") == Some("set") && e.get_child("query", ROSTER).is_some()
}

/// The roster get result (asserted a result).
pub async fn roster_get(c: &mut XmppClient) -> Element {
    let r = c.iq("get", None, &format!("<query xmlns='{ROSTER}'/>")).await;
    ok(&r);
    r
}

/// A roster set of one item for `jid` in `groups`.
pub async fn roster_set(c: &mut XmppClient, jid: &str, groups: &[&str]) {
    let groups: String = groups
        .iter()
        .map(|g| format!("<group>{}</group>", xml::escape(g)))
        .collect();
    let r = c
        .iq(
            "set",
            None,
            &format!("<query xmlns='{ROSTER}'><item jid='{jid}'>{groups}</item></query>"),
        )
        .await;
    ok(&r);
}

/// Sends a subscription stanza and waits until the server processed both halves.
pub async fn send_sub(c: &mut XmppClient, ptype: &str, to: &str) {
    c.send_xml(&format!("<presence type='{ptype}' to='{to}'/>")).await;
    c.ping_server().await;
}

/// Everything received up to a server round trip.
pub async fn settle(c: &mut XmppClient) -> Vec<Element> {
    c.ping_server().await;
    let mut out = Vec::new();
    while let Some(e) = c.recv_within(Duration::from_millis(30)).await {
        out.push(e);
    }
    out
}

/// Asserts that nothing matching `pred` (`what`, for the failure message) is buffered or
/// arrives within [`SHORT`] of a server round trip, then drains `c` as [`settle`] does.
pub async fn settle_without(c: &mut XmppClient, what: &str, pred: impl FnMut(&Element) -> bool) {
    c.ping_server().await;
    c.expect_none(SHORT, what, pred).await;
    settle(c).await;
}

/// The stanzas, one per line, for assertion messages.
pub fn dump(v: &[Element]) -> String {
    v.iter().map(xml::to_string).collect::<Vec<_>>().join("\n")
}

/// A logged-in, available client that asked for its roster (an interested resource).
pub async fn online(server: &TestServer, jid: &str) -> XmppClient {
    let mut c = server.client_jid(jid, PW).await;
    roster_get(&mut c).await;
    c.send_presence(0).await;
    settle(&mut c).await;
    c
}

/// Mutual ('both') subscription between two online clients.
pub async fn befriend(a: &mut XmppClient, a_bare: &str, b: &mut XmppClient, b_bare: &str) {
    send_sub(a, "subscribe", b_bare).await;
    send_sub(b, "subscribed", a_bare).await;
    send_sub(b, "subscribe", a_bare).await;
    send_sub(a, "subscribed", b_bare).await;
    settle(a).await;
    settle(b).await;
}
