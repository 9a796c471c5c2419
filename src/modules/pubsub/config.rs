//! A node's configuration (XEP-0060 §16.4.4, `pubsub#node_config`): the options this engine
//! implements, how a submitted form changes them, how `publish-options` are checked against
//! them (§7.1.5) and how they are stored (`key=value` lines).

use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType, Option_};

pub const NS_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
pub const NS_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// The most items a node keeps; `max` in a form means this.
pub const MAX_ITEMS: u32 = 256;

/// Who may see a node's items and notifications (XEP-0060 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessModel {
    Open,
    Presence,
    Roster,
    Whitelist,
    /// Subscriptions wait for an owner's approval (the service only).
    Authorize,
}

impl AccessModel {
    fn parse(s: &str) -> Option<AccessModel> {
        Some(match s {
            "open" => AccessModel::Open,
            "presence" => AccessModel::Presence,
            "roster" => AccessModel::Roster,
            "whitelist" => AccessModel::Whitelist,
            "authorize" => AccessModel::Authorize,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
            AccessModel::Authorize => "authorize",
        }
    }
}

/// When the last item goes to a new subscriber (`pubsub#send_last_published_item`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    OnSubAndPresence,
}

impl SendLast {
    fn parse(s: &str) -> Option<SendLast> {
        Some(match s {
            "never" => SendLast::Never,
            "on_sub" => SendLast::OnSub,
            "on_sub_and_presence" => SendLast::OnSubAndPresence,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSub => "on_sub",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub title: String,
    pub access_model: AccessModel,
    /// Roster groups whose members may access a `roster` node.
    pub roster_groups_allowed: Vec<String>,
    pub max_items: u32,
    pub persist_items: bool,
    pub deliver_notifications: bool,
    pub deliver_payloads: bool,
    pub notify_retract: bool,
    pub notify_delete: bool,
    pub notify_config: bool,
    pub send_last_published_item: SendLast,
}

impl Default for NodeConfig {
    /// XEP-0163 §4.1 / §3: PEP defaults (presence access, last item on presence).
    fn default() -> Self {
        NodeConfig {
            title: String::new(),
            access_model: AccessModel::Presence,
            roster_groups_allowed: Vec::new(),
            max_items: 1,
            persist_items: true,
            deliver_notifications: true,
            deliver_payloads: true,
            notify_retract: true,
            notify_delete: true,
            notify_config: false,
            send_last_published_item: SendLast::OnSubAndPresence,
        }
    }
}

impl NodeConfig {
    /// Defaults of a node on the XEP-0060 service: open, ten items, last item on subscribe.
    pub fn service_default() -> Self {
        NodeConfig {
            access_model: AccessModel::Open,
            max_items: 10,
            send_last_published_item: SendLast::OnSub,
            ..NodeConfig::default()
        }
    }
}

impl NodeConfig {
    /// A personal node has no subscriptions to approve: `authorize` is the service's only.
    pub fn check_pep(&self) -> Result<(), BadOption> {
        if self.access_model == AccessModel::Authorize {
            return Err(BadOption(
                "pubsub#access_model: unsupported value 'authorize'".into(),
            ));
        }
        Ok(())
    }
}

/// Why an option was refused: the field and, for the answer, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOption(pub String);

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn parse_max_items(v: &str) -> Option<u32> {
    if v == "max" {
        return Some(MAX_ITEMS);
    }
    v.parse::<u32>().ok().filter(|n| (1..=MAX_ITEMS).contains(n))
}

/// The field names without the `pubsub#` prefix this engine knows.
const KNOWN: &[&str] = &[
    "title",
    "access_model",
    "roster_groups_allowed",
    "max_items",
    "persist_items",
    "deliver_notifications",
    "deliver_payloads",
    "notify_retract",
    "notify_delete",
    "notify_config",
    "send_last_published_item",
];

impl NodeConfig {
    /// Applies one option (`key` without `pubsub#`). Unknown keys are refused.
    pub fn apply(&mut self, key: &str, values: &[String]) -> Result<(), BadOption> {
        let one = values.first().map(String::as_str).unwrap_or("");
        let bad = || BadOption(format!("pubsub#{key}: unsupported value '{one}'"));
        match key {
            "title" => self.title = one.to_owned(),
            "access_model" => self.access_model = AccessModel::parse(one).ok_or_else(bad)?,
            "roster_groups_allowed" => self.roster_groups_allowed = values.to_vec(),
            "max_items" => self.max_items = parse_max_items(one).ok_or_else(bad)?,
            "persist_items" => self.persist_items = parse_bool(one).ok_or_else(bad)?,
            "deliver_notifications" => self.deliver_notifications = parse_bool(one).ok_or_else(bad)?,
            "deliver_payloads" => self.deliver_payloads = parse_bool(one).ok_or_else(bad)?,
            "notify_retract" => self.notify_retract = parse_bool(one).ok_or_else(bad)?,
            "notify_delete" => self.notify_delete = parse_bool(one).ok_or_else(bad)?,
            "notify_config" => self.notify_config = parse_bool(one).ok_or_else(bad)?,
            "send_last_published_item" => {
                self.send_last_published_item = SendLast::parse(one).ok_or_else(bad)?
            }
            _ => return Err(BadOption(format!("pubsub#{key} is not supported"))),
        }
        Ok(())
    }

    /// The options of a submitted form (XEP-0060 §8.2.5, §8.1.3), `FORM_TYPE` checked.
    /// A form that is not `submit` (`cancel`) changes nothing.
    pub fn apply_form(&mut self, form: &DataForm, form_type: &str) -> Result<(), BadOption> {
        if form.type_ == DataFormType::Cancel {
            return Ok(());
        }
        if form.form_type().is_some_and(|t| t != form_type) {
            return Err(BadOption(format!("the form is not a {form_type} form")));
        }
        let mut next = self.clone();
        for field in &form.fields {
            let Some(var) = field.var.as_deref() else { continue };
            if var == "FORM_TYPE" {
                continue;
            }
            let key = var
                .strip_prefix("pubsub#")
                .ok_or_else(|| BadOption(format!("{var} is not supported")))?;
            next.apply(key, &field.values)?;
        }
        if next.persist_items && next.max_items == 0 {
            next.max_items = 1;
        }
        *self = next;
        Ok(())
    }

    /// XEP-0060 §7.1.5: whether every precondition of a `publish-options` form holds for this
    /// configuration. `Err` names the first that does not.
    pub fn check_preconditions(&self, form: &DataForm) -> Result<(), BadOption> {
        for field in &form.fields {
            let Some(var) = field.var.as_deref() else { continue };
            if var == "FORM_TYPE" {
                continue;
            }
            let mut wanted = self.clone();
            let key = var.strip_prefix("pubsub#").unwrap_or(var);
            if wanted.apply(key, &field.values).is_err() || wanted != *self {
                return Err(BadOption(format!(
                    "{var} does not match the node's configuration"
                )));
            }
        }
        Ok(())
    }

    /// Stored form: one `key=value` line per value.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (key, values) in self.pairs() {
            for v in values {
                out.push_str(key);
                out.push('=');
                out.push_str(&v.replace('\n', " "));
                out.push('\n');
            }
        }
        out
    }

    /// Reads `to_text`'s output; options unknown or unreadable keep their defaults.
    pub fn from_text(text: &str) -> NodeConfig {
        let mut config = NodeConfig::default();
        let mut groups = Vec::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key == "roster_groups_allowed" {
                groups.push(value.to_owned());
            } else if let Err(e) = config.apply(key, &[value.to_owned()]) {
                tracing::warn!(option = %e.0, "ignoring a stored PEP node option");
            }
        }
        config.roster_groups_allowed = groups;
        config
    }

    fn pairs(&self) -> Vec<(&'static str, Vec<String>)> {
        let b = |v: bool| vec![if v { "1" } else { "0" }.to_owned()];
        vec![
            ("title", vec![self.title.clone()]),
            ("access_model", vec![self.access_model.as_str().to_owned()]),
            ("roster_groups_allowed", self.roster_groups_allowed.clone()),
            ("max_items", vec![self.max_items.to_string()]),
            ("persist_items", b(self.persist_items)),
            ("deliver_notifications", b(self.deliver_notifications)),
            ("deliver_payloads", b(self.deliver_payloads)),
            ("notify_retract", b(self.notify_retract)),
            ("notify_delete", b(self.notify_delete)),
            ("notify_config", b(self.notify_config)),
            (
                "send_last_published_item",
                vec![self.send_last_published_item.as_str().to_owned()],
            ),
        ]
    }

    /// The configuration form (XEP-0060 §8.2.1, `type='form'`), current values filled in.
    pub fn to_form(&self) -> DataForm {
        let mut fields = Vec::with_capacity(KNOWN.len());
        for (key, values) in self.pairs() {
            let var = format!("pubsub#{key}");
            let (kind, options): (FieldType, &[&str]) = match key {
                "title" | "max_items" => (FieldType::TextSingle, &[]),
                "access_model" => (
                    FieldType::ListSingle,
                    &["open", "presence", "roster", "whitelist", "authorize"],
                ),
                "roster_groups_allowed" => (FieldType::TextMulti, &[]),
                "send_last_published_item" => {
                    (FieldType::ListSingle, &["never", "on_sub", "on_sub_and_presence"])
                }
                _ => (FieldType::Boolean, &[]),
            };
            let mut field = Field::new(&var, kind);
            field.values = values;
            field.options = options
                .iter()
                .map(|o| Option_ {
                    label: None,
                    value: (*o).to_owned(),
                })
                .collect();
            fields.push(field);
        }
        DataForm::new(DataFormType::Form, NS_NODE_CONFIG, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)], form_type: &str) -> DataForm {
        DataForm::new(
            DataFormType::Submit,
            form_type,
            fields.iter().map(|(k, v)| Field::text_single(k, v)).collect(),
        )
    }

    #[test]
    fn text_round_trip() {
        let c = NodeConfig {
            access_model: AccessModel::Roster,
            roster_groups_allowed: vec!["Friends".into(), "Family & co".into()],
            max_items: MAX_ITEMS,
            notify_retract: false,
            title: "x=y".into(),
            ..NodeConfig::default()
        };
        assert_eq!(NodeConfig::from_text(&c.to_text()), c);
    }

    #[test]
    fn forms_change_options_and_refuse_bad_values() {
        let mut c = NodeConfig::default();
        c.apply_form(
            &form(
                &[("pubsub#access_model", "open"), ("pubsub#max_items", "max")],
                NS_NODE_CONFIG,
            ),
            NS_NODE_CONFIG,
        )
        .unwrap();
        assert_eq!(c.access_model, AccessModel::Open);
        assert_eq!(c.max_items, MAX_ITEMS);
        for bad in [
            ("pubsub#access_model", "bogus"),
            ("pubsub#max_items", "0"),
            ("pubsub#persist_items", "maybe"),
            ("pubsub#unknown", "1"),
        ] {
            let before = c.clone();
            assert!(
                c.apply_form(&form(&[bad], NS_NODE_CONFIG), NS_NODE_CONFIG)
                    .is_err(),
                "{bad:?}"
            );
            assert_eq!(c, before, "a refused form changes nothing");
        }
        assert!(c.apply_form(&form(&[], "urn:other"), NS_NODE_CONFIG).is_err());
    }

    #[test]
    fn preconditions_compare_with_the_configuration() {
        let mut c = NodeConfig::default();
        let open = form(&[("pubsub#access_model", "open")], NS_PUBLISH_OPTIONS);
        assert!(c.check_preconditions(&open).is_err());
        c.access_model = AccessModel::Open;
        assert!(c.check_preconditions(&open).is_ok());
        assert!(
            c.check_preconditions(&form(&[("pubsub#persist_items", "true")], NS_PUBLISH_OPTIONS))
                .is_ok()
        );
        assert!(
            c.check_preconditions(&form(&[("pubsub#whatever", "1")], NS_PUBLISH_OPTIONS))
                .is_err()
        );
    }
}
