//! XEP-0050 ad-hoc commands: discovery, multi-stage sessions (execute/next/prev/complete/
//! cancel), data form validation, and the error paths. Forms are parsed with xmpp-parsers'
//! `DataForm` (a third-party implementation of XEP-0004).

use conformance::{Element, TestServer, XmppClient, xml};
use xmpp_parsers::data_forms::DataForm;

const CMD: &str = "http://jabber.org/protocol/commands";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const DEBUG_LOG: &str = "https://github.com/switchboard-xmpp/switchboard#debug-log";
const PW: &str = "passw0rd";

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

async fn command(c: &mut XmppClient, body: &str) -> Element {
    c.iq("set", Some("localhost"), body).await
}

#[derive(Debug, PartialEq, Eq)]
enum Status {
    Executing,
    Completed,
    Canceled,
}

/// The parts of a `<command/>` response the tests look at (XEP-0050 §4 schema).
struct Command {
    status: Status,
    sessionid: String,
    payload: Option<Element>,
}

/// The `<command/>` of a result, checked for the attributes §4 requires.
fn parsed(r: &Element) -> (Element, Command) {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
    let el = r.get_child("command", CMD).expect("command").clone();
    assert!(el.attr("node").is_some(), "node is required");
    let status = match el.attr("status") {
        Some("executing") => Status::Executing,
        Some("completed") => Status::Completed,
        Some("canceled") => Status::Canceled,
        other => panic!("bad status {other:?}: {}", xml::to_string(&el)),
    };
    let cmd = Command {
        status,
        sessionid: el.attr("sessionid").unwrap_or_default().to_string(),
        payload: el.get_child("x", "jabber:x:data").cloned(),
    };
    (el, cmd)
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

/// The XEP-0050 §4.6 specific condition of an error reply, if any.
fn specific_condition(r: &Element) -> Option<String> {
    let e = r.get_child("error", "jabber:client")?;
    e.children().find(|c| c.ns() == CMD).map(|c| c.name().to_string())
}

/// Asserts an error reply with the general and specific conditions of XEP-0050 §4.6.
fn assert_error(r: &Element, kind: &str, general: &str, specific: Option<&str>) {
    assert_eq!(error_condition(r), general, "{}", xml::to_string(r));
    let e = r.get_child("error", "jabber:client").unwrap();
    assert_eq!(e.attr("type"), Some(kind), "{}", xml::to_string(r));
    assert_eq!(
        specific_condition(r).as_deref(),
        specific,
        "{}",
        xml::to_string(r)
    );
}

fn form(cmd: &Command) -> DataForm {
    match &cmd.payload {
        Some(p) => DataForm::try_from(p.clone()).expect("data form"),
        None => panic!("no form"),
    }
}

fn field_values(form: &DataForm, var: &str) -> Vec<String> {
    form.fields
        .iter()
        .find(|f| f.var.as_deref() == Some(var))
        .map(|f| f.values.clone())
        .unwrap_or_default()
}

fn submit(node: &str, sessionid: &str, action: &str, fields: &[(&str, &[&str])]) -> String {
    let mut x = String::from("<x xmlns='jabber:x:data' type='submit'>");
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{}</value>", xml::escape(v)));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    format!("<command xmlns='{CMD}' node='{node}' sessionid='{sessionid}' action='{action}'>{x}</command>")
}

fn notes(el: &Element, kind: &str) -> Vec<String> {
    el.children()
        .filter(|c| c.is("note", CMD) && c.attr("type") == Some(kind))
        .map(|c| c.text())
        .collect()
}

// §2.1, §2.2: the feature is advertised; disco#items on the commands node lists only what
// the requester may run; §2.3: disco#info of a command node.
#[tokio::test]
async fn xep0050_4_1_discovery() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client("alice", PW).await;
    let info = admin
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{DISCO_INFO}'/>"),
        )
        .await;
    assert!(
        info.get_child("query", DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some(CMD)),
        "{}",
        xml::to_string(&info)
    );
    let items_query = format!("<query xmlns='{DISCO_ITEMS}' node='{CMD}'/>");
    let items = admin.iq("get", Some("localhost"), &items_query).await;
    let nodes: Vec<String> = items
        .get_child("query", DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node").map(str::to_owned))
        .collect();
    assert!(nodes.iter().any(|n| n == ADD_USER), "{nodes:?}");
    assert!(nodes.iter().any(|n| n == DEBUG_LOG), "{nodes:?}");
    let items = alice.iq("get", Some("localhost"), &items_query).await;
    assert_eq!(items.attr("type"), Some("result"), "{}", xml::to_string(&items));
    assert!(
        !items
            .get_child("query", DISCO_ITEMS)
            .unwrap()
            .children()
            .any(|i| matches!(i.attr("node"), Some(ADD_USER | DEBUG_LOG))),
        "a non-admin sees no admin commands: {}",
        xml::to_string(&items)
    );
    let node_info = format!("<query xmlns='{DISCO_INFO}' node='{ADD_USER}'/>");
    let r = admin.iq("get", Some("localhost"), &node_info).await;
    let q = r.get_child("query", DISCO_INFO).expect("query");
    assert!(
        q.children()
            .any(|c| c.attr("category") == Some("automation") && c.attr("type") == Some("command-node")),
        "{}",
        xml::to_string(&r)
    );
    for f in [CMD, "jabber:x:data"] {
        assert!(q.children().any(|c| c.attr("var") == Some(f)), "{f}");
    }
    let r = alice.iq("get", Some("localhost"), &node_info).await;
    assert_eq!(error_condition(&r), "forbidden");
}

// §4.3: a multi-stage command: next, prev (answers kept), complete; the actions offered match
// the stage.
#[tokio::test]
async fn xep0050_4_3_multistage_prev_next() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let mut alice = server.client_jid("alice@localhost/phone", PW).await;
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{DEBUG_LOG}' action='execute'/>"),
    )
    .await;
    let (el, cmd) = parsed(&r);
    assert_eq!(cmd.status, Status::Executing);
    let sid = cmd.sessionid.clone();
    assert!(!sid.is_empty());
    let actions = el.get_child("actions", CMD).expect("actions");
    assert_eq!(actions.attr("execute"), Some("next"));
    assert!(actions.get_child("next", CMD).is_some() && actions.get_child("prev", CMD).is_none());
    assert!(field_values(&form(&cmd), "accountjid").is_empty());

    let r = command(
        &mut admin,
        &submit(DEBUG_LOG, &sid, "next", &[("accountjid", &["alice@localhost"])]),
    )
    .await;
    let (el, cmd) = parsed(&r);
    assert_eq!(cmd.status, Status::Executing);
    assert_eq!(cmd.sessionid, sid);
    let actions = el.get_child("actions", CMD).expect("actions");
    assert_eq!(actions.attr("execute"), Some("complete"));
    assert!(actions.get_child("prev", CMD).is_some() && actions.get_child("complete", CMD).is_some());
    let f = form(&cmd);
    let resource = f
        .fields
        .iter()
        .find(|f| f.var.as_deref() == Some("resource"))
        .unwrap();
    assert!(
        resource.options.iter().any(|o| o.value == "phone"),
        "the second stage lists alice's sessions: {}",
        xml::to_string(&el)
    );

    // Back: the first stage again, with the answer given.
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{DEBUG_LOG}' sessionid='{sid}' action='prev'/>"),
    )
    .await;
    let (_, cmd) = parsed(&r);
    assert_eq!(field_values(&form(&cmd), "accountjid"), vec!["alice@localhost"]);
    // There is nothing before the first stage (§4.6 bad-action).
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{DEBUG_LOG}' sessionid='{sid}' action='prev'/>"),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("bad-action"));
    // Forward again and complete.
    let r = command(
        &mut admin,
        &submit(DEBUG_LOG, &sid, "next", &[("accountjid", &["alice@localhost"])]),
    )
    .await;
    parsed(&r);
    let r = command(
        &mut admin,
        &submit(
            DEBUG_LOG,
            &sid,
            "complete",
            &[("resource", &["phone"]), ("enable", &["1"])],
        ),
    )
    .await;
    let (el, cmd) = parsed(&r);
    assert_eq!(cmd.status, Status::Completed, "{}", xml::to_string(&el));
    assert!(
        notes(&el, "info").iter().any(|n| n.contains("1 session")),
        "{}",
        xml::to_string(&el)
    );
    // The session is gone once completed (§4.6 session-expired).
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{DEBUG_LOG}' sessionid='{sid}' action='prev'/>"),
    )
    .await;
    assert_error(&r, "cancel", "not-allowed", Some("session-expired"));
    // And alice's traffic is now traced in the log.
    alice.ping_server().await;
    let logs = server.logs();
    assert!(
        logs.lines().any(|l| l.contains("xmpp_trace")
            && l.contains("alice@localhost/phone")
            && l.contains("urn:xmpp:ping")),
        "no trace lines in the log"
    );
}

// §4.4: cancel ends the session; the id cannot be used again.
#[tokio::test]
async fn xep0050_4_4_cancel() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' action='execute'/>"),
    )
    .await;
    let (_, cmd) = parsed(&r);
    let sid = cmd.sessionid;
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='cancel'/>"),
    )
    .await;
    let (_, cmd) = parsed(&r);
    assert_eq!(cmd.status, Status::Canceled);
    let r = command(
        &mut admin,
        &submit(
            ADD_USER,
            &sid,
            "complete",
            &[
                ("accountjid", &["bob@localhost"]),
                ("password", &[PW]),
                ("password-verify", &[PW]),
            ],
        ),
    )
    .await;
    assert_error(&r, "cancel", "not-allowed", Some("session-expired"));
}

// XEP-0004 validation: bad input brings the form back with an error note, the session
// stays usable, and a correct submission then completes.
#[tokio::test]
async fn xep0050_bad_input_returns_the_form_with_a_note() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let r = command(&mut admin, &format!("<command xmlns='{CMD}' node='{ADD_USER}'/>")).await;
    let (_, cmd) = parsed(&r);
    let sid = cmd.sessionid;
    for fields in [
        vec![],
        vec![
            ("accountjid", &["@@"][..]),
            ("password", &[PW]),
            ("password-verify", &[PW]),
        ],
        vec![
            ("accountjid", &["a@localhost", "b@localhost"][..]),
            ("password", &[PW]),
            ("password-verify", &[PW]),
        ],
        vec![
            ("accountjid", &["bob@localhost"][..]),
            ("password", &[PW]),
            ("password-verify", &["other"]),
        ],
        vec![
            ("accountjid", &["bob@elsewhere.example"][..]),
            ("password", &[PW]),
            ("password-verify", &[PW]),
        ],
        vec![
            ("accountjid", &["alice@localhost"][..]),
            ("password", &[PW]),
            ("password-verify", &[PW]),
        ],
    ] {
        let r = command(&mut admin, &submit(ADD_USER, &sid, "complete", &fields)).await;
        let (el, cmd) = parsed(&r);
        assert_eq!(cmd.status, Status::Executing, "{}", xml::to_string(&el));
        assert_eq!(
            notes(&el, "error").len(),
            1,
            "{fields:?}: {}",
            xml::to_string(&el)
        );
        form(&cmd);
    }
    // A submission without any form at all is invalid input too.
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='complete'/>"),
    )
    .await;
    let (el, _) = parsed(&r);
    assert_eq!(notes(&el, "error").len(), 1);
    let r = command(
        &mut admin,
        &submit(
            ADD_USER,
            &sid,
            "execute",
            &[
                ("accountjid", &["bob@localhost"]),
                ("password", &[PW]),
                ("password-verify", &[PW]),
            ],
        ),
    )
    .await;
    let (el, cmd) = parsed(&r);
    assert_eq!(cmd.status, Status::Completed, "{}", xml::to_string(&el));
}

// Error paths in raw XML: unknown node, malformed action, unknown session, a stage action
// that does not apply, and the per-user cap on open sessions.
#[tokio::test]
async fn xep0050_errors() {
    let server = server().await;
    let mut admin = server.client("admin", PW).await;
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='urn:nope' action='execute'/>"),
    )
    .await;
    assert_eq!(error_condition(&r), "item-not-found");
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' action='dance'/>"),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("malformed-action"));
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' sessionid='nope' action='complete'/>"),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("bad-sessionid"));
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' action='next'/>"),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("bad-sessionid"));
    // 'next' on a single-stage command's only stage.
    let r = command(&mut admin, &format!("<command xmlns='{CMD}' node='{ADD_USER}'/>")).await;
    let sid = parsed(&r).1.sessionid;
    let r = command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='next'/>"),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("bad-action"));
    // Another user cannot continue this session.
    let mut other = server.client_jid("admin@localhost/other", PW).await;
    let r = command(&mut other, &submit(ADD_USER, &sid, "complete", &[])).await;
    assert_error(&r, "modify", "bad-request", Some("bad-sessionid"));
    // The cap on open sessions (8 per account, one is open already).
    for _ in 0..7 {
        let r = command(&mut admin, &format!("<command xmlns='{CMD}' node='{ADD_USER}'/>")).await;
        parsed(&r);
    }
    let r = command(&mut admin, &format!("<command xmlns='{CMD}' node='{ADD_USER}'/>")).await;
    assert_eq!(error_condition(&r), "resource-constraint");
    // Cancelling one frees a slot.
    command(
        &mut admin,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='cancel'/>"),
    )
    .await;
    let r = command(&mut admin, &format!("<command xmlns='{CMD}' node='{ADD_USER}'/>")).await;
    let sid = parsed(&r).1.sessionid;
    // A data form that is not a submission: bad-payload.
    let r = command(
        &mut admin,
        &format!(
            "<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='complete'>\
             <x xmlns='jabber:x:data' type='form'/></command>"
        ),
    )
    .await;
    assert_error(&r, "modify", "bad-request", Some("bad-payload"));
    // Cancelling with a form of type 'cancel' (XEP-0004 §3.1) is fine.
    let r = command(
        &mut admin,
        &format!(
            "<command xmlns='{CMD}' node='{ADD_USER}' sessionid='{sid}' action='cancel'>\
             <x xmlns='jabber:x:data' type='cancel'/></command>"
        ),
    )
    .await;
    assert_eq!(parsed(&r).1.status, Status::Canceled);
}

// §4.6: a non-admin is refused with forbidden (type cancel), with no session opened.
#[tokio::test]
async fn xep0050_4_6_forbidden() {
    let server = server().await;
    let mut alice = server.client("alice", PW).await;
    let r = command(
        &mut alice,
        &format!("<command xmlns='{CMD}' node='{ADD_USER}' action='execute'/>"),
    )
    .await;
    assert_error(&r, "cancel", "forbidden", None);
}
