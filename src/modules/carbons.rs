//! XEP-0280 message carbons (v1.0), with the XEP-0334 `<no-copy/>` hint.
//!
//! A session turns carbons on or off with an IQ to its own account. Then:
//! - sent: a message a user sends (the `outbound` hook) is copied, wrapped in `<sent/>`, to
//!   the user's other carbons-enabled resources (§7; whether the sender enabled carbons does
//!   not matter);
//! - received: a message delivered to some resources of an account (`message_delivered`) is
//!   copied, wrapped in `<received/>`, to the account's other carbons-enabled resources (§6).
//!
//! Eligible (§6.1, advertised as `urn:xmpp:carbons:rules:0`): see [`eligible`]; never
//! groupchat, headline, nor anything from a MUC (`muc#user` payload). Not copied either:
//! `<private/>` (§8), `<no-copy/>`, a message that already carries a carbon, and messages
//! between resources of the same account (the sender's other resources get the sent copy).
//! "Carbons-enabled" is the only condition on a receiving resource, as in the XEP; the
//! `<private/>` element is left in place (§8 only says SHOULD remove).

use std::sync::Arc;

use jid::{BareJid, FullJid};
use minidom::Element;

use crate::error::StanzaError;
use crate::router::hooks::Delivered;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::xml::{self, ns};

pub const NS: &str = "urn:xmpp:carbons:2";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0280 §6.1: the server applies the eligibility rules of this version.
pub const NS_RULES: &str = "urn:xmpp:carbons:rules:0";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

pub struct Carbons;

impl Module for Carbons {
    fn name(&self) -> &'static str {
        "carbons"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.feature(NS_RULES);
        r.iq(
            IqType::Set,
            NS,
            "enable",
            &[IqTarget::OwnAccount],
            |req| async move { set_enabled(&req, true) },
        );
        r.iq(
            IqType::Set,
            NS,
            "disable",
            &[IqTarget::OwnAccount],
            |req| async move { set_enabled(&req, false) },
        );
        // XEP-0386 §5: `<enable xmlns='urn:xmpp:carbons:2'/>` inside a Bind2 request.
        r.bind2_inline(NS, |server, jid, request| {
            if request.is("enable", NS)
                && let Some(session) = server.sessions.get(jid)
            {
                session.set_wants_carbons(true);
            }
            None
        });
        // An observer of what was sent: a message that blocking or privacy stopped is not.
        r.hooks.sent.observe("carbons", |server, routed| {
            // Copies go to the sender's other resources: none, nothing to do.
            let wanted = routed.stanza.name() == "message"
                && routed.to.as_ref().is_some_and(|to| {
                    // Another account (compared without building bare JIDs).
                    to.node() != routed.from.node() || to.domain() != routed.from.domain()
                })
                && server.sessions.count_of(&routed.from.to_bare()) > 1;
            if wanted {
                copy_sent(server, &routed.from, &routed.stanza);
            }
        });
        r.hooks
            .message_delivered
            .observe("carbons", |server, delivered| copy_received(server, delivered));
    }
}

fn set_enabled(req: &IqRequest, enabled: bool) -> IqResult {
    // §4, §5 and §9.1: enabling twice (or disabling twice) is simply acknowledged again.
    let session = req
        .server
        .sessions
        .get(&req.from)
        .ok_or_else(StanzaError::internal_server_error)?;
    session.set_wants_carbons(enabled);
    Ok(IqResponse::empty())
}

/// Payloads that make a message of type normal (or none) an IM one (§6.1, rules:0).
const IM_PAYLOADS: [&str; 3] = [
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:receipts",
    "urn:xmpp:chat-markers:0",
];

/// §6.1 eligibility (`urn:xmpp:carbons:rules:0`) plus the exclusions (private, no-copy,
/// already a carbon, from a MUC): type chat; normal with a body, an IM payload (chat states,
/// receipts, markers) or a `<store/>` hint (so everything an account's archive keeps is
/// copied too, except what `<private/>`, `<no-copy/>` or a MUC exclude); an error bounced
/// from a bare JID (the answer to a message sent to an account).
pub fn eligible(msg: &Element) -> bool {
    let kind_ok = match msg.attr("type") {
        Some("chat") => true,
        None | Some("normal") => {
            msg.has_child("body", ns::CLIENT)
                || msg.has_child("store", NS_HINTS)
                || msg.children().any(|c| IM_PAYLOADS.contains(&c.ns().as_str()))
        }
        Some("error") => msg
            .attr("from")
            .is_some_and(|f| f.contains('@') && !f.contains('/')),
        _ => false,
    };
    kind_ok
        && !msg.has_child("private", NS)
        && !msg.has_child("no-copy", NS_HINTS)
        && !msg.has_child("sent", NS)
        && !msg.has_child("received", NS)
        && !msg.has_child("x", NS_MUC_USER)
}

/// The copy for `to`: `<message from=bare to=full type=same><{direction}><forwarded>original`.
pub fn wrap(direction: &str, account: &BareJid, to: &FullJid, original: &Element) -> Element {
    let forwarded = Element::builder("forwarded", NS_FORWARD)
        .append(original.clone())
        .build();
    let mut copy = Element::builder("message", ns::CLIENT)
        .append(Element::builder(direction, NS).append(forwarded).build())
        .build();
    xml::set_attr(&mut copy, "from", account.as_str());
    xml::set_attr(&mut copy, "to", &to.to_string());
    if let Some(kind) = original.attr("type") {
        xml::set_attr(&mut copy, "type", kind);
    }
    copy
}

/// Sends `direction` copies of `msg` to the carbons-enabled resources of `account` except those
/// in `skip`.
fn copy_to_account(server: &Server, direction: &str, account: &BareJid, skip: &[&FullJid], msg: &Element) {
    for session in server.sessions.sessions_of(account) {
        if skip.contains(&&session.jid) || !session.wants_carbons() {
            continue;
        }
        // A copy is best effort: a full mailbox already disconnects that session, and nobody
        // is to be told about a lost carbon.
        crate::router::push(&session, wrap(direction, account, &session.jid, msg));
    }
}

/// §7: a message `from` sent goes to the sender's other enabled resources.
fn copy_sent(server: &Server, from: &FullJid, msg: &Element) {
    if eligible(msg) {
        copy_to_account(server, "sent", &from.to_bare(), &[from], msg);
    }
}

/// §6: a message delivered to some resources goes to the account's other enabled resources.
fn copy_received(server: &Server, delivered: &Delivered) {
    let Some(first) = delivered.recipients.first() else {
        return;
    };
    let account = first.to_bare();
    if account == delivered.from.to_bare() || !eligible(&delivered.stanza) {
        return;
    }
    let skip: Vec<&FullJid> = delivered.recipients.iter().collect();
    copy_to_account(server, "received", &account, &skip, &delivered.stanza);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        s.parse().unwrap()
    }

    fn msg(attrs: &str, inner: &str) -> Element {
        parse(&format!(
            "<message xmlns='jabber:client'{attrs}>{inner}</message>"
        ))
    }

    #[test]
    fn xep0280_5_eligibility() {
        assert!(eligible(&msg(" type='chat'", "<body>x</body>")));
        // A chat state or receipt alone in a chat message is copied too (§9.2).
        assert!(eligible(&msg(
            " type='chat'",
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
        )));
        assert!(eligible(&msg("", "<body>x</body>")));
        assert!(eligible(&msg(" type='normal'", "<body>x</body>")));
        // rules:0: IM payloads and the store hint make a normal message eligible; a bare
        // JID's error bounce is eligible, a resource's error not.
        assert!(eligible(&msg(
            " type='normal'",
            "<received xmlns='urn:xmpp:receipts' id='a'/>"
        )));
        assert!(eligible(&msg("", "<store xmlns='urn:xmpp:hints'/>")));
        assert!(!eligible(&msg("", "<thread>t</thread>")));
        assert!(eligible(&msg(
            " type='error' from='bob@example.org'",
            "<body>x</body>"
        )));
        assert!(!eligible(&msg(
            " type='error' from='bob@example.org/r'",
            "<body>x</body>"
        )));
        for kind in ["groupchat", "headline"] {
            assert!(
                !eligible(&msg(&format!(" type='{kind}'"), "<body>x</body>")),
                "{kind}"
            );
        }
        let excluded = [
            "<private xmlns='urn:xmpp:carbons:2'/>",
            "<no-copy xmlns='urn:xmpp:hints'/>",
            "<sent xmlns='urn:xmpp:carbons:2'/>",
            "<received xmlns='urn:xmpp:carbons:2'/>",
            "<x xmlns='http://jabber.org/protocol/muc#user'/>",
        ];
        for extra in excluded {
            assert!(
                !eligible(&msg(" type='chat'", &format!("<body>x</body>{extra}"))),
                "{extra}"
            );
        }
    }

    #[test]
    fn xep0280_wrapper_shape() {
        let original = msg(
            " from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat' id='m1'",
            "<body>What man art thou</body><thread>t1</thread>",
        );
        let account = BareJid::new("romeo@montague.example").unwrap();
        let to = FullJid::new("romeo@montague.example/home").unwrap();
        let copy = wrap("received", &account, &to, &original);
        assert!(copy.is("message", ns::CLIENT));
        assert_eq!(copy.attr("from"), Some("romeo@montague.example"));
        assert_eq!(copy.attr("to"), Some("romeo@montague.example/home"));
        assert_eq!(copy.attr("type"), Some("chat"));
        let inner = copy
            .get_child("received", NS)
            .and_then(|r| r.get_child("forwarded", NS_FORWARD))
            .and_then(|f| f.get_child("message", ns::CLIENT))
            .expect("received/forwarded/message");
        assert_eq!(inner, &original);
        // The wrapper keeps "normal" as no type at all, like the original.
        let normal = msg(" from='a@b/c' to='d@e'", "<body>x</body>");
        let copy = wrap("sent", &account, &to, &normal);
        assert_eq!(copy.attr("type"), None);
        assert!(copy.has_child("sent", NS));
        // Serialized and parsed back, it is still the same.
        let text = xml::to_string(&copy);
        assert_eq!(parse(&text), copy);
    }
}
