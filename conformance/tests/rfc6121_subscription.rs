//! RFC 6121 §3 (presence subscriptions), §3.4 (pre-approval), the subscription parts of
//! §2.5.2 and §8.5.1, and account removal (XEP-0077 §3.2).

use conformance::blocking::{
    PW, ROSTER, befriend, dump, is_roster_push, online, presence_from, roster_get, send_sub, server_with,
    settle, settle_without,
};
use conformance::{Element, XmppClient, ns, xml};

fn is_push(e: &Element) -> bool {
    is_roster_push(e)
}

/// The item for `jid` in a roster push, if the push is about it.
fn pushed_item<'a>(e: &'a Element, jid: &str) -> Option<&'a Element> {
    if !is_push(e) {
        return None;
    }
    e.get_child("query", ROSTER)?
        .children()
        .find(|i| i.attr("jid") == Some(jid))
}

fn is_presence(e: &Element, ptype: Option<&str>, from: &str) -> bool {
    presence_from(e, from, ptype)
}

/// (subscription, ask, approved) of `jid` in the roster, None if absent.
async fn roster_item(c: &mut XmppClient, jid: &str) -> Option<(String, Option<String>, Option<String>)> {
    let r = roster_get(c).await;
    let q = r.get_child("query", ROSTER)?;
    let it = q.children().find(|i| i.attr("jid") == Some(jid))?;
    Some((
        it.attr("subscription").unwrap_or("none").to_owned(),
        it.attr("ask").map(str::to_owned),
        it.attr("approved").map(str::to_owned),
    ))
}

// RFC 6121 §3.1.2: an outbound request is stamped with the user's bare JID, the user's
// interested resources get a push with ask='subscribe'; §3.1.3: the contact's available
// resources get the request, extensions intact.
#[tokio::test]
async fn rfc6121_3_1_2_subscribe_push_ask_and_delivery() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    alice
        .send_xml("<presence type='subscribe' to='bob@localhost/whatever' id='s1'><nick xmlns='http://jabber.org/protocol/nick'>Al</nick></presence>")
        .await;
    let push = alice
        .wait_for(|e| pushed_item(e, "bob@localhost").is_some())
        .await;
    let it = pushed_item(&push, "bob@localhost").unwrap();
    assert_eq!(it.attr("subscription"), Some("none"));
    assert_eq!(it.attr("ask"), Some("subscribe"));
    let req = bob
        .wait_for(|e| is_presence(e, Some("subscribe"), "alice@localhost"))
        .await;
    assert_eq!(req.attr("to"), Some("bob@localhost"), "{}", xml::to_string(&req));
    let nick = req
        .get_child("nick", "http://jabber.org/protocol/nick")
        .expect("extension kept");
    assert_eq!(nick.text(), "Al");
    // The request does not put alice in bob's roster (§3.1.3).
    settle_without(&mut bob, "roster push", is_push).await;
    assert_eq!(roster_item(&mut bob, "alice@localhost").await, None);
}

// RFC 6121 §3.1.3: with no available resource the request is kept and delivered at each
// initial presence until answered — also across a server restart.
#[tokio::test]
async fn rfc6121_3_1_3_request_stored_and_redelivered() {
    let mut server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    // Bob connects but is not available yet: nothing.
    let mut bob = server.client_jid("bob@localhost/one", PW).await;
    settle_without(&mut bob, "stanza before initial presence", |_| true).await;
    bob.send_presence(0).await;
    bob.wait_for(|e| is_presence(e, Some("subscribe"), "alice@localhost"))
        .await;
    // A second resource gets it at its initial presence too.
    let mut bob2 = server.client_jid("bob@localhost/two", PW).await;
    bob2.send_presence(0).await;
    bob2.wait_for(|e| is_presence(e, Some("subscribe"), "alice@localhost"))
        .await;
    // A resource with negative priority does not.
    let mut bob3 = server.client_jid("bob@localhost/three", PW).await;
    bob3.send_presence(-1).await;
    settle_without(&mut bob3, "subscription request", |e| {
        e.attr("type") == Some("subscribe")
    })
    .await;
    drop((alice, bob, bob2, bob3));
    server.restart().await;
    let mut bob = server.client("bob", PW).await;
    bob.send_presence(0).await;
    bob.wait_for(|e| is_presence(e, Some("subscribe"), "alice@localhost"))
        .await;
    // Answered: no more redelivery.
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    let mut again = server.client_jid("bob@localhost/later", PW).await;
    again.send_presence(0).await;
    settle_without(&mut again, "subscription request", |e| {
        e.attr("type") == Some("subscribe")
    })
    .await;
}

// RFC 6121 §3.1.5 / §3.1.6: approval: the contact's roster gets 'from', the user's 'to'
// (ask gone), the user receives "subscribed" and then the contact's current presence.
#[tokio::test]
async fn rfc6121_3_1_3_subscribed_push() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    bob.send_xml("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    let push = bob
        .wait_for(|e| pushed_item(e, "alice@localhost").is_some())
        .await;
    let it = pushed_item(&push, "alice@localhost").unwrap();
    assert_eq!(it.attr("subscription"), Some("from"));
    let approval = alice
        .wait_for(|e| is_presence(e, Some("subscribed"), "bob@localhost"))
        .await;
    assert_eq!(approval.attr("to"), Some("alice@localhost"));
    let push = alice
        .wait_for(|e| pushed_item(e, "bob@localhost").is_some())
        .await;
    let it = pushed_item(&push, "bob@localhost").unwrap();
    assert_eq!(it.attr("subscription"), Some("to"));
    assert_eq!(it.attr("ask"), None);
    // Bob's current presence follows.
    alice.wait_for(|e| is_presence(e, None, "bob@localhost/b")).await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("to".into(), None, None))
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("from".into(), None, None))
    );
}

// RFC 6121 §3.1.3: a request from someone who already has a subscription is answered
// "subscribed" by the server (A.3.1); the contact is not asked again. The user already has
// 'to', so that answer changes nothing and is not delivered (A.3.3); the contact's current
// presence comes again.
#[tokio::test]
async fn rfc6121_3_1_3_existing_subscription_auto_approved() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    alice.wait_for(|e| is_presence(e, None, "bob@localhost/b")).await;
    settle_without(&mut bob, "subscription request", |e| {
        e.attr("type") == Some("subscribe")
    })
    .await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("to".into(), None, None))
    );
}

// RFC 6121 §3.2: the contact cancels the user's subscription: the user is told
// ("unsubscribed", push 'none'), and sees the contact go unavailable.
#[tokio::test]
async fn rfc6121_3_2_unsubscribed_cancels_subscription() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    send_sub(&mut bob, "unsubscribed", "alice@localhost").await;
    let got = settle(&mut alice).await;
    assert!(
        got.iter()
            .any(|e| is_presence(e, Some("unavailable"), "bob@localhost/b")),
        "unavailable from bob's resource: {}",
        dump(&got)
    );
    assert!(
        got.iter()
            .any(|e| is_presence(e, Some("unsubscribed"), "bob@localhost")),
        "{}",
        dump(&got)
    );
    assert!(
        got.iter()
            .any(|e| pushed_item(e, "bob@localhost").is_some_and(|i| i.attr("subscription") == Some("none"))),
        "{}",
        dump(&got)
    );
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("none".into(), None, None))
    );
}

// RFC 6121 §3.2.1 / A.2.4: "unsubscribed" to a pending request denies it: the requester's
// ask goes away.
#[tokio::test]
async fn rfc6121_3_2_deny_pending_request() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    settle(&mut bob).await;
    send_sub(&mut bob, "unsubscribed", "alice@localhost").await;
    alice
        .wait_for(|e| is_presence(e, Some("unsubscribed"), "bob@localhost"))
        .await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("none".into(), None, None))
    );
    // Denied: no longer redelivered.
    let mut bob2 = server.client_jid("bob@localhost/two", PW).await;
    bob2.send_presence(0).await;
    settle_without(&mut bob2, "subscription request", |e| {
        e.attr("type") == Some("subscribe")
    })
    .await;
}

// RFC 6121 §3.3: the user unsubscribes: the contact gets "unsubscribe" and a push ('none'),
// the user a push and unavailable presence from the contact.
#[tokio::test]
async fn rfc6121_3_3_unsubscribe() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    send_sub(&mut alice, "unsubscribe", "bob@localhost").await;
    let got = settle(&mut bob).await;
    assert!(
        got.iter()
            .any(|e| is_presence(e, Some("unsubscribe"), "alice@localhost")),
        "{}",
        dump(&got)
    );
    assert!(
        got.iter().any(
            |e| pushed_item(e, "alice@localhost").is_some_and(|i| i.attr("subscription") == Some("none"))
        ),
        "{}",
        dump(&got)
    );
    let got = settle(&mut alice).await;
    assert!(
        got.iter()
            .any(|e| is_presence(e, Some("unavailable"), "bob@localhost/b")),
        "{}",
        dump(&got)
    );
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("none".into(), None, None))
    );
}

// RFC 6121 §3.4: pre-approval: advertised; "subscribed" without a request marks the item
// approved (pushed, not routed); the later request is approved by the server and the
// contact is not asked.
#[tokio::test]
async fn rfc6121_3_4_preapproval() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    let got = settle(&mut bob).await;
    let push = got
        .iter()
        .find_map(|e| pushed_item(e, "alice@localhost"))
        .unwrap_or_else(|| panic!("no push: {}", dump(&got)));
    assert_eq!(push.attr("approved"), Some("true"));
    assert_eq!(push.attr("subscription"), Some("none"));
    settle_without(&mut alice, "routed pre-approval", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribed")
    })
    .await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    alice
        .wait_for(|e| is_presence(e, Some("subscribed"), "bob@localhost"))
        .await;
    alice.wait_for(|e| is_presence(e, None, "bob@localhost/b")).await;
    settle_without(&mut bob, "subscription request (bob is not asked)", |e| {
        e.attr("type") == Some("subscribe")
    })
    .await;
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("from".into(), None, None))
    );
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("to".into(), None, None))
    );
}

// RFC 6121 §3.4: "unsubscribed" withdraws a pre-approval; the request then waits for bob.
#[tokio::test]
async fn rfc6121_3_4_preapproval_cancelled() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    send_sub(&mut bob, "subscribed", "alice@localhost").await;
    send_sub(&mut bob, "unsubscribed", "alice@localhost").await;
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("none".into(), None, None))
    );
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    bob.wait_for(|e| is_presence(e, Some("subscribe"), "alice@localhost"))
        .await;
}

// RFC 6121 §2.5.2: removing an item ends both subscriptions: the contact gets
// "unsubscribe" and "unsubscribed" and loses the user from its subscriptions.
#[tokio::test]
async fn rfc6121_2_5_2_remove_cancels_subscriptions() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("both".into(), None, None))
    );
    let r = alice
        .iq(
            "set",
            None,
            &format!("<query xmlns='{ROSTER}'><item jid='bob@localhost' subscription='remove'/></query>"),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let got = settle(&mut bob).await;
    for t in ["unsubscribe", "unsubscribed", "unavailable"] {
        assert!(
            got.iter()
                .any(|e| e.name() == "presence" && e.attr("type") == Some(t)),
            "no {t}: {}",
            dump(&got)
        );
    }
    assert_eq!(
        roster_item(&mut bob, "alice@localhost").await,
        Some(("none".into(), None, None))
    );
    assert_eq!(roster_item(&mut alice, "bob@localhost").await, None);
}

// RFC 6121 §8.5.1 / §3.1.3: a request to an account that does not exist is answered
// "unsubscribed" (or an error); either way the user's item is not left pending.
#[tokio::test]
async fn rfc6121_8_5_1_subscribe_to_unknown_user() {
    let server = server_with(&["alice"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    send_sub(&mut alice, "subscribe", "nobody@localhost").await;
    let got = settle(&mut alice).await;
    assert!(
        got.iter().any(|e| e.name() == "presence"
            && e.attr("from").is_some_and(|f| f.starts_with("nobody@localhost"))
            && matches!(e.attr("type"), Some("unsubscribed") | Some("error"))),
        "{}",
        dump(&got)
    );
    assert_eq!(
        roster_item(&mut alice, "nobody@localhost").await,
        Some(("none".into(), None, None))
    );
}

// No server-to-server yet: a request to a remote JID bounces with <remote-server-not-found/>.
#[tokio::test]
async fn rfc6121_3_1_2_subscribe_remote_unreachable() {
    let server = server_with(&["alice"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    alice
        .send_xml("<presence type='subscribe' to='romeo@example.net' id='r1'/>")
        .await;
    let e = alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["remote-server-not-found"]);
}

// Subscribing to oneself is refused (the own JID is never a roster item).
#[tokio::test]
async fn subscribe_to_self_refused() {
    let server = server_with(&["alice"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    alice
        .send_xml("<presence type='subscribe' to='alice@localhost' id='me'/>")
        .await;
    let e = alice
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("error"))
        .await;
    xml::assert_stanza_error(&e, &["not-allowed"]);
}

// XEP-0077 §3.2: when an account is removed, its contacts lose their subscriptions with it
// (pushes with subscription 'none') and see it go unavailable.
#[tokio::test]
async fn xep0077_account_removal_cancels_subscriptions() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    bob.send_xml(&format!(
        "<iq type='set' id='del'><query xmlns='{}'><remove/></query></iq>",
        ns::REGISTER
    ))
    .await;
    let push = alice
        .wait_for(|e| pushed_item(e, "bob@localhost").is_some_and(|i| i.attr("subscription") == Some("none")))
        .await;
    assert!(is_push(&push));
    alice
        .wait_for(|e| is_presence(e, Some("unavailable"), "bob@localhost/b"))
        .await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("none".into(), None, None))
    );
}

// Account deletion from the CLI cancels contacts' subscriptions in storage.
#[tokio::test]
async fn cli_account_deletion_cancels_subscriptions() {
    let mut server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice@localhost/a").await;
    let mut bob = online(&server, "bob@localhost/b").await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    drop((alice, bob));
    let out = server.cli(&["user", "del", "bob@localhost"]).await;
    assert!(out.success(), "{out:?}");
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    assert_eq!(
        roster_item(&mut alice, "bob@localhost").await,
        Some(("none".into(), None, None))
    );
}
