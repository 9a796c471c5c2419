//! XEP-0030 §3.1 on an account: the server answers disco#info for the user's bare JID, and
//! lists every namespace it answers there, so a client can discover what its account
//! supports (disco#items included).

use conformance::{TestServer, ns, xml};

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0030_3_1_account_info_lists_what_the_account_answers() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut alice = server.client("alice", PW).await;
    for to in [Some("alice@localhost"), None] {
        let r = alice
            .iq("get", to, &format!("<query xmlns='{}'/>", ns::DISCO_INFO))
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
        let q = r.get_child("query", ns::DISCO_INFO).unwrap();
        assert!(
            q.children().any(|i| i.is("identity", ns::DISCO_INFO)
                && i.attr("category") == Some("account")
                && i.attr("type") == Some("registered")),
            "{}",
            xml::to_string(&r)
        );
        let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
        for expected in [
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            "jabber:iq:roster",
            "vcard-temp",
            "jabber:iq:private",
            "jabber:iq:privacy",
            "urn:xmpp:blocking",
            "jabber:iq:last",
        ] {
            assert!(
                features.contains(&expected),
                "{expected} missing from {features:?}"
            );
        }
        // Each is listed once.
        let mut unique = features.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), features.len(), "{features:?}");
    }
    // And the account does answer disco#items, as listed.
    let r = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}
