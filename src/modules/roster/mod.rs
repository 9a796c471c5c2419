//! Rosters, presence subscriptions and presence (RFC 6121 §2-§4), roster versioning
//! (XEP-0237), subscription pre-approval (RFC 6121 §3.4) and last activity (XEP-0012).
//!
//! - `item`: roster items on the wire and the §2.3.3 validation of a roster set.
//! - `subscription`: the Appendix A state machine, pure.
//! - `store_cache`: rosters in memory per online user, written through to storage.
//! - `subscribe`: subscription stanzas, outbound (the user's side) and inbound (the contact's).
//! - `presence`: broadcasts, initial presence, probes and directed presence.
//! - `last`: XEP-0012.
//! - `notes`: private per-contact notes (`xep/xep-roster-notes.md`), encrypted at rest,
//!   sent only to sessions that opt in; rotation of their keys.
//!
//! Hooks: interceptors `outbound` (subscription stanzas, probes, directed presence),
//! `presence_to_account` (the contact's side of subscription stanzas and probes),
//! `presence_broadcast` (presence without 'to'), all at `Stage::Protocol`; observers
//! `session_closed` (directed presence left, last logout, cache eviction) and
//! `account_removed` (contacts lose their subscriptions, from every removal path).
//!
//! Blocking and privacy lists (XEP-0191, XEP-0016) are not here: that module judges routed
//! stanzas in its `outbound` and `inbound` hooks, and presence this module hands to sessions
//! itself (broadcasts, unavailable presence, probe answers, contacts' presence on initial
//! presence) through the router's account rules (`router::deliver_to_account`), where the
//! registry's `recipient_filter` decides per recipient.
//!
//! Remote contacts: without s2s, a subscription request to a remote JID is bounced by the
//! router (`remote-server-not-found`) and changes nothing; the other subscription stanzas
//! update the user's side and go nowhere; presence is not broadcast to remote contacts.

pub mod item;
pub mod last;
pub mod notes;
pub mod presence;
pub mod store_cache;
pub mod subscribe;
pub mod subscription;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jid::{BareJid, Jid};
use minidom::Element;

use crate::error::StanzaError;
use crate::router::hooks::{Flow, Stage};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::session::Recipient;
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
    /// Its last roster get opted in to private notes (`notes.rs`).
    pub notes: AtomicBool,
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
        r.command(&notes::ROTATE_COMMAND);
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
        // Presence: subscriptions, directed presence, probes.
        r.hooks.outbound.add_for(
            Stage::Protocol,
            "roster",
            |_, routed| routed.stanza.name() == "presence",
            move |server, routed| {
                let me = me.clone();
                async move { me.on_outbound(server, routed).await }
            },
        );
        let me = self.clone();
        r.hooks
            .presence_to_account
            .add(Stage::Protocol, "roster", move |server, routed| {
                let me = me.clone();
                async move { me.on_presence_to_account(server, routed).await }
            });
        let me = self.clone();
        r.hooks
            .presence_broadcast
            .add(Stage::Protocol, "roster", move |server, routed| {
                let me = me.clone();
                async move {
                    me.on_broadcast(&server, routed).await;
                    Flow::Handled
                }
            });
        let me = self.clone();
        r.hooks
            .account_removed
            .observe_async("roster", move |server, event| {
                let (me, server, event) = (me.clone(), server.clone(), event.clone());
                async move { me.account_removed(&server, &event).await }
            });
        let me = self;
        r.hooks
            .session_closed
            .observe_async("roster", move |server, event| {
                let (me, server, entry) = (me.clone(), server.clone(), event.entry.clone());
                async move { me.on_session_closed(&server, &entry).await }
            });
    }
}

/// The roster version as shown to a session: prefixed for sessions that opted in to notes,
/// so a version cached without notes never matches one with them (and back).
fn version_string(version: i64, with_notes: bool) -> String {
    if with_notes {
        format!("{}{version}", notes::VER_PREFIX)
    } else {
        version.to_string()
    }
}

/// Validates a note of a roster set and returns the keys to encrypt it with.
fn check_note(config: &crate::config::RosterNotesConfig, text: &str) -> Result<notes::NoteKeys, StanzaError> {
    let Some(keys) = notes::NoteKeys::from_config(config) else {
        return Err(
            StanzaError::feature_not_implemented().text("roster notes are not enabled on this server")
        );
    };
    let max = config.max_length;
    if text.chars().count() > max {
        return Err(StanzaError::not_acceptable().text(format!("the note is longer than {max} characters")));
    }
    Ok(keys)
}

/// What a roster storage failure is logged as (`StanzaError::storage`).
const STORAGE: &str = "roster storage error";

/// Whether `jid` is an account on a domain hosted here.
pub fn is_local_account(server: &Server, jid: &BareJid) -> bool {
    jid.node().is_some() && server.hosted_domain(jid.domain().as_str()).is_some()
}

/// Queues a stanza for a session; failures (a slow or vanished client) are not bounced:
/// presence and roster pushes are state, the next one supersedes them.
fn send(session: &Recipient, stanza: Element) {
    crate::router::push(session, stanza);
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
        // Opt-in to private notes: ignored when notes are disabled (not advertised).
        let with_notes =
            server.config().roster_notes.enabled() && req.payload().get_child("notes", notes::NS).is_some();
        let mut g = self
            .cache
            .lock(server, &user)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        // Interested from now on, under the lock: every later change is pushed.
        if let Some(session) = server.sessions.local(&req.from) {
            let state = session.extension::<SessionState>();
            state.notes.store(with_notes, Ordering::Release);
            session.set_wants_roster_pushes(true);
        }
        let roster = g.roster();
        let current = version_string(roster.version, with_notes);
        if ver.as_deref() == Some(current.as_str()) {
            // XEP-0237 §3: up to date; later changes come as pushes.
            return Ok(IqResponse::empty());
        }
        let mut query = item::query(roster.version);
        xml::set_attr(&mut query, "ver", &current);
        for (jid, it) in roster.items() {
            let mut el = item::item_element(jid, it);
            if with_notes && let Some(note) = roster.note(jid) {
                el.append_child(xml::text_element("note", notes::NS, note));
            }
            query.append_child(el);
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
            SetRequest::Update {
                jid,
                name,
                groups,
                note,
            } => {
                let keys = match &note {
                    None => None,
                    Some(text) => Some(check_note(&server.config().roster_notes, text)?),
                };
                let mut g = self
                    .cache
                    .lock(server, &user)
                    .await
                    .map_err(StanzaError::storage(STORAGE))?;
                let old = g.roster().item(&jid).cloned();
                let max = server.config().limits.max_roster_items;
                if old.is_none() && g.roster().item_count() >= max {
                    return Err(StanzaError::not_allowed().text(format!("the roster is full ({max} items)")));
                }
                // With a note, an item whose name and groups are unchanged is not rewritten:
                // a note-only change bumps the version once (notes.rs).
                let unchanged =
                    note.is_some() && old.as_ref().is_some_and(|o| o.name == name && o.groups == groups);
                let mut new = old.unwrap_or_else(Item::empty);
                new.name = name;
                new.groups = groups;
                let mut changed = false;
                if !unchanged {
                    let written = g
                        .write(&jid, Change::Set(new.clone()), Change::Keep)
                        .await
                        .map_err(StanzaError::storage(STORAGE))?;
                    changed = matches!(written, Some(Some(_)));
                }
                let mut result = Ok(IqResponse::empty());
                if let (Some(keys), Some(text)) = (keys, &note) {
                    match g.write_note(&keys, &jid, text).await {
                        Ok(c) => changed |= c,
                        // The item change (if any) is stored: still pushed below.
                        Err(e) => result = Err(StanzaError::storage(STORAGE)(e)),
                    }
                }
                if changed {
                    let version = g.get().version;
                    let note = g.get().note(&jid);
                    self.push(server, &user, version, item::item_element(&jid, &new), note);
                }
                result
            }
            SetRequest::Remove(jid) => {
                let mut g = self
                    .cache
                    .lock(server, &user)
                    .await
                    .map_err(StanzaError::storage(STORAGE))?;
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
                    .map_err(StanzaError::storage(STORAGE))?;
                let version = g.get().version;
                self.push(server, &user, version, item::removed_element(&jid), None);
                drop(g);
                // §2.5.2: end the subscriptions both ways (and pending requests).
                self.cancel_all(server, &req.from, &jid, before).await;
                Ok(IqResponse::empty())
            }
        }
    }

    /// Sends a roster push with `item` to every interested resource of `user` (§2.1.6);
    /// resources that opted in to notes get `note` in it too, under their version string.
    fn push(&self, server: &Arc<Server>, user: &BareJid, version: i64, item: Element, note: Option<&str>) {
        let build = |with_notes: bool| {
            let mut query = item::query(version);
            xml::set_attr(&mut query, "ver", &version_string(version, with_notes));
            let mut item = item.clone();
            if with_notes && let Some(note) = note {
                item.append_child(xml::text_element("note", notes::NS, note));
            }
            query.append_child(item);
            let mut iq = Element::builder("iq", ns::CLIENT).append(query).build();
            xml::set_attr(&mut iq, "type", "set");
            iq
        };
        let plain = build(false);
        let noted = build(true);
        for session in server.sessions.sessions_of(user) {
            if !session.wants_roster_pushes() {
                continue;
            }
            let notes = session
                .local()
                .is_some_and(|l| l.extension::<SessionState>().notes.load(Ordering::Acquire));
            let mut push = if notes { noted.clone() } else { plain.clone() };
            let n = self.push_id.fetch_add(1, Ordering::Relaxed);
            xml::set_attr(&mut push, "id", &format!("push{n}"));
            xml::set_attr(&mut push, "to", &session.jid.to_string());
            crate::metrics::roster_pushes(1);
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
