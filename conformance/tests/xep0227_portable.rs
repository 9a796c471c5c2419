//! XEP-0227 Portable Import/Export: `switchboard export FILE` / `switchboard import FILE`
//! against running servers (same database as the server, like `user add`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use conformance::{Element, TestServer, XmppClient, ns, xml};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

const ROSTER: &str = "jabber:iq:roster";
const VCARD: &str = "vcard-temp";
const PRIVATE: &str = "jabber:iq:private";
const BLOCKING: &str = "urn:xmpp:blocking";
const DELAY: &str = "urn:xmpp:delay";

fn file_in(server: &TestServer, name: &str) -> PathBuf {
    server.dir().join(name)
}

async fn cli_ok(server: &TestServer, args: &[&str]) -> conformance::CliOutput {
    let out = server.cli(args).await;
    assert!(out.success(), "`{}` failed: {out:?}", args.join(" "));
    out
}

async fn export(server: &TestServer, name: &str) -> (PathBuf, String) {
    let path = file_in(server, name);
    cli_ok(server, &["export", path.to_str().unwrap()]).await;
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

async fn import(server: &TestServer, path: &Path) -> conformance::CliOutput {
    cli_ok(server, &["import", path.to_str().unwrap()]).await
}

/// The roster items as (jid, name, subscription, ask, groups), sorted.
async fn roster(c: &mut XmppClient) -> Vec<(String, String, String, String, Vec<String>)> {
    let r = c.iq("get", None, &format!("<query xmlns='{ROSTER}'/>")).await;
    let q = r
        .get_child("query", ROSTER)
        .unwrap_or_else(|| panic!("roster result: {}", xml::to_string(&r)));
    let mut items: Vec<_> = q
        .children()
        .map(|i| {
            let a = |n: &str| i.attr(n).unwrap_or_default().to_owned();
            let mut groups: Vec<String> = i
                .children()
                .filter(|g| g.is("group", ROSTER))
                .map(|g| g.text())
                .collect();
            groups.sort();
            (a("jid"), a("name"), a("subscription"), a("ask"), groups)
        })
        .collect();
    items.sort();
    items
}

async fn vcard(c: &mut XmppClient) -> String {
    let r = c.iq("get", None, &format!("<vCard xmlns='{VCARD}'/>")).await;
    xml::to_string(r.get_child("vCard", VCARD).expect("vCard"))
}

async fn private(c: &mut XmppClient) -> String {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{PRIVATE}'><prefs xmlns='urn:example:prefs'/></query>"),
        )
        .await;
    xml::to_string(r.get_child("query", PRIVATE).expect("private"))
}

async fn blocklist(c: &mut XmppClient) -> Vec<String> {
    let r = c
        .iq("get", None, &format!("<blocklist xmlns='{BLOCKING}'/>"))
        .await;
    let mut jids: Vec<String> = r
        .get_child("blocklist", BLOCKING)
        .expect("blocklist")
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect();
    jids.sort();
    jids
}

fn assert_result(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

/// alice (roster with both directions, a pending request from carol, vCard, private XML,
/// a blocklist), bob, carol, and dave with an offline message from bob.
async fn populated_server() -> TestServer {
    let server = TestServer::start().await;
    for (u, p) in [
        ("alice", "alice-secret"),
        ("bob", "bob-secret"),
        ("carol", "carol-secret"),
        ("dave", "dave-secret"),
    ] {
        server.add_user(u, p).await;
    }
    let mut alice = server.client("alice", "alice-secret").await;
    let mut bob = server.client("bob", "bob-secret").await;
    let mut carol = server.client("carol", "carol-secret").await;
    alice.send_presence(0).await;
    bob.send_presence(0).await;
    assert_result(
        &alice
            .iq(
                "set",
                None,
                &format!(
                    "<query xmlns='{ROSTER}'><item jid='bob@localhost' name='Bob &amp; co'>\
                     <group>Friends</group><group>Work</group></item></query>"
                ),
            )
            .await,
    );
    // alice ⇄ bob: both.
    alice
        .send_xml("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    bob.wait_for(|e| e.name() == "presence" && e.attr("type") == Some("subscribe"))
        .await;
    bob.send_xml("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    bob.send_xml("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("subscribe"))
        .await;
    alice
        .send_xml("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    // carol → alice: waiting for alice's answer.
    carol
        .send_xml("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("carol@localhost"))
        .await;
    assert_result(
        &alice
            .iq(
                "set",
                None,
                &format!("<vCard xmlns='{VCARD}'><FN>Alice &lt;A&gt;</FN><NICKNAME>al</NICKNAME></vCard>"),
            )
            .await,
    );
    assert_result(
        &alice
            .iq("set", None, &format!("<query xmlns='{PRIVATE}'><prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs></query>"))
            .await,
    );
    assert_result(
        &alice
            .iq(
                "set",
                None,
                &format!("<block xmlns='{BLOCKING}'><item jid='spam@example.org'/></block>"),
            )
            .await,
    );
    bob.send_xml(
        "<message to='dave@localhost' type='chat' id='m1'><body>see you &amp; later</body></message>",
    )
    .await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.ping_server().await;
    }
    alice.close().await;
    bob.close().await;
    carol.close().await;
    server
}

// Export, import into a fresh server, and everything is there: logins with the original
// passwords (the SCRAM credentials round-trip), the roster with names, groups and
// subscription states, the pending request, vCard, private XML, blocklist and the offline
// message with its original stamp. Exporting again gives the same file.
#[tokio::test]
async fn xep0227_export_then_import_into_a_fresh_server() {
    let old = populated_server().await;
    let (_, exported) = export(&old, "export.xml").await;
    assert!(
        exported.contains("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'>"),
        "{exported}"
    );
    assert!(!exported.contains("alice-secret"), "no plaintext password");

    let mut a_old = old.client("alice", "alice-secret").await;
    let old_roster = roster(&mut a_old).await;
    let (old_vcard, old_private, old_blocked) = (
        vcard(&mut a_old).await,
        private(&mut a_old).await,
        blocklist(&mut a_old).await,
    );
    a_old.close().await;

    let new = TestServer::start().await;
    let path = file_in(&new, "import.xml");
    std::fs::write(&path, &exported).unwrap();
    let out = import(&new, &path).await;
    assert!(out.stdout.contains("4 created"), "{out:?}");
    assert!(
        out.stderr.contains("import: 4/4 users"),
        "progress on stderr: {out:?}"
    );

    let mut alice = new.client("alice", "alice-secret").await;
    let r = roster(&mut alice).await;
    assert_eq!(r, old_roster);
    assert!(
        r.contains(&(
            "bob@localhost".into(),
            "Bob & co".into(),
            "both".into(),
            "".into(),
            vec!["Friends".into(), "Work".into()]
        )),
        "{r:?}"
    );
    assert_eq!(vcard(&mut alice).await, old_vcard);
    assert!(old_vcard.contains("Alice &lt;A&gt;"), "{old_vcard}");
    assert_eq!(private(&mut alice).await, old_private);
    assert!(old_private.contains("dark"));
    assert_eq!(blocklist(&mut alice).await, old_blocked);
    assert_eq!(old_blocked, ["spam@example.org"]);
    // RFC 6121 §3.1.3: the pending request comes again with initial presence.
    alice.send_presence(0).await;
    let p = alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("subscribe"))
        .await;
    assert_eq!(p.attr("from"), Some("carol@localhost"));
    alice.close().await;

    // Also through SCRAM-SHA-1 (both hashes were exported).
    new.raw_login("bob", "bob-secret", Some("r")).await;

    let mut dave = new.client("dave", "dave-secret").await;
    dave.send_presence(0).await;
    let m = dave.expect_message().await;
    assert_eq!(
        m.get_child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("see you & later")
    );
    assert_eq!(
        m.attr("from").map(|f| f.starts_with("bob@localhost/")),
        Some(true),
        "{}",
        xml::to_string(&m)
    );
    let stamp = m
        .get_child("delay", DELAY)
        .and_then(|d| d.attr("stamp"))
        .expect("delay")
        .to_owned();
    assert!(exported.contains(&stamp), "original stamp {stamp} kept");
    dave.close().await;

    // dave's queue was delivered: remove it from the comparison.
    let (_, again) = export(&new, "again.xml").await;
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("see you") && !l.contains("offline-messages"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&again), strip(&exported));
}

// Importing the same file twice leaves the same state: the second import changes nothing,
// and an export after it is identical to one before.
#[tokio::test]
async fn xep0227_import_twice_is_idempotent() {
    let old = populated_server().await;
    let (path, exported) = export(&old, "export.xml").await;
    let new = TestServer::start().await;
    import(&new, &path).await;
    let (_, first) = export(&new, "first.xml").await;
    let out = import(&new, &path).await;
    assert!(
        out.stdout.contains("0 created, 0 updated, 4 unchanged"),
        "{out:?}"
    );
    let (_, second) = export(&new, "second.xml").await;
    assert_eq!(first, second);
    assert_eq!(first, exported);
    // Into the server it came from, too.
    let out = import(&old, &path).await;
    assert!(out.stdout.contains("4 unchanged"), "{out:?}");
}

/// SCRAM-SHA-1 credentials for `password` (RFC 5802 §3), base64: (stored, server, salt).
fn scram_sha1(password: &str, salt: &[u8], iterations: u32) -> (String, String, String) {
    let mut salted = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored = Sha1::digest(&client_key).to_vec();
    let server = hmac(&salted, b"Server Key");
    (B64.encode(stored), B64.encode(server), B64.encode(salt))
}

// An ejabberd `export_piefxis` layout: the old namespace, a main file including a host
// file (XEP-0227 §5), a `password='scram:...'` account and a plaintext one, privacy lists
// and a pending request. Both log in with their passwords.
#[tokio::test]
async fn xep0227_ejabberd_style_export_imports() {
    let server = TestServer::start().await;
    let (stored, srv, salt) = scram_sha1("juliet-pw", b"ejabberd-salt", 4096);
    let dir = server.dir().join("ejabberd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("20260101-000000.xml"),
        "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' \
         xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='20260101-000000_localhost.xml'/></server-data>",
    )
    .unwrap();
    std::fs::write(
        dir.join("20260101-000000_localhost.xml"),
        format!(
            "<?xml version='1.0' encoding='UTF-8'?>\
             <host xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' xmlns:xi='http://www.w3.org/2001/XInclude' jid='localhost'>\
             <user name='juliet' password='scram:{stored},{srv},{salt},4096'>\
               <query xmlns='jabber:iq:privacy'><default name='blocklist'/>\
                 <list name='blocklist'><item type='jid' value='tybalt@capulet.lit' action='deny' order='1'/></list></query>\
               <query xmlns='jabber:iq:roster'><item jid='romeo@localhost' name='Romeo' subscription='both'><group>Friends</group></item></query>\
               <presence xmlns='jabber:client' from='nurse@localhost' to='juliet@localhost' type='subscribe'/>\
             </user>\
             <user name='romeo' password='romeo-pw'>\
               <query xmlns='jabber:iq:roster'><item jid='juliet@localhost' subscription='both'/></query>\
             </user></host>"
        ),
    )
    .unwrap();
    let out = import(&server, &dir.join("20260101-000000.xml")).await;
    assert!(out.stdout.contains("2 created"), "{out:?}");
    // Again: the plaintext password still verifies the stored credentials, kept as they are.
    let out = import(&server, &dir.join("20260101-000000.xml")).await;
    assert!(out.stdout.contains("2 unchanged"), "{out:?}");
    // juliet has SCRAM-SHA-1 credentials only.
    let mut juliet = server.raw_login("juliet", "juliet-pw", Some("balcony")).await;
    let r = juliet
        .iq(&format!(
            "<iq type='get' id='b1'><blocklist xmlns='{BLOCKING}'/></iq>"
        ))
        .await;
    assert!(
        xml::to_string(&r).contains("tybalt@capulet.lit"),
        "{}",
        xml::to_string(&r)
    );
    let r = juliet
        .iq(&format!("<iq type='get' id='r1'><query xmlns='{ROSTER}'/></iq>"))
        .await;
    assert!(
        xml::to_string(&r).contains("name='Romeo'"),
        "{}",
        xml::to_string(&r)
    );
    let mut romeo = server.client("romeo", "romeo-pw").await;
    assert_eq!(roster(&mut romeo).await[0].0, "juliet@localhost");
    romeo.close().await;
}

// A Prosody XEP-0227 store file (one per user, `urn:xmpp:pie:0`, SCRAM-SHA-1 credentials,
// vCard and private XML) imports; the user logs in with the password.
#[tokio::test]
async fn xep0227_prosody_style_file_imports() {
    let server = TestServer::start().await;
    let (stored, srv, salt) = scram_sha1("hamlet-pw", b"prosody-salt-1234", 10000);
    let path = file_in(&server, "hamlet@localhost.xml");
    std::fs::write(
        &path,
        format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='hamlet'>\
             <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
               <server-key>{srv}</server-key><stored-key>{stored}</stored-key>\
               <iter-count>10000</iter-count><salt>{salt}</salt></scram-credentials>\
             <vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>\
             <query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>2b|!2b</prefs></query>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>\
             </user></host></server-data>"
        ),
    )
    .unwrap();
    let out = import(&server, &path).await;
    assert!(out.stdout.contains("1 created"), "{out:?}");
    // PEP data is imported (xep0227_pep.rs); an empty owner element is nothing to skip.
    assert!(!out.stdout.contains("not imported"), "{out:?}");
    let mut hamlet = server.raw_login("hamlet", "hamlet-pw", Some("castle")).await;
    let r = hamlet
        .iq(&format!("<iq type='get' id='v1'><vCard xmlns='{VCARD}'/></iq>"))
        .await;
    assert!(
        xml::to_string(&r).contains("<FN>Hamlet</FN>"),
        "{}",
        xml::to_string(&r)
    );
    let r = hamlet
        .iq(&format!(
            "<iq type='get' id='p1'><query xmlns='{PRIVATE}'><prefs xmlns='urn:example:prefs'/></query></iq>"
        ))
        .await;
    assert!(xml::to_string(&r).contains("2b|!2b"), "{}", xml::to_string(&r));
}

// A malformed file is refused with its line and the reason, and nothing is imported, not
// even the valid users before the broken one.
#[tokio::test]
async fn xep0227_malformed_file_reports_the_line_and_imports_nothing() {
    let server = TestServer::start().await;
    let path = file_in(&server, "bad.xml");
    std::fs::write(
        &path,
        "<server-data xmlns='urn:xmpp:pie:0'>\n\
         <host jid='localhost'>\n\
         <user name='ok' password='fine-password'/>\n\
         <user name='broken' password='x'>\n\
         <query xmlns='jabber:iq:roster'>\n\
         <item jid='friend@localhost' subscription='maybe'/>\n\
         </query></user></host></server-data>\n",
    )
    .unwrap();
    let out = server.cli(&["import", path.to_str().unwrap()]).await;
    assert!(!out.success(), "{out:?}");
    let expected = format!("{}:6: subscription 'maybe'", path.display());
    assert!(out.stderr.contains(&expected), "{out:?}");
    assert!(server.list_users(None).await.is_empty());

    std::fs::write(
        &path,
        "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n<user name='a'>\n</host>",
    )
    .unwrap();
    let out = server.cli(&["import", path.to_str().unwrap()]).await;
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{}:4: not well-formed", path.display())),
        "{out:?}"
    );
}

/// A file of `users` users with `items` roster items each (SCRAM credentials, as an export
/// writes them).
fn bulk_file(users: usize, items: usize) -> String {
    let (stored, srv, salt) = scram_sha1("bulk-password", b"bulk-salt", 4096);
    let mut s = String::from("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>\n");
    for u in 0..users {
        s.push_str(&format!(
            "<user name='u{u}'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
             <iter-count>4096</iter-count><salt>{salt}</salt><server-key>{srv}</server-key>\
             <stored-key>{stored}</stored-key></scram-credentials><query xmlns='jabber:iq:roster'>"
        ));
        for i in 1..=items {
            let c = (u + i) % users;
            s.push_str(&format!(
                "<item jid='u{c}@localhost' subscription='both' name='User {c}'><group>G{}</group></item>",
                i % 3
            ));
        }
        s.push_str("</query></user>\n");
    }
    s.push_str("</host></server-data>\n");
    s
}

// Bulk test populations: 5,000 users with 20-item rosters. Prints the time taken; run with
// `cargo test -p conformance --test xep0227_portable -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn xep0227_bulk_import_5000_users_with_20_item_rosters() {
    let server = TestServer::start().await;
    let path = file_in(&server, "bulk.xml");
    std::fs::write(&path, bulk_file(5000, 20)).unwrap();
    let started = Instant::now();
    let out = import(&server, &path).await;
    let took = started.elapsed();
    println!(
        "imported 5000 users x 20 roster items in {:.2} s: {}",
        took.as_secs_f64(),
        out.stdout.trim()
    );
    let started = Instant::now();
    let out = import(&server, &path).await;
    println!(
        "re-import (unchanged) in {:.2} s: {}",
        started.elapsed().as_secs_f64(),
        out.stdout.trim()
    );
    server.raw_login("u4999", "bulk-password", None).await;
    assert!(took < Duration::from_secs(600));
}

/// `[roster_notes]` with one key (base64 of 32 bytes).
fn notes_toml(key: &str) -> String {
    format!("\n[roster_notes]\nkeys = {{ \"k\" = \"{key}\" }}\nactive_key = \"k\"\n")
}

const NOTES: &str = "urn:switchboard:roster-notes:0";

// Roster notes (our extension, encrypted at rest) are exported decrypted in their own
// namespace and sealed again under the importing server's key; a server without keys
// reports them as not imported. `-` writes the export to standard output.
#[tokio::test]
async fn xep0227_roster_notes_move_between_keys() {
    let old =
        TestServer::start_with(|c| c.extra_toml = notes_toml("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="))
            .await;
    old.add_user("alice", "alice-secret").await;
    let mut alice = old.client("alice", "alice-secret").await;
    let set = format!(
        "<query xmlns='{ROSTER}'><item jid='bob@localhost' name='Bob'><note xmlns='{NOTES}'>owes me &amp; 5</note></item></query>"
    );
    assert_result(&alice.iq("set", None, &set).await);
    alice.close().await;
    let (path, exported) = export(&old, "notes.xml").await;
    assert!(
        exported.contains(&format!("<note xmlns='{NOTES}'>owes me &amp; 5</note>")),
        "{exported}"
    );
    let stdout = cli_ok(&old, &["export", "-"]).await;
    assert_eq!(stdout.stdout, exported);

    let new =
        TestServer::start_with(|c| c.extra_toml = notes_toml("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="))
            .await;
    import(&new, &path).await;
    let mut alice = new.client("alice", "alice-secret").await;
    let r = alice
        .iq(
            "get",
            None,
            &format!("<query xmlns='{ROSTER}'><notes xmlns='{NOTES}'/></query>"),
        )
        .await;
    assert!(
        xml::to_string(&r).contains("owes me &amp; 5"),
        "{}",
        xml::to_string(&r)
    );
    alice.close().await;

    let keyless = TestServer::start().await;
    let out = import(&keyless, &path).await;
    assert!(out.stdout.contains("1 roster note(s) not imported"), "{out:?}");
}
