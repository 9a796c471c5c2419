//! XEP-0357 push notifications (v0.4.1): a client registers an app server (`<enable/>` with
//! its JID, a node and optionally a publish-options form; `<disable/>` removes one or all of
//! an app server's), stored per account. When a message with a body arrives for an account
//! with no session at all (the offline path), each registration gets a pubsub publish from
//! the account's bare JID with a `urn:xmpp:push:summary` form: message-count (messages since
//! the account's last session) and last-message-sender. The body is never sent (no opt-in
//! yet). Without s2s, the app server is whatever local JID routes: a client's full JID, a
//! service.
//!
//! The app server's answer comes back to the account's bare JID (the `inbound` hook takes
//! it). An error of type `cancel` or `auth` (the node is gone, the app server refuses us)
//! removes that registration: the XEP leaves it to the server, and a registration that can
//! never work only costs traffic; `wait` and `modify` keep it.
//!
//! Hibernating sessions (XEP-0198, once it lands) should push too: what they queue is not
//! on the offline path, so the stream management code calls [`Push::notify`] (published on
//! the registry) for a message it queues while detached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::pubsub::pubsub::{Item, Publish, PublishOptions};
use xmpp_parsers::pubsub::{NodeName, PubSub};
use xmpp_parsers::push::Notification;

use crate::error::StanzaError;
use crate::router;
use crate::router::hooks::{Flow, Routed, Stage};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::storage::push::PushRegistration;
use crate::xml::{self, ns};

pub const NS: &str = "urn:xmpp:push:0";
const NS_SUMMARY: &str = "urn:xmpp:push:summary";
const NS_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// Registrations one account may hold (one per device and app, in practice a handful).
const MAX_REGISTRATIONS: usize = 20;
/// How long a publish waits for the app server's answer before it is forgotten.
const ANSWER_WAIT: Duration = Duration::from_secs(60);
/// The id prefix of our publishes: how the `inbound` hook recognizes their answers cheaply.
const ID_PREFIX: &str = "push-";

/// A publish awaiting the app server's answer.
struct Pending {
    account: BareJid,
    service: String,
    node: String,
}

#[derive(Default)]
pub struct Push {
    /// Messages pushed per account since its last session (message-count).
    counts: DashMap<BareJid, u64>,
    /// Publishes awaiting an answer, by IQ id.
    pending: DashMap<String, Pending>,
    next_id: AtomicU64,
}

impl Module for Push {
    fn name(&self) -> &'static str {
        "push"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.account_feature(NS);
        r.iq(
            IqType::Set,
            NS,
            "enable",
            &[IqTarget::OwnAccount],
            |req| async move { enable(&req).await },
        );
        r.iq(
            IqType::Set,
            NS,
            "disable",
            &[IqTarget::OwnAccount],
            |req| async move { disable(&req).await },
        );
        // Protocol runs offline storage, which takes the message over: Policy is the last
        // stage that still sees it (registered after blocking, so what a user refused is not
        // pushed). It only looks and passes the message on.
        let me = self.clone();
        r.hooks
            .message_offline
            .add_for(Stage::Policy, "push", wants_push, move |server, routed| {
                let me = me.clone();
                async move {
                    if let Some(account) = routed.to.as_ref().map(|to| to.to_bare()) {
                        me.notify(&server, &account, &routed.from.to_string());
                    }
                    Flow::Continue(routed)
                }
            });
        let me = self.clone();
        r.hooks.inbound.add_for(
            Stage::Protocol,
            "push",
            |_, routed| is_answer(routed),
            move |server, routed| {
                let me = me.clone();
                async move { me.answered(&server, routed).await }
            },
        );
        let me = self.clone();
        r.hooks.session_opened.observe("push", move |_, event| {
            me.counts.remove(&event.entry.jid.to_bare());
        });
        r.provide(self);
    }
}

/// A message with a body for an account that has no session at all.
fn wants_push(server: &Server, routed: &Routed) -> bool {
    routed.stanza.has_child("body", ns::CLIENT)
        && routed
            .to
            .as_ref()
            .is_some_and(|to| server.sessions.count_of(&to.to_bare()) == 0)
}

/// An IQ result or error to a bare JID answering one of our publishes.
fn is_answer(routed: &Routed) -> bool {
    routed.stanza.name() == "iq"
        && matches!(xml::stanza_type(&routed.stanza), Some("result" | "error"))
        && routed
            .stanza
            .attr("id")
            .is_some_and(|id| id.starts_with(ID_PREFIX))
        && routed.to.as_ref().is_some_and(|to| to.resource().is_none())
}

/// The stored host spelling and user of a local bare JID.
fn account_of(server: &Server, bare: &BareJid) -> Option<(String, String)> {
    let host = server.hosted_domain(bare.domain().as_str())?;
    Some((host.to_owned(), bare.node()?.to_string()))
}

/// `jid` and `node` of an `<enable/>` or `<disable/>`. Parsed here rather than with
/// xmpp-parsers' `push` types: those take only a bare JID as the app server, and without
/// s2s a local full JID is what routes.
fn target(payload: &Element) -> Result<(Jid, Option<String>), StanzaError> {
    let jid = payload
        .attr("jid")
        .ok_or_else(|| StanzaError::bad_request().text("the app server's jid is missing"))?;
    let jid = Jid::new(jid).map_err(|_| StanzaError::jid_malformed())?;
    let node = payload.attr("node").filter(|n| !n.is_empty()).map(str::to_owned);
    Ok((jid, node))
}

/// XEP-0357 §5: registers (or re-registers, replacing the options) an app server and node.
async fn enable(req: &IqRequest) -> IqResult {
    let payload = req.payload();
    let (jid, node) = target(payload)?;
    let node = node.ok_or_else(|| StanzaError::bad_request().text("a node is required"))?;
    let options = match payload.get_child("x", "jabber:x:data") {
        None => None,
        Some(x) => {
            let form = DataForm::try_from(x.clone()).map_err(|_| StanzaError::bad_request())?;
            if form.form_type() != Some(NS_PUBLISH_OPTIONS) {
                return Err(StanzaError::bad_request().text("the form is not publish-options"));
            }
            Some(xml::to_string(&Element::from(form)))
        }
    };
    let (host, user) = account_of(&req.server, &req.to).ok_or_else(StanzaError::service_unavailable)?;
    let storage = &req.server.storage;
    let existing = storage
        .push_registrations(&host, &user)
        .await
        .map_err(StanzaError::storage("push: reading registrations"))?;
    let service = jid.to_string();
    let replaces = existing.iter().any(|r| r.service == service && r.node == node);
    if !replaces && existing.len() >= MAX_REGISTRATIONS {
        return Err(StanzaError::resource_constraint().text("too many push registrations"));
    }
    let reg = PushRegistration {
        service,
        node,
        options,
        include_body: false,
    };
    let stored = storage
        .push_enable(&host, &user, &reg)
        .await
        .map_err(StanzaError::storage("push: storing a registration"))?;
    if !stored {
        return Err(StanzaError::service_unavailable());
    }
    crate::metrics::module_event("push", "enabled");
    Ok(IqResponse::empty())
}

/// XEP-0357 §6: removes the app server's registration for `node`, or all of its
/// registrations without one. Removing what is not there succeeds too.
async fn disable(req: &IqRequest) -> IqResult {
    let (jid, node) = target(req.payload())?;
    let (host, user) = account_of(&req.server, &req.to).ok_or_else(StanzaError::service_unavailable)?;
    req.server
        .storage
        .push_disable(&host, &user, &jid.to_string(), node.as_deref())
        .await
        .map_err(StanzaError::storage("push: removing registrations"))?;
    Ok(IqResponse::empty())
}

/// The publish of one notification (XEP-0357 §7).
fn publish_iq(id: &str, account: &BareJid, reg: &PushRegistration, count: u64, sender: &str) -> Element {
    let summary = DataForm::new(
        DataFormType::Submit,
        NS_SUMMARY,
        vec![
            Field::new("message-count", FieldType::TextSingle).with_value(&count.to_string()),
            Field::new("last-message-sender", FieldType::JidSingle).with_value(sender),
        ],
    );
    let notification = Notification {
        form: Some(summary),
        payloads: Vec::new(),
    };
    // The stored options parsed back (they were a valid form when enabled).
    let publish_options = reg
        .options
        .as_deref()
        .and_then(|text| text.parse::<Element>().ok())
        .and_then(|el| DataForm::try_from(el).ok())
        .map(|form| PublishOptions { form: Some(form) });
    let pubsub = PubSub::Publish {
        publish: Publish {
            node: NodeName(reg.node.clone()),
            items: vec![Item {
                id: None,
                publisher: None,
                payload: Some(notification.into()),
            }],
        },
        publish_options,
    };
    let mut iq = Element::bare("iq", ns::CLIENT);
    xml::set_attr(&mut iq, "type", "set");
    xml::set_attr(&mut iq, "id", id);
    xml::set_attr(&mut iq, "from", &account.to_string());
    xml::set_attr(&mut iq, "to", &reg.service);
    iq.append_child(pubsub.into());
    iq
}

impl Push {
    /// A message from `sender` for `account` that no session will take now: publishes a
    /// notification to each of the account's app servers (in a task of its own; routing does
    /// not wait for storage).
    pub fn notify(self: &Arc<Self>, server: &Arc<Server>, account: &BareJid, sender: &str) {
        let count = {
            let mut count = self.counts.entry(account.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let (me, server, account, sender) =
            (self.clone(), server.clone(), account.clone(), sender.to_owned());
        tokio::spawn(async move { me.publish_all(&server, &account, count, &sender).await });
    }

    async fn publish_all(
        self: &Arc<Self>,
        server: &Arc<Server>,
        account: &BareJid,
        count: u64,
        sender: &str,
    ) {
        let Some((host, user)) = account_of(server, account) else {
            return;
        };
        let regs = match server.storage.push_registrations(&host, &user).await {
            Ok(regs) => regs,
            Err(e) => {
                tracing::error!(%account, error = %e, "push: could not read registrations");
                return;
            }
        };
        // The routing `from` (the stanza's own says the bare JID, as §7 shows).
        let Ok(from) = FullJid::new(&format!("{account}/push")) else {
            return;
        };
        for reg in regs {
            let Ok(to) = Jid::new(&reg.service) else {
                continue;
            };
            let id = format!("{ID_PREFIX}{}", self.next_id.fetch_add(1, Ordering::Relaxed));
            let iq = publish_iq(&id, account, &reg, count, sender);
            self.pending.insert(
                id.clone(),
                Pending {
                    account: account.clone(),
                    service: reg.service.clone(),
                    node: reg.node.clone(),
                },
            );
            crate::metrics::module_event("push", "published");
            router::arrived(server, &from, Some(to), iq).await;
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ANSWER_WAIT).await;
                me.pending.remove(&id);
            });
        }
    }

    /// The app server's answer to a publish: an error that says it will never work removes
    /// the registration.
    async fn answered(&self, server: &Arc<Server>, routed: Routed) -> Flow<Routed> {
        let id = routed.stanza.attr("id").unwrap_or_default();
        let Some((_, pending)) = self.pending.remove_if(id, |_, p| {
            Some(&p.account) == routed.to.as_ref().map(|t| t.to_bare()).as_ref()
                && (routed.from.to_string() == p.service || routed.from.to_bare().to_string() == p.service)
        }) else {
            // Not ours (a client's own id, or an answer from someone else): route as usual.
            return Flow::Continue(routed);
        };
        if xml::stanza_type(&routed.stanza) != Some("error") {
            return Flow::Handled;
        }
        let fatal = routed
            .stanza
            .get_child("error", ns::CLIENT)
            .and_then(|e| e.attr("type"))
            .is_some_and(|t| matches!(t, "cancel" | "auth"));
        if !fatal {
            return Flow::Handled;
        }
        if let Some((host, user)) = account_of(server, &pending.account) {
            match server
                .storage
                .push_disable(&host, &user, &pending.service, Some(&pending.node))
                .await
            {
                Ok(_) => {
                    tracing::info!(account = %pending.account, service = %pending.service, "push: app server refused; registration removed");
                    crate::metrics::module_event("push", "disabled_by_app_server");
                }
                Err(e) => tracing::error!(error = %e, "push: could not remove a registration"),
            }
        }
        Flow::Handled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_carries_the_summary_and_the_options() {
        let account: BareJid = "alice@example.org".parse().unwrap();
        let options = DataForm::new(
            DataFormType::Submit,
            NS_PUBLISH_OPTIONS,
            vec![Field::text_single("secret", "s3")],
        );
        let reg = PushRegistration {
            service: "push.example.net".into(),
            node: "n1".into(),
            options: Some(xml::to_string(&Element::from(options))),
            include_body: false,
        };
        let iq = publish_iq("push-1", &account, &reg, 3, "bob@example.org/x");
        assert_eq!(iq.attr("from"), Some("alice@example.org"));
        assert_eq!(iq.attr("to"), Some("push.example.net"));
        let pubsub = iq
            .get_child("pubsub", "http://jabber.org/protocol/pubsub")
            .unwrap();
        let publish = pubsub
            .get_child("publish", "http://jabber.org/protocol/pubsub")
            .unwrap();
        assert_eq!(publish.attr("node"), Some("n1"));
        let text = xml::to_string(&iq);
        for wanted in [
            NS_SUMMARY,
            "message-count",
            ">3<",
            "bob@example.org/x",
            "publish-options",
            "s3",
        ] {
            assert!(text.contains(wanted), "{wanted} missing: {text}");
        }
        assert!(!text.contains("last-message-body"), "{text}");
    }
}
