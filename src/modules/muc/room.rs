//! A room: a task owning its state, fed through a bounded inbox (XEP-0045 §7, §8.1).
//!
//! Every handler is synchronous: a command is handled completely before the next, so the
//! room's state needs no lock. Fan-out builds and serializes each stanza once
//! (`SharedStanza`): every recipient's writer fills in its own `to`, and occupants hold their
//! sessions, so a delivery is a reference count and a mailbox slot.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use super::affiliations::{Affiliation, Affiliations, Role, default_role};
use super::archive::RoomArchive;
use super::config::{AllowPm, RoomConfig};
use super::courier::{Courier, Delivery, NS_VCARD};
use super::history::{History, Request};
use super::occupants::{Occupant, Occupants, occupant_id};
use super::register::{NODE_ROOMUSER, NS_REGISTER, Registrations};
use super::service::{Dormant, RoomHandle, Service, Summary, reply};
use super::voice::{VoiceRequests, request_form};
use super::{NS_ADMIN, NS_MUC, NS_OCCUPANT_ID, NS_OWNER, NS_USER};
use crate::config::MucCreators;
use crate::error::{ErrorType, StanzaError};
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router;
use crate::server::Server;
use crate::session::{Recipient, SharedStanza};
use crate::storage::muc::{StoredMessage, StoredRoom};
use crate::xml::{self, ns};

pub enum RoomCmd {
    /// A stanza addressed to the room or one of its occupants, with its sender.
    Stanza(FullJid, Element),
    /// The session ended without leaving (§7.14 on its behalf).
    SessionClosed(FullJid),
    /// The session ended with no unavailable presence sent for it (§15.5 333).
    SessionLost(FullJid),
    /// The server shuts down: occupants are removed (§15.5 332), then `done` is told.
    Shutdown(oneshot::Sender<()>),
    /// A server administrator destroys the room (XEP-0133 ad-hoc command): handled exactly
    /// like an owner's §10.9 request. `done` learns, once a stored room is deleted, whether
    /// there was a room to destroy.
    AdminDestroy {
        reason: String,
        admin: BareJid,
        done: oneshot::Sender<bool>,
    },
}

/// A write to SQL beyond the room itself, done after the command that caused it.
enum StoreOp {
    Registration(BareJid, Option<String>),
    History(StoredMessage),
}

pub fn spawn(
    server: Arc<Server>,
    service: Arc<Service>,
    jid: BareJid,
    creator: BareJid,
    handle: RoomHandle,
    mut rx: mpsc::Receiver<RoomCmd>,
) {
    tokio::spawn(async move {
        let node = jid.node().map(|n| n.as_str().to_owned()).unwrap_or_default();
        let domain = jid.domain().as_str().to_owned();
        let stored = match server.storage.muc_load_room(&domain, &node).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(room = %jid, error = %e, "cannot load room");
                None
            }
        };
        let mut room = Room::new(
            server.clone(),
            service.clone(),
            jid,
            creator.clone(),
            handle.summary.clone(),
        );
        if let Some(stored) = stored {
            room.restore(stored);
            room.load_extras(&domain, &node).await;
        }
        loop {
            let cmd = if room.occupants.is_empty() && (room.stored || room.config.persistent) {
                // Empty persistent rooms unload when idle (loaded from SQL again on demand).
                let idle = std::time::Duration::from_secs(server.config().muc.idle_unload_secs.max(1));
                match tokio::time::timeout(idle, rx.recv()).await {
                    Ok(cmd) => cmd,
                    Err(_) => {
                        tracing::debug!(room = %room.jid, "idle room unloaded");
                        break;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(cmd) = cmd else { break };
            room.prepare(&cmd).await;
            room.handle(cmd);
            if room.dirty {
                room.persist().await;
            }
            room.store_ops().await;
            room.write_archive().await;
            if let Some(done) = room.destroy_ack.take() {
                // After `persist`: a stored room is deleted by now.
                let _ = done.send(room.destroyed);
            }
            for m in std::mem::take(&mut room.held) {
                room.send_all(&m);
            }
            for (to, iq, answer) in std::mem::take(&mut room.pending) {
                reply(&server, &to, &iq, answer);
            }
            if room.finished() {
                break;
            }
        }
        tracing::debug!(room = %room.jid, "room ended");
        let dormant = match (room.stored && !room.destroyed, room.ever_stored) {
            (true, _) => Dormant::Kept(room.summary()),
            (false, true) => Dormant::Deleted,
            (false, false) => Dormant::Never,
        };
        service.room_ended(
            &server,
            &node,
            handle.id,
            room.counted.then_some(&creator),
            dormant,
            rx,
        );
    });
}

pub struct Room {
    pub(super) server: Arc<Server>,
    pub(super) jid: BareJid,
    pub(super) jid_str: String,
    pub(super) creator: BareJid,
    pub(super) config: RoomConfig,
    /// §10.1.1: created, not yet configured; only owners may enter.
    pub(super) locked: bool,
    /// No one has entered yet: the first join is the creation.
    fresh: bool,
    pub(super) destroyed: bool,
    pub(super) occupants: Occupants,
    pub(super) affiliations: Affiliations,
    pub(super) history: History,
    /// (nick of who set it, if an occupant did; the subject).
    pub(super) subject: Option<(Option<String>, String)>,
    summary: Arc<Mutex<Summary>>,
    service: Arc<Service>,
    /// Stored in SQL (persistent); `dirty`: the stored copy must be rewritten.
    pub(super) stored: bool,
    pub(super) dirty: bool,
    /// Was stored at some time: its end matters to the directory of stored rooms.
    ever_stored: bool,
    /// Counted in its creator's `rooms_per_user`.
    counted: bool,
    /// IQ answers held until the change they acknowledge is stored.
    pending: Vec<PendingReply>,
    /// IQs forwarded between occupants: our id -> (requester, its id, the session asked,
    /// when).
    forwarded: std::collections::HashMap<String, (FullJid, Option<String>, FullJid, Instant)>,
    pub(super) next_iq: u64,
    /// Private messages, invitations and declines, judged by the recipient's rules first.
    courier: Courier,
    /// §7.10: reserved nicknames.
    pub(super) registrations: Registrations,
    /// §7.13: recent voice requests (flood control).
    pub(super) voice_requests: VoiceRequests,
    /// Order of the last history message stored in SQL.
    history_seq: i64,
    /// SQL writes waiting for the end of the current command.
    store: Vec<StoreOp>,
    /// Messages of a stored room waiting for their history row (sent after `store_ops`).
    held: Vec<Element>,
    /// An administrator's destroy, answered once the command's SQL writes are done.
    destroy_ack: Option<oneshot::Sender<bool>>,
    /// The room's message archive (XEP-0313).
    pub(super) archive: RoomArchive,
}

/// XEP-0199, for XEP-0410 self-pings.
const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0410 §3.2: answered by the room itself.
pub(super) const SELF_PING_OPTIMIZATION: &str = "http://jabber.org/protocol/muc#self-ping-optimization";

/// IQs between occupants awaiting an answer, per room; more are refused.
const MAX_FORWARDED_IQS: usize = 1024;
/// How long an unanswered forwarded IQ holds its place when the table is full.
const FORWARDED_IQ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

type PendingReply = (FullJid, Element, Result<Option<Element>, StanzaError>);

impl Room {
    fn new(
        server: Arc<Server>,
        service: Arc<Service>,
        jid: BareJid,
        creator: BareJid,
        summary: Arc<Mutex<Summary>>,
    ) -> Room {
        let config = RoomConfig::defaults(&server.config().muc);
        let archive = RoomArchive::new(server.registry.provided());
        Room {
            jid_str: jid.to_string(),
            courier: Courier::start(server.clone()),
            server,
            jid,
            creator,
            config,
            locked: true,
            fresh: true,
            destroyed: false,
            occupants: Occupants::default(),
            affiliations: Affiliations::default(),
            history: History::default(),
            subject: None,
            summary,
            service,
            stored: false,
            dirty: false,
            ever_stored: false,
            counted: false,
            pending: Vec::new(),
            forwarded: std::collections::HashMap::new(),
            next_iq: 0,
            registrations: Registrations::default(),
            voice_requests: VoiceRequests::default(),
            history_seq: 0,
            store: Vec::new(),
            held: Vec::new(),
            destroy_ack: None,
            archive,
        }
    }

    /// A persistent room loaded from SQL: configured, unlocked.
    fn restore(&mut self, stored: StoredRoom) {
        let muc = &self.server.config().muc;
        match stored.config.parse::<Element>() {
            Ok(form) => match RoomConfig::defaults(muc).apply(&form, muc) {
                Ok(config) => self.config = config,
                Err(e) => tracing::warn!(room = %self.jid, error = %e, "stored configuration refused"),
            },
            Err(e) => tracing::warn!(room = %self.jid, error = %e, "stored configuration unreadable"),
        }
        self.config.persistent = true;
        for (jid, affiliation, reason) in stored.affiliations {
            if let (Ok(jid), Some(a)) = (BareJid::new(&jid), Affiliation::parse(&affiliation)) {
                self.affiliations.set(jid, a, reason);
            }
        }
        self.subject = stored.subject.map(|s| (stored.subject_nick, s));
        self.locked = false;
        self.fresh = false;
        self.stored = true;
        self.ever_stored = true;
        self.update_summary();
    }

    /// Writes the room to SQL if persistent, or forgets it if it no longer is.
    async fn persist(&mut self) {
        self.dirty = false;
        let domain = self.jid.domain().as_str().to_owned();
        let node = self.jid.node().map(|n| n.as_str().to_owned()).unwrap_or_default();
        let result = if self.config.persistent && !self.destroyed && !self.locked {
            let muc = &self.server.config().muc;
            let mut affiliations = Vec::new();
            for a in [
                Affiliation::Owner,
                Affiliation::Admin,
                Affiliation::Member,
                Affiliation::Outcast,
            ] {
                for (jid, reason) in self.affiliations.with(a) {
                    affiliations.push((jid.to_string(), a.name().to_string(), reason));
                }
            }
            let mut form = self.config.form(muc);
            xml::set_attr(&mut form, "type", "submit");
            let stored = StoredRoom {
                config: xml::to_string(&form),
                subject: self.subject.as_ref().map(|s| s.1.clone()),
                subject_nick: self.subject.as_ref().and_then(|s| s.0.clone()),
                affiliations,
            };
            let first = !self.stored;
            self.stored = true;
            self.ever_stored = true;
            let saved = self.server.storage.muc_save_room(&domain, &node, &stored).await;
            if saved.is_ok() && first {
                self.store_everything();
            }
            saved
        } else if self.stored {
            self.stored = false;
            self.server
                .storage
                .muc_delete_room(&domain, &node)
                .await
                .map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!(room = %self.jid, error = %e, "cannot store room");
        }
    }

    /// Registered nicknames and history of a room just loaded from SQL.
    async fn load_extras(&mut self, domain: &str, node: &str) {
        let storage = &self.server.storage;
        match storage.muc_registrations(domain, node).await {
            Ok(list) => {
                for (jid, nick) in list {
                    if let Ok(jid) = BareJid::new(&jid) {
                        self.registrations.set(jid, Some(nick));
                    }
                }
            }
            Err(e) => tracing::error!(room = %self.jid, error = %e, "cannot load registrations"),
        }
        let limit = self.config.history_length;
        match storage.muc_history(domain, node, limit).await {
            Ok(list) => {
                for m in list {
                    self.history_seq = self.history_seq.max(m.seq);
                    match m.stanza.parse::<Element>() {
                        Ok(el) => {
                            let at = std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(u64::try_from(m.at_ms).unwrap_or(0));
                            self.history.restore(el, at, limit);
                        }
                        Err(e) => tracing::warn!(room = %self.jid, error = %e, "stored history unreadable"),
                    }
                }
            }
            Err(e) => tracing::error!(room = %self.jid, error = %e, "cannot load history"),
        }
    }

    /// A room stored for the first time: its registrations and history go with it.
    fn store_everything(&mut self) {
        self.store.clear();
        let regs: Vec<_> = self
            .registrations
            .iter()
            .map(|(j, n)| StoreOp::Registration(j.clone(), Some(n.clone())))
            .collect();
        self.store.extend(regs);
        let msgs: Vec<_> = self
            .history
            .iter()
            .map(|(el, at)| (xml::to_string(el), at))
            .collect();
        for (stanza, at) in msgs {
            self.history_seq += 1;
            self.store.push(StoreOp::History(StoredMessage {
                seq: self.history_seq,
                at_ms: unix_ms(at),
                stanza,
            }));
        }
    }

    /// Notes a registration change to store (a stored room only).
    pub(super) fn store_registration(&mut self, jid: BareJid, nick: Option<String>) {
        if self.stored {
            self.store.push(StoreOp::Registration(jid, nick));
        }
    }

    /// Runs the SQL writes the last command caused, in order.
    async fn store_ops(&mut self) {
        if self.store.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.store);
        if !self.stored {
            return;
        }
        let domain = self.jid.domain().as_str().to_owned();
        let node = self.jid.node().map(|n| n.as_str().to_owned()).unwrap_or_default();
        let storage = &self.server.storage;
        for op in ops {
            let result = match &op {
                StoreOp::Registration(jid, nick) => {
                    storage
                        .muc_set_registration(&domain, &node, jid.as_str(), nick.as_deref())
                        .await
                }
                StoreOp::History(m) => {
                    storage
                        .muc_history_push(&domain, &node, m, self.config.history_length)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(room = %self.jid, error = %e, "cannot store room data");
            }
        }
    }

    /// Temporary rooms end when the last occupant leaves (§10.1); destroyed ones at once.
    fn finished(&self) -> bool {
        self.destroyed
            || (self.occupants.is_empty() && (!self.config.persistent || self.locked) && !self.stored)
    }

    fn summary(&self) -> Summary {
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn update_summary(&self) {
        let mut s = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        s.name = self.config.name.clone();
        s.public = self.config.public;
        s.listed = !self.locked;
    }

    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::SessionLost(jid) => self.lose(&jid),
            RoomCmd::Shutdown(done) => {
                self.shut_down();
                let _ = done.send(());
            }
            RoomCmd::SessionClosed(jid) => {
                if self.occupants.nick_of(&jid).is_some() {
                    self.leave(&jid, None);
                }
            }
            RoomCmd::AdminDestroy { reason, admin, done } => {
                // A room nobody created (only loaded for this) has nothing to destroy.
                if !self.fresh {
                    tracing::info!(room = %self.jid, %admin, reason, "room destroyed by a server administrator");
                    let mut d = Element::bare("destroy", NS_OWNER);
                    if !reason.is_empty() {
                        d.append_child(xml::text_element("reason", NS_OWNER, &reason));
                    }
                    self.destroy(Some(&d));
                }
                self.destroy_ack = Some(done);
            }
            RoomCmd::Stanza(from, stanza) => {
                let nick = match stanza.attr("to").map(Jid::new) {
                    Some(Ok(to)) => to.resource().map(|r| r.as_str().to_owned()),
                    _ => return,
                };
                let join = stanza.name() == "presence" && stanza.attr("type").is_none() && nick.is_some();
                if self.fresh && !join {
                    // The room does not exist (yet): only a join creates it.
                    if stanza.name() != "presence" {
                        self.error(&stanza, StanzaError::item_not_found());
                    }
                    return;
                }
                match (stanza.name(), nick) {
                    ("presence", Some(nick)) => self.presence(from, &nick, stanza),
                    ("presence", None) => self.presence_to_room(&from, &stanza),
                    ("message", None) => self.message_to_room(from, stanza),
                    ("message", Some(nick)) => self.private_message(from, &nick, stanza),
                    ("iq", None) => self.iq(from, stanza),
                    ("iq", Some(nick)) => self.iq_to_occupant(from, &nick, stanza),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn error(&self, stanza: &Element, error: StanzaError) {
        router::bounce(&self.server, stanza, error);
    }

    pub(super) fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{}", self.jid_str, nick)
    }

    // ---- presence (§7.2, §7.6, §7.14) ----

    fn presence(&mut self, from: FullJid, nick: &str, p: Element) {
        match p.attr("type") {
            None => {
                // Occupants hold their sessions; one already gone has nothing to join with.
                let Some(session) = self.server.sessions.get(&from) else {
                    return;
                };
                match self.occupants.nick_of(&from).map(str::to_owned) {
                    Some(current) => {
                        self.occupants.refresh_session(&session);
                        if current == nick && p.get_child("x", NS_MUC).is_some() {
                            // A join from a session already in: it lost track (a reconnect
                            // it did not notice), so it gets the whole room again.
                            self.rejoin(&session, &current, p)
                        } else if current == nick {
                            self.update_presence(&current, p)
                        } else {
                            self.change_nick(&current, nick, p)
                        }
                    }
                    None => self.join(session, nick, p),
                }
            }
            Some("probe") => self.answer_probe(&from, nick),
            _ => self.presence_to_room(&from, &p),
        }
    }

    /// Unavailable or error presence, to an occupant JID or to the bare room: §7.14 exit, or
    /// §15.5 removal after an error bounce (333).
    fn presence_to_room(&mut self, from: &FullJid, p: &Element) {
        match p.attr("type") {
            Some("error") => self.lose(from),
            Some("unavailable") if self.occupants.nick_of(from).is_some() => {
                let status = p.get_child("status", ns::CLIENT).cloned();
                self.leave(from, status);
            }
            _ => {}
        }
    }

    /// A presence probe to an occupant JID: an occupant gets that occupant's current
    /// presence, as the room would broadcast it to them (RFC 6121 §4.3 on a room).
    fn answer_probe(&self, from: &FullJid, nick: &str) {
        let Some(asker) = self.occupants.nick_of(from) else {
            return;
        };
        let Some(target) = self.occupants.get(nick) else {
            return;
        };
        let with_jid = target.bare == from.to_bare() || self.sees_jids(asker);
        let codes: &[u16] = if target.has_session(from) { &[110] } else { &[] };
        let mut p = self.occupant_presence(target, with_jid, codes, false);
        xml::set_attr(&mut p, "to", &from.to_string());
        router::deliver_to_full(&self.server, from, p);
    }

    fn join(&mut self, session: Recipient, nick: &str, p: Element) {
        let bare = session.jid.to_bare();
        let creating = self.fresh && bare == self.creator;
        if creating {
            if let Err(e) = self.may_create(&bare) {
                return self.error(&p, e);
            }
            self.affiliations.set(bare.clone(), Affiliation::Owner, None);
        }
        let affiliation = self.affiliations.get(&bare);
        // §10.1.1: nobody else enters a locked room (it does not exist for them yet).
        if self.locked && affiliation != Affiliation::Owner {
            return self.error(&p, StanzaError::item_not_found().text("the room is locked"));
        }
        if affiliation == Affiliation::Outcast {
            return self.error(&p, StanzaError::forbidden().text("you are banned from this room"));
        }
        if self.config.members_only && affiliation < Affiliation::Member {
            return self.error(
                &p,
                StanzaError::registration_required().text("the room is members-only"),
            );
        }
        if let Some(secret) = &self.config.password {
            let given = p
                .get_child("x", NS_MUC)
                .and_then(|x| x.get_child("password", NS_MUC))
                .map(|pw| pw.text());
            if given.as_deref() != Some(secret.as_str()) {
                return self.error(&p, StanzaError::not_authorized().text("a password is required"));
            }
        }
        if let Err(e) = self.nick_allowed(nick) {
            return self.error(&p, e);
        }
        let history = Request::from_join(&p);
        // §7.2.3: the nick asked for was rewritten (resourceprep normalized it); 210 tells the
        // user which occupant JID is its own.
        let rewritten = p
            .attr("to")
            .and_then(|t| t.split_once('/'))
            .is_some_and(|(_, asked)| asked != nick);
        if self.registrations.reserved_for_other(nick, &bare) {
            return self.error(&p, StanzaError::conflict().text("that nickname is reserved"));
        }
        if let Some(o) = self.occupants.get(nick) {
            if o.bare != bare {
                return self.error(&p, StanzaError::conflict().text("that nickname is in use"));
            }
            // Multi-session nick: another resource joins as the same occupant.
            self.occupants.add_session(nick, session.clone());
            let codes: &[u16] = if rewritten { &[210] } else { &[] };
            self.send_room_state(&session, nick, codes, &history);
            return;
        }
        if self.occupants.len() >= self.config.max_users && affiliation < Affiliation::Admin {
            return self.error(
                &p,
                StanzaError::new(ErrorType::Wait, "service-unavailable").text("the room is full"),
            );
        }
        if creating {
            self.counted = true;
            *self.service.created.entry(bare.clone()).or_default() += 1;
        }
        self.fresh = false;
        let occupant = Occupant::new(
            nick.to_string(),
            bare.clone(),
            session.clone(),
            p,
            default_role(affiliation, self.config.moderated),
            occupant_id(&self.server.fake_salt_secret, &self.jid, &bare),
        );
        self.occupants.insert(occupant);
        // Everyone else learns of the newcomer (one presence each).
        self.broadcast_presence(nick, &[], Some(nick));
        let mut codes = Vec::new();
        if self.config.whois_anyone {
            codes.push(100);
        }
        if creating {
            codes.push(201);
        }
        if rewritten {
            codes.push(210);
        }
        self.send_room_state(&session, nick, &codes, &history);
        if creating {
            self.update_summary();
        }
    }

    /// §10.1.1: the service's creation policy (`[muc] creators`, `rooms_per_user`,
    /// `max_room_address_length`).
    fn may_create(&self, creator: &BareJid) -> Result<(), StanzaError> {
        let config = &self.server.config();
        let admin = is_admin(config, creator);
        if config.muc.creators == MucCreators::Admins && !admin {
            return Err(StanzaError::not_allowed().text("only administrators may create rooms"));
        }
        let address = self.jid.node().map_or(0, |n| n.as_str().chars().count());
        if address > config.muc.max_room_address_length {
            return Err(StanzaError::not_acceptable().text(format!(
                "a room address may have at most {} characters",
                config.muc.max_room_address_length
            )));
        }
        let limit = config.muc.rooms_per_user;
        if limit > 0 && !admin && self.service.created.get(creator).is_some_and(|n| *n >= limit) {
            return Err(StanzaError::resource_constraint().text("you created too many rooms"));
        }
        Ok(())
    }

    /// `[muc] max_nick_length`: a longer nickname is refused on join, change and registration.
    pub(super) fn nick_allowed(&self, nick: &str) -> Result<(), StanzaError> {
        let max = self.server.config().muc.max_nick_length;
        if nick.chars().count() > max {
            return Err(
                StanzaError::not_acceptable().text(format!("a nickname may have at most {max} characters"))
            );
        }
        Ok(())
    }

    /// What a session entering receives (§7.2.3-7.2.15): the other occupants' presence, its
    /// own (status 110, last), the history, then the subject.
    fn send_room_state(&self, to: &Recipient, nick: &str, codes: &[u16], history: &Request) {
        let viewer_sees = self.sees_jids(nick);
        for o in self.occupants.iter().filter(|o| o.nick != nick) {
            if let Some(p) = self.entering_presence(o, viewer_sees) {
                let _ = router::deliver_shared(to, &p);
            }
        }
        let Some(me) = self.occupants.get(nick) else {
            return;
        };
        let mut all = vec![110];
        all.extend_from_slice(codes);
        deliver(to, self.occupant_presence(me, true, &all, false));
        if !codes.contains(&201) {
            for m in self.history_for(history) {
                deliver(to, m.clone());
            }
        }
        deliver(to, self.subject_message());
    }

    fn subject_message(&self) -> Element {
        let mut m = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut m, "type", "groupchat");
        let (from, text) = match &self.subject {
            Some((Some(nick), text)) => (self.occupant_jid(nick), text.as_str()),
            Some((None, text)) => (self.jid_str.clone(), text.as_str()),
            None => (self.jid_str.clone(), ""),
        };
        xml::set_attr(&mut m, "from", &from);
        m.append_child(xml::text_element("subject", ns::CLIENT, text));
        m
    }

    /// Whether the occupant `nick` may see real JIDs (§5.1.3, whois).
    pub(super) fn sees_jids(&self, nick: &str) -> bool {
        self.config.whois_anyone
            || self
                .occupants
                .get(nick)
                .is_some_and(|o| o.role == Role::Moderator)
    }

    /// The room's presence for occupant `o` (no `to`): its own presence payload, the muc#user
    /// item and `codes`, and the occupant id.
    pub(super) fn occupant_presence(
        &self,
        o: &Occupant,
        with_jid: bool,
        codes: &[u16],
        unavailable: bool,
    ) -> Element {
        let mut p = Element::bare("presence", ns::CLIENT);
        xml::set_attr(&mut p, "from", &self.occupant_jid(&o.nick));
        if unavailable {
            xml::set_attr(&mut p, "type", "unavailable");
        } else {
            for c in o.presence().children() {
                if c.ns() == ns::CLIENT
                    || !(c.is("x", NS_MUC) || c.is("x", NS_USER) || c.is("occupant-id", NS_OCCUPANT_ID))
                {
                    p.append_child(c.clone());
                }
            }
        }
        p.append_child(self.user_x(o, with_jid, codes, None));
        p.append_child(occupant_id_element(&o.occupant_id));
        p
    }

    /// `<x xmlns='muc#user'><item .../><status .../></x>`.
    pub(super) fn user_x(
        &self,
        o: &Occupant,
        with_jid: bool,
        codes: &[u16],
        extra: Option<Element>,
    ) -> Element {
        let mut item = Element::bare("item", NS_USER);
        xml::set_attr(&mut item, "affiliation", self.affiliations.get(&o.bare).name());
        xml::set_attr(&mut item, "role", o.role.name());
        if with_jid {
            xml::set_attr(&mut item, "jid", &o.shown_jid().to_string());
        }
        if let Some(extra) = extra.filter(|e| e.is("item", NS_USER)) {
            for ((_, k), v) in extra.attrs() {
                xml::set_attr(&mut item, k.as_str(), v);
            }
            for c in extra.children() {
                item.append_child(c.clone());
            }
        }
        let mut x = Element::bare("x", NS_USER);
        x.append_child(item);
        for c in codes {
            x.append_child(status(*c));
        }
        x
    }

    /// Sends the presence of `nick` to every occupant except `except`, with `codes`; the
    /// occupant itself (unless excepted) gets 110 too.
    pub(super) fn broadcast_presence(&self, nick: &str, codes: &[u16], except: Option<&str>) {
        let Some(o) = self.occupants.get(nick) else { return };
        let mut with_jid = None;
        let mut without = None;
        for r in self.occupants.iter() {
            if Some(r.nick.as_str()) == except {
                continue;
            }
            if r.nick == nick {
                let mut all = vec![110];
                all.extend_from_slice(codes);
                self.send_to(r, &self.occupant_presence(o, true, &all, false));
                continue;
            }
            let sees = self.sees_jids(&r.nick);
            let p = if sees { &mut with_jid } else { &mut without };
            let p = p.get_or_insert_with(|| match codes {
                [] => self.entering_presence(o, sees),
                _ => share(self.occupant_presence(o, sees, codes, false)),
            });
            send_shared(r, p.as_ref());
        }
    }

    /// `occupant_presence(o, with_jid, &[], false)`, serialized once and reused while it
    /// stays the same (every join sends it).
    fn entering_presence(&self, o: &Occupant, with_jid: bool) -> Option<Arc<SharedStanza>> {
        let affiliation = self.affiliations.get(&o.bare);
        o.entering_presence(with_jid, affiliation, || {
            share(self.occupant_presence(o, with_jid, &[], false))
        })
    }

    /// Delivers `stanza` to each session of `o`.
    pub(super) fn send_to(&self, o: &Occupant, stanza: &Element) {
        send_shared(o, share(stanza.clone()).as_ref());
    }

    /// Sends `stanza` to every occupant, serialized once.
    pub(super) fn send_all(&self, stanza: &Element) {
        let shared = share(stanza.clone());
        for o in self.occupants.iter() {
            send_shared(o, shared.as_ref());
        }
    }

    /// A session already in the room sends its join again: the others see a presence
    /// update, the session the whole join (§7.2.3-7.2.15: occupants, itself, history,
    /// subject).
    fn rejoin(&mut self, session: &Recipient, nick: &str, p: Element) {
        let history = Request::from_join(&p);
        if let Some(o) = self.occupants.get_mut(nick) {
            o.set_presence(p);
        }
        self.broadcast_presence(nick, &[], Some(nick));
        if let Some(o) = self.occupants.get(nick) {
            // The occupant's other sessions see its own presence change.
            let own = self.occupant_presence(o, true, &[110], false);
            for s in o.sessions.iter().filter(|s| s.jid != session.jid) {
                deliver(s, own.clone());
            }
        }
        let codes: &[u16] = if self.config.whois_anyone { &[100] } else { &[] };
        self.send_room_state(session, nick, codes, &history);
    }

    fn update_presence(&mut self, nick: &str, p: Element) {
        if let Some(o) = self.occupants.get_mut(nick) {
            o.set_presence(p);
        }
        self.broadcast_presence(nick, &[], None);
    }

    /// §7.6: unavailable with 303 from the old nick, then available from the new one.
    fn change_nick(&mut self, old: &str, new: &str, p: Element) {
        if let Err(e) = self.nick_allowed(new) {
            return self.error(&p, e);
        }
        if self.occupants.get(new).is_some() {
            return self.error(&p, StanzaError::conflict().text("that nickname is in use"));
        }
        let Some(o) = self.occupants.get(old) else { return };
        if self.registrations.reserved_for_other(new, &o.bare) {
            return self.error(&p, StanzaError::conflict().text("that nickname is reserved"));
        }
        let mut nick_item = Element::bare("item", NS_USER);
        xml::set_attr(&mut nick_item, "nick", new);
        let sees_all = |r: &Occupant| r.bare == o.bare || self.sees_jids(&r.nick);
        for r in self.occupants.iter() {
            let codes: &[u16] = if r.nick == old { &[303, 110] } else { &[303] };
            let mut u = Element::bare("presence", ns::CLIENT);
            xml::set_attr(&mut u, "from", &self.occupant_jid(old));
            xml::set_attr(&mut u, "type", "unavailable");
            u.append_child(self.user_x(o, sees_all(r), codes, Some(nick_item.clone())));
            u.append_child(occupant_id_element(&o.occupant_id));
            self.send_to(r, &u);
        }
        self.occupants.rename(old, new);
        if let Some(o) = self.occupants.get_mut(new) {
            o.set_presence(p);
        }
        self.broadcast_presence(new, &[], None);
    }

    /// §7.14: the session leaves; the occupant goes with its last session.
    pub(super) fn leave(&mut self, jid: &FullJid, status_el: Option<Element>) {
        let Some(nick) = self.occupants.nick_of(jid).map(str::to_owned) else {
            return;
        };
        self.forwarded.retain(|_, f| f.0 != *jid && f.2 != *jid);
        let Some(o) = self.occupants.remove_session(jid) else {
            // Other sessions remain: only this one is told it left.
            if let Some(o) = self.occupants.get(&nick) {
                let mut p = self.occupant_presence(o, true, &[110], true);
                xml::set_attr(&mut p, "to", &jid.to_string());
                router::deliver_to_full(&self.server, jid, p);
            }
            return;
        };
        let mut o = o;
        o.role = Role::None;
        let build = |with_jid: bool, codes: &[u16]| {
            let mut p = self.occupant_presence(&o, with_jid, codes, true);
            if let Some(s) = &status_el {
                p.append_child(s.clone());
            }
            p
        };
        let mut with_jid = None;
        let mut without = None;
        for r in self.occupants.iter() {
            let p = if self.sees_jids(&r.nick) {
                with_jid.get_or_insert_with(|| build(true, &[]))
            } else {
                without.get_or_insert_with(|| build(false, &[]))
            };
            self.send_to(r, p);
        }
        let mut own = build(true, &[110]);
        xml::set_attr(&mut own, "to", &jid.to_string());
        router::deliver_to_full(&self.server, jid, own);
    }

    /// Removes an occupant for a reason (kick 307, ban 301, ...): it gets 110 with the codes,
    /// the others the codes; `item` carries actor and reason.
    pub(super) fn remove_occupant(&mut self, nick: &str, codes: &[u16], item: Option<Element>) {
        let Some(mut o) = self.occupants.remove(nick) else {
            return;
        };
        self.forwarded
            .retain(|_, f| !o.has_session(&f.0) && !o.has_session(&f.2));
        // What the removed occupant could see while in the room.
        let own_sees = self.config.whois_anyone || o.role == Role::Moderator;
        o.role = Role::None;
        let mut own_codes = vec![110];
        own_codes.extend_from_slice(codes);
        let mut own = self.occupant_presence(&o, true, &own_codes, true);
        if let Some(x) = own.get_child_mut("x", NS_USER) {
            replace_item(
                x,
                &self.user_x(&o, true, &[], shown_item(item.as_ref(), own_sees)),
            );
        }
        self.send_to(&o, &own);
        for r in self.occupants.iter() {
            let with = self.sees_jids(&r.nick);
            let mut p = self.occupant_presence(&o, with, codes, true);
            if let Some(x) = p.get_child_mut("x", NS_USER) {
                replace_item(x, &self.user_x(&o, with, &[], shown_item(item.as_ref(), with)));
            }
            self.send_to(r, &p);
        }
    }

    // ---- messages (§7.4, §7.5, §8.1) ----

    fn message_to_room(&mut self, from: FullJid, m: Element) {
        match m.attr("type") {
            Some("groupchat") => {}
            Some("error") => return,
            _ => {
                if let Some(form) = request_form(&m) {
                    let form = form.clone();
                    return self.voice_form(&from, &m, &form);
                }
                if m.get_child("x", NS_USER)
                    .is_some_and(|x| x.get_child("invite", NS_USER).is_some())
                {
                    return self.invite(&from, m);
                }
                if let Some(d) = m
                    .get_child("x", NS_USER)
                    .and_then(|x| x.get_child("decline", NS_USER))
                {
                    return self.decline(&from, &m, d);
                }
                return self.error(
                    &m,
                    StanzaError::bad_request().text("send groupchat messages to the room"),
                );
            }
        }
        let Some(o) = self.occupants.by_jid(&from) else {
            return self.error(&m, StanzaError::not_acceptable().text("you are not in the room"));
        };
        if o.role < Role::Participant {
            return self.error(
                &m,
                StanzaError::forbidden().text("you have no voice in this room"),
            );
        }
        let nick = o.nick.clone();
        let occupant_id = o.occupant_id.clone();
        let role = o.role;
        let subject = m.get_child("subject", ns::CLIENT).map(|s| s.text());
        let has_body = m.get_child("body", ns::CLIENT).is_some();
        let mut out = m.clone();
        xml::set_attr(&mut out, "from", &self.occupant_jid(&nick));
        xml::remove_attr(&mut out, "to");
        strip_occupant_id(&mut out);
        out.append_child(occupant_id_element(&occupant_id));
        if let (Some(text), false) = (subject, has_body) {
            // §8.1: a subject change.
            if role != Role::Moderator && !self.config.change_subject {
                return self.error(
                    &m,
                    StanzaError::forbidden().text("you may not change the subject"),
                );
            }
            self.subject = Some((Some(nick), text));
            if self.config.persistent {
                // Announced once saved, so whoever saw it finds it after a restart.
                self.dirty = true;
                self.held.push(out);
            } else {
                self.send_all(&out);
            }
            return;
        }
        // An archiving room's history is its archive.
        let archived = self.archive_message(&mut out, &nick, &from.to_bare());
        let limit = self.config.history_length;
        self.history.push(out.clone(), &self.jid_str, limit);
        // Persistent rooms keep their history across restarts (trimmed to the same length).
        // The message goes out once written, so whoever saw it finds it there after a crash.
        if self.stored
            && !archived
            && let Some((stanza, at)) = self.history.last().map(|(el, at)| (xml::to_string(el), at))
        {
            self.history_seq += 1;
            self.store.push(StoreOp::History(StoredMessage {
                seq: self.history_seq,
                at_ms: unix_ms(at),
                stanza,
            }));
            self.held.push(out);
        } else if archived {
            // Out once its archive row is written, as the history row above.
            self.held.push(out);
        } else {
            self.send_all(&out);
        }
    }

    fn private_message(&mut self, from: FullJid, nick: &str, m: Element) {
        if m.attr("type") == Some("error") {
            return;
        }
        let Some(sender) = self.occupants.by_jid(&from) else {
            return self.error(&m, StanzaError::not_acceptable().text("you are not in the room"));
        };
        if m.attr("type") == Some("groupchat") {
            return self.error(&m, StanzaError::bad_request().text("groupchat goes to the room"));
        }
        let allowed = match self.config.allow_pm {
            AllowPm::Anyone => true,
            AllowPm::Participants => sender.role >= Role::Participant,
            AllowPm::Moderators => sender.role == Role::Moderator,
            AllowPm::Nobody => false,
        };
        if !allowed {
            return self.error(
                &m,
                StanzaError::forbidden().text("private messages are not allowed"),
            );
        }
        let Some(target) = self.occupants.get(nick) else {
            return self.error(&m, StanzaError::item_not_found().text("no such occupant"));
        };
        let mut out = m.clone();
        xml::set_attr(&mut out, "from", &self.occupant_jid(&sender.nick));
        strip_occupant_id(&mut out);
        if out.get_child("x", NS_USER).is_none() {
            out.append_child(Element::bare("x", NS_USER));
        }
        out.append_child(occupant_id_element(&sender.occupant_id));
        let Ok(occupant) = FullJid::new(&self.occupant_jid(&sender.nick)) else {
            return self.error(&m, StanzaError::jid_malformed());
        };
        let d = Delivery::Private {
            occupant,
            to: target.session_jids(),
            stanza: out,
            original: m,
        };
        self.courier.send(&self.server, d);
    }

    /// §7.8.2: a mediated invitation, passed on from the room.
    fn invite(&mut self, from: &FullJid, m: Element) {
        let Some(o) = self.occupants.by_jid(from) else {
            return self.error(&m, StanzaError::not_acceptable().text("you are not in the room"));
        };
        let affiliation = self.affiliations.get(&o.bare);
        if !self.config.allow_invites && o.role != Role::Moderator && affiliation < Affiliation::Admin {
            return self.error(&m, StanzaError::forbidden().text("you may not invite others"));
        }
        let Some(x) = m.get_child("x", NS_USER) else {
            return;
        };
        let mut to_add = Vec::new();
        for inv in x.children().filter(|c| c.is("invite", NS_USER)) {
            // §7.8.2: the invitee may be named by a full JID; membership and delivery
            // are the account's.
            let Some(Ok(to)) = inv.attr("to").map(|t| Jid::new(t).map(|j| j.to_bare())) else {
                return self.error(&m, StanzaError::jid_malformed());
            };
            let mut out = Element::bare("message", ns::CLIENT);
            xml::set_attr(&mut out, "from", &self.jid_str);
            xml::set_attr(&mut out, "to", to.as_str());
            let mut ux = Element::bare("x", NS_USER);
            let mut i = Element::bare("invite", NS_USER);
            xml::set_attr(&mut i, "from", &from.to_string());
            if let Some(r) = inv.get_child("reason", NS_USER) {
                i.append_child(r.clone());
            }
            ux.append_child(i);
            if let Some(pw) = &self.config.password {
                ux.append_child(xml::text_element("password", NS_USER, pw));
            }
            out.append_child(ux);
            to_add.push((to, out));
        }
        for (to, out) in to_add {
            // §7.8.2: in a members-only room, inviting makes the invitee a member.
            if self.config.members_only && self.affiliations.get(&to) == Affiliation::None {
                self.affiliations.set(to.clone(), Affiliation::Member, None);
            }
            // To the invitee's available resources, else stored offline.
            let d = Delivery::ToAccount {
                by: from.clone(),
                to,
                stanza: out,
                original: m.clone(),
            };
            self.courier.send(&self.server, d);
        }
    }

    /// §7.8.2: a declined invitation goes back to the inviter, from the room.
    fn decline(&self, from: &FullJid, m: &Element, d: &Element) {
        let Some(Ok(to)) = d.attr("to").map(BareJid::new) else {
            return self.error(m, StanzaError::bad_request().text("a decline names the inviter"));
        };
        let mut out = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut out, "from", &self.jid_str);
        xml::set_attr(&mut out, "to", to.as_str());
        let mut x = Element::bare("x", NS_USER);
        let mut dd = Element::bare("decline", NS_USER);
        xml::set_attr(&mut dd, "from", from.to_bare().as_str());
        if let Some(r) = d.get_child("reason", NS_USER) {
            dd.append_child(r.clone());
        }
        x.append_child(dd);
        out.append_child(x);
        let d = Delivery::ToAccount {
            by: from.clone(),
            to,
            stanza: out,
            original: m.clone(),
        };
        self.courier.send(&self.server, d);
    }

    /// IQs between occupants go through the room (§7.5 for IQs): the request is forwarded
    /// from the sender's room JID to one session of the target, and its answer back.
    fn iq_to_occupant(&mut self, from: FullJid, nick: &str, iq: Element) {
        match iq.attr("type") {
            Some("get") | Some("set") => {
                let Some(sender) = self.occupants.by_jid(&from) else {
                    return self.error(&iq, StanzaError::not_acceptable().text("you are not in the room"));
                };
                let Some(target) = self.occupants.get(nick) else {
                    return self.error(&iq, StanzaError::item_not_found().text("no such occupant"));
                };
                let payload = iq.children().next();
                if sender.nick == nick && payload.is_some_and(|p| p.is("ping", NS_PING)) {
                    // XEP-0410 §3.2 (self-ping optimization): the sender is joined; say so
                    // without waking a session of the same occupant.
                    return reply(&self.server, &from, &iq, Ok(None));
                }
                if iq.attr("type") == Some("get") && payload.is_some_and(|p| p.is("vCard", NS_VCARD)) {
                    // XEP-0054: the occupant's account answers for its vCard.
                    let Ok(asker) = FullJid::new(&self.occupant_jid(&sender.nick)) else {
                        return self.error(&iq, StanzaError::jid_malformed());
                    };
                    let d = Delivery::VCard {
                        asker,
                        account: target.bare.clone(),
                        target: self.occupant_jid(nick),
                        original: iq,
                    };
                    return self.courier.send(&self.server, d);
                }
                if self.forwarded.len() >= MAX_FORWARDED_IQS {
                    // Requests never answered are forgotten after a while.
                    self.forwarded.retain(|_, f| f.3.elapsed() < FORWARDED_IQ_TIMEOUT);
                }
                if self.forwarded.len() >= MAX_FORWARDED_IQS {
                    return self.error(&iq, StanzaError::resource_constraint());
                }
                self.next_iq += 1;
                let id = format!("muc-iq-{}", self.next_iq);
                let to = target.shown_jid().clone();
                let mut out = iq.clone();
                xml::set_attr(&mut out, "from", &self.occupant_jid(&sender.nick));
                xml::set_attr(&mut out, "to", &to.to_string());
                xml::set_attr(&mut out, "id", &id);
                let orig_id = iq.attr("id").map(str::to_owned);
                self.forwarded
                    .insert(id, (from, orig_id, to.clone(), Instant::now()));
                router::deliver_to_full(&self.server, &to, out);
            }
            Some("result") | Some("error") => {
                let Some(id) = iq.attr("id") else { return };
                // Only the session the request went to may answer it.
                if self.forwarded.get(id).is_none_or(|f| f.2 != from) {
                    return;
                }
                let Some((requester, orig_id, _, _)) = self.forwarded.remove(id) else {
                    return;
                };
                let Some(responder) = self.occupants.nick_of(&from) else {
                    return;
                };
                let mut out = iq.clone();
                xml::set_attr(&mut out, "from", &self.occupant_jid(responder));
                xml::set_attr(&mut out, "to", &requester.to_string());
                match orig_id {
                    Some(orig) => xml::set_attr(&mut out, "id", &orig),
                    None => xml::remove_attr(&mut out, "id"),
                }
                router::deliver_to_full(&self.server, &requester, out);
            }
            _ => {}
        }
    }

    // ---- IQs to the room (disco §6.4, admin §8-9, owner §10) ----

    fn iq(&mut self, from: FullJid, iq: Element) {
        let kind = iq.attr("type").unwrap_or("").to_owned();
        if kind != "get" && kind != "set" {
            return;
        }
        let Some(q) = iq.children().next().cloned() else {
            return self.error(&iq, StanzaError::bad_request());
        };
        if q.ns() == crate::modules::mam::NS {
            return self.archive_iq(from, iq);
        }
        let answer = match (kind.as_str(), q.ns().as_str(), q.name()) {
            ("get", NS_INFO, "query") if q.attr("node").is_none() => self.disco_info(&from),
            ("get", NS_INFO, "query") if q.attr("node") == Some(NODE_ROOMUSER) => {
                if self.locked && self.affiliations.get(&from.to_bare()) != Affiliation::Owner {
                    Err(StanzaError::item_not_found())
                } else {
                    Ok(Some(self.reserved_nick_info(&from)))
                }
            }
            (_, NS_REGISTER, "query") => {
                if self.locked {
                    Err(StanzaError::item_not_found())
                } else {
                    self.register(&from, kind == "set", &q)
                }
            }
            ("get", NS_ITEMS, "query") if q.attr("node").is_none() => {
                if self.locked {
                    Err(StanzaError::item_not_found())
                } else {
                    Ok(Some(Element::bare("query", NS_ITEMS)))
                }
            }
            (_, NS_OWNER, "query") => self.owner(&from, kind == "set", &q),
            ("set", super::archive::NS_MODERATE, "moderate") => self.moderate(&from, &q),
            (_, NS_ADMIN, "query") => self.admin(&from, kind == "set", &q),
            _ => Err(StanzaError::service_unavailable()),
        };
        if self.dirty {
            // Acknowledged once stored (see `spawn`).
            self.pending.push((from, iq, answer));
        } else {
            reply(&self.server, &from, &iq, answer);
        }
    }

    /// §10.9: every occupant is told, then the room ends.
    pub(super) fn destroy(&mut self, destroy: Option<&Element>) {
        let mut d = Element::bare("destroy", NS_USER);
        if let Some(src) = destroy {
            if let Some(j) = src.attr("jid") {
                xml::set_attr(&mut d, "jid", j);
            }
            if let Some(r) = src.get_child("reason", NS_OWNER) {
                d.append_child(xml::text_element("reason", NS_USER, &r.text()));
            }
            if let Some(pw) = src.get_child("password", NS_OWNER) {
                d.append_child(xml::text_element("password", NS_USER, &pw.text()));
            }
        }
        for o in self.occupants.iter() {
            let mut p = Element::bare("presence", ns::CLIENT);
            xml::set_attr(&mut p, "from", &self.occupant_jid(&o.nick));
            xml::set_attr(&mut p, "type", "unavailable");
            let mut x = Element::bare("x", NS_USER);
            let mut item = Element::bare("item", NS_USER);
            xml::set_attr(&mut item, "affiliation", "none");
            xml::set_attr(&mut item, "role", "none");
            x.append_child(item);
            x.append_child(d.clone());
            p.append_child(x);
            self.send_to(o, &p);
        }
        self.occupants = Occupants::default();
        self.destroyed = true;
        self.purge_archive();
        self.dirty = self.stored;
    }
}

/// Whether `jid` is one of the server's `admins`.
pub(super) fn is_admin(config: &crate::config::Config, jid: &BareJid) -> bool {
    config.admins.iter().any(|a| a.eq_ignore_ascii_case(jid.as_str()))
}

/// Delivers `stanza` to one session, addressed to it.
fn deliver(to: &Recipient, mut stanza: Element) {
    xml::set_attr(&mut stanza, "to", &to.jid.to_string());
    // A failed delivery is dropped, as `router::bounce` would: the room sends it, not a
    // session. A full mailbox already disconnects the slow occupant.
    router::push(to, stanza);
}

/// A broadcast serialized once for all its recipients; `None` (logged) if it cannot be
/// serialized at all.
pub(super) fn share(stanza: Element) -> Option<Arc<SharedStanza>> {
    let shared = SharedStanza::new(stanza).map(Arc::new);
    if shared.is_none() {
        tracing::error!("could not serialize a room broadcast");
    }
    shared
}

/// Delivers a shared stanza to each session of `o` (failures as in `deliver`).
pub(super) fn send_shared(o: &Occupant, stanza: Option<&Arc<SharedStanza>>) {
    let Some(stanza) = stanza else { return };
    for s in &o.sessions {
        let _ = router::deliver_shared(s, stanza);
    }
}

fn unix_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn status(code: u16) -> Element {
    let mut s = Element::bare("status", NS_USER);
    xml::set_attr(&mut s, "code", &code.to_string());
    s
}

pub fn occupant_id_element(id: &str) -> Element {
    let mut e = Element::bare("occupant-id", NS_OCCUPANT_ID);
    xml::set_attr(&mut e, "id", id);
    e
}

/// XEP-0421 §4: an occupant id sent by the client is never passed on.
fn strip_occupant_id(m: &mut Element) {
    while m.remove_child("occupant-id", NS_OCCUPANT_ID).is_some() {}
}

/// The `<item/>` detail of a removal as one recipient may see it: the actor's JID only for
/// those the room shows real JIDs to (§5.1.3, §8.2).
fn shown_item(item: Option<&Element>, sees_jids: bool) -> Option<Element> {
    let mut item = item?.clone();
    if !sees_jids && let Some(actor) = item.get_child_mut("actor", NS_USER) {
        xml::remove_attr(actor, "jid");
        if actor.attr("nick").is_none() {
            item.remove_child("actor", NS_USER);
        }
    }
    Some(item)
}

fn replace_item(x: &mut Element, with: &Element) {
    let codes: Vec<Element> = x
        .children()
        .filter(|c| c.is("status", NS_USER))
        .cloned()
        .collect();
    *x = with.clone();
    for c in codes {
        x.append_child(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kick_item() -> Element {
        "<item xmlns='http://jabber.org/protocol/muc#user'><actor nick='Alice' jid='alice@example.org'/><reason>spam</reason></item>"
            .parse()
            .unwrap()
    }

    #[test]
    fn the_actor_jid_is_shown_only_to_those_who_see_jids() {
        let item = kick_item();
        let seen = shown_item(Some(&item), true).unwrap();
        assert_eq!(
            seen.get_child("actor", NS_USER).and_then(|a| a.attr("jid")),
            Some("alice@example.org")
        );
        let hidden = shown_item(Some(&item), false).unwrap();
        let actor = hidden.get_child("actor", NS_USER).unwrap();
        assert_eq!(actor.attr("jid"), None);
        assert_eq!(actor.attr("nick"), Some("Alice"));
        assert!(hidden.get_child("reason", NS_USER).is_some());
        // An actor known only by JID (an admin outside the room) vanishes for the others.
        let admin: Element =
            "<item xmlns='http://jabber.org/protocol/muc#user'><actor jid='root@example.org'/></item>"
                .parse()
                .unwrap();
        assert!(
            shown_item(Some(&admin), false)
                .unwrap()
                .get_child("actor", NS_USER)
                .is_none()
        );
        assert!(shown_item(None, true).is_none());
    }
}
