//! Voice requests (XEP-0045 §7.13) and their approval by moderators (§8.6): a visitor submits
//! a muc#request form to the room, each moderator gets the approval form, and a moderator's
//! submitted approval grants voice as in §8.3.

use std::time::{Duration, Instant};

use jid::FullJid;
use minidom::Element;

use super::NS_DATA;
use super::affiliations::{Role, may_set_role};
use super::room::Room;
use crate::error::StanzaError;
use crate::xml::{self, ns};

pub const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";

/// One request per occupant session in this window; more are dropped, not forwarded, so a
/// visitor cannot flood the moderators.
const REQUEST_INTERVAL: Duration = Duration::from_secs(30);
/// Sessions remembered for that rule before the oldest are forgotten.
const MAX_REMEMBERED: usize = 1024;

/// Recent voice requests, per requesting session.
#[derive(Default)]
pub struct VoiceRequests(std::collections::HashMap<FullJid, Instant>);

impl VoiceRequests {
    /// Whether `jid` may send a request now (and notes that it did).
    fn allow(&mut self, jid: &FullJid) -> bool {
        let now = Instant::now();
        if self
            .0
            .get(jid)
            .is_some_and(|t| now.duration_since(*t) < REQUEST_INTERVAL)
        {
            return false;
        }
        if self.0.len() >= MAX_REMEMBERED {
            self.0.retain(|_, t| now.duration_since(*t) < REQUEST_INTERVAL);
        }
        if self.0.len() < MAX_REMEMBERED {
            self.0.insert(jid.clone(), now);
        }
        true
    }
}

/// The muc#request form of a message, if it carries one.
pub fn request_form(m: &Element) -> Option<&Element> {
    m.children()
        .filter(|c| c.is("x", NS_DATA))
        .find(|x| field(x, "FORM_TYPE").as_deref() == Some(NS_REQUEST))
}

fn field(form: &Element, var: &str) -> Option<String> {
    form.children()
        .filter(|c| c.is("field", NS_DATA))
        .find(|f| f.attr("var") == Some(var))
        .and_then(|f| f.get_child("value", NS_DATA))
        .map(|v| v.text())
}

fn form_field(var: &str, kind: &str, label: &str, value: &str) -> Element {
    let mut f = Element::bare("field", NS_DATA);
    xml::set_attr(&mut f, "var", var);
    xml::set_attr(&mut f, "type", kind);
    if !label.is_empty() {
        xml::set_attr(&mut f, "label", label);
    }
    f.append_child(xml::text_element("value", NS_DATA, value));
    f
}

impl Room {
    /// A muc#request form sent to the room: a visitor's request, or a moderator's answer.
    pub(super) fn voice_form(&mut self, from: &FullJid, m: &Element, form: &Element) {
        let Some(o) = self.occupants.by_jid(from) else {
            return self.error(m, StanzaError::not_acceptable().text("you are not in the room"));
        };
        if form.attr("type") != Some("submit") {
            return self.error(m, StanzaError::bad_request().text("submit the muc#request form"));
        }
        if field(form, "muc#role")
            .as_deref()
            .is_some_and(|r| r != "participant")
        {
            return self.error(m, StanzaError::bad_request().text("only voice may be requested"));
        }
        if field(form, "muc#request_allow").is_some() {
            return self.approve_voice(from, m, form);
        }
        // §7.13: only a visitor asks, and only a moderated room has visitors to promote.
        if !self.config.moderated {
            return self.error(m, StanzaError::not_allowed().text("the room is not moderated"));
        }
        if o.role != Role::Visitor {
            return self.error(m, StanzaError::not_acceptable().text("you already have voice"));
        }
        let nick = o.nick.clone();
        if !self.voice_requests.allow(from) {
            return;
        }
        // §8.6: the approval form, to every moderator.
        let mut x = Element::bare("x", NS_DATA);
        xml::set_attr(&mut x, "type", "form");
        x.append_child(xml::text_element("title", NS_DATA, "Voice request"));
        x.append_child(xml::text_element(
            "instructions",
            NS_DATA,
            "To grant voice to this person, set \"Grant voice\" and submit the form.",
        ));
        x.append_child(form_field("FORM_TYPE", "hidden", "", NS_REQUEST));
        x.append_child(form_field(
            "muc#role",
            "text-single",
            "Requested role",
            "participant",
        ));
        x.append_child(form_field("muc#jid", "jid-single", "User ID", &from.to_string()));
        x.append_child(form_field("muc#roomnick", "text-single", "Room nickname", &nick));
        x.append_child(form_field(
            "muc#request_allow",
            "boolean",
            "Grant voice to this person?",
            "false",
        ));
        let mut out = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut out, "from", &self.jid_str);
        self.next_iq += 1;
        xml::set_attr(&mut out, "id", &format!("voice-{}", self.next_iq));
        out.append_child(x);
        for r in self.occupants.iter().filter(|r| r.role == Role::Moderator) {
            self.send_to(r, &out);
        }
    }

    /// §8.6: a moderator's submitted approval form grants voice when `muc#request_allow` is true.
    fn approve_voice(&mut self, from: &FullJid, m: &Element, form: &Element) {
        let Some(actor) = self.occupants.by_jid(from) else {
            return;
        };
        if actor.role != Role::Moderator {
            return self.error(m, StanzaError::forbidden().text("only moderators grant voice"));
        }
        let allow = matches!(field(form, "muc#request_allow").as_deref(), Some("true" | "1"));
        if !allow {
            return; // denied or skipped: nothing changes
        }
        let Some(nick) = field(form, "muc#roomnick") else {
            return self.error(m, StanzaError::bad_request().text("muc#roomnick is missing"));
        };
        let Some(target) = self.occupants.get(&nick) else {
            return self.error(m, StanzaError::item_not_found().text("no such occupant"));
        };
        if target.role != Role::Visitor {
            return; // already has voice (another moderator was quicker)
        }
        let actor_aff = self.affiliations.get(&actor.bare);
        let target_aff = self.affiliations.get(&target.bare);
        if !may_set_role(
            (actor_aff, actor.role),
            (target_aff, target.role),
            Role::Participant,
        ) {
            return self.error(m, StanzaError::not_allowed());
        }
        if let Some(o) = self.occupants.get_mut(&nick) {
            o.role = Role::Participant;
        }
        self.broadcast_presence(&nick, &[], None);
    }
}
