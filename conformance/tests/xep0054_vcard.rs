//! XEP-0054 vcard-temp (and XEP-0153 vCard-based avatars, whose server side is
//! forwarding presence untouched). Raw XML clients, so that what comes back can be
//! compared element for element with what was sent.

use conformance::{Element, RawClient, TestServer, ns, xml};

const PW: &str = "passw0rd";
const NS: &str = "vcard-temp";

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

/// Sends `<iq type to>payload</iq>` and returns the response (result or error).
async fn iq(c: &mut RawClient, type_: &str, to: Option<&str>, payload: &str) -> Element {
    let id = c.id();
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    c.iq(&format!("<iq type='{type_}' id='{id}'{to}>{payload}</iq>"))
        .await
}

fn assert_result(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

fn vcard_of(r: &Element) -> &Element {
    assert_result(r);
    r.get_child("vCard", NS)
        .unwrap_or_else(|| panic!("no <vCard xmlns='vcard-temp'/> in {}", xml::to_string(r)))
}

fn parse(s: &str) -> Element {
    s.parse()
        .unwrap_or_else(|e| panic!("test literal is not XML ({e}): {s}"))
}

/// XEP-0054 §3.1's example, plus what real clients add: a version attribute, xml:lang,
/// escaped and non-ASCII text, an avatar (XEP-0153) and an element in a foreign namespace.
const RICH_VCARD: &str = "<vCard xmlns='vcard-temp' version='3.0'>
    <FN xml:lang='en'>Peter Saint-Andre</FN>
    <N><FAMILY>Saint-Andre</FAMILY><GIVEN>Peter</GIVEN><MIDDLE/></N>
    <NICKNAME>stpeter &amp; “Ω” &lt;𝄞&gt;</NICKNAME>
    <URL>http://www.xmpp.org/xsf/people/stpeter.shtml</URL>
    <BDAY>1966-08-06</BDAY>
    <ORG><ORGNAME>XMPP Standards Foundation</ORGNAME><ORGUNIT/></ORG>
    <TEL><WORK/><VOICE/><NUMBER>303-308-3282</NUMBER></TEL>
    <TEL><HOME/><FAX/><NUMBER/></TEL>
    <ADR><WORK/><EXTADD>Suite 600</EXTADD><STREET>1899 Wynkoop Street</STREET><LOCALITY>Denver</LOCALITY><CTRY>USA</CTRY></ADR>
    <EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID></EMAIL>
    <JABBERID>stpeter@jabber.org</JABBERID>
    <DESC>
      More information about me is located on my
      personal website: http://www.saint-andre.com/
    </DESC>
    <PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</BINVAL></PHOTO>
    <X-CLIENT-EXT xmlns='urn:example:client' flag='on'><item n='1'>kept</item></X-CLIENT-EXT>
  </vCard>";

// XEP-0054 §3.1: with no vCard stored, the answer is an empty <vCard/> in a result or an
// error (SHOULD be item-not-found); with no 'to' and with the own bare JID alike.
#[tokio::test]
async fn xep0054_3_1_retrieve_own_empty() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    for to in [None, Some("alice@localhost")] {
        let r = iq(&mut alice, "get", to, "<vCard xmlns='vcard-temp'/>").await;
        if r.attr("type") == Some("error") {
            xml::assert_stanza_error(&r, &["item-not-found"]);
        } else {
            let v = vcard_of(&r);
            assert_eq!(v.children().count(), 0, "{}", xml::to_string(&r));
            assert!(v.text().trim().is_empty(), "{}", xml::to_string(&r));
        }
    }
}

// XEP-0054 §3.2: a set with no 'to' stores the vCard; §3.1: a get returns it, exactly as
// sent (no field dropped, reordered or rewritten). A second set replaces the whole vCard.
#[tokio::test]
async fn xep0054_3_2_update_and_retrieve() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    let r = iq(&mut alice, "set", None, RICH_VCARD).await;
    assert_result(&r);
    assert_eq!(r.children().count(), 0, "{}", xml::to_string(&r));

    let sent = parse(RICH_VCARD);
    for to in [None, Some("alice@localhost")] {
        let r = iq(&mut alice, "get", to, "<vCard xmlns='vcard-temp'/>").await;
        assert_eq!(
            vcard_of(&r),
            &sent,
            "vCard not returned as stored: {}",
            xml::to_string(&r)
        );
    }
    // Survives the session: a new login sees it too.
    let mut again = server.raw_login("alice", PW, Some("other")).await;
    let r = iq(&mut again, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(vcard_of(&r), &sent);

    // No partial updates (§3.2): the new vCard replaces the old one entirely.
    let small = "<vCard xmlns='vcard-temp'><NICKNAME>psa</NICKNAME></vCard>";
    assert_result(&iq(&mut alice, "set", Some("alice@localhost"), small).await);
    let r = iq(&mut again, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(vcard_of(&r), &parse(small), "{}", xml::to_string(&r));
}

// XEP-0054 §3.2: a set addressed to another user's JID (or the server's) MUST get an error,
// which SHOULD be forbidden or not-allowed, and changes nothing.
#[tokio::test]
async fn xep0054_3_2_set_other_users_vcard_refused() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    let original = "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>";
    assert_result(&iq(&mut bob, "set", None, original).await);

    let forged = "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>";
    for to in ["bob@localhost", "nobody@localhost", "localhost"] {
        let r = iq(&mut alice, "set", Some(to), forged).await;
        xml::assert_stanza_error(&r, &["forbidden", "not-allowed"]);
    }
    let r = iq(&mut bob, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(vcard_of(&r), &parse(original));
    // Nor did alice's own vCard change.
    let r = iq(&mut alice, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    if r.attr("type") == Some("result") {
        assert_eq!(vcard_of(&r).children().count(), 0, "{}", xml::to_string(&r));
    }
}

// XEP-0054 §3.3: a get to another user's bare JID is answered by the server on the user's
// behalf (never forwarded to the user's resource), from that bare JID. Without a vCard or
// without such a user: an error, which SHOULD be service-unavailable or item-not-found.
#[tokio::test]
async fn xep0054_3_3_other_users_vcard() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    bob.send("<presence/>").await;
    assert_result(&iq(&mut bob, "set", None, RICH_VCARD).await);

    let r = iq(
        &mut alice,
        "get",
        Some("bob@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    assert_eq!(vcard_of(&r), &parse(RICH_VCARD), "{}", xml::to_string(&r));
    assert_eq!(r.attr("from"), Some("bob@localhost"));

    for to in ["carol@localhost", "nobody@localhost"] {
        let r = iq(&mut alice, "get", Some(to), "<vCard xmlns='vcard-temp'/>").await;
        xml::assert_stanza_error(&r, &["service-unavailable", "item-not-found"]);
        assert_eq!(r.attr("from"), Some(to));
    }

    // Bob's resource never saw alice's request: everything before his ping's answer is
    // checked.
    let id = bob.id();
    bob.send(format!(
        "<iq type='get' id='{id}' to='localhost'><ping xmlns='{}'/></iq>",
        ns::PING
    ))
    .await;
    loop {
        let e = bob.expect_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id.as_str()) {
            break;
        }
        assert!(
            !(e.name() == "iq" && e.has_child("vCard", NS)),
            "vCard request forwarded to the user: {}",
            xml::to_string(&e)
        );
    }
}

// XEP-0054 §3.3 (note): a server may have its own vCard. This one has none: an empty
// vCard or a not-found style error are both coherent; the request must be answered.
#[tokio::test]
async fn xep0054_3_3_server_vcard() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    let r = iq(
        &mut alice,
        "get",
        Some("localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    if r.attr("type") == Some("error") {
        xml::assert_stanza_error(&r, &["item-not-found", "service-unavailable"]);
    } else {
        vcard_of(&r);
    }
    assert_eq!(r.attr("from"), Some("localhost"));
}

// XEP-0054 §4: the server advertises the 'vcard-temp' feature.
#[tokio::test]
async fn xep0054_4_disco_feature() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    let r = iq(
        &mut alice,
        "get",
        Some("localhost"),
        &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
    )
    .await;
    assert_result(&r);
    let query = r.get_child("query", ns::DISCO_INFO).expect("disco#info query");
    assert!(
        query
            .children()
            .any(|f| f.is("feature", ns::DISCO_INFO) && f.attr("var") == Some(NS)),
        "{}",
        xml::to_string(&r)
    );
}

// Size limit (`max_vcard_size`, 64 KiB by default): a larger vCard is refused with an error
// the client can act on and the stored one is kept; one under the limit is accepted.
#[tokio::test]
async fn xep0054_size_limit() {
    let server = server_with(&["alice"]).await;
    let mut alice = login(&server, "alice").await;
    let vcard_with_photo = |bytes: usize| {
        format!(
            "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard>",
            "A".repeat(bytes)
        )
    };
    let fits = vcard_with_photo(60_000);
    assert_result(&iq(&mut alice, "set", None, &fits).await);

    let r = iq(&mut alice, "set", None, &vcard_with_photo(70_000)).await;
    xml::assert_stanza_error(&r, &["not-acceptable", "policy-violation"]);

    let r = iq(&mut alice, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(
        vcard_of(&r),
        &parse(&fits),
        "the refused vCard replaced the stored one"
    );
}

// Deleting the account deletes its vCard: an account re-created under the same name
// starts without one.
#[tokio::test]
async fn xep0054_account_deletion_removes_vcard() {
    let server = server_with(&["alice", "bob"]).await;
    {
        let mut alice = login(&server, "alice").await;
        assert_result(&iq(&mut alice, "set", None, RICH_VCARD).await);
    }
    let out = server.cli(&["user", "del", "alice@localhost"]).await;
    assert!(out.success(), "{out:?}");
    server.add_user("alice", PW).await;
    let mut bob = login(&server, "bob").await;
    let r = iq(
        &mut bob,
        "get",
        Some("alice@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    xml::assert_stanza_error(&r, &["service-unavailable", "item-not-found"]);
}

// XEP-0153 §3 / §4: clients advertise their avatar hash in presence with
// <x xmlns='vcard-temp:x:update'/>. The server forwards it untouched and adds nothing;
// here in directed presence between two users, for each form the XEP defines (hash, no
// avatar, not ready to advertise).
#[tokio::test]
async fn xep0153_presence_update_forwarded_untouched() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.raw_login("alice", PW, Some("desk")).await;
    let mut bob = server.raw_login("bob", PW, Some("phone")).await;
    bob.send("<presence/>").await;
    let update_forms = [
        "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>",
        "<x xmlns='vcard-temp:x:update'><photo/></x>",
        "<x xmlns='vcard-temp:x:update'/>",
    ];
    for (i, update) in update_forms.iter().enumerate() {
        let children = format!(
            "<show>away</show><status>back soon</status><priority>5</priority>\
             <c xmlns='{}' hash='sha-1' node='https://example.org/client' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>\
             {update}",
            ns::CAPS
        );
        let id = format!("p{i}");
        alice
            .send(format!(
                "<presence to='bob@localhost/phone' id='{id}'>{children}</presence>"
            ))
            .await;
        let p = bob
            .read_until(|e| e.name() == "presence" && e.attr("id") == Some(id.as_str()))
            .await;
        assert_eq!(p.attr("from"), Some("alice@localhost/desk"));
        assert_eq!(p.attr("type"), None, "{}", xml::to_string(&p));
        let expected = xml::parse_client(&format!("<presence>{children}</presence>"));
        let got: Vec<&Element> = p.children().collect();
        let want: Vec<&Element> = expected.children().collect();
        assert_eq!(
            got,
            want,
            "presence children changed in transit: {}",
            xml::to_string(&p)
        );
    }
}
