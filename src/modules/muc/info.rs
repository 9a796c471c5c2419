//! disco#info of a room (XEP-0045 §6.4): its identity, the muc_* features of its
//! configuration and the muc#roominfo form.

use jid::FullJid;
use minidom::Element;

use super::affiliations::Affiliation;
use super::register::NS_REGISTER;
use super::room::{Room, SELF_PING_OPTIMIZATION};
use super::service::feature;
use super::voice::NS_REQUEST;
use super::{NS_DATA, NS_MUC, NS_OCCUPANT_ID, NS_ROOMINFO};
use crate::error::StanzaError;
use crate::modules::disco::NS_INFO;
use crate::xml;

impl Room {
    /// §6.4: identity, muc_* features and the muc#roominfo form.
    pub(super) fn disco_info(&self, from: &FullJid) -> Result<Option<Element>, StanzaError> {
        if self.locked && self.affiliations.get(&from.to_bare()) != Affiliation::Owner {
            return Err(StanzaError::item_not_found());
        }
        let c = &self.config;
        let mut q = Element::bare("query", NS_INFO);
        let mut id = Element::bare("identity", NS_INFO);
        xml::set_attr(&mut id, "category", "conference");
        xml::set_attr(&mut id, "type", "text");
        let name = if c.name.is_empty() {
            self.jid.node().map(|n| n.as_str()).unwrap_or("")
        } else {
            &c.name
        };
        xml::set_attr(&mut id, "name", name);
        q.append_child(id);
        let pick = |b: bool, y: &'static str, n: &'static str| if b { y } else { n };
        for var in [
            NS_MUC,
            NS_INFO,
            NS_OCCUPANT_ID,
            NS_REGISTER,
            SELF_PING_OPTIMIZATION,
            // §7.13: occupants may ask for voice with this form (clients look for it).
            NS_REQUEST,
            pick(c.persistent, "muc_persistent", "muc_temporary"),
            pick(c.public, "muc_public", "muc_hidden"),
            pick(c.members_only, "muc_membersonly", "muc_open"),
            pick(c.moderated, "muc_moderated", "muc_unmoderated"),
            pick(c.password.is_some(), "muc_passwordprotected", "muc_unsecured"),
            pick(c.whois_anyone, "muc_nonanonymous", "muc_semianonymous"),
        ] {
            q.append_child(feature(var));
        }
        if self.archiving() {
            // XEP-0313 §7 and what the room's archive offers with it.
            for var in [
                crate::modules::mam::NS,
                crate::modules::mam::NS_EXTENDED,
                crate::modules::mam::policy::NS_SID,
                crate::modules::mam::fulltext::NS,
                super::archive::NS_MODERATE,
            ] {
                q.append_child(feature(var));
            }
        }
        let mut x = Element::bare("x", NS_DATA);
        xml::set_attr(&mut x, "type", "result");
        let subject = self.subject.as_ref().map(|s| s.1.as_str()).unwrap_or("");
        let occupants = self.occupants.len().to_string();
        let history = self.config.history_length.to_string();
        let b = |v: bool| if v { "1" } else { "0" };
        // §6.4 and the muc#roominfo registry (§15.5.4); the muc#roomconfig_* ones repeat the
        // room's settings that clients show before entering.
        for (var, kind, label, value) in [
            ("FORM_TYPE", "hidden", "", NS_ROOMINFO),
            (
                "muc#maxhistoryfetch",
                "text-single",
                "Maximum number of history messages returned by the room",
                history.as_str(),
            ),
            (
                "muc#roominfo_description",
                "text-single",
                "Description",
                c.description.as_str(),
            ),
            (
                "muc#roominfo_occupants",
                "text-single",
                "Number of occupants",
                occupants.as_str(),
            ),
            ("muc#roominfo_subject", "text-single", "Current subject", subject),
            (
                "muc#roominfo_subjectmod",
                "boolean",
                "Occupants may change the subject",
                b(c.change_subject),
            ),
            (
                "muc#roomconfig_roomname",
                "text-single",
                "Room name",
                c.name.as_str(),
            ),
            (
                "muc#roomconfig_changesubject",
                "boolean",
                "Occupants may change the subject",
                b(c.change_subject),
            ),
            (
                "muc#roomconfig_allowinvites",
                "boolean",
                "Occupants may invite others",
                b(c.allow_invites),
            ),
            (
                "muc#roomconfig_allowpm",
                "list-single",
                "Who may send private messages",
                c.allow_pm.name(),
            ),
        ] {
            let mut f = Element::bare("field", NS_DATA);
            xml::set_attr(&mut f, "var", var);
            xml::set_attr(&mut f, "type", kind);
            if !label.is_empty() {
                xml::set_attr(&mut f, "label", label);
            }
            f.append_child(xml::text_element("value", NS_DATA, value));
            x.append_child(f);
        }
        q.append_child(x);
        Ok(Some(q))
    }
}
