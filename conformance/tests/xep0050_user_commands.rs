//! XEP-0050 commands for ordinary users, as ejabberd and Prosody users know them: ping,
//! change my password, end my other sessions. Admins see theirs in addition, listed first.

use conformance::client::tokio_xmpp_sasl_login;
use conformance::{Element, TestServer, XmppClient, xml};

const CMD: &str = "http://jabber.org/protocol/commands";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const PING: &str = "https://github.com/switchboard-xmpp/switchboard#ping";
const CHANGE_PASSWORD: &str = "https://github.com/switchboard-xmpp/switchboard#change-my-password";
const END_OTHERS: &str = "https://github.com/switchboard-xmpp/switchboard#end-my-other-sessions";
const PURGE_ARCHIVE: &str = "https://github.com/switchboard-xmpp/switchboard#purge-my-archive";
const PW: &str = "passw0rd";

/// A server whose `admins` lists admin@localhost, with accounts admin, alice and bob.
async fn server() -> TestServer {
    let s = TestServer::start_with(|c| c.admins = vec!["admin@localhost".into()]).await;
    for u in ["admin", "alice", "bob"] {
        s.add_user(u, PW).await;
    }
    s
}

async fn listed(c: &mut XmppClient) -> Vec<String> {
    let r = c
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{DISCO_ITEMS}' node='{CMD}'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r.get_child("query", DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node").map(str::to_owned))
        .collect()
}

async fn execute(c: &mut XmppClient, node: &str, inner: &str) -> Element {
    let r = c
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' action='execute'>{inner}</command>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r.get_child("command", CMD).expect("command").clone()
}

fn note(cmd: &Element, kind: &str) -> Option<String> {
    cmd.children()
        .find(|n| n.is("note", CMD) && n.attr("type") == Some(kind))
        .map(|n| n.text())
}

fn password_form(sid: &str, pw: &str, again: &str) -> String {
    format!(
        "<command xmlns='{CMD}' node='{CHANGE_PASSWORD}' sessionid='{sid}' action='complete'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='password'><value>{pw}</value></field>\
         <field var='password-verify'><value>{again}</value></field></x></command>"
    )
}

// §2.2: disco#items of the commands node lists what the requester may run: an ordinary user
// gets the user commands (not an empty list), an admin the administrative ones first and the
// user commands after them.
#[tokio::test]
async fn xep0050_2_2_ordinary_users_see_their_commands() {
    let s = server().await;
    let mut alice = s.client("alice", PW).await;
    let mut admin = s.client("admin", PW).await;
    let mine = listed(&mut alice).await;
    assert_eq!(mine, vec![PING, CHANGE_PASSWORD, END_OTHERS, PURGE_ARCHIVE]);
    let theirs = listed(&mut admin).await;
    assert!(theirs.iter().any(|n| n == ADD_USER), "{theirs:?}");
    assert_eq!(theirs[0], ADD_USER, "admin commands come first: {theirs:?}");
    assert_eq!(&theirs[theirs.len() - mine.len()..], &mine[..]);
}

#[tokio::test]
async fn xep0050_user_ping_command() {
    let s = server().await;
    let mut alice = s.client("alice", PW).await;
    let cmd = execute(&mut alice, PING, "").await;
    assert_eq!(cmd.attr("status"), Some("completed"), "{}", xml::to_string(&cmd));
    assert_eq!(note(&cmd, "info").as_deref(), Some("Pong"));
}

// "Change my password": a two-field form; a mismatch brings the form back with a note; the
// new password is the one that logs in afterwards, for this account only.
#[tokio::test]
async fn xep0050_user_change_my_password() {
    let s = server().await;
    let mut alice = s.client("alice", PW).await;
    let cmd = execute(&mut alice, CHANGE_PASSWORD, "").await;
    assert_eq!(cmd.attr("status"), Some("executing"));
    let sid = cmd.attr("sessionid").expect("sessionid").to_string();
    let form = cmd.get_child("x", "jabber:x:data").expect("form");
    assert!(
        form.children()
            .any(|f| f.attr("var") == Some("password") && f.attr("type") == Some("text-private")),
        "{}",
        xml::to_string(form)
    );
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            &password_form(&sid, "n3w-secret", "other"),
        )
        .await;
    let cmd = r.get_child("command", CMD).expect("command");
    assert_eq!(cmd.attr("status"), Some("executing"));
    assert!(note(cmd, "error").is_some(), "{}", xml::to_string(cmd));
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            &password_form(&sid, "n3w-secret", "n3w-secret"),
        )
        .await;
    let cmd = r.get_child("command", CMD).expect("command");
    assert_eq!(cmd.attr("status"), Some("completed"), "{}", xml::to_string(cmd));
    let login = |jid: &'static str, pw: &'static str| {
        tokio_xmpp_sasl_login(s.starttls_connector(), jid, pw, &["SCRAM-SHA-256"])
    };
    assert_eq!(login("alice@localhost", "n3w-secret").await, Ok(()));
    assert!(login("alice@localhost", PW).await.is_err());
    assert_eq!(login("bob@localhost", PW).await, Ok(()));
}

// "End my other sessions": every other session of the account is closed; the requester's
// session and other accounts are untouched.
#[tokio::test]
async fn xep0050_user_end_my_other_sessions() {
    let s = server().await;
    let mut one = s.client_jid("alice@localhost/one", PW).await;
    let mut two = s.raw_login("alice", PW, Some("two")).await;
    let mut bob = s.client("bob", PW).await;
    let cmd = execute(&mut one, END_OTHERS, "").await;
    assert_eq!(cmd.attr("status"), Some("completed"), "{}", xml::to_string(&cmd));
    assert_eq!(note(&cmd, "info").as_deref(), Some("Ended 1 other session(s)"));
    // The other session's stream ends with an error saying why.
    let ended = two.expect_stream_error().await;
    assert_eq!(ended.condition, "policy-violation");
    one.ping_server().await;
    bob.ping_server().await;
}
