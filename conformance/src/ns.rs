//! XML namespaces used by the tests.

pub const STREAM: &str = "http://etherx.jabber.org/streams";
pub const STREAMS_ERR: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const PING: &str = "urn:xmpp:ping";
pub const VERSION: &str = "jabber:iq:version";
pub const TIME: &str = "urn:xmpp:time";
pub const CAPS: &str = "http://jabber.org/protocol/caps";
pub const REGISTER: &str = "jabber:iq:register";
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
pub const DATA_FORMS: &str = "jabber:x:data";
