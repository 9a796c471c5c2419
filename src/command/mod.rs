//! What a module declares to offer a command (XEP-0050), as data: its node, name, who may
//! run it, the XEP-0004 forms it asks in order ([`form`]) and the function that acts on the
//! answers. Modules register their own commands on the registry (`Registry::command`); the
//! ad-hoc module only discovers and drives them. Also the small pieces most admin commands
//! share (the XEP-0133 form type, a ready form, a headline to a session).

pub mod form;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use jid::FullJid;
use minidom::Element;

use crate::server::Server;
use crate::xml::{self, ns};
use form::{Field, Form, Kind, Values};

/// XEP-0133's `FORM_TYPE` for the service administration forms.
pub const FORM_ADMIN: &str = "http://jabber.org/protocol/admin";

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Accounts listed in the configuration's `admins`.
    Admin,
    /// Any local account, acting on itself.
    User,
}

/// What a stage's form is built from.
pub struct StageCtx {
    pub server: Arc<Server>,
    pub domain: String,
    /// The answers of the earlier stages.
    pub values: Values,
}

/// A form stage: built from the server and the answers so far.
pub type StageFn = fn(StageCtx) -> BoxFuture<'static, Form>;
/// Acts on all answers. `Err` is shown to the requester as an error note on the last form.
pub type RunFn = fn(Ctx) -> BoxFuture<'static, Result<Done, String>>;

/// One entry of the command table.
pub struct Command {
    pub node: &'static str,
    pub name: &'static str,
    pub access: Access,
    /// Whether the command is offered at all (a feature may be switched off in config).
    pub enabled: fn(&Server) -> bool,
    /// Forms asked in order; none = the command completes on `execute`.
    pub stages: &'static [StageFn],
    pub run: RunFn,
}

/// What a command's run function receives.
pub struct Ctx {
    pub server: Arc<Server>,
    pub requester: FullJid,
    /// The hosted domain the command was sent to.
    pub domain: String,
    pub values: Values,
}

/// A completed command: an info note and/or a result form.
#[derive(Default)]
pub struct Done {
    pub note: Option<String>,
    pub result: Option<Form>,
}

impl Done {
    pub fn note(text: impl Into<String>) -> Done {
        Done {
            note: Some(text.into()),
            result: None,
        }
    }
    pub fn result(form: Form) -> Done {
        Done {
            note: None,
            result: Some(form),
        }
    }
}

/// For commands that are always offered.
pub fn always(_: &Server) -> bool {
    true
}

/// A form already built, as a stage's future.
pub fn now(form: Form) -> BoxFuture<'static, Form> {
    futures::future::ready(form).boxed()
}

/// A form of XEP-0133's `FORM_TYPE`.
pub fn admin_form(title: &str, fields: Vec<Field>) -> Form {
    Form {
        title: title.into(),
        instructions: String::new(),
        form_type: Some(FORM_ADMIN),
        fields,
    }
}

/// A headline from the server (announcements, the message of the day).
pub fn headline(from: &str, to: &str, subject: Option<&str>, body: &str) -> Element {
    let mut m = Element::bare("message", ns::CLIENT);
    xml::set_attr(&mut m, "from", from);
    xml::set_attr(&mut m, "to", to);
    xml::set_attr(&mut m, "type", "headline");
    if let Some(s) = subject.filter(|s| !s.is_empty()) {
        m.append_child(xml::text_element("subject", ns::CLIENT, s));
    }
    m.append_child(xml::text_element("body", ns::CLIENT, body));
    m
}

/// A subject and a message (announcements, the message of the day).
pub fn message_form(_: StageCtx) -> BoxFuture<'static, Form> {
    now(admin_form(
        "Message",
        vec![
            Field::new("subject", Kind::TextSingle, "Subject"),
            Field::new("body", Kind::TextMulti, "Message").required(),
        ],
    ))
}

/// The body of a message form (text-multi lines joined).
pub fn body(values: &Values) -> String {
    values.get("body").map(|v| v.join("\n")).unwrap_or_default()
}
