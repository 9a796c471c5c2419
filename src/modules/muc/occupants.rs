//! Who is in a room. One occupant per nick; several sessions of the same bare JID may share a
//! nick (multi-session nick) and are then one occupant.

use std::collections::HashMap;

use base64::Engine;
use jid::{BareJid, FullJid};
use minidom::Element;
use sha2::{Digest, Sha256};

use super::affiliations::Role;

pub struct Occupant {
    pub nick: String,
    pub bare: BareJid,
    /// The resources sharing this nick, in joining order; the last one is the JID shown.
    pub sessions: Vec<FullJid>,
    /// The last presence received from the occupant (its show, status... are reflected).
    pub presence: Element,
    pub role: Role,
    /// XEP-0421: stable per (room, bare JID), revealing nothing.
    pub occupant_id: String,
}

impl Occupant {
    /// The full JID shown to those allowed to see it.
    pub fn shown_jid(&self) -> &FullJid {
        self.sessions
            .last()
            .expect("an occupant has at least one session")
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
            self.by_jid.insert(s.clone(), occupant.nick.clone());
        }
        self.by_nick.insert(occupant.nick.clone(), occupant);
    }

    /// Adds a session to an existing occupant (multi-session nick).
    pub fn add_session(&mut self, nick: &str, jid: FullJid) {
        if let Some(o) = self.by_nick.get_mut(nick) {
            o.sessions.retain(|s| *s != jid);
            o.sessions.push(jid.clone());
            self.by_jid.insert(jid, nick.to_string());
        }
    }

    /// Removes one session; the occupant goes with its last session (returned then).
    pub fn remove_session(&mut self, jid: &FullJid) -> Option<Occupant> {
        let nick = self.by_jid.remove(jid)?;
        let o = self.by_nick.get_mut(&nick)?;
        if o.sessions.iter().all(|s| s == jid) {
            // The last session: the occupant leaves, still showing that JID.
            return self.by_nick.remove(&nick);
        }
        o.sessions.retain(|s| s != jid);
        None
    }

    /// Removes the occupant with every session.
    pub fn remove(&mut self, nick: &str) -> Option<Occupant> {
        let o = self.by_nick.remove(nick)?;
        for s in &o.sessions {
            self.by_jid.remove(s);
        }
        Some(o)
    }

    pub fn rename(&mut self, old: &str, new: &str) {
        if let Some(mut o) = self.remove(old) {
            o.nick = new.to_string();
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
