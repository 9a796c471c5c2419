//! Who is in a room. One occupant per nick; several sessions of the same bare JID may share a
//! nick (multi-session nick) and are then one occupant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use jid::{BareJid, FullJid};
use minidom::Element;
use sha2::{Digest, Sha256};

use super::affiliations::{Affiliation, Role};
use crate::session::{Recipient, SharedStanza};

pub struct Occupant {
    pub nick: String,
    pub bare: BareJid,
    /// The resources sharing this nick, in joining order; the last one is the JID shown.
    /// Their directory handles, held so a broadcast needs no lookup per recipient; a session
    /// that ends leaves the room (`session_closed`), and until then delivery to it fails.
    pub sessions: Vec<Recipient>,
    /// The last presence received from the occupant (its show, status... are reflected).
    presence: Element,
    pub role: Role,
    /// XEP-0421: stable per (room, bare JID), revealing nothing.
    pub occupant_id: String,
    /// This occupant's presence as everyone entering gets it, serialized once (index: with
    /// the real JID or not) with the role and affiliation it shows. A join storm would
    /// otherwise build and serialize every occupant's presence again for each newcomer.
    /// Cleared when the nick, presence or shown JID change.
    entering: Mutex<[Option<Entering>; 2]>,
}

/// A cached entering presence and the role and affiliation it shows.
type Entering = (Role, Affiliation, Arc<SharedStanza>);

impl Occupant {
    pub fn new(
        nick: String,
        bare: BareJid,
        session: Recipient,
        presence: Element,
        role: Role,
        occupant_id: String,
    ) -> Occupant {
        Occupant {
            nick,
            bare,
            sessions: vec![session],
            presence,
            role,
            occupant_id,
            entering: Mutex::default(),
        }
    }

    pub fn presence(&self) -> &Element {
        &self.presence
    }

    pub fn set_presence(&mut self, presence: Element) {
        self.presence = presence;
        self.forget_entering();
    }

    fn forget_entering(&mut self) {
        *self.entering.get_mut().unwrap_or_else(|e| e.into_inner()) = Default::default();
    }

    /// The presence an entering occupant gets for this one: the cached copy if it still
    /// shows this role and `affiliation`, else `build`'s (then cached).
    pub fn entering_presence(
        &self,
        with_jid: bool,
        affiliation: Affiliation,
        build: impl FnOnce() -> Option<Arc<SharedStanza>>,
    ) -> Option<Arc<SharedStanza>> {
        let mut cache = self.entering.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut cache[usize::from(with_jid)];
        if let Some((role, aff, stanza)) = slot
            && *role == self.role
            && *aff == affiliation
        {
            return Some(stanza.clone());
        }
        let stanza = build()?;
        *slot = Some((self.role, affiliation, stanza.clone()));
        Some(stanza)
    }

    /// The full JID shown to those allowed to see it.
    pub fn shown_jid(&self) -> &FullJid {
        &self
            .sessions
            .last()
            .expect("an occupant has at least one session")
            .jid
    }

    pub fn has_session(&self, jid: &FullJid) -> bool {
        self.sessions.iter().any(|s| s.jid == *jid)
    }

    pub fn session_jids(&self) -> Vec<FullJid> {
        self.sessions.iter().map(|s| s.jid.clone()).collect()
    }
}

#[derive(Default)]
pub struct Occupants {
    by_nick: HashMap<String, Occupant>,
    by_jid: HashMap<FullJid, String>,
}

impl Occupants {
    pub fn len(&self) -> usize {
        self.by_nick.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_nick.is_empty()
    }

    pub fn nick_of(&self, jid: &FullJid) -> Option<&str> {
        self.by_jid.get(jid).map(String::as_str)
    }

    pub fn get(&self, nick: &str) -> Option<&Occupant> {
        self.by_nick.get(nick)
    }

    pub fn get_mut(&mut self, nick: &str) -> Option<&mut Occupant> {
        self.by_nick.get_mut(nick)
    }

    pub fn by_jid(&self, jid: &FullJid) -> Option<&Occupant> {
        self.by_nick.get(self.by_jid.get(jid)?)
    }

    /// Occupants of a bare JID (usually one).
    pub fn of_bare<'a>(&'a self, bare: &'a BareJid) -> impl Iterator<Item = &'a Occupant> + 'a {
        self.by_nick.values().filter(move |o| o.bare == *bare)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Occupant> {
        self.by_nick.values()
    }

    pub fn insert(&mut self, occupant: Occupant) {
        for s in &occupant.sessions {
            self.by_jid.insert(s.jid.clone(), occupant.nick.clone());
        }
        self.by_nick.insert(occupant.nick.clone(), occupant);
    }

    /// Adds a session to an existing occupant (multi-session nick).
    pub fn add_session(&mut self, nick: &str, session: Recipient) {
        if let Some(o) = self.by_nick.get_mut(nick) {
            o.sessions.retain(|s| s.jid != session.jid);
            self.by_jid.insert(session.jid.clone(), nick.to_string());
            o.sessions.push(session);
            o.forget_entering();
        }
    }

    /// Points a joined full JID at `session` if a new connection took that JID over (the
    /// replaced one's departure may still be on its way).
    pub fn refresh_session(&mut self, session: &Recipient) {
        let Some(nick) = self.by_jid.get(&session.jid) else {
            return;
        };
        if let Some(o) = self.by_nick.get_mut(nick) {
            for s in o.sessions.iter_mut().filter(|s| s.jid == session.jid) {
                *s = session.clone();
            }
        }
    }

    /// Removes one session; the occupant goes with its last session (returned then).
    pub fn remove_session(&mut self, jid: &FullJid) -> Option<Occupant> {
        let nick = self.by_jid.remove(jid)?;
        let o = self.by_nick.get_mut(&nick)?;
        if o.sessions.iter().all(|s| s.jid == *jid) {
            // The last session: the occupant leaves, still showing that JID.
            return self.by_nick.remove(&nick);
        }
        o.sessions.retain(|s| s.jid != *jid);
        o.forget_entering();
        None
    }

    /// Removes the occupant with every session.
    pub fn remove(&mut self, nick: &str) -> Option<Occupant> {
        let o = self.by_nick.remove(nick)?;
        for s in &o.sessions {
            self.by_jid.remove(&s.jid);
        }
        Some(o)
    }

    pub fn rename(&mut self, old: &str, new: &str) {
        if let Some(mut o) = self.remove(old) {
            o.nick = new.to_string();
            o.forget_entering();
            self.insert(o);
        }
    }
}

/// XEP-0421 §4: an opaque id derived from a server secret, the room and the bare JID.
pub fn occupant_id(secret: &[u8], room: &BareJid, user: &BareJid) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(b"\0muc-occupant-id\0");
    h.update(room.as_str().as_bytes());
    h.update(b"\0");
    h.update(user.as_str().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&h.finalize()[..18])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{BindOutcome, LocalDirectory, Recipient, SessionDirectory};

    fn occupant(table: &LocalDirectory, nick: &str) -> Occupant {
        let jid = FullJid::new(&format!("{nick}@example.org/r")).unwrap();
        let BindOutcome::Bound(link) = table.bind(jid.clone(), table.next_conn_id(), 8, 4) else {
            panic!("bound");
        };
        let presence = Element::bare("presence", "jabber:client");
        Occupant::new(
            nick.into(),
            jid.to_bare(),
            Recipient::local_session(link.entry),
            presence,
            Role::Participant,
            "id".into(),
        )
    }

    #[test]
    fn xep0045_7_2_3_entering_presence_is_built_once_until_what_it_shows_changes() {
        let table = LocalDirectory::new();
        let mut occupants = Occupants::default();
        occupants.insert(occupant(&table, "a"));
        let builds = std::cell::Cell::new(0);
        let get = |o: &Occupant, with_jid: bool, aff: Affiliation| {
            o.entering_presence(with_jid, aff, || {
                builds.set(builds.get() + 1);
                SharedStanza::new(Element::bare("presence", "jabber:client")).map(Arc::new)
            })
        };
        let o = occupants.get("a").unwrap();
        let first = get(o, false, Affiliation::None).unwrap();
        assert!(Arc::ptr_eq(&first, &get(o, false, Affiliation::None).unwrap()));
        assert_eq!(builds.get(), 1);
        get(o, true, Affiliation::None);
        assert_eq!(builds.get(), 2, "with and without the JID are two copies");
        get(o, false, Affiliation::Member);
        assert_eq!(builds.get(), 3, "an affiliation change rebuilds");
        occupants.get_mut("a").unwrap().role = Role::Moderator;
        get(occupants.get("a").unwrap(), false, Affiliation::Member);
        assert_eq!(builds.get(), 4, "a role change rebuilds");
        occupants
            .get_mut("a")
            .unwrap()
            .set_presence(Element::bare("presence", "jabber:client"));
        get(occupants.get("a").unwrap(), false, Affiliation::Member);
        assert_eq!(builds.get(), 5, "a new presence rebuilds");
        occupants.rename("a", "b");
        get(occupants.get("b").unwrap(), false, Affiliation::Member);
        assert_eq!(builds.get(), 6, "a new nick rebuilds");
    }
}
