//! Publish-subscribe (XEP-0060) as XEP-0163 personal eventing on every account.
//!
//! Layout: `config` (node options and forms), `node` (one node in memory and the access
//! decision), `pep` (the service on an account's bare JID: requests, notifications, last
//! items on presence), `caps` (XEP-0115 interests of resources), `rosters` (the roster
//! facts access and notifications are decided from), `events` and `errors` (what goes on the
//! wire). `service` is the XEP-0060 service at `pubsub.<domain>` on the same node engine.
//! Storage: `storage::pep`, `storage::pubsub`.

mod avatar;
mod bookmarks;
mod caps;
pub mod config;
mod errors;
mod events;
mod node;
mod pep;
mod rosters;
mod service;

use std::sync::{Arc, OnceLock, Weak};

use crate::router::hooks::{Flow, Stage};
use crate::router::registry::{Identity, IqTarget, IqType, Module, Registry};
use crate::server::Server;

pub use errors::{NS_ERRORS, NS_PUBSUB};
pub use pep::NS_PUBSUB_OWNER;

/// XEP-0060 §10 features of the personal eventing service (XEP-0163 §6), on each account.
const PEP_FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-access",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
];

#[derive(Default)]
pub struct PubSub {
    pep: pep::Pep,
    service: service::Service,
    /// The server, for work started by roster observers (which are not given it); set when
    /// the first session opens, weak so the module does not keep the server alive.
    server: OnceLock<Weak<Server>>,
}

impl PubSub {
    pub fn new() -> PubSub {
        PubSub::default()
    }
}

impl Module for PubSub {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.account_identity(Identity {
            category: "pubsub",
            kind: "pep",
            name: "",
        });
        for f in PEP_FEATURES {
            r.account_feature(f);
        }
        r.account_feature(bookmarks::FEATURE_COMPAT);
        r.account_feature(bookmarks::FEATURE_COMPAT_PEP);
        r.account_feature(avatar::FEATURE_CONVERSION);
        // The account's nodes in its disco#items.
        let me = self.clone();
        r.account_items(move |req| {
            let (me, server) = (me.clone(), req.server.clone());
            let (owner, requester) = (req.to.clone(), req.from.to_bare());
            async move { me.pep.disco_items(&server, &owner, &requester).await }
        });
        let me = self.clone();
        r.service(
            "Publish-Subscribe",
            |config| config.pubsub.service_domain(&config.domains),
            move |server, from, stanza| {
                let me = me.clone();
                async move { me.service.handle(&server, from, stanza).await }
            },
        );
        // Another account's nodes: items retrieval; the rest is refused there.
        let targets = [IqTarget::OwnAccount, IqTarget::OtherAccount];
        for kind in [IqType::Get, IqType::Set] {
            let me = self.clone();
            r.iq(kind, NS_PUBSUB, "pubsub", &targets, move |req| {
                let me = me.clone();
                async move { me.pep.handle(req).await }
            });
            let me = self.clone();
            r.iq(kind, NS_PUBSUB_OWNER, "pubsub", &targets, move |req| {
                let me = me.clone();
                async move { me.pep.handle_owner(req).await }
            });
        }
        // Capabilities of resources as they announce them (before the roster broadcasts).
        let me = self.clone();
        r.hooks
            .presence_broadcasted
            .observe("pubsub", move |server, routed| {
                let outcome = me.pep.caps.on_presence(&routed.from, &routed.stanza);
                if let Some(query) = outcome.query
                    && let Some(session) = server.sessions.get(&routed.from)
                {
                    crate::router::push(&session, query);
                }
                if outcome.interests_changed {
                    let (me, server, jid) = (me.clone(), server.clone(), routed.from.clone());
                    tokio::spawn(async move { me.pep.send_last_items(&server, jid).await });
                }
            });
        // The answers to our disco#info queries (addressed to the server).
        let me = self.clone();
        r.hooks.outbound.add_for(
            Stage::Protocol,
            "pubsub",
            |_, routed| {
                caps::CapsCache::is_answer(&routed.stanza)
                    && routed.to.as_ref().is_some_and(|to| to.node().is_none())
            },
            move |server, routed| {
                if let Some(jid) = me.pep.caps.on_answer(&routed.from, &routed.stanza) {
                    let me = me.clone();
                    tokio::spawn(async move { me.pep.send_last_items(&server, jid).await });
                }
                async { Flow::Handled }
            },
        );
        let me = self.clone();
        r.hooks.session_closed.observe("pubsub", move |server, event| {
            let jid = &event.entry.jid;
            me.pep.caps.forget(jid);
            me.pep.release(server, &jid.to_bare());
        });
        // XEP-0048 bookmarks stored in private XML: the XEP-0402 node follows.
        let me = self.clone();
        r.hooks
            .private_stored
            .observe_async("pubsub", move |server, stored| {
                let wanted = stored.namespace == bookmarks::NS_LEGACY;
                let (me, server) = (me.clone(), server.clone());
                let (account, data) = (stored.account.clone(), wanted.then(|| stored.data.clone()));
                async move {
                    let Some(data) = data else { return };
                    if let Err(e) = me.pep.bookmarks_from_private(&server, &account, &data).await {
                        tracing::warn!(%account, error = %e, "bookmarks not copied to PEP");
                    }
                    me.pep.release(&server, &account);
                }
            });
        // XEP-0398: a stored vCard's PHOTO becomes the PEP avatar.
        let me = self.clone();
        r.hooks
            .vcard_stored
            .observe_async("pubsub", move |server, stored| {
                let (me, server) = (me.clone(), server.clone());
                let (account, vcard) = (stored.account.clone(), stored.vcard.clone());
                async move {
                    if let Err(e) = me.pep.vcard_to_avatar(&server, &account, &vcard).await {
                        tracing::warn!(%account, error = %e, "vCard photo not copied to PEP");
                    }
                }
            });
        // XEP-0398: the avatar hash in available presence the client sent without one.
        let me = self.clone();
        r.hooks.outbound.add_for(
            Stage::Protocol,
            "pubsub",
            move |_, routed| {
                let p = &routed.stanza;
                p.name() == "presence"
                    && routed.to.is_none()
                    && p.attr("type").is_none()
                    && p.get_child("x", avatar::NS_UPDATE).is_none()
                    && me
                        .pep
                        .photos
                        .get(&routed.from.to_bare())
                        .is_some_and(|h| !h.is_empty())
            },
            {
                let me = self.clone();
                move |server, mut routed| {
                    if let Some(hash) = me.pep.photo_hash(&routed.from.to_bare()) {
                        avatar::add_photo_hash(&mut routed.stanza, &hash);
                        // Probes are answered from the session's last presence: it gets the
                        // hash too (the session recorded the presence as the client sent it).
                        if let Some(session) = server.sessions.get(&routed.from)
                            && let Ok((available, priority)) =
                                crate::router::announced_availability(&routed.stanza)
                        {
                            session.set_presence(available, priority, Some(routed.stanza.clone()));
                        }
                    }
                    async move { Flow::Continue(routed) }
                }
            },
        );
        let me = self.clone();
        r.hooks
            .session_opened
            .observe_async("pubsub", move |server, event| {
                me.server.get_or_init(|| Arc::downgrade(server));
                let (me, server, owner) = (me.clone(), server.clone(), event.entry.jid.to_bare());
                async move {
                    if let Err(e) = me.pep.load_photo_hash(&server, &owner).await {
                        tracing::warn!(%owner, error = %e, "avatar hash not loaded");
                    }
                }
            });
        // A contact newly allowed to see the account's presence gets the last items.
        let me = self;
        r.hooks.roster_changed.add("pubsub", move |user, contact, item| {
            let now = item.is_some_and(|(sub, _)| matches!(sub, "from" | "both"));
            let before = me.pep.rosters.cached_has_from(user, contact);
            me.pep.rosters.changed(user);
            if !now || before == Some(true) {
                return;
            }
            if let Some(server) = me.server.get().and_then(Weak::upgrade) {
                let (me, owner, contact) = (me.clone(), user.clone(), contact.clone());
                tokio::spawn(async move {
                    me.pep
                        .send_last_items_to_new_contact(&server, owner, contact)
                        .await
                });
            }
        });
    }
}
