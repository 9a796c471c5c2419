//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3), as values.

use minidom::Element;

use crate::xml::ns;

/// Defined stream error conditions (RFC 6120 §4.9.3) that the server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorCondition {
    BadFormat,
    Conflict,
    ConnectionTimeout,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    ResourceConstraint,
    RestrictedXml,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamErrorCondition {
    pub fn name(self) -> &'static str {
        use StreamErrorCondition::*;
        match self {
            BadFormat => "bad-format",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

/// A stream error to send before closing, with an optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub condition: StreamErrorCondition,
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), serialized; e.g. XEP-0198's
    /// `<handled-count-too-high/>`.
    pub application: Option<String>,
}

impl StreamError {
    pub fn new(condition: StreamErrorCondition) -> Self {
        StreamError {
            condition,
            text: None,
            application: None,
        }
    }

    pub fn with_text(condition: StreamErrorCondition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
            application: None,
        }
    }

    /// Adds an application-specific condition element.
    pub fn with_application(mut self, condition: &minidom::Element) -> Self {
        self.application = Some(crate::xml::to_string(condition));
        self
    }

    /// `<stream:error>` as raw XML: written inside an open stream, so it uses the stream prefix.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("<stream:error><");
        out.push_str(self.condition.name());
        out.push_str(" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
        if let Some(text) = &self.text {
            out.push_str("<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>");
            out.push_str(&crate::xml::escape(text));
            out.push_str("</text>");
        }
        if let Some(application) = &self.application {
            out.push_str(application);
        }
        out.push_str("</stream:error>");
        out
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.condition.name())?;
        if let Some(t) = &self.text {
            write!(f, " ({t})")?;
        }
        Ok(())
    }
}

/// RFC 6120 §8.3.2 error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// A stanza error (RFC 6120 §8.3): type, defined condition, optional text, optional
/// application-specific condition (§8.3.4, e.g. XEP-0050's `<bad-action/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub kind: ErrorType,
    /// The defined condition element name, e.g. "service-unavailable".
    pub condition: &'static str,
    pub text: Option<String>,
    /// Boxed: most errors have none, and the error travels in every handler's `Result`.
    pub application: Option<Box<Element>>,
}

impl StanzaError {
    /// For `map_err` on a storage call: the cause is logged (an error of ours, with `what`
    /// saying which feature or operation) and the requester gets a bare
    /// `internal-server-error`, nothing of the cause.
    pub fn storage<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> StanzaError {
        move |e| {
            tracing::error!(error = %e, "{what}");
            StanzaError::internal_server_error()
        }
    }

    pub const fn new(kind: ErrorType, condition: &'static str) -> Self {
        StanzaError {
            kind,
            condition,
            text: None,
            application: None,
        }
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds an application-specific condition: an empty element `name` in namespace `ns`
    /// (RFC 6120 §8.3.4), placed after the defined condition and the text.
    pub fn application(mut self, name: &str, ns: &str) -> Self {
        self.application = Some(Box::new(Element::bare(name, ns)));
        self
    }

    /// Adds an application-specific condition element with content or attributes.
    pub fn with_application(mut self, element: Element) -> Self {
        self.application = Some(Box::new(element));
        self
    }

    pub fn bad_request() -> Self {
        Self::new(ErrorType::Modify, "bad-request")
    }
    pub fn service_unavailable() -> Self {
        Self::new(ErrorType::Cancel, "service-unavailable")
    }
    pub fn feature_not_implemented() -> Self {
        Self::new(ErrorType::Cancel, "feature-not-implemented")
    }
    pub fn item_not_found() -> Self {
        Self::new(ErrorType::Cancel, "item-not-found")
    }
    pub fn not_allowed() -> Self {
        Self::new(ErrorType::Cancel, "not-allowed")
    }
    pub fn forbidden() -> Self {
        Self::new(ErrorType::Auth, "forbidden")
    }
    pub fn not_authorized() -> Self {
        Self::new(ErrorType::Auth, "not-authorized")
    }
    pub fn conflict() -> Self {
        Self::new(ErrorType::Cancel, "conflict")
    }
    pub fn not_acceptable() -> Self {
        Self::new(ErrorType::Modify, "not-acceptable")
    }
    pub fn jid_malformed() -> Self {
        Self::new(ErrorType::Modify, "jid-malformed")
    }
    pub fn internal_server_error() -> Self {
        Self::new(ErrorType::Cancel, "internal-server-error")
    }
    pub fn remote_server_not_found() -> Self {
        Self::new(ErrorType::Cancel, "remote-server-not-found")
    }
    pub fn policy_violation() -> Self {
        Self::new(ErrorType::Modify, "policy-violation")
    }
    pub fn resource_constraint() -> Self {
        Self::new(ErrorType::Wait, "resource-constraint")
    }
    pub fn unexpected_request() -> Self {
        Self::new(ErrorType::Wait, "unexpected-request")
    }
    pub fn recipient_unavailable() -> Self {
        Self::new(ErrorType::Wait, "recipient-unavailable")
    }
    pub fn registration_required() -> Self {
        Self::new(ErrorType::Auth, "registration-required")
    }

    /// The `<error/>` child element, built through xmpp-parsers' typed error (which also
    /// has `by` and per-language texts; ours is one English text: `xml:lang='en'`, as RFC
    /// 6120 §8.3.2 asks, since xmpp-parsers writes a text's language, empty or not).
    pub fn to_element(&self) -> Element {
        Element::from(self.typed())
    }

    /// As `xmpp_parsers::stanza_error::StanzaError`. The value type here stays ours: its
    /// constructors are `const` and its condition a `&'static str` that tests compare.
    pub fn typed(&self) -> xmpp_parsers::stanza_error::StanzaError {
        use xmpp_parsers::stanza_error::{self as typed, DefinedCondition};
        let defined_condition = DefinedCondition::try_from(Element::bare(self.condition, ns::STANZAS))
            .unwrap_or(DefinedCondition::UndefinedCondition);
        let type_ = match self.kind {
            ErrorType::Auth => typed::ErrorType::Auth,
            ErrorType::Cancel => typed::ErrorType::Cancel,
            ErrorType::Continue => typed::ErrorType::Continue,
            ErrorType::Modify => typed::ErrorType::Modify,
            ErrorType::Wait => typed::ErrorType::Wait,
        };
        typed::StanzaError {
            type_,
            by: None,
            defined_condition,
            texts: self.text.iter().map(|t| ("en".to_string(), t.clone())).collect(),
            other: self.application.as_deref().cloned(),
        }
    }

    /// The error reply to `stanza` (RFC 6120 §8.3.1): swap from/to, type='error', keep the
    /// original payload so the sender can tell which stanza failed, then add `<error/>`.
    pub fn reply_to(&self, stanza: &Element) -> Element {
        let mut reply = stanza.clone();
        crate::xml::swap_addresses(&mut reply);
        crate::xml::set_attr(&mut reply, "type", "error");
        reply.append_child(self.to_element());
        reply
    }
}

impl std::fmt::Display for StanzaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.condition, self.kind.name())
    }
}

impl std::error::Error for StanzaError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6120 §8.3.2: type, the defined condition, then the text (English, said so),
    /// then the application condition.
    #[test]
    fn rfc6120_8_3_2_error_element_in_order() {
        let e = StanzaError::bad_request()
            .text("why <it> failed")
            .application("bad-action", "http://jabber.org/protocol/commands");
        assert_eq!(
            crate::xml::to_string(&e.to_element()),
            "<error xmlns='jabber:client' type='modify'>\
             <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>why &lt;it&gt; failed</text>\
             <bad-action xmlns='http://jabber.org/protocol/commands'/></error>"
        );
        assert_eq!(
            crate::xml::to_string(&StanzaError::service_unavailable().to_element()),
            "<error xmlns='jabber:client' type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        );
    }

    /// Every condition our constructors use is one xmpp-parsers knows (none falls back to
    /// undefined-condition).
    #[test]
    fn every_condition_we_send_is_a_defined_one() {
        for e in [
            StanzaError::bad_request(),
            StanzaError::service_unavailable(),
            StanzaError::feature_not_implemented(),
            StanzaError::item_not_found(),
            StanzaError::not_allowed(),
            StanzaError::forbidden(),
            StanzaError::not_authorized(),
            StanzaError::conflict(),
            StanzaError::not_acceptable(),
            StanzaError::jid_malformed(),
            StanzaError::internal_server_error(),
            StanzaError::remote_server_not_found(),
            StanzaError::policy_violation(),
            StanzaError::resource_constraint(),
            StanzaError::unexpected_request(),
            StanzaError::recipient_unavailable(),
            StanzaError::registration_required(),
        ] {
            let el = e.to_element();
            assert!(
                el.has_child(e.condition, ns::STANZAS),
                "{}",
                crate::xml::to_string(&el)
            );
        }
    }
}
