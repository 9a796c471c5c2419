//! Server-side protocol features: XEP-0030, XEP-0092, XEP-0115, XEP-0199,
//! XEP-0202.

use conformance::{ChannelBindingMode, Element, ScramHash, TestServer, XmppClient, ns, xml};

async fn alice() -> (TestServer, XmppClient) {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let c = server.client("alice", "passw0rd").await;
    (server, c)
}

fn result_payload<'a>(r: &'a Element, name: &str, namespace: &str) -> &'a Element {
    assert_eq!(
        r.attr("type"),
        Some("result"),
        "expected a result: {}",
        xml::to_string(r)
    );
    r.get_child(name, namespace)
        .unwrap_or_else(|| panic!("no <{name} xmlns='{namespace}'/> in {}", xml::to_string(r)))
}

// XEP-0030 §3.1: disco#info on the server: identity server/im and the
// features the server implements.
#[tokio::test]
async fn xep0030_disco_info_server() {
    let (_server, mut c) = alice().await;
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert_eq!(r.attr("from"), Some("localhost"));
    let q = result_payload(&r, "query", ns::DISCO_INFO);
    let identities: Vec<(String, String)> = q
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|i| {
            (
                i.attr("category").unwrap_or("").to_owned(),
                i.attr("type").unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        identities.contains(&("server".into(), "im".into())),
        "identity server/im missing: {identities:?}"
    );
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .collect();
    for f in [ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::VERSION, ns::TIME] {
        assert!(features.contains(&f), "feature {f} missing: {features:?}");
    }
    let mut sorted = features.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        features.len(),
        "duplicate features (XEP-0030 §3.1 forbids): {features:?}"
    );
}

// XEP-0030 §4: disco#items on the server lists the services it hosts: with the default
// configuration exactly the MUC service (each item with a jid, and that JID answers
// disco#info as a text conference service); with the service off, no item at all.
#[tokio::test]
async fn xep0030_disco_items_server() {
    let (_server, mut c) = alice().await;
    let items = server_items(&mut c).await;
    assert_eq!(
        items,
        vec![("conference.localhost".to_owned(), true)],
        "items (jid, has a name)"
    );
    let r = c
        .iq(
            "get",
            Some("conference.localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let q = result_payload(&r, "query", ns::DISCO_INFO);
    assert!(
        q.children().any(|i| i.is("identity", ns::DISCO_INFO)
            && i.attr("category") == Some("conference")
            && i.attr("type") == Some("text")),
        "the listed service is no conference service: {}",
        xml::to_string(&r)
    );

    let server = TestServer::start_with(|cfg| cfg.extra_toml = "[muc]\nenabled = false\n".into()).await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.client("alice", "passw0rd").await;
    assert_eq!(server_items(&mut c).await, vec![], "MUC off: nothing to list");
}

/// The server's disco#items as (jid, whether it has a name); every child must be an item
/// with a jid.
async fn server_items(c: &mut XmppClient) -> Vec<(String, bool)> {
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS),
        )
        .await;
    let q = result_payload(&r, "query", ns::DISCO_ITEMS);
    q.children()
        .map(|item| {
            assert!(item.is("item", ns::DISCO_ITEMS), "{}", xml::to_string(item));
            let jid = item
                .attr("jid")
                .unwrap_or_else(|| panic!("item without jid: {}", xml::to_string(item)));
            (jid.to_owned(), item.attr("name").is_some_and(|n| !n.is_empty()))
        })
        .collect()
}

// XEP-0030 §3.2 / §7: disco#info on a node that does not exist -> <item-not-found/>.
#[tokio::test]
async fn xep0030_disco_info_unknown_node() {
    let (_server, mut c) = alice().await;
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!(
                "<query xmlns='{}' node='urn:example:no-such-node'/>",
                ns::DISCO_INFO
            ),
        )
        .await;
    xml::assert_stanza_error(&r, &["item-not-found"]);
}

// XEP-0199 §4.2: client-to-server ping.
#[tokio::test]
async fn xep0199_server_ping() {
    let (_server, mut c) = alice().await;
    let r = c
        .iq("get", Some("localhost"), &format!("<ping xmlns='{}'/>", ns::PING))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    assert_eq!(
        r.attr("from"),
        Some("localhost"),
        "RFC 6120 §8.1.2.1: server replies come from its domain"
    );
    assert_eq!(r.attr("to"), Some(c.jid().to_string().as_str()));
    assert!(
        r.children().next().is_none(),
        "ping result must be empty: {}",
        xml::to_string(&r)
    );
}

// XEP-0092: software version of the server.
#[tokio::test]
async fn xep0092_software_version() {
    let (_server, mut c) = alice().await;
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::VERSION),
        )
        .await;
    let q = result_payload(&r, "query", ns::VERSION);
    let name = q
        .get_child("name", ns::VERSION)
        .map(|n| n.text())
        .unwrap_or_default();
    let version = q
        .get_child("version", ns::VERSION)
        .map(|n| n.text())
        .unwrap_or_default();
    assert!(!name.trim().is_empty(), "<name/> required: {}", xml::to_string(q));
    assert!(
        !version.trim().is_empty(),
        "<version/> required: {}",
        xml::to_string(q)
    );
}

// XEP-0202: entity time, with XEP-0082 formats: <utc/> in UTC ("Z"), <tzo/>
// as [+-]hh:mm (or Z), and close to the real time.
#[tokio::test]
async fn xep0202_entity_time() {
    let (_server, mut c) = alice().await;
    let r = c
        .iq("get", Some("localhost"), &format!("<time xmlns='{}'/>", ns::TIME))
        .await;
    let t = result_payload(&r, "time", ns::TIME);
    let utc = t.get_child("utc", ns::TIME).map(|n| n.text()).unwrap_or_default();
    let tzo = t.get_child("tzo", ns::TIME).map(|n| n.text()).unwrap_or_default();
    assert!(utc.ends_with('Z'), "<utc/> must be UTC with 'Z': {utc:?}");
    let parsed = chrono::DateTime::parse_from_rfc3339(&utc)
        .unwrap_or_else(|e| panic!("<utc/> {utc:?} is not an XEP-0082 DateTime: {e}"));
    let skew = (chrono::Utc::now().timestamp() - parsed.timestamp()).abs();
    assert!(skew < 120, "server time off by {skew}s: {utc}");
    let tzo_ok = tzo == "Z" || {
        let b = tzo.as_bytes();
        b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
            && b[3] == b':'
            && b[4].is_ascii_digit()
            && b[5].is_ascii_digit()
    };
    assert!(tzo_ok, "<tzo/> must be [+-]hh:mm: {tzo:?}");
}

// XEP-0115 §6.3 (server in stream features): <c hash='sha-1' node ver/> in
// the stream features, and 'ver' is the XEP-0115 §5 hash of the disco#info the
// server returns for node#ver.
#[tokio::test]
async fn xep0115_caps_in_stream_features() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw().await;
    let mut all_features = vec![c.open_stream().await];
    all_features.push(c.starttls().await);
    c.sasl_scram("alice", "passw0rd", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("login");
    all_features.push(c.restart_stream().await);
    c.bind(None).await.expect("bind");
    let caps = all_features
        .iter()
        .rev()
        .find_map(|f| f.get_child("c", ns::CAPS).cloned())
        .unwrap_or_else(|| {
            panic!(
                "no XEP-0115 <c/> in any stream features: {}",
                xml::to_string(&all_features[2])
            )
        });
    assert_eq!(caps.attr("hash"), Some("sha-1"), "{}", xml::to_string(&caps));
    let node = caps.attr("node").expect("node").to_owned();
    let ver = caps.attr("ver").expect("ver").to_owned();
    let r = c
        .iq(&format!(
            "<iq type='get' id='caps1' to='localhost'><query xmlns='{}' node='{}#{}'/></iq>",
            ns::DISCO_INFO,
            xml::escape(&node),
            xml::escape(&ver)
        ))
        .await;
    let q = result_payload(&r, "query", ns::DISCO_INFO);
    assert_eq!(
        q.attr("node"),
        Some(format!("{node}#{ver}").as_str()),
        "XEP-0115 §6.2: the node must be echoed"
    );
    let computed = xml::caps_ver_sha1(q);
    assert_eq!(
        computed,
        ver,
        "ver does not match the disco#info (S = {:?})",
        xml::caps_verification_string(q)
    );
    // The plain (no node) disco#info must describe the same entity.
    let r = c
        .iq(&format!(
            "<iq type='get' id='caps2' to='localhost'><query xmlns='{}'/></iq>",
            ns::DISCO_INFO
        ))
        .await;
    let q = result_payload(&r, "query", ns::DISCO_INFO);
    assert_eq!(
        xml::caps_ver_sha1(q),
        ver,
        "plain disco#info differs from the advertised caps"
    );
}
