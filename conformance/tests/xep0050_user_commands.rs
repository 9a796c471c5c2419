//! XEP-0050 commands for ordinary users, as ejabberd and Prosody users know them: ping,
//! change my password, end my other sessions, list my sessions and XEP-0484 login tokens,
//! end those tokens. Admins see theirs in addition, listed first.

use conformance::client::tokio_xmpp_sasl_login;
use conformance::{Element, TestServer, XmppClient, xml};

const CMD: &str = "http://jabber.org/protocol/commands";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const PING: &str = "https://github.com/switchboard-xmpp/switchboard#ping";
const CHANGE_PASSWORD: &str = "https://github.com/switchboard-xmpp/switchboard#change-my-password";
const END_OTHERS: &str = "https://github.com/switchboard-xmpp/switchboard#end-my-other-sessions";
const PURGE_ARCHIVE: &str = "https://github.com/switchboard-xmpp/switchboard#purge-my-archive";
const LIST_LOGINS: &str = "https://github.com/switchboard-xmpp/switchboard#list-my-sessions-and-tokens";
const END_TOKENS: &str = "https://github.com/switchboard-xmpp/switchboard#end-my-fast-tokens";
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
    assert_eq!(
        mine,
        vec![
            PING,
            CHANGE_PASSWORD,
            END_OTHERS,
            LIST_LOGINS,
            END_TOKENS,
            PURGE_ARCHIVE
        ]
    );
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

/// The values of a result form's field.
fn field_values(cmd: &Element, var: &str) -> Vec<String> {
    cmd.get_child("x", "jabber:x:data")
        .unwrap_or_else(|| panic!("no form: {}", xml::to_string(cmd)))
        .children()
        .find(|f| f.attr("var") == Some(var))
        .map(|f| {
            f.children()
                .filter(|v| v.name() == "value")
                .map(|v| v.text())
                .collect()
        })
        .unwrap_or_default()
}

// A user lists their sessions and XEP-0484 FAST tokens (app, device, user agent, expiry;
// never the token), and ends the tokens: a token login fails afterwards.
#[tokio::test]
async fn xep0050_user_list_and_end_my_login_tokens() {
    use conformance::sasl2::{self, FAST};
    let s = server().await;
    let mut raw = s.raw_starttls().await;
    let extra = format!(
        "{}<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>",
        sasl2::user_agent("ua-commands")
    );
    let success = sasl2::login(&mut raw, "alice", PW, &extra).await;
    let (token, _) = sasl2::token_of(&success).expect("a token");
    let mut alice = s.client("alice", PW).await;
    let listed = execute(&mut alice, LIST_LOGINS, "").await;
    assert_eq!(field_values(&listed, "sessions"), vec![alice.jid().to_string()]);
    let tokens = field_values(&listed, "tokens");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(
        tokens[0].starts_with("conformance on test bench (ua-commands), expires 20"),
        "{tokens:?}"
    );
    assert!(!tokens[0].contains(&token), "the token itself is never shown");
    let ended = execute(&mut alice, END_TOKENS, "").await;
    assert_eq!(note(&ended, "info").as_deref(), Some("Ended 1 login token(s)"));
    let mut c = s.raw_starttls().await;
    let f = sasl2::fast_login(
        &mut c,
        "HT-SHA-256-NONE",
        "alice",
        &token,
        b"",
        "ua-commands",
        "",
        "",
    )
    .await
    .expect_err("ended");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    let listed = execute(&mut alice, LIST_LOGINS, "").await;
    assert!(field_values(&listed, "tokens").is_empty());
}
