//! XEP-0227 §4.7: PEP nodes (configuration, affiliations) and items travel through
//! `switchboard export` and `switchboard import`: OMEMO keys, bookmarks and avatars arrive
//! on the new server as they were, and a second import changes nothing.

use conformance::pep::{PUBSUB, assert_error, assert_ok, items, owner, publish};
use conformance::{TestServer, xml};

const PW: &str = "passw0rd";
const ALICE: &str = "alice@localhost";
const DEVICES: &str = "urn:xmpp:omemo:2:devices";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";

async fn cli_ok(server: &TestServer, args: &[&str]) -> conformance::CliOutput {
    let out = server.cli(args).await;
    assert!(out.success(), "`{}` failed: {out:?}", args.join(" "));
    out
}

#[tokio::test]
async fn xep0227_4_7_pep_nodes_and_items_export_and_import() {
    let old = TestServer::start().await;
    old.add_user("alice", PW).await;
    old.add_user("bob", PW).await;
    let mut alice = old.client_jid("alice@localhost/desk", PW).await;
    let devices = "<devices xmlns='urn:xmpp:omemo:2'><device id='42'/></devices>";
    assert_ok(
        &publish(
            &mut alice,
            DEVICES,
            Some("current"),
            devices,
            &[("pubsub#access_model", "open")],
        )
        .await,
    );
    let mark =
        "<conference xmlns='urn:xmpp:bookmarks:1' name='R' autojoin='true'><nick>a</nick></conference>";
    let whitelist = [("pubsub#access_model", "whitelist"), ("pubsub#max_items", "max")];
    assert_ok(
        &publish(
            &mut alice,
            BOOKMARKS,
            Some("r@conference.localhost"),
            mark,
            &whitelist,
        )
        .await,
    );
    let grant = format!(
        "<affiliations node='{BOOKMARKS}'><affiliation jid='bob@localhost' affiliation='member'/></affiliations>"
    );
    assert_ok(&owner(&mut alice, "set", &grant).await);
    let path = old.dir().join("pep.xml");
    cli_ok(&old, &["export", path.to_str().unwrap()]).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("<pubsub xmlns=\"{PUBSUB}\""))
            || text.contains(&format!("<pubsub xmlns='{PUBSUB}'")),
        "{text}"
    );

    let new = TestServer::start().await;
    let out = cli_ok(&new, &["import", path.to_str().unwrap()]).await;
    assert!(out.stdout.contains("2 created"), "{out:?}");
    let mut alice = new.client_jid("alice@localhost/desk", PW).await;
    let got = items(&mut alice, None, DEVICES, "", None).await.unwrap();
    assert_eq!(got[0].attr("id"), Some("current"));
    assert_eq!(
        xml::to_string(got[0].children().next().unwrap()),
        xml::to_string(&devices.parse().unwrap())
    );
    let got = items(&mut alice, None, BOOKMARKS, "", None).await.unwrap();
    assert_eq!(got[0].attr("id"), Some("r@conference.localhost"));
    // The configuration came along: the devices are open, the bookmarks whitelisted with bob
    // a member.
    let mut bob = new.client_jid("bob@localhost/home", PW).await;
    assert_eq!(
        items(&mut bob, Some(ALICE), DEVICES, "", None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        items(&mut bob, Some(ALICE), BOOKMARKS, "", None)
            .await
            .unwrap()
            .len(),
        1
    );
    let r = owner(&mut alice, "set", &format!("<affiliations node='{BOOKMARKS}'><affiliation jid='bob@localhost' affiliation='none'/></affiliations>")).await;
    assert_ok(&r);
    let r = items(&mut bob, Some(ALICE), BOOKMARKS, "", None)
        .await
        .unwrap_err();
    assert_error(&r, "not-allowed", Some("closed-node"));
    // Importing the file again restores bob's membership; a third import changes nothing.
    let out = cli_ok(&new, &["import", path.to_str().unwrap()]).await;
    assert!(out.stdout.contains("1 updated"), "{out:?}");
    let out = cli_ok(&new, &["import", path.to_str().unwrap()]).await;
    assert!(
        out.stdout.contains("0 created, 0 updated, 2 unchanged"),
        "{out:?}"
    );
}
