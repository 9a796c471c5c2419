//! XEP-0313 message archive management (`urn:xmpp:mam:2`, `#extended`) for accounts, with
//! XEP-0359 stanza ids on what is archived.
//!
//! Where messages enter: a message a user sends to another local account (or to a service,
//! such as a room occupant) is archived in the sender's archive (`outbound` hook, outgoing);
//! a message reaching a local account (`inbound`: delivered, stored offline or both) in the
//! recipient's (incoming), and gets `<stanza-id by='recipient' id=..>` before delivery, so
//! every copy the recipient sees (live, carbons, offline) names its archive entry. What is
//! kept: [`policy`]. A `<stanza-id/>` a client sent that claims one of our JIDs as `by` is
//! removed (the sender's side for all of ours, the recipient's side for the recipient).
//!
//! Writes never wait for the database: rows go to [`writer`], which batches them. Queries
//! flush it first, so they see everything routed before them; a graceful stop flushes it
//! ([`flush_on_stop`]).
//!
//! XEP-0441 preferences decide per owner and peer ([`prefs`]); a message they exclude gets
//! no stanza-id either.
//!
//! Retention (`limits.archive_max_age_secs`, [`retention`]) and purges (ad-hoc commands,
//! [`commands`]) delete from it.
//!
//! A XEP-0424 retraction turns the sender's message into a tombstone in both archives (only
//! messages that sender sent: the direction and peer must match).
//!
//! XEP-0431 full-text search: [`fulltext`].
//!
//! Rooms' archives: [`room`] (the MUC room decides who may read them).
//!
//! Not done here (yet): XEP-0227 export of archives.
//! Messages to or from other servers are not archived (no s2s).

pub mod commands;
pub mod fulltext;
pub mod policy;
pub mod prefs;
pub mod query;
pub mod retention;
pub mod room;
pub mod writer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use jid::BareJid;
use minidom::Element;
use xmpp_parsers::mam::{End, MetadataResponse, Start};

use crate::error::StanzaError;
use crate::router::hooks::{Flow, Routed, Stage};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::router::{self, Destination};
use crate::server::Server;
use crate::storage::archive::{ArchiveRow, Retraction};
use crate::xml;

pub const NS: &str = "urn:xmpp:mam:2";
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";

/// The archive module's shared state: the id clock and the writer (started on first use,
/// inside the runtime, with the server's storage).
#[derive(Default)]
pub struct Archive {
    last_id: AtomicI64,
    writer: OnceLock<writer::Writer>,
    prefs: prefs::PrefsCache,
}

impl Archive {
    /// The writer, started (with the retention task) on first use.
    fn writer(&self, server: &Arc<Server>) -> &writer::Writer {
        self.writer.get_or_init(|| {
            tokio::spawn(retention::run(Arc::downgrade(server)));
            writer::Writer::start(server.storage.clone())
        })
    }

    /// Moves the id clock past the largest id `storage` holds.
    async fn seed(&self, storage: &crate::storage::Storage) -> Result<(), crate::storage::StorageError> {
        let accounts = storage.archive_max_id().await?;
        let rooms = storage.room_archive_max_id().await?;
        self.last_id
            .fetch_max(accounts.max(rooms).unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    /// A new archive id: unix microseconds, bumped past the last one so ids are unique
    /// and increasing, in this process and across restarts (the last one starts at the
    /// largest stored id, [`seed_ids`], so a clock that went back does not reuse ids).
    pub fn next_id(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let last = self
            .last_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(last + 1)
    }
}

#[derive(Default)]
pub struct Mam {
    archive: Arc<Archive>,
}

impl Module for Mam {
    fn name(&self) -> &'static str {
        "mam"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.account_feature(NS_EXTENDED);
        r.account_feature(policy::NS_SID);
        // XEP-0424 §2: the archive keeps tombstones of retracted messages.
        r.account_feature(policy::NS_TOMBSTONE);
        r.account_feature(fulltext::NS);
        r.provide(self.archive.clone());
        for command in commands::TABLE {
            r.command(command);
        }
        let archive = self.archive.clone();
        r.iq(IqType::Set, NS, "query", &[IqTarget::OwnAccount], move |req| {
            let archive = archive.clone();
            async move { run_query(&archive, req).await }
        });
        r.iq(IqType::Get, NS, "query", &[IqTarget::OwnAccount], |_req| async {
            Ok(IqResponse::with(query::form()))
        });
        let archive = self.archive.clone();
        r.iq(IqType::Get, NS, "metadata", &[IqTarget::OwnAccount], move |req| {
            let archive = archive.clone();
            async move { metadata(&archive, req).await }
        });
        let archive = self.archive.clone();
        r.iq(IqType::Get, NS, "prefs", &[IqTarget::OwnAccount], move |req| {
            let archive = archive.clone();
            async move {
                let p = archive.prefs.current(&req.server.storage, &req.to).await?;
                Ok(IqResponse::with(p.payload().into()))
            }
        });
        let archive = self.archive.clone();
        r.iq(IqType::Set, NS, "prefs", &[IqTarget::OwnAccount], move |req| {
            let archive = archive.clone();
            async move {
                let payload = xmpp_parsers::mam_prefs::Prefs::try_from(req.payload().clone())
                    .map_err(|e| StanzaError::bad_request().text(format!("malformed preferences: {e}")))?;
                let p = archive.prefs.set(&req.server.storage, &req.to, payload).await?;
                Ok(IqResponse::with(p.payload().into()))
            }
        });
        let archive = self.archive.clone();
        r.hooks.session_opened.observe_async("mam", move |server, event| {
            let (archive, server, owner) = (archive.clone(), server.clone(), event.entry.jid.to_bare());
            async move { archive.prefs.session_opened(&server.storage, &owner).await }
        });
        let archive = self.archive.clone();
        r.hooks.session_closed.observe("mam", move |server, event| {
            let owner = event.entry.jid.to_bare();
            if server.sessions.count_of(&owner) == 0 {
                archive.prefs.forget(&owner);
            }
        });
        let archive = self.archive.clone();
        r.hooks.roster_changed.add("mam", move |user, contact, item| {
            archive.prefs.roster_changed(user, contact, item.is_some());
        });
        // Protocol: after blocking (which may stop the message); carbons ('sent' observers)
        // copy what it leaves, so the copy carries no forged id.
        let archive = self.archive.clone();
        r.hooks.outbound.add_for(
            Stage::Protocol,
            "mam",
            |_, routed| routed.stanza.name() == "message" && policy::concerns_archive(&routed.stanza),
            move |server, routed| {
                let archive = archive.clone();
                async move { Flow::Continue(outgoing(&server, &archive, routed).await) }
            },
        );
        // Protocol: after blocking and privacy lists refused what they refuse.
        let archive = self.archive.clone();
        r.hooks.inbound.add_for(
            Stage::Protocol,
            "mam",
            |_, routed| {
                routed.stanza.name() == "message"
                    && routed.to.is_some()
                    && policy::concerns_archive(&routed.stanza)
            },
            move |server, routed| {
                let archive = archive.clone();
                async move { Flow::Continue(incoming(&server, &archive, routed).await) }
            },
        );
    }
}

/// Starts the id clock past the largest id stored in any archive (accounts' and rooms').
pub async fn seed_ids(server: &Server) -> Result<(), crate::storage::StorageError> {
    if let Some(archive) = server.registry.provided::<Archive>() {
        archive.seed(&server.storage).await?;
    }
    Ok(())
}

/// Writes out every archived message still queued (a graceful stop, before storage closes).
pub async fn flush_on_stop(server: &Server) {
    if let Some(archive) = server.registry.provided::<Archive>()
        && let Some(writer) = archive.writer.get()
    {
        // Bounded: a database that stopped answering must not keep the process alive.
        let flushed = tokio::time::timeout(std::time::Duration::from_secs(30), writer.flush()).await;
        if flushed.is_err() {
            tracing::error!("archive writer did not finish within 30 s; queued messages lost");
        }
    }
}

/// Whether `by` names this server or one of its JIDs (a hosted domain or a service's).
fn ours(server: &Server, by: &str) -> bool {
    let Ok(jid) = jid::Jid::new(by) else {
        return true; // malformed: nobody's, removed
    };
    let domain = jid.domain().as_str();
    server.hosted_domain(domain).is_some() || server.registry.service_for(&server.config(), domain).is_some()
}

/// The sender's side: forged ids removed, the message archived as outgoing.
async fn outgoing(server: &Arc<Server>, archive: &Archive, mut routed: Routed) -> Routed {
    if policy::has_stanza_id(&routed.stanza) {
        policy::strip_stanza_ids(&mut routed.stanza, |by| ours(server, by));
    }
    let Some(to) = routed.to.as_ref() else {
        return routed;
    };
    let local = match router::classify(server, Some(to)) {
        Destination::Bare(bare) => bare.node() != routed.from.node() || bare.domain() != routed.from.domain(),
        Destination::Full(full) => full.node() != routed.from.node() || full.domain() != routed.from.domain(),
        Destination::Service(_) => true,
        _ => false,
    };
    if !local {
        return routed;
    }
    if let Some(retracted) = policy::retracts(&routed.stanza) {
        // XEP-0424: the sender's own copy of the message it names (outgoing, to this peer).
        let retraction = Retraction {
            host: routed.from.domain().to_string(),
            username: routed.from.node().map(|n| n.to_string()).unwrap_or_default(),
            peer: to.to_bare().to_string(),
            outgoing: true,
            origin_id: retracted.to_string(),
        };
        archive.writer(server).retract(retraction).await;
    }
    if !policy::archivable(&routed.stanza) {
        return routed;
    }
    let peer = to.to_bare().to_string();
    let peer_resource = to.resource().map(|r| r.to_string()).unwrap_or_default();
    let sender = routed.from.to_bare();
    if !archive
        .prefs
        .get(&server.storage, &sender)
        .await
        .allows(&peer, &peer_resource)
    {
        return routed;
    }
    let row = ArchiveRow {
        host: routed.from.domain().to_string(),
        username: routed.from.node().map(|n| n.to_string()).unwrap_or_default(),
        id: archive.next_id(),
        peer,
        peer_resource,
        outgoing: true,
        origin_id: policy::origin_id(&routed.stanza),
        body: policy::body_text(&routed.stanza),
        stanza: xml::to_string(&routed.stanza),
    };
    archive.writer(server).append(row).await;
    routed
}

/// The recipient's side: ids claiming the recipient removed, the message archived as
/// incoming and stamped with its archive id.
async fn incoming(server: &Arc<Server>, archive: &Archive, mut routed: Routed) -> Routed {
    let Some(owner) = routed.to.as_ref().map(|to| to.to_bare()) else {
        return routed;
    };
    let Some(username) = owner.node().map(|n| n.to_string()) else {
        return routed;
    };
    if policy::has_stanza_id(&routed.stanza) {
        policy::strip_stanza_ids(&mut routed.stanza, |by| by == owner.as_str());
    }
    if let Some(retracted) = policy::retracts(&routed.stanza) {
        // XEP-0424: only what this sender sent this owner (incoming, from this peer).
        let retraction = Retraction {
            host: owner.domain().to_string(),
            username: username.clone(),
            peer: routed.from.to_bare().to_string(),
            outgoing: false,
            origin_id: retracted.to_string(),
        };
        archive.writer(server).retract(retraction).await;
    }
    if !policy::archivable(&routed.stanza) {
        return routed;
    }
    let peer = routed.from.to_bare().to_string();
    let peer_resource = routed.from.resource().to_string();
    if !archive
        .prefs
        .get(&server.storage, &owner)
        .await
        .allows(&peer, &peer_resource)
    {
        return routed;
    }
    let id = archive.next_id();
    policy::add_stanza_id(&mut routed.stanza, owner.as_str(), &id.to_string());
    let row = ArchiveRow {
        host: owner.domain().to_string(),
        username,
        id,
        peer,
        peer_resource,
        outgoing: false,
        origin_id: policy::origin_id(&routed.stanza),
        body: policy::body_text(&routed.stanza),
        stanza: xml::to_string(&routed.stanza),
    };
    archive.writer(server).append(row).await;
    routed
}

/// The archive's owner as (host, username).
fn owner(jid: &BareJid) -> Result<(&str, &str), StanzaError> {
    let user = jid.node().ok_or_else(StanzaError::bad_request)?;
    Ok((jid.domain().as_str(), user.as_str()))
}

/// XEP-0313 §4: the matching messages as `<result/>` messages, then `<fin/>` in the result.
async fn run_query(archive: &Archive, req: IqRequest) -> IqResult {
    let limit = req.server.config().limits.max_archive_page;
    let request = query::parse(req.payload(), limit)?;
    let (host, user) = owner(&req.to)?;
    let storage = &req.server.storage;
    archive.writer(&req.server).flush().await;
    for id in &request.positions {
        let found = storage
            .archive_has_id(host, user, *id)
            .await
            .map_err(StanzaError::storage("archive"))?;
        if !found {
            return Err(StanzaError::item_not_found().text("no message with this id in the archive"));
        }
    }
    let from = request.from.unwrap_or(crate::storage::archive::PageFrom::Start);
    let page = storage
        .archive_query(host, user, &request.filter, from, request.max)
        .await
        .map_err(StanzaError::storage("archive"))?;
    let session = req
        .server
        .sessions
        .get(&req.from)
        .ok_or_else(StanzaError::internal_server_error)?;
    let requester = req.from.to_string();
    let archive_jid = req.to.to_string();
    let send = |m: &crate::storage::archive::ArchivedMessage| match m.stanza.parse::<Element>() {
        Ok(original) => {
            let msg = query::result_message(
                &requester,
                &archive_jid,
                request.queryid.as_deref(),
                m.id,
                original,
            );
            router::push(&session, msg);
        }
        Err(e) => tracing::error!(id = m.id, error = %e, "archived message does not parse; skipped"),
    };
    if request.flip {
        page.messages.iter().rev().for_each(send);
    } else {
        page.messages.iter().for_each(send);
    }
    Ok(IqResponse::with(query::fin(&page)))
}

/// XEP-0313 §6: the first and last message of the archive.
async fn metadata(archive: &Archive, req: IqRequest) -> IqResult {
    let (host, user) = owner(&req.to)?;
    archive.writer(&req.server).flush().await;
    let bounds = req
        .server
        .storage
        .archive_bounds(host, user)
        .await
        .map_err(StanzaError::storage("archive"))?;
    let response = MetadataResponse {
        start: bounds.map(|(first, _)| Start {
            id: first.to_string(),
            timestamp: query::stamp(first),
        }),
        end: bounds.map(|(_, last)| End {
            id: last.to_string(),
            timestamp: query::stamp(last),
        }),
    };
    Ok(IqResponse::with(response.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids stored by a run whose clock was ahead (or a restored export) are not reused:
    /// the next id is past the largest stored one.
    #[tokio::test]
    async fn xep0359_ids_continue_past_the_stored_maximum() {
        let storage = crate::storage::Storage::open("sqlite::memory:").await.unwrap();
        let ahead = chrono::Utc::now().timestamp_micros() + 3_600_000_000;
        let row = crate::storage::room_archive::RoomArchiveRow {
            host: "conference.example.org".into(),
            room: "lounge".into(),
            id: ahead,
            nick: "Al".into(),
            real_jid: "al@example.org".into(),
            origin_id: String::new(),
            body: "hi".into(),
            stanza: "<message xmlns='jabber:client'/>".into(),
        };
        storage.room_archive_append(&[row]).await.unwrap();
        let archive = Archive::default();
        assert!(archive.next_id() < ahead, "the clock alone");
        archive.seed(&storage).await.unwrap();
        let next = archive.next_id();
        assert!(next > ahead, "{next} after {ahead}");
        assert!(archive.next_id() > next);
    }
}
