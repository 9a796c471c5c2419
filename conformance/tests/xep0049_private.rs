//! XEP-0049 private XML storage. Raw XML clients, so that what comes back can be compared
//! element for element with what was stored.

use conformance::{Element, RawClient, TestServer, xml};

const PW: &str = "passw0rd";
const NS: &str = "jabber:iq:private";

async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

async fn login(server: &TestServer, user: &str) -> RawClient {
    server.raw_login(user, PW, Some("res")).await
}

/// Sends `<iq type to><query xmlns='jabber:iq:private'>inner</query></iq>`; returns the
/// response (result or error).
async fn private(c: &mut RawClient, type_: &str, to: Option<&str>, inner: &str) -> Element {
    let id = c.id();
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    c.iq(&format!(
        "<iq type='{type_}' id='{id}'{to}><query xmlns='{NS}'>{inner}</query></iq>"
    ))
    .await
}

fn assert_result(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// The children of the result's query.
fn stored(r: &Element) -> Vec<Element> {
    assert_result(r);
    r.get_child("query", NS)
        .unwrap_or_else(|| panic!("no <query xmlns='{NS}'/> in {}", xml::to_string(r)))
        .children()
        .cloned()
        .collect()
}

/// The elements of an XML fragment, parsed the way the server's answer is.
fn elements(fragment: &str) -> Vec<Element> {
    let wrapped: Element = format!("<query xmlns='{NS}'>{fragment}</query>")
        .parse()
        .unwrap_or_else(|e| panic!("test literal is not XML ({e}): {fragment}"));
    wrapped.children().cloned().collect()
}

const PREFS: &str = "<exodus xmlns='exodus:prefs'>
      <defaultnick>Hamlet</defaultnick>
      <flag on='yes' xml:lang='en'>Ω &amp; &lt;more&gt;</flag>
    </exodus>";
const BOOKMARKS: &str = "<storage xmlns='storage:bookmarks'>\
    <conference autojoin='true' jid='council@conference.example' name='Council'><nick>Hamlet</nick></conference>\
    <url name='Site' url='https://example.org/'/></storage>";

// XEP-0049 §2.3 examples 1-2: data set under a namespace comes back exactly; a namespace
// never set comes back as the (empty) element asked for; each namespace is replaced on
// its own; several namespaces, or several elements of one, may be set at once.
#[tokio::test]
async fn xep0049_store_and_retrieve() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;

    let r = private(&mut alice, "get", None, "<storage xmlns='storage:bookmarks'/>").await;
    assert_eq!(stored(&r), elements("<storage xmlns='storage:bookmarks'/>"));

    let r = private(&mut alice, "set", None, PREFS).await;
    assert_result(&r);
    assert_eq!(r.children().count(), 0, "{}", xml::to_string(&r));
    let r = private(&mut alice, "get", None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_eq!(stored(&r), elements(PREFS), "{}", xml::to_string(&r));

    // Own bare JID in 'to' is the same account; another namespace leaves the first alone.
    assert_result(&private(&mut alice, "set", Some("alice@localhost"), BOOKMARKS).await);
    let r = private(&mut alice, "get", None, "<storage xmlns='storage:bookmarks'/>").await;
    assert_eq!(stored(&r), elements(BOOKMARKS));
    let r = private(
        &mut alice,
        "get",
        Some("alice@localhost"),
        "<exodus xmlns='exodus:prefs'/>",
    )
    .await;
    assert_eq!(stored(&r), elements(PREFS));

    // Replaced, not merged; and another session sees the same data.
    let prefs2 = "<exodus xmlns='exodus:prefs'><defaultnick>Ophelia</defaultnick></exodus>";
    assert_result(&private(&mut alice, "set", None, prefs2).await);
    let mut other = server.raw_login("alice", PW, Some("other")).await;
    let r = private(&mut other, "get", None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_eq!(stored(&r), elements(prefs2));

    // Two namespaces in one set, one of them with two elements (§2.3: a set "MAY contain
    // multiple elements qualified by the same namespace").
    let notes = "<storage xmlns='storage:rosternotes'><note jid='a@b'>x</note></storage>\
                 <extra xmlns='storage:rosternotes'/>";
    let marks = "<storage xmlns='storage:bookmarks'/>";
    assert_result(&private(&mut other, "set", None, &format!("{notes}{marks}")).await);
    let r = private(&mut alice, "get", None, "<storage xmlns='storage:rosternotes'/>").await;
    assert_eq!(stored(&r), elements(notes));
    let r = private(&mut alice, "get", None, "<storage xmlns='storage:bookmarks'/>").await;
    assert_eq!(stored(&r), elements(marks));
}

// XEP-0049 §2.3: namespaces beginning with 'jabber:' or 'http://jabber.org/', and
// 'vcard-temp', are reserved. Refusing them is OPTIONAL; switchboard refuses with the
// condition the XEP names, not-acceptable, for get and set, and stores nothing.
#[tokio::test]
async fn xep0049_reserved_namespace() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    for inner in [
        "<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>",
        "<message xmlns='jabber:client'/>",
        "<query xmlns='jabber:iq:roster'/>",
        "<x xmlns='http://jabber.org/protocol/muc'/>",
        // No namespace of its own: it inherits jabber:iq:private.
        "<prefs><a/></prefs>",
        // A valid fragment next to a reserved one: the whole set is refused.
        "<storage xmlns='storage:bookmarks'/><vCard xmlns='vcard-temp'/>",
    ] {
        let r = private(&mut alice, "set", None, inner).await;
        xml::assert_stanza_error(&r, &["not-acceptable"]);
        let r = private(&mut alice, "get", None, inner).await;
        if !inner.contains("storage:bookmarks") {
            xml::assert_stanza_error(&r, &["not-acceptable"]);
        }
    }
    let r = private(&mut alice, "get", None, "<storage xmlns='storage:bookmarks'/>").await;
    assert_eq!(
        stored(&r),
        elements("<storage xmlns='storage:bookmarks'/>"),
        "nothing was stored"
    );
}

// XEP-0049 §2.3 / §3: get or set addressed to another user (existing or not) is refused
// with forbidden (preferred) or service-unavailable, as is one addressed to the server; the
// other user's data is neither revealed nor changed.
#[tokio::test]
async fn xep0049_other_user_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    assert_result(&private(&mut bob, "set", None, PREFS).await);

    let forged = "<exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus>";
    for to in ["bob@localhost", "nobody@localhost", "localhost"] {
        let r = private(&mut alice, "set", Some(to), forged).await;
        xml::assert_stanza_error(&r, &["forbidden", "service-unavailable"]);
        let r = private(&mut alice, "get", Some(to), "<exodus xmlns='exodus:prefs'/>").await;
        xml::assert_stanza_error(&r, &["forbidden", "service-unavailable"]);
        assert!(!xml::to_string(&r).contains("Hamlet"), "{}", xml::to_string(&r));
    }
    let r = private(&mut bob, "get", None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_eq!(stored(&r), elements(PREFS));
    // Private means per account: alice's own namespace is still empty.
    let r = private(&mut alice, "get", None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_eq!(stored(&r), elements("<exodus xmlns='exodus:prefs'/>"));
}

// XEP-0049 §2.3: a query without a child element is refused ("Not Acceptable"; "Bad
// Format", i.e. bad-request, is also named).
#[tokio::test]
async fn xep0049_empty_query() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    for type_ in ["get", "set"] {
        let r = private(&mut alice, type_, None, "").await;
        xml::assert_stanza_error(&r, &["not-acceptable", "bad-request"]);
    }
}

// Size limit (`max_private_size`, 64 KiB per namespace by default): larger data is
// refused and what was stored is kept; data under the limit is accepted.
#[tokio::test]
async fn xep0049_size_limit() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    let blob = |bytes: usize| format!("<blob xmlns='urn:example:blob'>{}</blob>", "b".repeat(bytes));
    let fits = blob(60_000);
    assert_result(&private(&mut alice, "set", None, &fits).await);
    let r = private(&mut alice, "set", None, &blob(70_000)).await;
    xml::assert_stanza_error(&r, &["not-acceptable", "policy-violation", "resource-constraint"]);
    let r = private(&mut alice, "get", None, "<blob xmlns='urn:example:blob'/>").await;
    assert_eq!(stored(&r), elements(&fits));
}
