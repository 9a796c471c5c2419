//! muc#admin (XEP-0045 §8.2-8.5, §9) and muc#owner (§10): roles, affiliation lists,
//! configuration and destruction.

use jid::{BareJid, FullJid};
use minidom::Element;

use super::affiliations::{Affiliation, Role, default_role, may_set_affiliation, may_set_role};
use super::config::RoomConfig;
use super::room::{Room, is_admin, status};
use super::{NS_ADMIN, NS_DATA, NS_OWNER, NS_USER};
use crate::config::MucCreators;
use crate::error::StanzaError;
use crate::xml::{self, ns};

/// Who changed a role or an affiliation: their nick if they are in the room, and their JID.
pub(super) struct Actor {
    pub nick: Option<String>,
    pub jid: BareJid,
}

/// One change asked for in a muc#admin set.
pub(super) enum Change {
    Role {
        nick: String,
        role: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: BareJid,
        affiliation: Affiliation,
        reason: Option<String>,
    },
}

impl Room {
    /// §10: owner requests.
    pub(super) fn owner(
        &mut self,
        from: &FullJid,
        set: bool,
        q: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        if self.affiliations.get(&from.to_bare()) != Affiliation::Owner {
            return Err(StanzaError::forbidden().text("only owners may do that"));
        }
        let muc = self.server.config().muc.clone();
        if !set {
            let mut out = Element::bare("query", NS_OWNER);
            out.append_child(self.config.form(&muc));
            return Ok(Some(out));
        }
        if let Some(d) = q.get_child("destroy", NS_OWNER) {
            self.destroy(Some(d));
            return Ok(None);
        }
        let Some(x) = q.get_child("x", NS_DATA) else {
            return Err(StanzaError::bad_request());
        };
        match x.attr("type") {
            Some("cancel") => {
                // §10.1.3: cancelling the initial configuration destroys the new room.
                if self.locked {
                    self.destroy(None);
                }
                Ok(None)
            }
            Some("submit") => {
                let new = self.config.apply(x, &muc)?;
                new.check_limits(&self.config, &muc)?;
                // `[muc] persistent_creators`: §10.2 answers a value the service will not
                // take with not-acceptable; the owner may submit again without it.
                if new.persistent
                    && !self.config.persistent
                    && muc.persistent_creators == MucCreators::Admins
                    && !is_admin(&self.server.config(), &from.to_bare())
                {
                    return Err(
                        StanzaError::not_acceptable().text("only administrators may make a room persistent")
                    );
                }
                self.dirty = new.persistent || self.stored;
                let old = std::mem::replace(&mut self.config, new);
                let was_locked = self.locked;
                self.locked = false;
                self.history.truncate(self.config.history_length);
                self.update_summary();
                if !was_locked && old != self.config {
                    self.announce_config(&old);
                }
                Ok(None)
            }
            _ => Err(StanzaError::bad_request()),
        }
    }

    /// §10.2.1: tell occupants the configuration changed, and apply it to them.
    fn announce_config(&mut self, old: &RoomConfig) {
        let mut m = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut m, "from", &self.jid_str);
        xml::set_attr(&mut m, "type", "groupchat");
        let mut x = Element::bare("x", NS_USER);
        for c in RoomConfig::change_codes(old, &self.config) {
            x.append_child(status(c));
        }
        m.append_child(x);
        self.send_all(&m);
        // §9.4 / §10.2: a room turning members-only removes non-members (322).
        if self.config.members_only && !old.members_only {
            let gone: Vec<String> = self
                .occupants
                .iter()
                .filter(|o| self.affiliations.get(&o.bare) < Affiliation::Member)
                .map(|o| o.nick.clone())
                .collect();
            for nick in gone {
                self.remove_occupant(&nick, &[322], None);
            }
        }
    }

    /// §8-9: muc#admin get (lists) and set (role and affiliation changes).
    pub(super) fn admin(
        &mut self,
        from: &FullJid,
        set: bool,
        q: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let bare = from.to_bare();
        let actor_aff = self.affiliations.get(&bare);
        let actor_role = self.occupants.by_jid(from).map(|o| o.role).unwrap_or(Role::None);
        let items: Vec<&Element> = q.children().filter(|c| c.is("item", NS_ADMIN)).collect();
        if items.is_empty() {
            return Err(StanzaError::bad_request());
        }
        if !set {
            return self.admin_list(actor_aff, actor_role, items[0]);
        }
        // Check every change first: the request is applied whole or not at all.
        let mut changes = Vec::new();
        for item in items {
            let reason = item.get_child("reason", NS_ADMIN).map(|r| r.text());
            if let Some(role) = item.attr("role") {
                let role = Role::parse(role).ok_or_else(StanzaError::bad_request)?;
                let nick = item.attr("nick").ok_or_else(StanzaError::bad_request)?;
                let target = self
                    .occupants
                    .get(nick)
                    .ok_or_else(|| StanzaError::item_not_found().text("no such occupant"))?;
                let target_aff = self.affiliations.get(&target.bare);
                if !may_set_role((actor_aff, actor_role), (target_aff, target.role), role) {
                    return Err(StanzaError::not_allowed());
                }
                changes.push(Change::Role {
                    nick: nick.to_string(),
                    role,
                    reason,
                });
            } else if let Some(aff) = item.attr("affiliation") {
                let affiliation = Affiliation::parse(aff).ok_or_else(StanzaError::bad_request)?;
                let jid = match (item.attr("jid"), item.attr("nick")) {
                    (Some(j), _) => BareJid::new(j)
                        .or_else(|_| jid::Jid::new(j).map(|j| j.to_bare()))
                        .map_err(|_| StanzaError::jid_malformed())?,
                    (None, Some(n)) => self
                        .occupants
                        .get(n)
                        .map(|o| o.bare.clone())
                        .ok_or_else(|| StanzaError::item_not_found().text("no such occupant"))?,
                    _ => return Err(StanzaError::bad_request()),
                };
                let current = self.affiliations.get(&jid);
                if !may_set_affiliation(actor_aff, current, affiliation) {
                    return Err(StanzaError::not_allowed());
                }
                // §10.6-10.7: a room always keeps an owner.
                if current == Affiliation::Owner
                    && affiliation != Affiliation::Owner
                    && self.affiliations.owners() <= 1
                {
                    return Err(StanzaError::conflict().text("the room needs an owner"));
                }
                changes.push(Change::Affiliation {
                    jid,
                    affiliation,
                    reason,
                });
            } else {
                return Err(StanzaError::bad_request());
            }
        }
        let actor = Actor {
            nick: self.occupants.by_jid(from).map(|o| o.nick.clone()),
            jid: bare,
        };
        self.dirty = self.stored;
        for change in changes {
            self.apply(change, Some(&actor));
        }
        Ok(None)
    }

    fn admin_list(
        &self,
        actor_aff: Affiliation,
        actor_role: Role,
        item: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let mut out = Element::bare("query", NS_ADMIN);
        if let Some(role) = item.attr("role") {
            // §8.5, §9.8: moderators see the voice and moderator lists.
            let role = Role::parse(role).ok_or_else(StanzaError::bad_request)?;
            if actor_role != Role::Moderator {
                return Err(StanzaError::forbidden());
            }
            let mut list: Vec<_> = self.occupants.iter().filter(|o| o.role == role).collect();
            list.sort_by(|a, b| a.nick.cmp(&b.nick));
            for o in list {
                let mut i = Element::bare("item", NS_ADMIN);
                xml::set_attr(&mut i, "affiliation", self.affiliations.get(&o.bare).name());
                xml::set_attr(&mut i, "jid", &o.shown_jid().to_string());
                xml::set_attr(&mut i, "nick", &o.nick);
                xml::set_attr(&mut i, "role", o.role.name());
                out.append_child(i);
            }
            return Ok(Some(out));
        }
        let aff = item
            .attr("affiliation")
            .and_then(Affiliation::parse)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(StanzaError::bad_request)?;
        // §9.3, §9.5: admins see members and outcasts; §10.5: owner and admin lists too.
        if actor_aff < Affiliation::Admin {
            return Err(StanzaError::forbidden());
        }
        for (jid, reason) in self.affiliations.with(aff) {
            let mut i = Element::bare("item", NS_ADMIN);
            xml::set_attr(&mut i, "affiliation", aff.name());
            xml::set_attr(&mut i, "jid", jid.as_str());
            if let Some(r) = reason {
                i.append_child(xml::text_element("reason", NS_ADMIN, &r));
            }
            out.append_child(i);
        }
        Ok(Some(out))
    }

    pub(super) fn apply(&mut self, change: Change, actor: Option<&Actor>) {
        // §8.2, §9.1: who did it (nick and JID; `remove_occupant` drops the JID for those
        // who may not see it) and why.
        let detail = |reason: &Option<String>| {
            let mut item = Element::bare("item", NS_USER);
            if let Some(actor) = actor {
                let mut a = Element::bare("actor", NS_USER);
                if let Some(nick) = &actor.nick {
                    xml::set_attr(&mut a, "nick", nick);
                }
                xml::set_attr(&mut a, "jid", actor.jid.as_str());
                item.append_child(a);
            }
            if let Some(r) = reason {
                item.append_child(xml::text_element("reason", NS_USER, r));
            }
            item
        };
        match change {
            Change::Role {
                nick,
                role: Role::None,
                reason,
            } => {
                // §8.2: kick.
                self.remove_occupant(&nick, &[307], Some(detail(&reason)));
            }
            Change::Role { nick, role, .. } => {
                if let Some(o) = self.occupants.get_mut(&nick) {
                    o.role = role;
                }
                self.broadcast_presence(&nick, &[], None);
            }
            Change::Affiliation {
                jid,
                affiliation,
                reason,
            } => {
                let before = self.affiliations.get(&jid);
                self.affiliations.set(jid.clone(), affiliation, reason.clone());
                if affiliation == Affiliation::Outcast && self.registrations.nick_of(&jid).is_some() {
                    // §9.1: a banned user's reserved nickname is released.
                    self.registrations.set(jid.clone(), None);
                    self.store_registration(jid.clone(), None);
                }
                let nicks: Vec<String> = self.occupants.of_bare(&jid).map(|o| o.nick.clone()).collect();
                if nicks.is_empty() && before != affiliation {
                    self.affiliation_notice(&jid, affiliation, reason.as_deref());
                }
                for nick in nicks {
                    if affiliation == Affiliation::Outcast {
                        // §9.1: ban.
                        self.remove_occupant(&nick, &[301], Some(detail(&reason)));
                    } else if self.config.members_only && affiliation < Affiliation::Member {
                        // §9.4: removed from a members-only room (321).
                        self.remove_occupant(&nick, &[321], Some(detail(&reason)));
                    } else {
                        let role = default_role(affiliation, self.config.moderated);
                        if let Some(o) = self.occupants.get_mut(&nick) {
                            o.role = role;
                        }
                        self.broadcast_presence(&nick, &[], None);
                    }
                }
            }
        }
    }
}
