//! No secret in any log at any level (issue 18): with the log at `trace` (our code and every
//! library's) and an administrator's per-session traffic trace on, a user logs in with PLAIN
//! and SCRAM, changes the password (XEP-0077 §3.3 and the ad-hoc command), sets a roster
//! note; the whole server output holds none of the passwords, SASL payloads, SCRAM proofs or
//! the note's text, while the traced stanzas themselves are there (redacted).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use conformance::scram::ScramClient;
use conformance::{ChannelBindingMode, Element, Incoming, RawClient, ScramHash, TestServer, ns, xml};

const CMD: &str = "http://jabber.org/protocol/commands";
const DEBUG_LOG: &str = "https://github.com/switchboard-xmpp/switchboard#debug-log";
const CHANGE_PASSWORD: &str = "https://github.com/switchboard-xmpp/switchboard#change-my-password";
const ADMIN_PW: &str = "admin-pw-0";
const PW1: &str = "first-Secret-7391";
const PW2: &str = "second-Secret-8402";
const PW3: &str = "third-Secret-9513";
const NOTE: &str = "met-at-the-Secret-Meeting-5520";
const NOTE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn sasl_element(c: &mut RawClient) -> Element {
    loop {
        match c.next().await {
            Incoming::Element(e) if e.ns() == ns::SASL => return e,
            Incoming::Header(_) => continue,
            other => panic!("expected a SASL element, got {other:?}"),
        }
    }
}

/// A SCRAM-SHA-256 login driven step by step; returns the client-final message (with the proof).
async fn scram_login(c: &mut RawClient, user: &str, pw: &str) -> String {
    let mut scram = ScramClient::new(ScramHash::Sha256, user, pw, ChannelBindingMode::None);
    let first = scram.client_first();
    c.send_auth(&scram.mechanism(), Some(first.as_bytes())).await;
    let challenge = sasl_element(c).await;
    assert_eq!(challenge.name(), "challenge", "{}", xml::to_string(&challenge));
    let server_first = String::from_utf8(B64.decode(challenge.text().trim()).unwrap()).unwrap();
    let fin = scram.client_final(&server_first).expect("client-final");
    c.send(format!(
        "<response xmlns='{}'>{}</response>",
        ns::SASL,
        B64.encode(&fin)
    ))
    .await;
    let success = sasl_element(c).await;
    assert_eq!(success.name(), "success", "{}", xml::to_string(&success));
    fin
}

async fn bound(mut c: RawClient, resource: &str) -> RawClient {
    c.restart_stream().await;
    c.bind(Some(resource)).await.expect("bind");
    c
}

fn ok(r: &Element) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
}

fn command_of(r: &Element) -> Element {
    ok(r);
    r.get_child("command", CMD).expect("command").clone()
}

#[tokio::test]
async fn log_secrets_never_logged_at_trace_level() {
    let server = TestServer::start_with(|c| {
        c.log_level = "trace".into();
        c.registration = true;
        c.admins = vec!["admin@localhost".into()];
        c.extra_toml = format!("\n[roster_notes]\nkeys = {{ \"1\" = \"{NOTE_KEY}\" }}\nactive_key = \"1\"\n");
    })
    .await;
    server.add_user("admin", ADMIN_PW).await;
    server.add_user("alice", PW1).await;
    server.add_user("bob", "bob-pw-00").await;
    let mut admin = server.client("admin", ADMIN_PW).await;

    // PLAIN and SCRAM logins, before and after the trace is switched on.
    let mut plain = server.raw_starttls().await;
    plain.sasl_plain("alice", PW1).await.expect("PLAIN login");
    let mut plain = bound(plain, "plain").await;
    let mut scram = server.raw_starttls().await;
    let scram_final = scram_login(&mut scram, "alice", PW1).await;
    let mut scram = bound(scram, "scram").await;

    // The administrator traces every session of alice (XEP-0133-style command, two stages).
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{DEBUG_LOG}' action='execute'/>"),
        )
        .await;
    let sid = command_of(&r).attr("sessionid").unwrap().to_string();
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{CMD}' node='{DEBUG_LOG}' sessionid='{sid}' action='next'>\
                 <x xmlns='jabber:x:data' type='submit'><field var='accountjid'><value>alice@localhost</value></field></x></command>"
            ),
        )
        .await;
    command_of(&r);
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{CMD}' node='{DEBUG_LOG}' sessionid='{sid}' action='complete'>\
                 <x xmlns='jabber:x:data' type='submit'><field var='resource'><value>*</value></field>\
                 <field var='enable'><value>1</value></field></x></command>"
            ),
        )
        .await;
    assert_eq!(
        command_of(&r).attr("status"),
        Some("completed"),
        "{}",
        xml::to_string(&r)
    );

    // XEP-0077 §3.3: change the password in-band.
    let r = scram
        .iq(&format!(
            "<iq type='set' id='pw1' to='localhost'><query xmlns='jabber:iq:register'>\
             <username>alice</username><password>{PW2}</password></query></iq>"
        ))
        .await;
    ok(&r);
    // A roster note (xep/xep-roster-notes.md), read back so the server writes it too.
    let r = scram
        .iq(&format!(
            "<iq type='set' id='note1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'>\
             <note xmlns='urn:switchboard:roster-notes:0'>{NOTE}</note></item></query></iq>"
        ))
        .await;
    ok(&r);
    let r = scram
        .iq("<iq type='get' id='note2'><query xmlns='jabber:iq:roster'>\
             <notes xmlns='urn:switchboard:roster-notes:0'/></query></iq>")
        .await;
    ok(&r);
    assert!(xml::to_string(&r).contains(NOTE), "{}", xml::to_string(&r));
    // "Change my password" (ad-hoc, a text-private form).
    let r = plain
        .iq(&format!(
            "<iq type='set' id='c1' to='localhost'><command xmlns='{CMD}' node='{CHANGE_PASSWORD}' action='execute'/></iq>"
        ))
        .await;
    let sid = command_of(&r).attr("sessionid").unwrap().to_string();
    let r = plain
        .iq(&format!(
            "<iq type='set' id='c2' to='localhost'><command xmlns='{CMD}' node='{CHANGE_PASSWORD}' sessionid='{sid}' action='complete'>\
             <x xmlns='jabber:x:data' type='submit'><field var='password'><value>{PW3}</value></field>\
             <field var='password-verify'><value>{PW3}</value></field></x></command></iq>"
        ))
        .await;
    assert_eq!(
        command_of(&r).attr("status"),
        Some("completed"),
        "{}",
        xml::to_string(&r)
    );
    // Logins with the newest password, PLAIN and SCRAM, with the trace on.
    let mut again = server.raw_starttls().await;
    again
        .sasl_plain("alice", PW3)
        .await
        .expect("PLAIN login with the new password");
    let mut again2 = server.raw_starttls().await;
    let scram_final2 = scram_login(&mut again2, "alice", PW3).await;
    for c in [&mut scram, &mut plain] {
        ok(&c
            .iq("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await);
    }

    let logs = server.logs();
    // The trace really ran: the password change and the note passed through it, redacted.
    assert!(logs.contains("TRACE"), "the log is not at trace level");
    assert!(
        logs.lines().any(|l| l.contains("xmpp_trace")
            && l.contains("jabber:iq:register")
            && l.contains("[redacted]")),
        "the password change was not traced:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("xmpp_trace") && l.contains("roster-notes") && l.contains("[redacted]")),
        "the note was not traced:\n{logs}"
    );
    let proof = |fin: &str| fin.rsplit("p=").next().unwrap().to_string();
    let mut secrets = vec![
        PW1.to_string(),
        PW2.to_string(),
        PW3.to_string(),
        NOTE.to_string(),
        NOTE_KEY.to_string(),
        B64.encode(format!("\0alice\0{PW1}")),
        B64.encode(format!("\0alice\0{PW3}")),
        proof(&scram_final),
        proof(&scram_final2),
        B64.encode(&scram_final),
        B64.encode(&scram_final2),
    ];
    // Also the base64 of the password alone at each of the three alignments.
    for pw in [PW1, PW2, PW3] {
        for pad in ["", "x", "xx"] {
            let enc = B64.encode(format!("{pad}{pw}"));
            secrets.push(enc[4..enc.len() - 4].to_string());
        }
    }
    for secret in &secrets {
        let hit: Vec<&str> = logs.lines().filter(|l| l.contains(secret.as_str())).collect();
        assert!(hit.is_empty(), "{secret:?} is in the log:\n{}", hit.join("\n"));
    }
}
