//! Parsing and serialising XEP-0227 users (no database).

use std::sync::Arc;

use super::FileError;
use super::export::write_user;
use super::reader::{RawUser, ReadLimits, read_stream};
use super::record::{UserRecord, parse_user};
use crate::config::Config;
use crate::sasl::{self, HashAlg, ScramCredentials};
use crate::storage::portable::{PortableOffline, PortableUser};
use crate::storage::privacy::{StoredPrivacy, StoredPrivacyItem, StoredPrivacyList};
use crate::storage::roster::StoredItem;

fn config() -> Config {
    Config::parse("domains = [\"localhost\", \"example.org\"]\n", "test.toml").unwrap()
}

fn parse_all(xml: &str) -> Result<Vec<UserRecord>, FileError> {
    let config = config();
    let mut out = Vec::new();
    read_stream(
        "t.xml",
        &mut xml.as_bytes(),
        ReadLimits::default(),
        &mut |raw: RawUser| {
            out.push(parse_user(&raw, &config)?);
            Ok(())
        },
    )?;
    Ok(out)
}

fn parse_one(xml: &str) -> Result<UserRecord, FileError> {
    Ok(parse_all(xml)?.remove(0))
}

fn wrap(host: &str, user: &str) -> String {
    format!("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='{host}'>\n{user}\n</host>\n</server-data>\n")
}

fn item(contact: &str, sub: &str, groups: &[&str]) -> StoredItem {
    StoredItem {
        contact: contact.into(),
        name: None,
        subscription: sub.into(),
        ask: false,
        approved: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn creds(alg: HashAlg, seed: u8) -> ScramCredentials {
    let len = if alg == HashAlg::Sha1 { 20 } else { 32 };
    ScramCredentials {
        alg,
        salt: vec![seed; 16],
        iterations: 4096 + u32::from(seed),
        stored_key: vec![seed ^ 0x55; len],
        server_key: vec![seed ^ 0xaa; len],
    }
}

/// Everything our storage holds for a user, with awkward characters where text goes.
fn full_user() -> (PortableUser, Vec<(String, String)>) {
    let mut bob = item("bob@example.org", "both", &["Friends", "Work & <Play>"]);
    bob.name = Some("Bob 'the' \"builder\"".into());
    let mut carol = item("carol@example.org", "none", &[]);
    carol.ask = true;
    carol.approved = true;
    let user = PortableUser {
        credentials: vec![creds(HashAlg::Sha1, 1), creds(HashAlg::Sha256, 2)],
        roster: vec![bob, carol, item("dave@localhost", "from", &["x"])],
        pending_in: vec![(
            "eve@example.org".into(),
            "<presence xmlns='jabber:client' from='eve@example.org' to='alice@localhost' type='subscribe'><status>hi &amp; bye</status></presence>".into(),
        )],
        vcard: Some("<vCard xmlns='vcard-temp'><FN>Alice &lt;A&gt;</FN>\n  <NICKNAME>al</NICKNAME></vCard>".into()),
        private: vec![
            ("storage:bookmarks".into(), "<storage xmlns='storage:bookmarks'><conference jid='r@muc'/></storage>".into()),
            ("urn:x:prefs".into(), "<a xmlns='urn:x:prefs'>1</a><b xmlns='urn:x:prefs'/>".into()),
        ],
        offline: vec![PortableOffline {
            stamp_ms: Some(1_700_000_000_123),
            sender: "bob@example.org/phone".into(),
            stanza: "<message xmlns='jabber:client' from='bob@example.org/phone' to='alice@localhost' type='chat'><body>hello &lt;there&gt;</body></message>".into(),
        }],
        privacy: StoredPrivacy {
            default_list: Some("blocklist".into()),
            lists: vec![
                StoredPrivacyList {
                    name: "blocklist".into(),
                    version: 0,
                    items: vec![StoredPrivacyItem {
                        kind: "jid".into(),
                        value: "spam@example.org".into(),
                        action: "deny".into(),
                        order: 1,
                        selectors: 0,
                    }],
                },
                StoredPrivacyList {
                    name: "work".into(),
                    version: 0,
                    items: vec![
                        StoredPrivacyItem {
                            kind: "group".into(),
                            value: "Work & <Play>".into(),
                            action: "allow".into(),
                            order: 5,
                            selectors: 1 | 4,
                        },
                        StoredPrivacyItem {
                            kind: String::new(),
                            value: String::new(),
                            action: "deny".into(),
                            order: 10,
                            selectors: 2 | 8,
                        },
                    ],
                },
            ],
        },
        pep: vec![crate::storage::pep::StoredPepNode {
            node: "urn:xmpp:omemo:2:devices".into(),
            config: crate::modules::pubsub::config::NodeConfig {
                access_model: crate::modules::pubsub::config::AccessModel::Open,
                ..Default::default()
            }
            .to_text(),
            items: vec![crate::storage::pep::StoredPepItem {
                id: "current".into(),
                publisher: "alice@localhost".into(),
                payload: crate::xml::to_string(
                    &"<devices xmlns='urn:xmpp:omemo:2'><device id='7'/></devices>"
                        .parse()
                        .unwrap(),
                ),
                seq: 1,
            }],
            affiliations: vec![("bob@example.org".into(), "member".into())],
        }],
    };
    let notes = vec![("bob@example.org".into(), "plays only ranked & <loud>".into())];
    (user, notes)
}

#[test]
fn xep0227_export_then_import_round_trips_every_field() {
    let (user, notes) = full_user();
    let mut out = Vec::new();
    assert_eq!(
        write_user(&mut out, "localhost", "alice", &user, &notes).unwrap(),
        0
    );
    let xml = wrap("localhost", std::str::from_utf8(&out).unwrap());
    let rec = parse_one(&xml).unwrap();
    assert_eq!(rec.account.to_string(), "alice@localhost");
    assert!(rec.password.is_none() && rec.derive.is_empty());
    assert!(rec.ignored.is_empty(), "{:?}", rec.ignored);
    assert_eq!(rec.notes, notes);
    assert_eq!(rec.data.credentials, user.credentials);
    assert_eq!(rec.data.roster, user.roster);
    assert_eq!(rec.data.pending_in, user.pending_in);
    assert_eq!(rec.data.vcard, user.vcard);
    assert_eq!(rec.data.private, user.private);
    assert_eq!(rec.data.offline, user.offline);
    assert_eq!(rec.data.privacy, user.privacy);
    assert_eq!(rec.data.pep, user.pep);
}

#[test]
fn xep0227_1_1_scram_credentials_prosody_style() {
    let xml = wrap(
        "localhost",
        "<user name='Juliet'>\
           <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
             <server-key>qqqqqqqqqqqqqqqqqqqqqqqqqqo=</server-key>\
             <stored-key>VVVVVVVVVVVVVVVVVVVVVVVVVVU=</stored-key>\
             <iter-count>10000</iter-count><salt>c2FsdA==</salt>\
           </scram-credentials>\
           <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-512'/>\
           <presence xmlns='jabber:client' from='romeo@example.org/orchard' type='subscribe'/>\
           <pubsub xmlns='http://jabber.org/protocol/pubsub'/>\
         </user>",
    );
    let rec = parse_one(&xml).unwrap();
    // Nodeprep'd.
    assert_eq!(rec.account.user, "juliet");
    assert_eq!(rec.data.credentials.len(), 1);
    let c = &rec.data.credentials[0];
    assert_eq!(
        (c.alg, c.iterations, c.salt.as_slice()),
        (HashAlg::Sha1, 10000, &b"salt"[..])
    );
    assert_eq!(c.server_key, vec![0xaa; 20]);
    assert!(rec.password.is_none());
    assert_eq!(rec.data.pending_in[0].0, "romeo@example.org");
    assert!(
        rec.ignored.iter().any(|i| i.contains("SCRAM-SHA-512")),
        "{:?}",
        rec.ignored
    );
    // PEP data is imported (`portable::pep`); an empty element holds no node.
    assert!(rec.data.pep.is_empty());
    assert!(
        !rec.ignored.iter().any(|i| i.contains("pubsub")),
        "{:?}",
        rec.ignored
    );
}

#[test]
fn xep0227_4_2_plaintext_password_derives_missing_hashes() {
    let xml = wrap("example.org", "<user name='romeo' password='iLuvJuLi3T'/>");
    let mut rec = parse_one(&xml).unwrap();
    assert_eq!(rec.derive, HashAlg::ALL.to_vec());
    let mut again = rec.clone();
    rec.derive_credentials(4096, &[]);
    assert!(rec.password.is_none());
    assert_eq!(rec.data.credentials.len(), 2);
    for c in &rec.data.credentials {
        assert!(sasl::verify_password(c, "iLuvJuLi3T"));
    }
    // Stored credentials the password verifies are kept (same salt); others are replaced.
    let other = sasl::new_credentials(HashAlg::Sha256, "another password", 4096);
    again.derive_credentials(4096, &[rec.data.credentials[0].clone(), other.clone()]);
    assert_eq!(again.data.credentials[0], rec.data.credentials[0]);
    assert_ne!(again.data.credentials[1], other);
    assert!(sasl::verify_password(&again.data.credentials[1], "iLuvJuLi3T"));
}

#[test]
fn ejabberd_scram_password_attribute_and_old_namespace() {
    let sha1 = creds(HashAlg::Sha1, 7);
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let xml = format!(
        "<?xml version='1.0' encoding='UTF-8'?>\
         <server-data xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' xmlns:xi='http://www.w3.org/2001/XInclude'>\
         <host jid='localhost'><user name='admin' password='scram:{},{},{},{}'>\
           <offline-messages><message xmlns='jabber:client' from='bob@example.org/x' to='admin@localhost' type='chat'>\
             <body>hi</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2020-01-02T03:04:05Z'>Offline Storage</delay>\
           </message></offline-messages>\
           <query xmlns='jabber:iq:privacy'><default name='missing'/><list name='l'><item action='deny' order='3'><iq/></item></list></query>\
         </user></host></server-data>",
        b64(&sha1.stored_key),
        b64(&sha1.server_key),
        b64(&sha1.salt),
        sha1.iterations
    );
    let rec = parse_one(&xml).unwrap();
    assert_eq!(rec.data.credentials, vec![sha1]);
    assert!(rec.derive.is_empty());
    let m = &rec.data.offline[0];
    assert_eq!(m.stamp_ms, Some(1_577_934_245_000));
    assert_eq!(m.sender, "bob@example.org/x");
    assert!(!m.stanza.contains("delay"), "{}", m.stanza);
    assert_eq!(rec.data.privacy.default_list, None);
    assert_eq!(rec.data.privacy.lists[0].items[0].selectors, 2);
    assert!(rec.ignored.iter().any(|i| i.contains("missing")));
}

#[test]
fn malformed_users_name_the_line_and_reason() {
    let cases = [
        (
            "<user name='a'>\n<query xmlns='jabber:iq:roster'>\n<item jid='b@x' subscription='sometimes'/></query></user>",
            5,
            "subscription",
        ),
        (
            "<user name='a'>\n<query xmlns='jabber:iq:roster'>\n<item jid='b@x'/>\n<item jid='B@x'/></query></user>",
            6,
            "twice",
        ),
        (
            "<user name='a'>\n<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>1</iter-count><salt>!!</salt><server-key/><stored-key/></scram-credentials></user>",
            4,
            "base64",
        ),
        ("<user name='a' password='scram:AAAA,BBBB'/>", 3, "4 comma"),
        ("<user/>", 3, "'name'"),
        (
            "<user name='a'>\n<offline-messages><message xmlns='jabber:client'/></offline-messages></user>",
            4,
            "'from'",
        ),
        (
            "<user name='a'>\n<query xmlns='jabber:iq:privacy'><list name='x'>\n<item action='deny' order='-1'/></list></query></user>",
            5,
            "order",
        ),
    ];
    for (user, line, reason) in cases {
        let e = parse_one(&wrap("localhost", user)).unwrap_err();
        assert_eq!(e.line, line, "{user}: {e}");
        assert!(e.reason.contains(reason), "{user}: {e}");
        assert_eq!(e.file, Arc::from("t.xml"));
    }
    let e = parse_one(&wrap("elsewhere.example", "<user name='a'/>")).unwrap_err();
    assert!(e.reason.contains("not hosted"), "{e}");
}
