//! Rosters, presence subscriptions and presence (RFC 6121 §2-§4), roster versioning
//! (XEP-0237), subscription pre-approval (RFC 6121 §3.4) and last activity (XEP-0012).
//!
//! - `item`: roster items on the wire and the §2.3.3 validation of a roster set.
//! - `subscription`: the Appendix A state machine, pure.
//! - `store_cache`: rosters in memory per online user, written through to storage.
//! - `subscribe`: subscription stanzas, outbound (the user's side) and inbound (the contact's).
//! - `presence`: broadcasts, initial presence, probes and directed presence.
//! - `last`: XEP-0012.
//!
//! Hooks: `outbound` (subscription stanzas, probes, directed presence, XEP-0077 account
//! removal), `presence_to_account` (the contact's side of subscription stanzas and probes),
//! `presence_broadcast` (presence without 'to'), `session_closed` (directed presence left,
//! last logout, cache eviction).
//!
//! Blocking (XEP-0191) is not here: a blocking module drops stanzas from blocked JIDs in its
//! own `presence_to_account` hook with a higher priority, which runs before ours for every
//! subscription request and probe a local user sends, and filters broadcasts in
//! `presence_broadcast` the same way.
//!
//! Remote contacts: without s2s, a subscription request to a remote JID is bounced by the
//! router (`remote-server-not-found`) and changes nothing; the other subscription stanzas
//! update the user's side and go nowhere; presence is not broadcast to remote contacts.

pub mod item;
pub mod last;
pub mod presence;
pub mod store_cache;
pub mod subscribe;
pub mod subscription;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jid::{BareJid, Jid};
use minidom::Element;

use crate::error::StanzaError;
use crate::router::hooks::Flow;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::session::SessionEntry;
use crate::storage::StorageError;
use crate::xml::{self, ns};
use item::{Item, SetRequest};
use store_cache::{Change, RosterCache};

/// XEP-0237 stream feature.
pub const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";
/// RFC 6121 §3.4 stream feature.
pub const NS_PREAPPROVAL: &str = "urn:xmpp:features:pre-approval";

/// Per-session state of this module (`SessionEntry::extension`).
#[derive(Default)]
pub struct SessionState {
    /// The resource asked for the roster: it gets roster pushes (§2.1.6).
    pub interested: AtomicBool,
    /// The resource's available presence was broadcast (initial presence done, §4.2).
    pub announced: AtomicBool,
    /// Where the resource sent directed available presence (§4.6): they get its
    /// unavailable presence too.
    pub directed: std::sync::Mutex<std::collections::HashSet<Jid>>,
    /// Status text of the resource's last unavailable presence (XEP-0012).
    pub last_status: std::sync::Mutex<String>,
}

pub struct Roster {
    cache: RosterCache,
    push_id: AtomicU64,
}

impl Default for Roster {
    fn default() -> Self {
        Self::new()
    }
}

impl Roster {
    pub fn new() -> Roster {
        Roster {
            cache: RosterCache::default(),
            push_id: AtomicU64::new(0),
        }
    }
}

impl Module for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.stream_feature(Element::bare("ver", NS_ROSTERVER));
        r.stream_feature(Element::bare("sub", NS_PREAPPROVAL));
        r.feature(last::NS);
        // Another user's roster: `forbidden` (§2.3.3) rather than service-unavailable.
        let targets = [IqTarget::OwnAccount, IqTarget::OtherAccount];
        let me = self.clone();
        r.iq(IqType::Get, item::NS, "query", &targets, move |req| {
            let me = me.clone();
            async move { me.roster_get(req).await }
        });
        let me = self.clone();
        r.iq(IqType::Set, item::NS, "query", &targets, move |req| {
            let me = me.clone();
            async move { me.roster_set(req).await }
        });
        let me = self.clone();
        r.iq(
            IqType::Get,
            last::NS,
            "query",
            &[IqTarget::Server, IqTarget::OwnAccount, IqTarget::OtherAccount],
            move |req| {
                let me = me.clone();
                async move { me.last_activity(req).await }
            },
        );
        let me = self.clone();
        r.hooks.outbound.add(0, "roster", move |server, routed| {
            let me = me.clone();
            async move { me.on_outbound(server, routed).await }
        });
        let me = self.clone();
        r.hooks
            .presence_to_account
            .add(0, "roster", move |server, routed| {
                let me = me.clone();
                async move { me.on_presence_to_account(server, routed).await }
            });
        let me = self.clone();
        r.hooks
            .presence_broadcast
            .add(0, "roster", move |server, routed| {
                let me = me.clone();
                async move {
                    me.on_broadcast(&server, routed).await;
                    Flow::Handled
                }
            });
        let me = self;
        r.hooks.session_closed.add(0, "roster", move |server, event| {
            let me = me.clone();
            async move {
                me.on_session_closed(&server, &event.entry).await;
                Flow::Continue(event)
            }
        });
    }
}

fn storage_error(e: StorageError) -> StanzaError {
    tracing::error!(error = %e, "roster storage error");
    StanzaError::internal_server_error()
}

/// Whether `jid` is an account on a domain hosted here.
pub fn is_local_account(server: &Server, jid: &BareJid) -> bool {
    jid.node().is_some() && server.hosted_domain(jid.domain().as_str()).is_some()
}

/// Queues a stanza for a session; failures (a slow or vanished client) are not bounced:
/// presence and roster pushes are state, the next one supersedes them.
fn send(session: &SessionEntry, stanza: Element) {
    let _ = session.deliver(stanza);
}

impl Roster {
    /// RFC 6121 §2.1.3 roster get, with XEP-0237 versioning.
    async fn roster_get(&self, req: IqRequest) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("you can only read your own roster"));
        }
        let server = &req.server;
        let user = req.from.to_bare();
        let ver = req.payload().attr("ver").map(str::to_owned);
        let mut g = self.cache.lock(server, &user).await.map_err(storage_error)?;
        // Interested from now on, under the lock: every later change is pushed.
        if let Some(session) = server.sessions.get(&req.from) {
            session
                .extension::<SessionState>()
                .interested
                .store(true, Ordering::Release);
        }
        let roster = g.roster();
        if ver.as_deref() == Some(roster.version.to_string().as_str()) {
            // XEP-0237 §3: up to date; later changes come as pushes.
            return Ok(IqResponse::empty());
        }
        let mut query = item::query(roster.version);
        for (jid, it) in roster.items() {
            query.append_child(item::item_element(jid, it));
        }
        Ok(IqResponse::with(query))
    }

    /// RFC 6121 §2.3-§2.5 roster set.
    async fn roster_set(&self, req: IqRequest) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("you can only change your own roster"));
        }
        let server = &req.server;
        let user = req.from.to_bare();
        match item::parse_set(req.payload(), &user)? {
            SetRequest::Update { jid, name, groups } => {
                let mut g = self.cache.lock(server, &user).await.map_err(storage_error)?;
                let old = g.roster().item(&jid).cloned();
                let max = server.config.limits.max_roster_items;
                if old.is_none() && g.roster().item_count() >= max {
                    return Err(StanzaError::not_allowed().text(format!("the roster is full ({max} items)")));
                }
                let mut new = old.unwrap_or_else(Item::empty);
                new.name = name;
                new.groups = groups;
                let changed = g
                    .write(&jid, Change::Set(new), Change::Keep)
                    .await
                    .map_err(storage_error)?;
                if let Some(Some(it)) = changed {
                    let version = g.get().version;
                    self.push(server, &user, version, item::item_element(&jid, &it));
                }
                Ok(IqResponse::empty())
            }
            SetRequest::Remove(jid) => {
                let mut g = self.cache.lock(server, &user).await.map_err(storage_error)?;
                if g.roster().item(&jid).is_none() {
                    // §2.5.3.
                    return Err(StanzaError::item_not_found().text("no such item in your roster"));
                }
                let before = g.roster().entry(&jid);
                let pending = if before.state.pending_in() {
                    Change::Remove
                } else {
                    Change::Keep
                };
                g.write(&jid, Change::Remove, pending)
                    .await
                    .map_err(storage_error)?;
                let version = g.get().version;
                self.push(server, &user, version, item::removed_element(&jid));
                drop(g);
                // §2.5.2: end the subscriptions both ways (and pending requests).
                self.cancel_all(server, &req.from, &jid, before).await;
                Ok(IqResponse::empty())
            }
        }
    }

    /// Sends a roster push with `item` to every interested resource of `user` (§2.1.6).
    fn push(&self, server: &Arc<Server>, user: &BareJid, version: i64, item: Element) {
        let mut query = item::query(version);
        query.append_child(item);
        let mut iq = Element::builder("iq", ns::CLIENT).append(query).build();
        xml::set_attr(&mut iq, "type", "set");
        for session in server.sessions.sessions_of(user) {
            if !session
                .extension::<SessionState>()
                .interested
                .load(Ordering::Acquire)
            {
                continue;
            }
            let mut push = iq.clone();
            let n = self.push_id.fetch_add(1, Ordering::Relaxed);
            xml::set_attr(&mut push, "id", &format!("push{n}"));
            xml::set_attr(&mut push, "to", &session.jid.to_string());
            send(&session, push);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_features_and_handlers() {
        let registry = Registry::build(vec![Arc::new(Roster::new())]);
        let features: Vec<String> = registry
            .stream_features()
            .iter()
            .map(|f| f.ns().to_string())
            .collect();
        assert!(features.contains(&NS_ROSTERVER.to_string()));
        assert!(features.contains(&NS_PREAPPROVAL.to_string()));
        assert!(registry.features().any(|f| f == last::NS));
        for kind in [IqType::Get, IqType::Set] {
            assert!(
                registry
                    .handler(kind, item::NS, "query", IqTarget::OwnAccount)
                    .is_some()
            );
        }
        assert!(!registry.hooks.outbound.is_empty());
        assert!(!registry.hooks.presence_broadcast.is_empty());
    }
}
