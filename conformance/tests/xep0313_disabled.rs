//! `[mam] enabled = false`: the server keeps no account archive and offers none (XEP-0313
//! §6: a server without the protocol does not list it, and answers its IQs like any unknown
//! protocol). Used to measure what archiving costs per message (bench/README.md).

use conformance::{TestServer, XmppClient, ns, xml};

const MAM: &str = "urn:xmpp:mam:2";
const SID: &str = "urn:xmpp:sid:0";
const PW: &str = "passw0rd";

async fn online(server: &TestServer, jid: &str) -> XmppClient {
    let mut c = server.client_jid(jid, PW).await;
    c.send_presence(0).await;
    c
}

// Nothing advertised on the account (disco#info), messages delivered without a stanza-id,
// and an archive query answered service-unavailable, as for any protocol the server lacks.
#[tokio::test]
async fn xep0313_6_disabled_archives_are_neither_kept_nor_offered() {
    let server = TestServer::start_with(|cfg| cfg.extra_toml = "[mam]\nenabled = false\n".into()).await;
    for user in ["alice", "bob"] {
        server.add_user(user, PW).await;
    }
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    let info = bob
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let features: Vec<&str> = info
        .get_child("query", ns::DISCO_INFO)
        .expect("disco#info")
        .children()
        .filter_map(|c| c.attr("var"))
        .collect();
    assert!(
        !features.iter().any(|f| f.starts_with(MAM) || *f == SID),
        "archive features offered: {features:?}"
    );
    alice.send_message("bob@localhost", "not archived").await;
    let msg = bob
        .wait_for(|e| e.name() == "message" && e.get_child("body", ns::CLIENT).is_some())
        .await;
    assert!(
        msg.get_child("stanza-id", SID).is_none(),
        "{}",
        xml::to_string(&msg)
    );
    let answer = bob.iq("set", None, &format!("<query xmlns='{MAM}'/>")).await;
    assert_eq!(answer.attr("type"), Some("error"), "{}", xml::to_string(&answer));
    let error = answer.get_child("error", ns::CLIENT).expect("error");
    assert!(
        error.get_child("service-unavailable", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
}
