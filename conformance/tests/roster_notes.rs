//! Private roster notes: `xep/xep-roster-notes.md`. The stanzas quoted here are the
//! document's examples (numbered as there).

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, xml};

const ROSTER: &str = "jabber:iq:roster";
const NOTES: &str = "urn:switchboard:roster-notes:0";
const PW: &str = "passw0rd";
/// Two test keys (base64 of 32 bytes).
const KEY1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Example 2: a roster get that opts in to notes.
const EX2_GET: &str =
    "<query xmlns='jabber:iq:roster'><notes xmlns='urn:switchboard:roster-notes:0'/></query>";
/// Example 4: setting a note (with the item's name).
const EX4_SET: &str = "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'>\
<note xmlns='urn:switchboard:roster-notes:0'>plays only ranked</note></item></query>";
/// Example 7: a standard client renames the contact; the note stays.
const EX7_RENAME: &str = "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'/></query>";
/// Example 9: an empty note deletes it.
const EX9_DELETE: &str = "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'>\
<note xmlns='urn:switchboard:roster-notes:0'/></item></query>";

const NOTE_WITH_NAME: &str = "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'>\
<note xmlns='urn:switchboard:roster-notes:0'>plays only ranked</note></item></query>";

fn notes_toml(keys: &[(&str, &str)], active: &str, max: usize) -> String {
    let keys: Vec<String> = keys.iter().map(|(id, k)| format!("\"{id}\" = \"{k}\"")).collect();
    format!(
        "\n[roster_notes]\nkeys = {{ {} }}\nactive_key = \"{active}\"\nmax_length = {max}\n",
        keys.join(", ")
    )
}

async fn server_with_notes(users: &[&str]) -> TestServer {
    let server = TestServer::start_with(|cfg| cfg.extra_toml = notes_toml(&[("1", KEY1)], "1", 100)).await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

fn query(e: &Element) -> &Element {
    e.get_child("query", ROSTER)
        .unwrap_or_else(|| panic!("no roster query in {}", xml::to_string(e)))
}

fn item<'a>(q: &'a Element, jid: &str) -> Option<&'a Element> {
    q.children()
        .find(|i| i.is("item", ROSTER) && i.attr("jid") == Some(jid))
}

fn note_of(item: &Element) -> Option<String> {
    item.get_child("note", NOTES).map(Element::text)
}

fn is_push(e: &Element) -> bool {
    e.name() == "iq" && e.attr("type") == Some("set") && e.get_child("query", ROSTER).is_some()
}

async fn get_with_notes(c: &mut XmppClient) -> Element {
    let r = c.iq("get", None, EX2_GET).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r
}

async fn get_plain(c: &mut XmppClient) -> Element {
    let r = c.iq("get", None, &format!("<query xmlns='{ROSTER}'/>")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r
}

async fn set_ok(c: &mut XmppClient, payload: &str) {
    let r = c.iq("set", None, payload).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

fn note_set(contact: &str, note: &str) -> String {
    format!(
        "<query xmlns='{ROSTER}'><item jid='{contact}'><note xmlns='{NOTES}'>{}</note></item></query>",
        xml::escape(note)
    )
}

/// The examples above are quoted from the specification, verbatim.
#[test]
fn notes_examples_match_spec() {
    let spec = include_str!("../../xep/xep-roster-notes.md");
    for (name, example) in [
        ("Example 2", EX2_GET),
        ("Example 4", EX4_SET),
        ("Example 7", EX7_RENAME),
        ("Example 9", EX9_DELETE),
    ] {
        assert!(spec.contains(example), "{name} is not in the spec: {example}");
    }
    for text in [
        "the note is longer than 100 characters",
        "roster notes are not enabled on this server",
        "<feature var='urn:switchboard:roster-notes:0'/>",
    ] {
        assert!(spec.contains(text), "{text}");
    }
}

/// Bytes of the SQLite database files of a test server.
fn database_bytes(server: &TestServer) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs = vec![server.dir().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().contains(".db") {
                out.extend(std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

async fn disco_features(c: &mut XmppClient) -> Vec<String> {
    let r = c
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    r.get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect()
}

// §4.1-4.3 (Examples 1-5): advertised; a note set with a roster set comes back in the result
// of an opted-in roster get; the database holds no plaintext (§8).
#[tokio::test]
async fn notes_set_and_get() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    assert!(
        disco_features(&mut alice).await.contains(&NOTES.to_owned()),
        "Example 1"
    );
    set_ok(&mut alice, EX4_SET).await;
    let r = get_with_notes(&mut alice).await;
    let q = query(&r);
    assert!(
        q.attr("ver").is_some_and(|v| v.starts_with('n')),
        "{}",
        xml::to_string(&r)
    );
    let bob = item(q, "bob@localhost").expect("bob in the roster");
    assert_eq!(bob.attr("name"), Some("Bob"));
    assert_eq!(note_of(bob).as_deref(), Some("plays only ranked"));
    // Unicode and markup survive.
    set_ok(
        &mut alice,
        &note_set("bob@localhost", "<ranked> & \u{1F3AE} only"),
    )
    .await;
    let r = get_with_notes(&mut alice).await;
    assert_eq!(
        note_of(item(query(&r), "bob@localhost").unwrap()).as_deref(),
        Some("<ranked> & \u{1F3AE} only")
    );
    // §8: never in the database as plaintext.
    alice.ping_server().await;
    let bytes = database_bytes(&server);
    assert!(!bytes.is_empty(), "found the database files");
    assert!(
        !bytes.windows(6).any(|w| w == b"ranked"),
        "plaintext in the database"
    );
    alice.close().await;
}

// §5 (Example 6): sessions that did not opt in never see notes, neither in results nor pushes;
// without keys the feature is not advertised and a note set is refused (Example 11).
#[tokio::test]
async fn notes_not_sent_without_opt_in() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut plain = server.client_jid("alice@localhost/plain", PW).await;
    get_plain(&mut plain).await;
    let mut noted = server.client_jid("alice@localhost/noted", PW).await;
    get_with_notes(&mut noted).await;
    set_ok(&mut noted, EX4_SET).await;
    let push = plain.wait_for(is_push).await;
    let it = item(query(&push), "bob@localhost").unwrap();
    assert_eq!(note_of(it), None, "{}", xml::to_string(&push));
    assert!(!query(&push).attr("ver").unwrap().starts_with('n'));
    let push = noted.wait_for(is_push).await;
    assert_eq!(
        note_of(item(query(&push), "bob@localhost").unwrap()).as_deref(),
        Some("plays only ranked")
    );
    let r = get_plain(&mut plain).await;
    assert_eq!(note_of(item(query(&r), "bob@localhost").unwrap()), None);
    plain.close().await;
    noted.close().await;

    // Disabled: not advertised, opt-in ignored, set refused.
    let off = TestServer::start().await;
    off.add_user("alice", PW).await;
    let mut alice = off.client("alice", PW).await;
    assert!(!disco_features(&mut alice).await.contains(&NOTES.to_owned()));
    let r = alice.iq("set", None, EX4_SET).await;
    xml::assert_stanza_error(&r, &["feature-not-implemented"]);
    let r = get_with_notes(&mut alice).await;
    assert!(
        item(query(&r), "bob@localhost").is_none(),
        "the refused set changed nothing"
    );
    alice.close().await;
}

// §6 rule 2 (Example 7): a roster set without a note child leaves the note as it is, so a
// client that knows nothing of notes (a rename) never erases one; the contact's
// subscription changes neither.
#[tokio::test]
async fn notes_survive_set_without_note() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX4_SET).await;
    set_ok(&mut alice, EX7_RENAME).await;
    set_ok(
        &mut alice,
        &format!(
            "<query xmlns='{ROSTER}'><item jid='bob@localhost' name='B'><group>Friends</group></item></query>"
        ),
    )
    .await;
    alice
        .send_xml("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    alice.ping_server().await;
    let r = get_with_notes(&mut alice).await;
    let bob = item(query(&r), "bob@localhost").unwrap();
    assert_eq!(bob.attr("name"), Some("B"));
    assert_eq!(note_of(bob).as_deref(), Some("plays only ranked"));
    // Still there after a restart (read back from storage and decrypted).
    alice.close().await;
    let mut server = server;
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    let r = get_with_notes(&mut alice).await;
    assert_eq!(
        note_of(item(query(&r), "bob@localhost").unwrap()).as_deref(),
        Some("plays only ranked")
    );
    // Removing the item removes its note: added back, it has none.
    set_ok(
        &mut alice,
        &format!("<query xmlns='{ROSTER}'><item jid='bob@localhost' subscription='remove'/></query>"),
    )
    .await;
    set_ok(&mut alice, EX7_RENAME).await;
    let r = get_with_notes(&mut alice).await;
    assert_eq!(note_of(item(query(&r), "bob@localhost").unwrap()), None);
    alice.close().await;
}

// §6 rule 5 (Example 9): an empty note deletes it.
#[tokio::test]
async fn notes_empty_deletes() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX4_SET).await;
    set_ok(&mut alice, EX9_DELETE).await;
    let r = get_with_notes(&mut alice).await;
    let bob = item(query(&r), "bob@localhost").unwrap();
    assert_eq!(note_of(bob), None, "{}", xml::to_string(&r));
    assert_eq!(bob.attr("name"), Some("Bobby"));
    alice.close().await;
}

// §7 (Example 10): a note longer than the limit is refused with not-acceptable, and nothing
// changes; the limit counts characters, not bytes.
#[tokio::test]
async fn notes_length_limit() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, &note_set("bob@localhost", &"é".repeat(100))).await;
    let r = alice
        .iq("set", None, &note_set("bob@localhost", &"x".repeat(101)))
        .await;
    xml::assert_stanza_error(&r, &["not-acceptable"]);
    let text = r
        .get_child("error", "jabber:client")
        .and_then(|e| e.get_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas"))
        .map(Element::text)
        .unwrap_or_default();
    assert!(
        text.contains("100"),
        "the error names the limit: {}",
        xml::to_string(&r)
    );
    let r = alice.iq("set", None, &format!("<query xmlns='{ROSTER}'><item jid='bob@localhost'><note xmlns='{NOTES}'>a</note><note xmlns='{NOTES}'>b</note></item></query>")).await;
    xml::assert_stanza_error(&r, &["bad-request"]);
    let r = get_with_notes(&mut alice).await;
    assert_eq!(
        note_of(item(query(&r), "bob@localhost").unwrap()),
        Some("é".repeat(100))
    );
    alice.close().await;
}

// §6 rules 3-4 (Examples 5, 8): a note change is a roster change: new version, pushed to
// every interested session; a versioned get with the old version gets the change.
#[tokio::test]
async fn notes_change_roster_version_and_push() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX7_RENAME).await;
    let r = get_with_notes(&mut alice).await;
    let v1 = query(&r).attr("ver").unwrap().to_owned();
    let mut other = server.client_jid("alice@localhost/other", PW).await;
    get_with_notes(&mut other).await;
    // A roster set replaces the item (RFC 6121 §2.4): the name goes with the note.
    set_ok(&mut alice, NOTE_WITH_NAME).await;
    let push = other.wait_for(is_push).await;
    let v2 = query(&push).attr("ver").unwrap().to_owned();
    assert_ne!(v1, v2);
    let it = item(query(&push), "bob@localhost").unwrap();
    assert_eq!(it.attr("name"), Some("Bobby"), "the push carries the whole item");
    assert_eq!(note_of(it).as_deref(), Some("plays only ranked"));
    // XEP-0237: the old version is out of date, the new one is current.
    let r = other
        .iq(
            "get",
            None,
            &format!("<query xmlns='{ROSTER}' ver='{v1}'><notes xmlns='{NOTES}'/></query>"),
        )
        .await;
    assert_eq!(
        note_of(item(query(&r), "bob@localhost").unwrap()).as_deref(),
        Some("plays only ranked")
    );
    let r = other
        .iq(
            "get",
            None,
            &format!("<query xmlns='{ROSTER}' ver='{v2}'><notes xmlns='{NOTES}'/></query>"),
        )
        .await;
    assert!(
        r.get_child("query", ROSTER).is_none(),
        "up to date: {}",
        xml::to_string(&r)
    );
    // A cache filled without notes never counts as current with them (§6 rule 4).
    let plain_ver = v2.trim_start_matches('n');
    let r = other
        .iq(
            "get",
            None,
            &format!("<query xmlns='{ROSTER}' ver='{plain_ver}'><notes xmlns='{NOTES}'/></query>"),
        )
        .await;
    assert!(r.get_child("query", ROSTER).is_some(), "{}", xml::to_string(&r));
    // Setting the same item and note again changes nothing: no push.
    set_ok(&mut alice, NOTE_WITH_NAME).await;
    other.ping_server().await;
    other
        .expect_none(Duration::from_millis(300), "roster push", is_push)
        .await;
    alice.close().await;
    other.close().await;
}

// §8.2: rotation with the CLI while the server runs, in several batches with progress;
// reads (rosters loaded from the database, rows under both keys) work throughout and after;
// the old key can then be removed.
#[tokio::test]
async fn notes_rotation_while_running() {
    const N: usize = 250;
    let mut server = TestServer::start_with(|cfg| {
        cfg.extra_toml = notes_toml(&[("1", KEY1), ("2", KEY2)], "1", 100);
    })
    .await;
    server.add_user("alice", PW).await;
    let mut alice = server.client("alice", PW).await;
    for i in 0..N {
        set_ok(
            &mut alice,
            &note_set(&format!("c{i:03}@localhost"), &format!("note {i}")),
        )
        .await;
    }
    alice.close().await;
    let out = server.cli(&["notes", "keys"]).await;
    assert!(out.stdout.contains(&format!("key '1': {N} note(s)")), "{out:?}");
    // Make key 2 active (the running server keeps both keys) and rotate, reading meanwhile.
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        config.replace("active_key = \"1\"", "active_key = \"2\""),
    )
    .unwrap();
    let reads = async {
        for round in 0..3 {
            let mut c = server.client_jid(&format!("alice@localhost/r{round}"), PW).await;
            let r = get_with_notes(&mut c).await;
            let q = query(&r);
            assert_eq!(
                q.children().filter(|i| note_of(i).is_some()).count(),
                N,
                "round {round}"
            );
            assert_eq!(
                note_of(item(q, "c007@localhost").unwrap()).as_deref(),
                Some("note 7")
            );
            c.close().await;
        }
    };
    let (out, ()) = tokio::join!(server.cli(&["notes", "rotate"]), reads);
    assert!(out.success(), "{out:?}");
    for step in [
        "progress: 0/250",
        "progress: 100/250",
        "progress: 200/250",
        "progress: 250/250",
    ] {
        assert!(out.stdout.contains(step), "{step}: {out:?}");
    }
    assert!(
        out.stdout
            .contains("done: 250 note(s) re-encrypted under key '2'"),
        "{out:?}"
    );
    let out = server.cli(&["notes", "keys"]).await;
    assert!(
        out.stdout.contains(&format!("key '2': {N} note(s)")) && !out.stdout.contains("key '1'"),
        "{out:?}"
    );
    // Key 1 is no longer used: the server starts without it and reads every note.
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        config.replace(&format!("\"1\" = \"{KEY1}\", "), ""),
    )
    .unwrap();
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    let r = get_with_notes(&mut alice).await;
    let q = query(&r);
    assert_eq!(q.children().filter(|i| note_of(i).is_some()).count(), N);
    assert_eq!(
        note_of(item(q, "c249@localhost").unwrap()).as_deref(),
        Some("note 249")
    );
    alice.close().await;
}

// §8.2: the server refuses to start when a stored note uses a key missing from the
// configuration, naming the key.
#[tokio::test]
async fn notes_missing_key_refuses_start() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX4_SET).await;
    alice.close().await;
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    let without = config
        .replace(&format!("\"1\" = \"{KEY1}\""), &format!("\"2\" = \"{KEY2}\""))
        .replace("active_key = \"1\"", "active_key = \"2\"");
    std::fs::write(server.config_path(), &without).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), server.cli(&["serve"]))
        .await
        .expect("the server must refuse to start, not serve");
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("key '1'"), "the error names the key: {out:?}");
    // No keys at all (notes disabled) is refused too while notes exist.
    let disabled = config.split("\n[roster_notes]").next().unwrap().to_owned();
    std::fs::write(server.config_path(), disabled).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), server.cli(&["serve"]))
        .await
        .expect("the server must refuse to start");
    assert!(!out.success() && out.stderr.contains("key '1'"), "{out:?}");
}

// §6 rule 3 with a client library that knows nothing of notes (xmpp-parsers' roster types,
// as a tokio-xmpp client uses them): it reads the roster (no note in it, §4.1), renames the
// contact and moves it to a group by sending the item back as it read it (subscription
// attribute included); the note survives.
#[tokio::test]
async fn notes_survive_rename_by_a_client_without_notes() {
    use xmpp_parsers::roster::{Group, Roster};
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX4_SET).await;
    let mut plain = server.client_jid("alice@localhost/plain", PW).await;
    let r = get_plain(&mut plain).await;
    let mut roster = Roster::try_from(query(&r).clone()).expect("a plain RFC 6121 roster");
    let bob = roster
        .items
        .iter_mut()
        .find(|i| i.jid.as_str() == "bob@localhost")
        .expect("bob");
    bob.name = Some("Bobby".into());
    bob.groups = vec![Group("Friends".into())];
    roster.ver = None;
    let payload = xml::to_string(&Element::from(roster));
    set_ok(&mut plain, &payload).await;
    let r = get_with_notes(&mut alice).await;
    let bob = item(query(&r), "bob@localhost").unwrap();
    assert_eq!(bob.attr("name"), Some("Bobby"));
    assert_eq!(note_of(bob).as_deref(), Some("plays only ranked"));
}

/// Renames bob@localhost in the roster with slixmpp's own roster API, then prints the name.
const SLIXMPP_RENAME: &str = r#"
import asyncio, ssl, sys
import slixmpp

class Renamer(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.done = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", lambda _: self.done.set_result("auth failed"))

    async def start(self, _event):
        await self.get_roster()
        await self.update_roster("bob@localhost", name="Bobby", groups=["Friends"])
        self.done.set_result("renamed " + self.client_roster["bob@localhost"]["name"])
        self.disconnect()

async def main():
    jid, password, host, port = sys.argv[1:5]
    xmpp = Renamer(jid, password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp.connect(host, int(port))
    print(await asyncio.wait_for(xmpp.done, 20), flush=True)

asyncio.run(main())
"#;

// §6 rule 3 with a real client that knows nothing of notes: slixmpp renames the contact
// with its own roster API; the note survives.
#[tokio::test]
async fn notes_survive_rename_by_slixmpp() {
    let server = server_with_notes(&["alice", "bob"]).await;
    let mut alice = server.client("alice", PW).await;
    set_ok(&mut alice, EX4_SET).await;
    let script = server.dir().join("rename.py");
    std::fs::write(&script, SLIXMPP_RENAME).unwrap();
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(conformance::python())
            .arg(&script)
            .args([
                "alice@localhost/slix",
                PW,
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("renamed Bobby"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = get_with_notes(&mut alice).await;
    let bob = item(query(&r), "bob@localhost").unwrap();
    assert_eq!(bob.attr("name"), Some("Bobby"));
    assert_eq!(note_of(bob).as_deref(), Some("plays only ranked"));
}
