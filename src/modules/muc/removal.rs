//! What the service tells users on its own initiative (XEP-0045 §15.5 status codes): an
//! affiliation changed while the user was not in the room (101), occupants removed because
//! the server shuts down (332) or because of a technical problem (333).

use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::sync::oneshot;

use super::NS_USER;
use super::affiliations::Affiliation;
use super::room::{Room, RoomCmd, send_shared, share, status};
use super::service::{JoinedRooms, Service};
use crate::router;
use crate::server::Server;
use crate::session::SessionEntry;
use crate::xml::{self, ns};

/// How long a shutdown waits for rooms to send their 332 presence.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Room {
    /// 101: the affiliation of `jid` changed while it has no occupant here; its available
    /// resources get a message from the room (the XEP's "out of band" notice, not stored).
    pub(super) fn affiliation_notice(&self, jid: &BareJid, affiliation: Affiliation, reason: Option<&str>) {
        let mut item = Element::bare("item", NS_USER);
        xml::set_attr(&mut item, "affiliation", affiliation.name());
        xml::set_attr(&mut item, "jid", jid.as_str());
        xml::set_attr(&mut item, "role", "none");
        if let Some(r) = reason {
            item.append_child(xml::text_element("reason", NS_USER, r));
        }
        self.tell_occupants_of_absent(&item, affiliation);
        let mut x = Element::bare("x", NS_USER);
        x.append_child(item);
        x.append_child(status(101));
        let mut m = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut m, "from", &self.jid_str);
        m.append_child(x);
        for session in self.server.sessions.sessions_of(jid) {
            if session.is_available() {
                let mut copy = m.clone();
                xml::set_attr(&mut copy, "to", &session.jid.to_string());
                router::deliver(&self.server, &session, copy);
            }
        }
    }

    /// §9.3, §9.7, §10.3, §10.6: the affiliation of a user who is not in the room changed;
    /// the occupants who may see real JIDs get a message from the room with the item (and
    /// 301 for a ban, as in §9.1), the others nothing (the item names the JID).
    fn tell_occupants_of_absent(&self, item: &Element, affiliation: Affiliation) {
        let mut x = Element::bare("x", NS_USER);
        x.append_child(item.clone());
        if affiliation == Affiliation::Outcast {
            x.append_child(status(301));
        }
        let mut m = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut m, "from", &self.jid_str);
        m.append_child(x);
        let mut shared = None;
        for o in self.occupants.iter().filter(|o| self.sees_jids(&o.nick)) {
            let m = shared.get_or_insert_with(|| share(m.clone()));
            send_shared(o, m.as_ref());
        }
    }

    /// 333: the session `jid` is gone without leaving (its presence bounced, or it ended
    /// with no unavailable presence sent on its behalf). The others learn why; an occupant
    /// with other sessions stays.
    pub(super) fn lose(&mut self, jid: &FullJid) {
        let Some(o) = self.occupants.by_jid(jid) else {
            return;
        };
        if o.session_jids().len() > 1 {
            return self.leave(jid, None);
        }
        let nick = o.nick.clone();
        self.remove_occupant(&nick, &[333], None);
    }

    /// 332: the server shuts down; every occupant is removed while its stream still
    /// carries stanzas.
    pub(super) fn shut_down(&mut self) {
        let nicks: Vec<String> = self.occupants.iter().map(|o| o.nick.clone()).collect();
        for nick in nicks {
            self.remove_occupant(&nick, &[332], None);
        }
    }
}

/// A session ended with rooms still joined: no unavailable presence was sent on its behalf
/// (it never sent broadcast presence), so for the rooms it vanished (333).
pub fn session_lost(service: &Arc<Service>, server: &Arc<Server>, entry: &SessionEntry) {
    let joined = entry.extension::<JoinedRooms>();
    let rooms = std::mem::take(&mut *joined.0.lock().unwrap_or_else(|e| e.into_inner()));
    for node in rooms {
        service.dispatch(server, &node, RoomCmd::SessionLost(entry.jid.clone()), false);
    }
}

/// Before streams close on shutdown: every live room removes its occupants with 332. Waits
/// (bounded) until each room has queued its presence, so it goes out before
/// `system-shutdown`.
pub async fn announce_shutdown(server: &crate::server::Server) {
    let Some(service) = super::running_service(server) else {
        return;
    };
    let mut acks = Vec::new();
    let handles: Vec<_> = service.rooms.iter().map(|h| h.tx.clone()).collect();
    for tx in handles {
        let (done, rx) = oneshot::channel();
        if tx.try_send(RoomCmd::Shutdown(done)).is_ok() {
            acks.push(rx);
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for rx in acks {
        if tokio::time::timeout_at(deadline, rx).await.is_err() {
            tracing::warn!("some rooms did not announce the shutdown in time");
            return;
        }
    }
}
