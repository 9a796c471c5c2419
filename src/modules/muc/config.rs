//! The muc#roomconfig form (XEP-0045 §10.2, §15.5.3) and a room's configuration.

use minidom::Element;

use super::{NS_DATA, NS_ROOMCONFIG};
use crate::config::MucConfig;
use crate::error::StanzaError;
use crate::xml;

/// Who may send private messages (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    Nobody,
}

impl AllowPm {
    pub fn name(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::Nobody => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// Set when the room is password-protected.
    pub password: Option<String>,
    pub max_users: usize,
    /// `whois=anyone`: every occupant sees real JIDs (non-anonymous room).
    pub whois_anyone: bool,
    /// Participants (not only moderators) may change the subject.
    pub change_subject: bool,
    pub allow_invites: bool,
    pub allow_pm: AllowPm,
    pub history_length: usize,
    /// `muc#roomconfig_enablearchiving` (XEP-0313): archived while persistent.
    pub archiving: bool,
}

impl RoomConfig {
    pub fn defaults(muc: &MucConfig) -> Self {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            max_users: muc.max_occupants,
            whois_anyone: false,
            change_subject: false,
            allow_invites: false,
            allow_pm: AllowPm::Anyone,
            history_length: muc.history_default,
            archiving: muc.archiving_default,
        }
    }

    /// The form an owner fills in (§10.2, Example 163).
    pub fn form(&self, muc: &MucConfig) -> Element {
        let mut x = Element::bare("x", NS_DATA);
        xml::set_attr(&mut x, "type", "form");
        x.append_child(xml::text_element("title", NS_DATA, "Room configuration"));
        x.append_child(field("FORM_TYPE", "hidden", None, &[NS_ROOMCONFIG], &[]));
        let b = |v: bool| if v { "1" } else { "0" };
        let max = self.max_users.to_string();
        let hist = self.history_length.to_string();
        let limit = muc.max_occupants.to_string();
        let mut user_opts = vec!["10", "20", "30", "50", "100"];
        user_opts.retain(|o| o.parse::<usize>().unwrap_or(0) < muc.max_occupants);
        user_opts.push(&limit);
        for (var, kind, label, value) in [
            (
                "roomname",
                "text-single",
                "Natural-language room name",
                self.name.as_str(),
            ),
            (
                "roomdesc",
                "text-single",
                "Short description of the room",
                self.description.as_str(),
            ),
            (
                "persistentroom",
                "boolean",
                "Make the room persistent",
                b(self.persistent),
            ),
            (
                "publicroom",
                "boolean",
                "Make the room publicly searchable",
                b(self.public),
            ),
            (
                "membersonly",
                "boolean",
                "Make the room members-only",
                b(self.members_only),
            ),
            (
                "moderatedroom",
                "boolean",
                "Make the room moderated",
                b(self.moderated),
            ),
            (
                "passwordprotectedroom",
                "boolean",
                "Password required to enter",
                b(self.password.is_some()),
            ),
            (
                "roomsecret",
                "text-private",
                "Password",
                self.password.as_deref().unwrap_or(""),
            ),
            (
                "maxusers",
                "list-single",
                "Maximum number of occupants",
                max.as_str(),
            ),
            (
                "whois",
                "list-single",
                "Who may discover real JIDs",
                if self.whois_anyone { "anyone" } else { "moderators" },
            ),
            (
                "changesubject",
                "boolean",
                "Allow occupants to change the subject",
                b(self.change_subject),
            ),
            (
                "allowinvites",
                "boolean",
                "Allow occupants to invite others",
                b(self.allow_invites),
            ),
            (
                "allowpm",
                "list-single",
                "Who may send private messages",
                self.allow_pm.name(),
            ),
            (
                "historylength",
                "text-single",
                "Messages of discussion history",
                hist.as_str(),
            ),
            (
                "enablearchiving",
                "boolean",
                "Archive the room's messages (while persistent)",
                b(self.archiving),
            ),
        ] {
            let var = format!("muc#roomconfig_{var}");
            let options: &[&str] = match var.as_str() {
                "muc#roomconfig_maxusers" => &user_opts,
                "muc#roomconfig_whois" => &["moderators", "anyone"],
                "muc#roomconfig_allowpm" => &["anyone", "participants", "moderators", "none"],
                _ => &[],
            };
            x.append_child(field(&var, kind, Some(label), &[value], options));
        }
        x
    }

    /// Applies a submitted form (§10.2); unknown fields are ignored, invalid values refused.
    pub fn apply(&self, form: &Element, muc: &MucConfig) -> Result<RoomConfig, StanzaError> {
        let mut c = self.clone();
        // Each `None` until the form names it.
        let mut protected: Option<bool> = None;
        let mut secret: Option<String> = None;
        let bad = |what: &str| StanzaError::not_acceptable().text(format!("invalid value for {what}"));
        for f in form.children().filter(|f| f.is("field", NS_DATA)) {
            let Some(var) = f.attr("var") else { continue };
            let values: Vec<String> = f
                .children()
                .filter(|v| v.is("value", NS_DATA))
                .map(|v| v.text())
                .collect();
            let value = values.first().map(String::as_str).unwrap_or("");
            let boolean = || match value {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(bad(var)),
            };
            match var.strip_prefix("muc#roomconfig_").unwrap_or("") {
                "roomname" => c.name = value.to_string(),
                "roomdesc" => c.description = value.to_string(),
                "persistentroom" => c.persistent = boolean()?,
                "publicroom" => c.public = boolean()?,
                "membersonly" => c.members_only = boolean()?,
                "moderatedroom" => c.moderated = boolean()?,
                "passwordprotectedroom" => protected = Some(boolean()?),
                "roomsecret" => secret = Some(value.to_string()),
                "maxusers" => {
                    c.max_users = match value {
                        "" | "none" => muc.max_occupants,
                        v => v
                            .parse::<usize>()
                            .map_err(|_| bad(var))?
                            .clamp(1, muc.max_occupants),
                    }
                }
                "whois" => {
                    c.whois_anyone = match value {
                        "anyone" => true,
                        "moderators" => false,
                        _ => return Err(bad(var)),
                    }
                }
                "changesubject" => c.change_subject = boolean()?,
                "allowinvites" => c.allow_invites = boolean()?,
                "allowpm" => {
                    c.allow_pm = match value {
                        "anyone" => AllowPm::Anyone,
                        "participants" => AllowPm::Participants,
                        "moderators" => AllowPm::Moderators,
                        "none" => AllowPm::Nobody,
                        _ => return Err(bad(var)),
                    }
                }
                "enablearchiving" => c.archiving = boolean()?,
                "historylength" => {
                    c.history_length = value.parse::<usize>().map_err(|_| bad(var))?.min(muc.max_history)
                }
                _ => {}
            }
        }
        // A form without `passwordprotectedroom` (clients that only show the secret) protects
        // the room with a non-empty secret and unprotects it with an empty one.
        let protected = protected.unwrap_or(match &secret {
            Some(s) => !s.is_empty(),
            None => self.password.is_some(),
        });
        let secret = match secret {
            Some(s) => Some(s).filter(|s| !s.is_empty()),
            None => self.password.clone(),
        };
        c.password = if protected {
            Some(secret.ok_or_else(|| {
                StanzaError::not_acceptable().text("a password-protected room needs a password")
            })?)
        } else {
            None
        };
        Ok(c)
    }

    /// The service's length limits on the name and description (`[muc]`), checked on an
    /// owner's submission for values that changed from `old`: a room keeps what it had if the
    /// limits shrink.
    pub fn check_limits(&self, old: &RoomConfig, muc: &MucConfig) -> Result<(), StanzaError> {
        for (what, value, before, max) in [
            ("room name", &self.name, &old.name, muc.max_room_name_length),
            (
                "room description",
                &self.description,
                &old.description,
                muc.max_description_length,
            ),
        ] {
            if value != before && value.chars().count() > max {
                return Err(StanzaError::not_acceptable()
                    .text(format!("the {what} may have at most {max} characters")));
            }
        }
        Ok(())
    }

    /// Status codes announcing a change from `old` (§10.2.1): 104 always, 172/173 for
    /// anonymity.
    pub fn change_codes(old: &RoomConfig, new: &RoomConfig) -> Vec<u16> {
        let mut codes = vec![104];
        if old.whois_anyone != new.whois_anyone {
            codes.push(if new.whois_anyone { 172 } else { 173 });
        }
        codes
    }
}

fn field(var: &str, kind: &str, label: Option<&str>, values: &[&str], options: &[&str]) -> Element {
    let mut f = Element::bare("field", NS_DATA);
    xml::set_attr(&mut f, "var", var);
    xml::set_attr(&mut f, "type", kind);
    if let Some(label) = label {
        xml::set_attr(&mut f, "label", label);
    }
    for v in values {
        f.append_child(xml::text_element("value", NS_DATA, v));
    }
    for o in options {
        let mut opt = Element::bare("option", NS_DATA);
        opt.append_child(xml::text_element("value", NS_DATA, o));
        f.append_child(opt);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(fields: &[(&str, &str)]) -> Element {
        let mut x = Element::bare("x", NS_DATA);
        xml::set_attr(&mut x, "type", "submit");
        for (var, value) in fields {
            x.append_child(field(
                &format!("muc#roomconfig_{var}"),
                "text-single",
                None,
                &[value],
                &[],
            ));
        }
        x
    }

    #[test]
    fn apply_reads_fields_and_checks_password() {
        let muc = MucConfig::default();
        let c = RoomConfig::defaults(&muc);
        let n = c
            .apply(
                &submit(&[
                    ("roomname", "Lounge"),
                    ("persistentroom", "1"),
                    ("maxusers", "100000"),
                    ("whois", "anyone"),
                ]),
                &muc,
            )
            .unwrap();
        assert_eq!(n.name, "Lounge");
        assert!(n.persistent);
        assert_eq!(n.max_users, muc.max_occupants);
        assert_eq!(RoomConfig::change_codes(&c, &n), vec![104, 172]);
        assert!(c.apply(&submit(&[("passwordprotectedroom", "1")]), &muc).is_err());
        let p = c
            .apply(
                &submit(&[("passwordprotectedroom", "1"), ("roomsecret", "s3")]),
                &muc,
            )
            .unwrap();
        assert_eq!(p.password.as_deref(), Some("s3"));
        // The secret alone protects, and an empty one unprotects.
        let q = c.apply(&submit(&[("roomsecret", "s4")]), &muc).unwrap();
        assert_eq!(q.password.as_deref(), Some("s4"));
        let r = q.apply(&submit(&[("roomsecret", "")]), &muc).unwrap();
        assert_eq!(r.password, None);
        // A form naming neither keeps what the room had.
        let kept = q.apply(&submit(&[("roomname", "x")]), &muc).unwrap();
        assert_eq!(kept.password.as_deref(), Some("s4"));
        assert!(c.apply(&submit(&[("whois", "nobody")]), &muc).is_err());
        // The form round-trips.
        let form = c.form(&muc);
        let back = c.apply(&form, &muc).unwrap();
        assert_eq!(back, c);
    }
}
