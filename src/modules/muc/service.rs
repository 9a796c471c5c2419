//! The service domain: the room directory, dispatch to room tasks, and the service's own
//! disco (XEP-0045 §6.1-6.3).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::mpsc;

use super::config::RoomConfig;
use super::room::{self, RoomCmd};
use super::rsm::{self, NS_RSM};
use super::{NS_MUC, NS_OCCUPANT_ID};
use crate::error::StanzaError;
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router;
use crate::server::Server;
use crate::session::SessionEntry;
use crate::xml;

/// How often a sender waiting for room in a busy room's queue checks that its session is
/// still wanted.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What a sender's wait for room in a busy room's queue came to.
enum Slot<'a> {
    Free(mpsc::Permit<'a, RoomCmd>),
    /// The room ended meanwhile.
    Closed,
    /// The sender's session is being closed.
    SenderGone,
    /// Full for all of `[muc] room_queue_wait_ms`.
    StillFull,
}

/// What the directory knows of a room without asking its task (disco#items).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub name: String,
    pub public: bool,
    /// Locked rooms (§10.1.1) and hidden ones are not listed.
    pub listed: bool,
}

/// The directory's handle on a running room.
#[derive(Clone)]
pub struct RoomHandle {
    pub id: u64,
    pub tx: mpsc::Sender<RoomCmd>,
    pub summary: Arc<Mutex<Summary>>,
}

/// Rooms a session has sent presence to (so its end can reach them).
#[derive(Default)]
pub struct JoinedRooms(pub Mutex<HashSet<String>>);

#[derive(Default)]
pub struct Service {
    /// Keyed by the room's localpart (already normalised by the JID parser).
    pub rooms: DashMap<String, RoomHandle>,
    next_id: AtomicU64,
    /// Rooms each user created that still exist (`rooms_per_user`).
    pub created: DashMap<BareJid, usize>,
    /// Stored rooms that are not loaded (idle persistent rooms unload), for §6.3 listings.
    dormant: DormantRooms,
}

/// What an ending room means for the directory of stored rooms.
pub enum Dormant {
    /// Still stored: it unloads and stays listed with this summary.
    Kept(Summary),
    /// Deleted from storage (destroyed, or no longer persistent).
    Deleted,
    /// Never stored (a temporary room).
    Never,
}

/// Summaries of stored rooms not loaded now: read from SQL on the first listing, then kept
/// current by rooms as they end (unloaded: added; destroyed or no longer stored: removed).
#[derive(Default)]
struct DormantRooms {
    /// `None` until read from SQL.
    rooms: Mutex<Option<BTreeMap<String, Summary>>>,
    /// Bumped on every change, so a read that raced one is done again.
    changes: AtomicU64,
}

impl Service {
    /// Everything addressed to the service domain or one of its JIDs.
    pub async fn handle(self: &Arc<Self>, server: &Arc<Server>, from: FullJid, stanza: Element) {
        let to = match stanza.attr("to").map(Jid::new) {
            Some(Ok(to)) => to,
            _ => return router::bounce(server, &stanza, StanzaError::jid_malformed()),
        };
        let Some(node) = to.node().map(|n| n.as_str().to_owned()) else {
            return self.handle_domain(server, &from, stanza);
        };
        if stanza.name() == "presence" {
            let kind = stanza.attr("type");
            if to.resource().is_none() {
                match kind {
                    // §7.2.1: entering needs a nickname.
                    None => router::bounce(
                        server,
                        &stanza,
                        StanzaError::jid_malformed().text("a nickname is required"),
                    ),
                    // §7.14 (as ejabberd and Prosody accept it) and §15.5: leaving, or a
                    // bounce, sent to the bare room; only a room already running has
                    // occupants to remove.
                    Some("unavailable") | Some("error") if self.rooms.contains_key(&node) => {
                        self.track(server, &from, &node, false);
                        self.send_paced(server, &node, from, stanza, false).await;
                    }
                    _ => {}
                }
                return;
            }
            match kind {
                None => self.track(server, &from, &node, true),
                Some("unavailable") | Some("error") => self.track(server, &from, &node, false),
                // A probe or a subscription changes nothing of where the session is.
                _ => {}
            }
        }
        // Any stanza starts the room's task: a persistent room is loaded from SQL, and a
        // missing one answers `item-not-found` (only a join creates it).
        self.send_paced(server, &node, from, stanza, true).await;
    }

    /// The running room `node`, started when `create` (a join). `Ok(None)`: a command that
    /// starts no room (the room is not running).
    fn room_for(
        self: &Arc<Self>,
        server: &Arc<Server>,
        node: &str,
        cmd: &RoomCmd,
        create: bool,
    ) -> Result<Option<RoomHandle>, StanzaError> {
        // Cloned out at once: no map guard is held past this statement.
        let running = self.rooms.get(node).map(|h| h.clone());
        match running {
            Some(h) => Ok(Some(h)),
            None if create => self.create(server, node, cmd),
            None => Err(StanzaError::item_not_found()),
        }
    }

    /// A session's stanza for the room `node`. A room that cannot keep up slows its senders
    /// down instead of refusing them: while its queue is full the sender waits for room, and
    /// since the session awaits its routing, its reads pause meanwhile. Only a sender still
    /// over the limit after `[muc] room_queue_wait_ms` gets `resource-constraint`.
    async fn send_paced(
        self: &Arc<Self>,
        server: &Arc<Server>,
        node: &str,
        from: FullJid,
        stanza: Element,
        create: bool,
    ) {
        let mut cmd = RoomCmd::Stanza(from, stanza);
        // Twice at most: a room that just shut down is replaced by a new one.
        for _ in 0..2 {
            let handle = match self.room_for(server, node, &cmd, create) {
                Ok(Some(h)) => h,
                Ok(None) => continue,
                Err(e) => return reject(server, cmd, e),
            };
            cmd = match handle.tx.try_send(cmd) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(c)) => {
                    crate::metrics::muc_sender_wait();
                    match self.wait_for_slot(server, &handle, &c).await {
                        Slot::Free(permit) => return permit.send(c),
                        Slot::Closed => {
                            self.rooms.remove_if(node, |_, h| h.id == handle.id);
                            c
                        }
                        // The session is being closed: nobody waits for this stanza.
                        Slot::SenderGone => return,
                        Slot::StillFull => {
                            crate::metrics::muc_overload_bounce();
                            tracing::warn!(room = node, "room queue still full: a stanza was refused");
                            return reject(
                                server,
                                c,
                                StanzaError::resource_constraint().text("the room is too busy"),
                            );
                        }
                    }
                }
                Err(mpsc::error::TrySendError::Closed(c)) => {
                    self.rooms.remove_if(node, |_, h| h.id == handle.id);
                    c
                }
            };
        }
        reject(server, cmd, StanzaError::internal_server_error())
    }

    /// Waits up to `[muc] room_queue_wait_ms` for a slot in `handle`'s queue, in short slices
    /// so that a sender kicked meanwhile (its session closing) stops waiting at once.
    async fn wait_for_slot<'a>(&self, server: &Server, handle: &'a RoomHandle, cmd: &RoomCmd) -> Slot<'a> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(server.config().muc.room_queue_wait_ms);
        let sender = match cmd {
            RoomCmd::Stanza(from, _) => server.sessions.get(from),
            _ => None,
        };
        loop {
            let slice = deadline.min(tokio::time::Instant::now() + WAIT_SLICE);
            match tokio::time::timeout_at(slice, handle.tx.reserve()).await {
                Ok(Ok(permit)) => return Slot::Free(permit),
                Ok(Err(_closed)) => return Slot::Closed,
                Err(_) if tokio::time::Instant::now() >= deadline => return Slot::StillFull,
                Err(_) if sender.as_ref().is_some_and(|s| s.is_kicked()) => return Slot::SenderGone,
                Err(_) => {}
            }
        }
    }

    /// Sends the server's own `cmd` (a session ended, an administrator's destroy, a stanza
    /// handed on by a room that ended) to the room `node`, starting the room when `create`.
    /// Never waits: a full queue gets the command from a task that waits for room, so the
    /// caller (a session ending, a room ending) is not held up and nothing is lost.
    pub fn dispatch(self: &Arc<Self>, server: &Arc<Server>, node: &str, cmd: RoomCmd, create: bool) {
        let mut cmd = cmd;
        // Twice at most: a room that just shut down is replaced by a new one.
        for _ in 0..2 {
            let handle = match self.room_for(server, node, &cmd, create) {
                Ok(Some(h)) => h,
                Ok(None) => continue,
                Err(e) => return reject(server, cmd, e),
            };
            match handle.tx.try_send(cmd) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(c)) => {
                    let server = server.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle.tx.send(c).await {
                            reject(&server, e.0, StanzaError::service_unavailable());
                        }
                    });
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(c)) => {
                    self.rooms.remove_if(node, |_, h| h.id == handle.id);
                    cmd = c;
                }
            }
        }
        reject(server, cmd, StanzaError::internal_server_error())
    }

    /// Starts a room for a join by its creator (§10.1.1), if the policy allows.
    fn create(
        self: &Arc<Self>,
        server: &Arc<Server>,
        node: &str,
        cmd: &RoomCmd,
    ) -> Result<Option<RoomHandle>, StanzaError> {
        // The creation policy is the room's to check: the room may exist in SQL already.
        let creator = match cmd {
            RoomCmd::Stanza(from, _) => from.to_bare(),
            // Loads a stored room to destroy it; a room that is not stored stays fresh.
            RoomCmd::AdminDestroy { admin, .. } => admin.clone(),
            RoomCmd::SessionClosed(_) | RoomCmd::SessionLost(_) | RoomCmd::Shutdown(_) => return Ok(None),
        };
        let muc = &server.config().muc;
        let Some(domain) = muc.service_domain(&server.config().domains) else {
            return Err(StanzaError::service_unavailable());
        };
        let room_jid = BareJid::new(&format!("{node}@{domain}")).map_err(|_| StanzaError::jid_malformed())?;
        let entry = self.rooms.entry(node.to_string());
        let handle = match entry {
            dashmap::Entry::Occupied(o) => o.get().clone(),
            dashmap::Entry::Vacant(v) => {
                let (tx, rx) = mpsc::channel(muc.room_queue_length.max(1));
                let handle = RoomHandle {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
                    tx,
                    summary: Arc::new(Mutex::new(Summary::default())),
                };
                v.insert(handle.clone());
                room::spawn(
                    server.clone(),
                    self.clone(),
                    room_jid,
                    creator,
                    handle.clone(),
                    rx,
                );
                handle
            }
        };
        Ok(Some(handle))
    }

    /// Called by a room task as it ends: forget it and hand on what its inbox still held.
    /// `dormant`: whether it stays stored (unloaded) or left storage.
    pub fn room_ended(
        self: &Arc<Self>,
        server: &Arc<Server>,
        node: &str,
        id: u64,
        counted_for: Option<&BareJid>,
        dormant: Dormant,
        mut rx: mpsc::Receiver<RoomCmd>,
    ) {
        if !matches!(dormant, Dormant::Never) {
            let mut rooms = self.dormant.rooms.lock().unwrap_or_else(|e| e.into_inner());
            self.dormant.changes.fetch_add(1, Ordering::Relaxed);
            if let Some(rooms) = rooms.as_mut() {
                match dormant {
                    Dormant::Kept(summary) => rooms.insert(node.to_string(), summary),
                    _ => rooms.remove(node),
                };
            }
        }
        self.rooms.remove_if(node, |_, h| h.id == id);
        if let Some(creator) = counted_for {
            self.created.remove_if_mut(creator, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            let create = matches!(&cmd, RoomCmd::Stanza(..) | RoomCmd::AdminDestroy { .. });
            self.dispatch(server, node, cmd, create);
        }
    }

    /// Remembers which rooms a session sent presence to, for `session_closed`.
    fn track(&self, server: &Server, from: &FullJid, node: &str, available: bool) {
        let Some(session) = server.sessions.local(from) else {
            return;
        };
        let joined = session.extension::<JoinedRooms>();
        let mut set = joined.0.lock().unwrap_or_else(|e| e.into_inner());
        if available {
            set.insert(node.to_string());
        } else {
            set.remove(node);
        }
    }

    /// A session ended: it leaves every room it was in (§7.14 on its behalf).
    pub fn session_closed(self: &Arc<Self>, server: &Arc<Server>, entry: &SessionEntry) {
        let joined = entry.extension::<JoinedRooms>();
        let rooms = std::mem::take(&mut *joined.0.lock().unwrap_or_else(|e| e.into_inner()));
        for node in rooms {
            self.dispatch(server, &node, RoomCmd::SessionClosed(entry.jid.clone()), false);
        }
    }

    /// Stanzas to the bare service domain: disco (§6.1, §6.3); everything else is refused.
    fn handle_domain(self: &Arc<Self>, server: &Arc<Server>, from: &FullJid, stanza: Element) {
        if stanza.name() != "iq" {
            if stanza.name() == "message" && !matches!(stanza.attr("type"), Some("error")) {
                router::bounce(server, &stanza, StanzaError::service_unavailable());
            }
            return;
        }
        let kind = stanza.attr("type").unwrap_or("");
        if kind != "get" && kind != "set" {
            return;
        }
        let payload = stanza.children().next();
        let answer = match payload {
            Some(q) if kind == "get" && q.is("query", NS_INFO) && q.attr("node").is_none() => {
                Ok(Some(self.service_info()))
            }
            Some(q) if kind == "get" && q.is("query", NS_ITEMS) && q.attr("node").is_none() => {
                // Stored rooms may have to be read from SQL first.
                let (me, server, from) = (self.clone(), server.clone(), from.clone());
                tokio::spawn(async move {
                    let answer = me.public_rooms(&server, &stanza).await.map(Some);
                    reply(&server, &from, &stanza, answer);
                });
                return;
            }
            _ => Err(StanzaError::service_unavailable()),
        };
        reply(server, from, &stanza, answer);
    }

    fn service_info(&self) -> Element {
        let mut q = Element::bare("query", NS_INFO);
        let mut id = Element::bare("identity", NS_INFO);
        xml::set_attr(&mut id, "category", "conference");
        xml::set_attr(&mut id, "type", "text");
        xml::set_attr(&mut id, "name", "Chatrooms");
        q.append_child(id);
        for var in [NS_INFO, NS_ITEMS, NS_MUC, NS_OCCUPANT_ID, NS_RSM] {
            q.append_child(feature(var));
        }
        q
    }

    /// §6.3: public, unlocked rooms, loaded or stored, sorted by address and paged
    /// (XEP-0059, at most `[muc] max_items_per_page`).
    async fn public_rooms(&self, server: &Server, iq: &Element) -> Result<Element, StanzaError> {
        let query = iq.children().next().ok_or_else(StanzaError::bad_request)?;
        let request = rsm::Request::from_query(query)?;
        let config = server.config();
        let Some(domain) = config.muc.service_domain(&config.domains) else {
            return Ok(Element::bare("query", NS_ITEMS));
        };
        let mut all = self.stored_summaries(server, &domain).await?;
        for r in self.rooms.iter() {
            let s = r
                .value()
                .summary
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            // A loaded room's own summary is the current one.
            all.insert(r.key().clone(), s);
        }
        let (jids, names): (Vec<String>, Vec<String>) = all
            .into_iter()
            .filter(|(_, s)| s.public && s.listed)
            .map(|(node, s)| (format!("{node}@{domain}"), s.name))
            .unzip();
        let (range, set) = rsm::page(&jids, request.as_ref(), config.muc.max_items_per_page)?;
        let mut q = Element::bare("query", NS_ITEMS);
        for (jid, name) in jids[range.clone()].iter().zip(&names[range]) {
            let mut item = Element::bare("item", NS_ITEMS);
            xml::set_attr(&mut item, "jid", jid);
            if !name.is_empty() {
                xml::set_attr(&mut item, "name", name);
            }
            q.append_child(item);
        }
        if let Some(set) = set {
            q.append_child(set);
        }
        Ok(q)
    }

    /// The summaries of stored rooms that are not loaded (read from SQL the first time).
    async fn stored_summaries(
        &self,
        server: &Server,
        domain: &str,
    ) -> Result<BTreeMap<String, Summary>, StanzaError> {
        // A few tries: a room ending while SQL is read makes the read stale.
        for _ in 0..3 {
            if let Some(rooms) = self
                .dormant
                .rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                return Ok(rooms.clone());
            }
            let before = self.dormant.changes.load(Ordering::Relaxed);
            let rows = server
                .storage
                .muc_room_configs(domain)
                .await
                .map_err(StanzaError::storage("cannot list stored rooms"))?;
            let muc = &server.config().muc;
            let read: BTreeMap<String, Summary> = rows
                .into_iter()
                .map(|(node, form)| (node, stored_summary(&form, muc)))
                .collect();
            let mut rooms = self.dormant.rooms.lock().unwrap_or_else(|e| e.into_inner());
            if self.dormant.changes.load(Ordering::Relaxed) == before {
                *rooms = Some(read.clone());
                return Ok(read);
            }
        }
        Err(StanzaError::resource_constraint().text("the room list is changing, try again"))
    }
}

/// What the directory shows of a stored room, from its stored configuration form.
fn stored_summary(form: &str, muc: &crate::config::MucConfig) -> Summary {
    let config = form
        .parse::<Element>()
        .ok()
        .and_then(|f| RoomConfig::defaults(muc).apply(&f, muc).ok());
    match config {
        Some(c) => Summary {
            name: c.name,
            public: c.public,
            listed: true,
        },
        // Unreadable: left out of listings, as the room would refuse its configuration too.
        None => Summary::default(),
    }
}

pub fn feature(var: &str) -> Element {
    let mut f = Element::bare("feature", NS_INFO);
    xml::set_attr(&mut f, "var", var);
    f
}

/// Answers an IQ addressed to the service or a room: a result with `payload`, or an error.
pub fn reply(server: &Arc<Server>, to: &FullJid, iq: &Element, answer: Result<Option<Element>, StanzaError>) {
    match answer {
        Ok(payload) => {
            let mut r = xml::iq_result(iq, payload);
            if let Some(from) = iq.attr("to") {
                xml::set_attr(&mut r, "from", from);
            }
            xml::set_attr(&mut r, "to", &to.to_string());
            router::deliver_to_full(server, to, r);
        }
        Err(e) => router::bounce(server, iq, e),
    }
}

/// A command the directory could not deliver: its stanza is answered with `error`.
fn reject(server: &Arc<Server>, cmd: RoomCmd, error: StanzaError) {
    match cmd {
        RoomCmd::Stanza(_, stanza) => router::bounce(server, &stanza, error),
        RoomCmd::AdminDestroy { done, .. } => {
            tracing::warn!(error = %error.condition, "an administrator's room destroy was not delivered");
            let _ = done.send(false);
        }
        RoomCmd::SessionClosed(_) | RoomCmd::SessionLost(_) | RoomCmd::Shutdown(_) => {}
    }
}
