//! XEP-0133 service administration through XEP-0050 commands, for the accounts listed in
//! `admins`; everyone else gets `forbidden`. Result forms are parsed with xmpp-parsers'
//! `DataForm`.

use std::time::Duration;

use conformance::client::tokio_xmpp_sasl_login;
use conformance::{Element, Incoming, TestServer, XmppClient, blocking, xml};
use xmpp_parsers::data_forms::DataForm;

const CMD: &str = "http://jabber.org/protocol/commands";
const PW: &str = "passw0rd";
const LIST_ROOMS: &str = "https://github.com/switchboard-xmpp/switchboard#list-muc-rooms";
const DESTROY_ROOM: &str = "https://github.com/switchboard-xmpp/switchboard#destroy-muc-room";

fn node(name: &str) -> String {
    format!("http://jabber.org/protocol/admin#{name}")
}

/// A server whose `admins` lists admin@localhost, with accounts admin and alice.
async fn server() -> TestServer {
    let mut server = TestServer::start().await;
    server.add_user("admin", PW).await;
    server.add_user("alice", PW).await;
    let path = server.config_path().to_path_buf();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("admins = [\"admin@localhost\"]\n{config}")).unwrap();
    server.restart().await;
    server
}

fn error_condition(r: &Element) -> String {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    let e = r.get_child("error", "jabber:client").expect("error");
    e.children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .expect("condition")
        .name()
        .to_string()
}

/// Runs a command to completion: execute, then (if it has a form) complete with `fields`.
/// Returns the completed `<command/>`.
async fn run(c: &mut XmppClient, name: &str, fields: &[(&str, &[&str])]) -> Element {
    run_node(c, &node(name), fields).await
}

/// Executes `node`; the `<command/>` of the result.
async fn execute(c: &mut XmppClient, node: &str) -> Element {
    let r = c
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' action='execute'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r.get_child("command", CMD).unwrap().clone()
}

/// Submits `fields` (with the XEP-0133 FORM_TYPE when `form_type`) to session `sid` of
/// `node` with `action`; the IQ answer.
async fn submit(
    c: &mut XmppClient,
    node: &str,
    sid: &str,
    action: &str,
    fields: Fields<'_>,
    form_type: bool,
) -> Element {
    let mut x = String::from("<x xmlns='jabber:x:data' type='submit'>");
    if form_type {
        x.push_str(
            "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>",
        );
    }
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{}</value>", xml::escape(v)));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    c.iq(
        "set",
        Some("localhost"),
        &format!("<command xmlns='{CMD}' node='{node}' sessionid='{sid}' action='{action}'>{x}</command>"),
    )
    .await
}

async fn run_node(c: &mut XmppClient, node: &str, fields: &[(&str, &[&str])]) -> Element {
    let cmd = execute(c, node).await;
    if cmd.attr("status") == Some("completed") {
        return cmd;
    }
    let sid = cmd.attr("sessionid").expect("sessionid");
    let r = submit(c, node, sid, "complete", fields, true).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let cmd = r.get_child("command", CMD).unwrap().clone();
    assert_eq!(cmd.attr("status"), Some("completed"), "{}", xml::to_string(&cmd));
    assert!(
        !cmd.children()
            .any(|n| n.is("note", CMD) && n.attr("type") == Some("error")),
        "{}",
        xml::to_string(&cmd)
    );
    cmd
}

fn result_values(cmd: &Element, var: &str) -> Vec<String> {
    let x = cmd.get_child("x", "jabber:x:data").expect("result form");
    let form = DataForm::try_from(x.clone()).expect("data form");
    form.fields
        .iter()
        .find(|f| f.var.as_deref() == Some(var))
        .map(|f| f.values.clone())
        .unwrap_or_else(|| panic!("no field {var}: {}", xml::to_string(cmd)))
}

async fn login(server: &TestServer, user: &str, pw: &str) -> Result<(), String> {
    tokio_xmpp_sasl_login(
        server.starttls_connector(),
        &format!("{user}@localhost"),
        pw,
        &["SCRAM-SHA-256"],
    )
    .await
}

fn logged(server: &TestServer, what: &str) -> bool {
    server
        .logs()
        .lines()
        .any(|l| l.contains(what) && l.contains("admin") && l.contains("admin@localhost"))
}

/// Every command node of the table (XEP-0133 and our own) offered by a default server.
const ALL_NODES: &[&str] = &[
    "http://jabber.org/protocol/admin#add-user",
    "http://jabber.org/protocol/admin#delete-user",
    "http://jabber.org/protocol/admin#disable-user",
    "http://jabber.org/protocol/admin#reenable-user",
    "http://jabber.org/protocol/admin#end-user-session",
    "http://jabber.org/protocol/admin#change-user-password",
    "http://jabber.org/protocol/admin#get-user-roster",
    "http://jabber.org/protocol/admin#get-user-lastlogin",
    "http://jabber.org/protocol/admin#user-stats",
    "http://jabber.org/protocol/admin#edit-blacklist",
    "http://jabber.org/protocol/admin#get-registered-users-num",
    "http://jabber.org/protocol/admin#get-registered-users-list",
    "http://jabber.org/protocol/admin#get-disabled-users-num",
    "http://jabber.org/protocol/admin#get-disabled-users-list",
    "http://jabber.org/protocol/admin#get-online-users-num",
    "http://jabber.org/protocol/admin#get-online-users-list",
    "http://jabber.org/protocol/admin#get-active-users-num",
    "http://jabber.org/protocol/admin#get-active-users",
    "http://jabber.org/protocol/admin#announce",
    "http://jabber.org/protocol/admin#set-motd",
    "http://jabber.org/protocol/admin#edit-motd",
    "http://jabber.org/protocol/admin#delete-motd",
    "http://jabber.org/protocol/admin#edit-admin",
    "http://jabber.org/protocol/admin#restart",
    "http://jabber.org/protocol/admin#shutdown",
    "https://github.com/switchboard-xmpp/switchboard#server-stats",
    "https://github.com/switchboard-xmpp/switchboard#debug-log",
    "https://github.com/switchboard-xmpp/switchboard#reload-config",
    "https://github.com/switchboard-xmpp/switchboard#list-muc-rooms",
    "https://github.com/switchboard-xmpp/switchboard#destroy-muc-room",
    "https://github.com/switchboard-xmpp/switchboard#purge-user-archive",
    "https://github.com/switchboard-xmpp/switchboard#purge-room-archive",
];

// §3: only admins; others get forbidden (XEP-0050 §4.6: type cancel) for every command
// (raw XML), each refusal logged with the requester's JID.
#[tokio::test]
async fn xep0133_non_admin_forbidden() {
    let server = server().await;
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    for (i, node) in ALL_NODES.iter().enumerate() {
        let r = alice
            .iq(&format!(
                "<iq type='set' id='c-{i}' to='localhost'><command xmlns='{CMD}' node='{node}' action='execute'/></iq>"
            ))
            .await;
        assert_eq!(error_condition(&r), "forbidden", "{node}");
        let e = r.get_child("error", "jabber:client").unwrap();
        assert_eq!(e.attr("type"), Some("cancel"), "{node}");
    }
    // The admin sees exactly these commands.
    let mut admin = server.client("admin", PW).await;
    let items = admin
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/>"),
        )
        .await;
    let mut listed: Vec<String> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node").map(str::to_owned))
        // The commands every user has (xep0050_user_commands.rs) are listed too.
        .filter(|n| !n.contains("#ping") && !n.contains("-my-"))
        .collect();
    listed.sort();
    let mut want: Vec<String> = ALL_NODES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(
        server
            .logs()
            .lines()
            .any(|l| l.contains("not an admin") && l.contains("alice@localhost/r")),
        "refusals are logged with the requester"
    );
}

/// Submitted form fields: (var, values).
type Fields<'a> = &'a [(&'a str, &'a [&'a str])];

/// Executes `node`, then submits `fields` with `action` (complete, or next for the first of
/// two stages) and asserts the same stage comes back with one error note and its form.
async fn bad_input(c: &mut XmppClient, node: &str, action: &str, fields: Fields<'_>) {
    let cmd = execute(c, node).await;
    let sid = cmd.attr("sessionid").expect("a form command has a session");
    let r = submit(c, node, sid, action, fields, false).await;
    assert_eq!(r.attr("type"), Some("result"), "{node}: {}", xml::to_string(&r));
    let cmd = r.get_child("command", CMD).unwrap();
    assert_eq!(
        cmd.attr("status"),
        Some("executing"),
        "{node}: {}",
        xml::to_string(cmd)
    );
    let notes = cmd
        .children()
        .filter(|n| n.is("note", CMD) && n.attr("type") == Some("error"))
        .count();
    assert_eq!(notes, 1, "{node}: {}", xml::to_string(cmd));
    let form = cmd.get_child("x", "jabber:x:data").expect("the form again");
    DataForm::try_from(form.clone()).expect("a valid data form");
    // The session is still open: cancel it.
    let r = c
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}' sessionid='{sid}' action='cancel'/>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{node}: {}", xml::to_string(&r));
}

// XEP-0050 with XEP-0004 validation, for every command that asks something: bad input (a
// malformed or foreign JID, a missing required field, an unknown account, a value outside
// the options) brings the form back with an error note; nothing is done.
#[tokio::test]
async fn xep0133_bad_input_returns_the_form_with_a_note() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let foreign: &[&str] = &["x@elsewhere.example"];
    let nobody: &[&str] = &["nobody@localhost"];
    let cases: &[(&str, &str, Fields)] = &[
        (
            "add-user",
            "complete",
            &[
                ("accountjid", &["@@"]),
                ("password", &[PW]),
                ("password-verify", &[PW]),
            ],
        ),
        ("delete-user", "complete", &[("accountjids", foreign)]),
        ("disable-user", "complete", &[("accountjids", foreign)]),
        ("reenable-user", "complete", &[("accountjids", foreign)]),
        ("end-user-session", "complete", &[("accountjids", foreign)]),
        (
            "change-user-password",
            "complete",
            &[("accountjid", &["alice@localhost"])],
        ),
        ("get-user-roster", "complete", &[("accountjid", nobody)]),
        ("get-user-lastlogin", "complete", &[("accountjid", nobody)]),
        ("user-stats", "complete", &[("accountjid", nobody)]),
        ("announce", "complete", &[("subject", &["s"])]),
        ("set-motd", "complete", &[("subject", &["s"])]),
        ("edit-motd", "complete", &[("subject", &["s"])]),
        (
            "edit-admin",
            "complete",
            &[("adminjids", &["admin@localhost", "@@"])],
        ),
        ("shutdown", "complete", &[("delaytime", &["7"])]),
        ("restart", "complete", &[("delaytime", &["7"])]),
        // Your own account, a full JID, a malformed one.
        (
            "edit-blacklist",
            "complete",
            &[("blacklistjids", &["spam.example", "admin@localhost"])],
        ),
        (
            "edit-blacklist",
            "complete",
            &[("blacklistjids", &["a@b.example/r"])],
        ),
        ("edit-blacklist", "complete", &[("blacklistjids", &["@@"])]),
        ("get-active-users", "complete", &[("max_items", &["7"])]),
    ];
    for (name, action, fields) in cases {
        bad_input(&mut admin, &node(name), action, fields).await;
    }
    bad_input(
        &mut admin,
        "https://github.com/switchboard-xmpp/switchboard#debug-log",
        "next",
        &[("accountjid", &["@@"])],
    )
    .await;
    // No such room, a JID of another domain, no room at all.
    for roomjid in ["nope@conference.localhost", "x@elsewhere.example", ""] {
        bad_input(&mut admin, DESTROY_ROOM, "complete", &[("roomjid", &[roomjid])]).await;
    }
    // Nothing was blacklisted.
    let cmd = execute(&mut admin, &node("edit-blacklist")).await;
    let form = cmd.get_child("x", "jabber:x:data").unwrap();
    let form = DataForm::try_from(form.clone()).unwrap();
    let list = form
        .fields
        .iter()
        .find(|f| f.var.as_deref() == Some("blacklistjids"))
        .unwrap();
    assert!(list.values.is_empty(), "{:?}", list.values);
    // Nothing happened: alice can still log in with her password, the server still runs.
    assert_eq!(login(&server, "alice", PW).await, Ok(()));
    admin.ping_server().await;
}

// §4.1 add a user; the new account can log in; the action is logged with the admin's JID.
#[tokio::test]
async fn xep0133_4_1_add_user() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    run(
        &mut admin,
        "add-user",
        &[
            ("accountjid", &["bob@localhost"]),
            ("password", &["s3cretpw"]),
            ("password-verify", &["s3cretpw"]),
        ],
    )
    .await;
    login(&server, "bob", "s3cretpw").await.expect("bob logs in");
    assert!(logged(&server, "bob@localhost"));
}

// §4.2 delete users: the account is gone and its sessions end.
#[tokio::test]
async fn xep0133_4_2_delete_user() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    run(
        &mut admin,
        "delete-user",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    alice.expect_stream_error().await;
    assert_eq!(server.list_users(None).await, vec!["admin@localhost".to_string()]);
}

/// A roster push telling `jid`'s subscription is now 'none'.
fn pushed_none(e: &Element, jid: &str) -> bool {
    blocking::is_roster_push(e)
        && e.get_child("query", blocking::ROSTER).is_some_and(|q| {
            q.children()
                .any(|i| i.attr("jid") == Some(jid) && i.attr("subscription") == Some("none"))
        })
}

// §4.2 with RFC 6121 §2.5.2 / XEP-0077 §3.2: deleting an online account tells its contacts as
// in-band removal does: unavailable presence from its resource, then the subscription
// cancelled (a roster push with subscription='none', and the roster says so).
#[tokio::test]
async fn xep0133_4_2_delete_user_notifies_online_contacts() {
    let server = server().await;
    server.add_user("bob", PW).await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = blocking::online(&server, "alice@localhost/a").await;
    let mut bob = blocking::online(&server, "bob@localhost/b").await;
    blocking::befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    run(&mut admin, "delete-user", &[("accountjids", &["bob@localhost"])]).await;
    alice
        .wait_for(|e| blocking::presence_from(e, "bob@localhost/b", Some("unavailable")))
        .await;
    alice.wait_for(|e| pushed_none(e, "bob@localhost")).await;
    let roster = blocking::roster_get(&mut alice).await;
    let item = roster
        .get_child("query", blocking::ROSTER)
        .and_then(|q| q.children().find(|i| i.attr("jid") == Some("bob@localhost")))
        .expect("item kept");
    assert_eq!(
        item.attr("subscription"),
        Some("none"),
        "{}",
        xml::to_string(&roster)
    );
}

// §4.2: an account deleted while offline still cancels its contacts' subscriptions at once
// (the online contact gets the push; nothing claims the deleted account is available).
#[tokio::test]
async fn xep0133_4_2_delete_offline_user_cancels_subscriptions() {
    let server = server().await;
    server.add_user("bob", PW).await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = blocking::online(&server, "alice@localhost/a").await;
    {
        let mut bob = blocking::online(&server, "bob@localhost/b").await;
        blocking::befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    }
    alice
        .wait_for(|e| blocking::presence_from(e, "bob@localhost/b", Some("unavailable")))
        .await;
    run(&mut admin, "delete-user", &[("accountjids", &["bob@localhost"])]).await;
    alice.wait_for(|e| pushed_none(e, "bob@localhost")).await;
}

// §4.3/§4.4 disable and re-enable: a disabled account is disconnected and refused with
// account-disabled; re-enabled, it logs in again.
#[tokio::test]
async fn xep0133_4_3_disable_and_reenable_user() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    run(
        &mut admin,
        "disable-user",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    alice.expect_stream_error().await;
    assert_eq!(
        login(&server, "alice", PW).await,
        Err("account-disabled".to_string())
    );
    let cmd = run(&mut admin, "get-disabled-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "disabledusersnum"), vec!["1"]);
    let cmd = run(&mut admin, "get-disabled-users-list", &[]).await;
    assert_eq!(result_values(&cmd, "disableduserjids"), vec!["alice@localhost"]);
    // A wrong password still says not-authorized (no disclosure).
    assert_eq!(
        login(&server, "alice", "wrongpass").await,
        Err("not-authorized".to_string())
    );
    run(
        &mut admin,
        "reenable-user",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    login(&server, "alice", PW).await.expect("re-enabled");
    let cmd = run(&mut admin, "get-disabled-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "disabledusersnum"), vec!["0"]);
}

// §4.5 end user sessions (bare JID: all of them; full JID: that one).
#[tokio::test]
async fn xep0133_4_5_end_user_session() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut a1 = server.raw_login("alice", PW, Some("one")).await;
    let mut a2 = server.raw_login("alice", PW, Some("two")).await;
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["alice@localhost/one"])],
    )
    .await;
    a1.expect_stream_error().await;
    a2.iq("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    run(
        &mut admin,
        "end-user-session",
        &[("accountjids", &["alice@localhost"])],
    )
    .await;
    a2.expect_stream_error().await;
}

// §4.7 change a user's password.
#[tokio::test]
async fn xep0133_4_7_change_user_password() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    run(
        &mut admin,
        "change-user-password",
        &[
            ("accountjid", &["alice@localhost"]),
            ("password", &["n3wpassword"]),
        ],
    )
    .await;
    assert_eq!(
        login(&server, "alice", PW).await,
        Err("not-authorized".to_string())
    );
    login(&server, "alice", "n3wpassword")
        .await
        .expect("new password");
}

// §4.8 roster, §4.9 last login, §4.10 user statistics.
#[tokio::test]
async fn xep0133_4_8_user_roster_lastlogin_stats() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client_jid("alice@localhost/home", PW).await;
    alice
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='carol@example.org' name='Carol'/></query>",
        )
        .await;
    let cmd = run(
        &mut admin,
        "get-user-roster",
        &[("accountjid", &["alice@localhost"])],
    )
    .await;
    let roster = result_values(&cmd, "roster");
    assert!(
        roster.iter().any(|l| l.contains("carol@example.org")),
        "{roster:?}"
    );
    let cmd = run(&mut admin, "user-stats", &[("accountjid", &["alice@localhost"])]).await;
    assert_eq!(result_values(&cmd, "rostersize"), vec!["1"]);
    assert_eq!(result_values(&cmd, "onlineresources"), vec!["home"]);
    let cmd = run(
        &mut admin,
        "get-user-lastlogin",
        &[("accountjid", &["alice@localhost"])],
    )
    .await;
    assert_eq!(result_values(&cmd, "lastlogin"), vec!["online now"]);
    // An unknown account is an error note on the form, not a crash.
    let node = node("user-stats");
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{node}'/>"),
        )
        .await;
    let sid = r
        .get_child("command", CMD)
        .unwrap()
        .attr("sessionid")
        .unwrap()
        .to_string();
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{CMD}' node='{node}' sessionid='{sid}' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='accountjid'><value>nobody@localhost</value></field></x></command>"
            ),
        )
        .await;
    let cmd = r.get_child("command", CMD).unwrap();
    assert_eq!(cmd.attr("status"), Some("executing"));
    assert!(
        cmd.children()
            .any(|n| n.is("note", CMD) && n.attr("type") == Some("error"))
    );
}

// §4.11-§4.16 registered and online users, numbers and lists.
#[tokio::test]
async fn xep0133_4_13_user_counts_and_lists() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let cmd = run(&mut admin, "get-registered-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "registeredusersnum"), vec!["2"]);
    let cmd = run(&mut admin, "get-registered-users-list", &[]).await;
    assert_eq!(
        result_values(&cmd, "registereduserjids"),
        vec!["admin@localhost", "alice@localhost"]
    );
    let cmd = run(&mut admin, "get-online-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "onlineusersnum"), vec!["1"]);
    let _alice = server.client("alice", PW).await;
    let cmd = run(&mut admin, "get-online-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "onlineusersnum"), vec!["2"]);
    let cmd = run(&mut admin, "get-online-users-list", &[]).await;
    assert_eq!(
        result_values(&cmd, "onlineuserjids"),
        vec!["admin@localhost", "alice@localhost"]
    );
}

// §4.23 announcement to all online users, as a headline.
#[tokio::test]
async fn xep0133_4_23_announce() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client("alice", PW).await;
    run(
        &mut admin,
        "announce",
        &[
            ("subject", &["Maintenance"]),
            ("body", &["Back in", "five minutes"]),
        ],
    )
    .await;
    let m = alice.expect_message().await;
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(m.attr("from"), Some("localhost"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "Back in\nfive minutes"
    );
    assert_eq!(
        m.get_child("subject", "jabber:client").unwrap().text(),
        "Maintenance"
    );
    assert!(logged(&server, "announcement"));
}

// §4.24-§4.26 message of the day: shown at login, editable (the form shows the current
// text), deletable; it survives a restart (stored in SQL).
#[tokio::test]
async fn xep0133_4_24_motd_set_edit_delete() {
    let mut server = server().await;
    let mut admin = server.client("admin", PW).await;
    run(&mut admin, "set-motd", &[("body", &["Welcome!"])]).await;
    let mut alice = server.client("alice", PW).await;
    let m = alice.expect_message().await;
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "Welcome!");
    alice.close().await;
    // The edit form holds the current message.
    let n = node("edit-motd");
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{n}'/>"),
        )
        .await;
    let x = r
        .get_child("command", CMD)
        .unwrap()
        .get_child("x", "jabber:x:data")
        .unwrap();
    let form = DataForm::try_from(x.clone()).unwrap();
    let body = form
        .fields
        .iter()
        .find(|f| f.var.as_deref() == Some("body"))
        .unwrap();
    assert_eq!(body.values, vec!["Welcome!"]);
    run(&mut admin, "edit-motd", &[("body", &["Changed"])]).await;
    admin.close().await;
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    let m = alice.expect_message().await;
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "Changed");
    let mut admin = server.client("admin", PW).await;
    let _ = admin.expect_message().await;
    run(&mut admin, "delete-motd", &[]).await;
    let mut alice2 = server.client_jid("alice@localhost/two", PW).await;
    alice2.expect_no_message(Duration::from_millis(500)).await;
}

/// §4.29-§4.30: the announcement reaches `client` before the drain's `system-shutdown`.
async fn expect_announcement_then_shutdown(client: &mut conformance::RawClient, text: &str) {
    let mut got_headline = false;
    loop {
        match client.next_within(Duration::from_secs(10)).await {
            Some(Incoming::Element(e)) if e.name() == "message" => {
                assert_eq!(e.get_child("body", "jabber:client").unwrap().text(), text);
                got_headline = true;
            }
            Some(Incoming::Element(e)) if e.name() == "error" => {
                assert!(
                    e.children().any(|c| c.name() == "system-shutdown"),
                    "{}",
                    xml::to_string(&e)
                );
                break;
            }
            Some(Incoming::Element(_)) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert!(got_headline, "the announcement came before the drain");
}

// §4.29 shut down: the announcement reaches online users, then the streams end with
// system-shutdown and the server exits.
#[tokio::test]
async fn xep0133_4_29_shutdown() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    run(
        &mut admin,
        "shutdown",
        &[("delaytime", &["0"]), ("announcement", &["Going down"])],
    )
    .await;
    expect_announcement_then_shutdown(&mut alice, "Going down").await;
    assert!(logged(&server, "shutdown"));
}

// Our own: server statistics.
#[tokio::test]
async fn switchboard_server_stats() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{CMD}' node='https://github.com/switchboard-xmpp/switchboard#server-stats'/>"
            ),
        )
        .await;
    let cmd = r.get_child("command", CMD).expect("command");
    assert_eq!(cmd.attr("status"), Some("completed"));
    assert_eq!(result_values(cmd, "sessions"), vec!["1"]);
    assert_eq!(result_values(cmd, "registeredusersnum"), vec!["2"]);
    assert!(result_values(cmd, "memory")[0].ends_with("kB"));
}

// §4.20 edit the admin list (runtime only): a new admin may run commands, a removed one
// is refused.
#[tokio::test]
async fn xep0133_4_20_edit_admin_list() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client("alice", PW).await;
    // The form shows the current list.
    let n = node("edit-admin");
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{n}'/>"),
        )
        .await;
    let x = r
        .get_child("command", CMD)
        .unwrap()
        .get_child("x", "jabber:x:data")
        .unwrap();
    let form = DataForm::try_from(x.clone()).unwrap();
    let current = form
        .fields
        .iter()
        .find(|f| f.var.as_deref() == Some("adminjids"))
        .unwrap();
    assert_eq!(current.values, vec!["admin@localhost"]);
    run(
        &mut admin,
        "edit-admin",
        &[("adminjids", &["admin@localhost", "alice@localhost"])],
    )
    .await;
    let cmd = run(&mut alice, "get-registered-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "registeredusersnum"), vec!["2"]);
    run(&mut alice, "edit-admin", &[("adminjids", &["alice@localhost"])]).await;
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{}'/>", node("get-online-users-num")),
        )
        .await;
    assert_eq!(error_condition(&r), "forbidden");
}

// Our own: re-encrypt roster notes under the active key (keys from `[roster_notes]`).
#[tokio::test]
async fn switchboard_rotate_roster_note_keys() {
    const K1: &str = "eTAnvYIJKyQVwNDwh5RwVA6Z8kTCA+TJVtstzFHAs6I=";
    const K2: &str = "6Na1eGQMaRxM9dRGWXt+72RnBrIGrW5XhSfQtZMXrWw=";
    let notes = |active: &str| {
        format!("\n[roster_notes]\nkeys = {{ k1 = \"{K1}\", k2 = \"{K2}\" }}\nactive_key = \"{active}\"\n")
    };
    let mut server = TestServer::start_with(|c| c.extra_toml = notes("k1")).await;
    server.add_user("admin", PW).await;
    server.add_user("alice", PW).await;
    let path = server.config_path().to_path_buf();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("admins = [\"admin@localhost\"]\n{config}")).unwrap();
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    let r = alice
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='bob@localhost'><note xmlns='urn:switchboard:roster-notes:0'>secret</note></item></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    alice.close().await;
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("active_key = \"k1\"", "active_key = \"k2\""),
    )
    .unwrap();
    server.restart().await;
    let mut admin = server.client("admin", PW).await;
    let rotate = "https://github.com/switchboard-xmpp/switchboard#rotate-roster-note-keys";
    let cmd = run_node(&mut admin, rotate, &[]).await;
    let note = cmd.get_child("note", CMD).expect("note").text();
    assert!(note.starts_with("Re-encrypted 1 of 1"), "{note}");
    let cmd = run_node(&mut admin, rotate, &[]).await;
    let note = cmd.get_child("note", CMD).expect("note").text();
    assert!(note.starts_with("Re-encrypted 0 of 0"), "{note}");
    // Not offered where notes are off.
    let plain = self::server().await;
    let mut admin = plain.client("admin", PW).await;
    let r = admin
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{CMD}' node='{rotate}'/>"),
        )
        .await;
    assert_eq!(error_condition(&r), "item-not-found");
}

/// The stanza error condition of an error `message`.
fn message_error(m: &Element) -> String {
    assert_eq!(m.attr("type"), Some("error"), "{}", xml::to_string(m));
    let e = m.get_child("error", "jabber:client").expect("error");
    e.children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .expect("condition")
        .name()
        .to_string()
}

// §4.11 edit the blacklist: listed accounts (or their domain) cannot log in and their
// sessions end; what local users send to a listed JID or domain is refused with not-allowed;
// the form shows the current list; an empty submission clears it.
#[tokio::test]
async fn xep0133_4_11_edit_blacklist() {
    let server = server().await;
    server.add_user("bob", PW).await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client("alice", PW).await;
    run(
        &mut admin,
        "edit-blacklist",
        &[("blacklistjids", &["bob@localhost", "Spam.Example"])],
    )
    .await;
    assert!(logged(&server, "edited the blacklist"));
    // Stanzas to a listed JID or to any JID of a listed domain.
    for to in ["bob@localhost", "x@spam.example/r", "spam.example"] {
        alice
            .send_xml(&format!(
                "<message to='{to}' type='chat' id='m1'><body>hi</body></message>"
            ))
            .await;
        let m = alice.wait_for(|e| e.name() == "message").await;
        assert_eq!(message_error(&m), "not-allowed", "{to}");
    }
    // A listed account is refused like a disabled one (RFC 6120 §6.5.1), once its
    // credentials are proven; a wrong password still says not-authorized.
    assert_eq!(
        login(&server, "bob", PW).await,
        Err("account-disabled".to_string())
    );
    assert_eq!(
        login(&server, "bob", "wrongpass").await,
        Err("not-authorized".to_string())
    );
    // The form shows the stored list, normalised.
    let cmd = execute(&mut admin, &node("edit-blacklist")).await;
    let form = DataForm::try_from(cmd.get_child("x", "jabber:x:data").unwrap().clone()).unwrap();
    let list = form
        .fields
        .iter()
        .find(|f| f.var.as_deref() == Some("blacklistjids"))
        .unwrap();
    assert_eq!(list.values, vec!["bob@localhost", "spam.example"]);
    // Listing an online account ends its sessions.
    let mut carol = server.raw_login("alice", PW, Some("second")).await;
    run(
        &mut admin,
        "edit-blacklist",
        &[("blacklistjids", &["alice@localhost"])],
    )
    .await;
    carol
        .expect_stream_error()
        .await
        .assert_condition(&["not-authorized"]);
    // Cleared: bob logs in and is reachable again.
    run(&mut admin, "edit-blacklist", &[]).await;
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    let mut alice = server.client("alice", PW).await;
    alice.send_message("bob@localhost", "back").await;
    let m = bob.expect_message().await;
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "back");
}

// §4.16/§4.21 active users: online now, or logged out within 30 days (XEP-0133 leaves
// "active" to the service); never-logged-in accounts are not active. max_items caps the list.
#[tokio::test]
async fn xep0133_4_16_active_users() {
    let server = server().await;
    server.add_user("bob", PW).await;
    let mut admin = server.client("admin", PW).await;
    let alice = server.client("alice", PW).await;
    alice.close().await;
    // alice's logout time is written as her session ends.
    let mut users = Vec::new();
    for _ in 0..100 {
        let cmd = run(&mut admin, "get-active-users", &[("max_items", &["25"])]).await;
        users = result_values(&cmd, "activeuserjids");
        if users.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(users, vec!["admin@localhost", "alice@localhost"]);
    let cmd = run(&mut admin, "get-active-users-num", &[]).await;
    assert_eq!(result_values(&cmd, "activeusersnum"), vec!["2"]);
    let cmd = run(&mut admin, "get-active-users", &[("max_items", &["none"])]).await;
    assert_eq!(result_values(&cmd, "activeuserjids").len(), 2);
}

/// The lines of the admin room list.
async fn rooms(admin: &mut XmppClient) -> Vec<String> {
    let cmd = run_node(admin, LIST_ROOMS, &[]).await;
    result_values(&cmd, "rooms")
}

// Our own: list chat rooms (occupants, persistence) and destroy one as its owner would
// (XEP-0045 §10.9): occupants get unavailable presence with <destroy/> and the reason, a
// persistent room is deleted from storage.
#[tokio::test]
async fn switchboard_muc_list_and_destroy_rooms() {
    use conformance::muc::{NS_OWNER, NS_USER, join_with, room};
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client("alice", PW).await;
    // A persistent room, left empty, and a temporary room alice is in.
    join_with(&mut alice, &room("kept"), "Alice", "").await;
    let r = alice
        .iq(
            "set",
            Some(&room("kept")),
            &format!(
                "<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    alice
        .send_xml(&format!(
            "<presence type='unavailable' to='{}/Alice'/>",
            room("kept")
        ))
        .await;
    alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await;
    join_with(&mut alice, &room("temp"), "Alice", "").await;
    let r = alice
        .iq(
            "set",
            Some(&room("temp")),
            &format!("<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let list = rooms(&mut admin).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list[0].starts_with("kept@conference.localhost occupants=0 persistent=true"),
        "{list:?}"
    );
    assert!(
        list[1].starts_with("temp@conference.localhost occupants=1 persistent=false"),
        "{list:?}"
    );
    // Destroying the occupied room tells its occupant, with the reason.
    run_node(
        &mut admin,
        DESTROY_ROOM,
        &[
            ("roomjid", &["temp@conference.localhost"]),
            ("reason", &["Cleanup"]),
        ],
    )
    .await;
    let p = alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await;
    let destroy = p
        .get_child("x", NS_USER)
        .and_then(|x| x.get_child("destroy", NS_USER))
        .unwrap_or_else(|| panic!("no destroy: {}", xml::to_string(&p)));
    assert_eq!(destroy.get_child("reason", NS_USER).unwrap().text(), "Cleanup");
    // The persistent one (owned by alice, not loaded) is deleted from storage.
    run_node(
        &mut admin,
        DESTROY_ROOM,
        &[("roomjid", &["kept@conference.localhost"])],
    )
    .await;
    assert_eq!(rooms(&mut admin).await, Vec::<String>::new());
    assert!(logged(&server, "destroyed a chat room"));
    // The room itself logs the administrator (no owner is impersonated).
    assert!(logged(&server, "room destroyed by a server administrator"));
    // Gone for good: destroying it again is an error note on the form.
    bad_input(
        &mut admin,
        DESTROY_ROOM,
        "complete",
        &[("roomjid", &["kept@conference.localhost"])],
    )
    .await;
}

// §4.30 restart: the announcement reaches online users before the drain (streams end with
// system-shutdown), then the same process comes back on the same ports and users log in.
#[tokio::test]
async fn xep0133_4_30_restart() {
    let server = server().await;
    // Pin the listeners to the ports they have now, so the restarted process binds them again.
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    let mut pinned = String::new();
    let mut addrs = [server.c2s_addr(), server.tls_addr(), server.http_addr()].into_iter();
    for line in config.lines() {
        if line.trim() == "address = \"127.0.0.1:0\"" {
            pinned.push_str(&format!("address = \"{}\"\n", addrs.next().unwrap()));
        } else {
            pinned.push_str(line);
            pinned.push('\n');
        }
    }
    assert!(addrs.next().is_none(), "all three listeners pinned");
    server.write_config_text(&pinned);
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.raw_login("alice", PW, Some("r")).await;
    let listening = server.logs().matches("listening").count();
    run(
        &mut admin,
        "restart",
        &[("delaytime", &["0"]), ("announcement", &["Back soon"])],
    )
    .await;
    expect_announcement_then_shutdown(&mut alice, "Back soon").await;

    assert!(
        server
            .wait_for_log("listening", listening + 3, Duration::from_secs(20))
            .await,
        "the server did not come back:\n{}",
        server.logs()
    );
    assert!(logged(&server, "requested a restart"));
    let mut alice = server.client("alice", PW).await;
    alice.ping_server().await;
}
