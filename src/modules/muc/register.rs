//! Registering with a room (XEP-0045 §7.10) and discovering one's reserved nickname (§7.12).
//!
//! Registration reserves a nickname for a bare JID: nobody else may enter or change to it
//! (§7.2.9 conflict), and an unaffiliated user becomes a member (§7.10 allows immediate
//! membership). Members-only rooms accept registrations only from those already affiliated:
//! membership there is the admins' decision. Outcasts may not register. A registered user may
//! still enter under another nickname (§7.12: SHOULD allow it). `<remove/>` gives the nickname
//! up and, for a member, the membership; admins and owners keep their affiliation.

use std::collections::HashMap;

use jid::{BareJid, FullJid};
use minidom::Element;

use super::NS_DATA;
use super::admin::Change;
use super::affiliations::Affiliation;
use super::room::Room;
use crate::error::StanzaError;
use crate::modules::disco::NS_INFO;
use crate::xml;

pub const NS_REGISTER: &str = "jabber:iq:register";
pub const NS_MUC_REGISTER: &str = "http://jabber.org/protocol/muc#register";
/// §7.12: the disco#info node answering with the requester's reserved nickname.
pub const NODE_ROOMUSER: &str = "x-roomuser-item";

/// The room's reserved nicknames, both ways.
#[derive(Default)]
pub struct Registrations {
    by_jid: HashMap<BareJid, String>,
    by_nick: HashMap<String, BareJid>,
}

impl Registrations {
    pub fn nick_of(&self, jid: &BareJid) -> Option<&str> {
        self.by_jid.get(jid).map(String::as_str)
    }

    /// Whether `nick` is reserved for someone other than `jid`.
    pub fn reserved_for_other(&self, nick: &str, jid: &BareJid) -> bool {
        self.by_nick.get(nick).is_some_and(|owner| owner != jid)
    }

    pub fn set(&mut self, jid: BareJid, nick: Option<String>) {
        if let Some(old) = self.by_jid.remove(&jid) {
            self.by_nick.remove(&old);
        }
        if let Some(nick) = nick {
            self.by_nick.insert(nick.clone(), jid.clone());
            self.by_jid.insert(jid, nick);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BareJid, &String)> {
        self.by_jid.iter()
    }
}

fn form_value<'a>(form: &'a Element, var: &str) -> Option<&'a Element> {
    form.children()
        .filter(|c| c.is("field", NS_DATA))
        .find(|f| f.attr("var") == Some(var))
        .and_then(|f| f.get_child("value", NS_DATA))
}

impl Room {
    /// §7.10: jabber:iq:register get (the form, or `<registered/>`) and set (submit, remove).
    pub(super) fn register(
        &mut self,
        from: &FullJid,
        set: bool,
        q: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let bare = from.to_bare();
        let affiliation = self.affiliations.get(&bare);
        if affiliation == Affiliation::Outcast
            || (self.config.members_only && affiliation < Affiliation::Member)
        {
            return Err(StanzaError::not_allowed().text("you may not register with this room"));
        }
        if !set {
            let mut out = Element::bare("query", NS_REGISTER);
            if let Some(nick) = self.registrations.nick_of(&bare) {
                out.append_child(Element::bare("registered", NS_REGISTER));
                out.append_child(xml::text_element("username", NS_REGISTER, nick));
                return Ok(Some(out));
            }
            out.append_child(xml::text_element(
                "instructions",
                NS_REGISTER,
                "Choose the nickname to reserve in this room.",
            ));
            out.append_child(registration_form());
            return Ok(Some(out));
        }
        if q.get_child("remove", NS_REGISTER).is_some() {
            // Cancelling the registration gives up the nickname and the membership it
            // brought; admins and owners keep their affiliation (that is an owner's call).
            let registered = self.registrations.nick_of(&bare).is_some();
            if !registered && affiliation != Affiliation::Member {
                return Err(StanzaError::item_not_found().text("you are not registered"));
            }
            if registered {
                self.registrations.set(bare.clone(), None);
                self.store_registration(bare.clone(), None);
            }
            if affiliation == Affiliation::Member {
                self.dirty = self.stored;
                let change = Change::Affiliation {
                    jid: bare,
                    affiliation: Affiliation::None,
                    reason: Some("registration cancelled".into()),
                };
                self.apply(change, None);
            }
            return Ok(None);
        }
        let Some(form) = q.get_child("x", NS_DATA) else {
            return Err(StanzaError::bad_request().text("submit the muc#register form"));
        };
        if form.attr("type") == Some("cancel") {
            return Ok(None);
        }
        let form_type = form_value(form, "FORM_TYPE").map(|v| v.text());
        if form.attr("type") != Some("submit") || form_type.as_deref() != Some(NS_MUC_REGISTER) {
            return Err(StanzaError::bad_request().text("submit the muc#register form"));
        }
        let nick = form_value(form, "muc#register_roomnick")
            .map(|v| v.text())
            .unwrap_or_default();
        // The nickname must make a valid occupant JID (resourceprep), exactly as given.
        let valid = FullJid::new(&self.occupant_jid(&nick))
            .is_ok_and(|j| j.resource().as_str() == nick && !nick.is_empty());
        if !valid {
            return Err(StanzaError::bad_request().text("a valid nickname is required"));
        }
        self.nick_allowed(&nick)?;
        let in_use = self.occupants.get(&nick).is_some_and(|o| o.bare != bare);
        if self.registrations.reserved_for_other(&nick, &bare) || in_use {
            return Err(StanzaError::conflict().text("that nickname is reserved"));
        }
        self.registrations.set(bare.clone(), Some(nick.clone()));
        self.store_registration(bare.clone(), Some(nick));
        if affiliation == Affiliation::None {
            // §7.10: immediate membership; occupants see the new affiliation.
            self.dirty = self.stored;
            self.apply(
                Change::Affiliation {
                    jid: bare,
                    affiliation: Affiliation::Member,
                    reason: None,
                },
                None,
            );
        }
        Ok(None)
    }

    /// §7.12: disco#info on node `x-roomuser-item`: the requester's reserved nickname, or an
    /// empty query.
    pub(super) fn reserved_nick_info(&self, from: &FullJid) -> Element {
        let mut q = Element::bare("query", NS_INFO);
        xml::set_attr(&mut q, "node", NODE_ROOMUSER);
        if let Some(nick) = self.registrations.nick_of(&from.to_bare()) {
            let mut id = Element::bare("identity", NS_INFO);
            xml::set_attr(&mut id, "category", "conference");
            xml::set_attr(&mut id, "name", nick);
            xml::set_attr(&mut id, "type", "text");
            q.append_child(id);
        }
        q
    }
}

/// The §7.10 form: the nickname is what this service keeps.
fn registration_form() -> Element {
    let mut x = Element::bare("x", NS_DATA);
    xml::set_attr(&mut x, "type", "form");
    x.append_child(xml::text_element("title", NS_DATA, "Room registration"));
    let mut ft = Element::bare("field", NS_DATA);
    xml::set_attr(&mut ft, "var", "FORM_TYPE");
    xml::set_attr(&mut ft, "type", "hidden");
    ft.append_child(xml::text_element("value", NS_DATA, NS_MUC_REGISTER));
    x.append_child(ft);
    let mut nick = Element::bare("field", NS_DATA);
    xml::set_attr(&mut nick, "var", "muc#register_roomnick");
    xml::set_attr(&mut nick, "type", "text-single");
    xml::set_attr(&mut nick, "label", "Desired Nickname");
    nick.append_child(Element::bare("required", NS_DATA));
    x.append_child(nick);
    x
}
