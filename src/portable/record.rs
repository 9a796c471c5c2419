//! One `<user/>` element to what we store (and back, for export): XEP-0227 §4.2–§4.8 and
//! the 1.1 SCRAM format, with a line number for every refusal.
//!
//! Known data that breaks a rule is an error (the whole file is refused before anything is
//! written); data we do not store (PEP, archives, unknown namespaces) is counted and
//! skipped, as §4 asks ("SHOULD ignore the unknown data, SHOULD notify the operator").

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jid::BareJid;
use minidom::Element;

use super::reader::{Lines, RawUser};
use super::{FileError, NS_PIE, NS_PIE_OLD, NS_SCRAM};
use crate::accounts::Account;
use crate::config::Config;
use crate::modules::pubsub::{NS_PUBSUB, NS_PUBSUB_OWNER};
use crate::modules::roster::notes::NS as NS_NOTES;
use crate::sasl::{self, HashAlg, ScramCredentials};
use crate::storage::portable::{PortableOffline, PortableUser};
use crate::storage::privacy::{StoredPrivacy, StoredPrivacyItem, StoredPrivacyList};
use crate::storage::roster::StoredItem;
use crate::xml::{self, ns};

pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_PRIVATE: &str = "jabber:iq:private";
pub const NS_PRIVACY: &str = "jabber:iq:privacy";
pub const NS_VCARD: &str = "vcard-temp";
pub const NS_DELAY: &str = "urn:xmpp:delay";

/// A user of the file, checked and normalized, ready to store.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub account: Account,
    pub file: Arc<str>,
    pub line: u32,
    /// What to store; `credentials` holds those the file gave as SCRAM.
    pub data: PortableUser,
    /// The plaintext password, when hashes must be derived from it ([`Self::derive`]).
    pub password: Option<String>,
    /// Hashes to derive from `password` (those the file did not give as SCRAM).
    pub derive: Vec<HashAlg>,
    /// Roster notes: (contact, text), sorted by contact.
    pub notes: Vec<(String, String)>,
    /// What was skipped: a description per kind of data.
    pub ignored: Vec<String>,
}

impl UserRecord {
    /// Derives the missing SCRAM credentials from the plaintext password (PBKDF2: slow, so
    /// the importer runs it off the async threads). Stored credentials of the account that
    /// the password verifies are kept as they are, so importing the same password again
    /// changes nothing (fresh ones would have a new salt).
    pub fn derive_credentials(&mut self, iterations: u32, stored: &[ScramCredentials]) {
        if let Some(password) = &self.password {
            for &alg in &self.derive {
                let creds = match stored.iter().find(|c| c.alg == alg) {
                    Some(c) if sasl::verify_password(c, password) => c.clone(),
                    _ => sasl::new_credentials(alg, password, iterations),
                };
                self.data.credentials.push(creds);
            }
            self.data.credentials.sort_by_key(|c| c.alg.mechanism_name());
        }
        self.derive.clear();
        self.password = None;
    }
}

/// A child element with its line.
#[derive(Clone, Copy)]
struct Node<'a> {
    el: &'a Element,
    lines: &'a Lines,
}

impl<'a> Node<'a> {
    fn children(self) -> impl Iterator<Item = Node<'a>> {
        self.el
            .children()
            .zip(self.lines.children.iter())
            .map(|(el, lines)| Node { el, lines })
    }
    fn line(self) -> u32 {
        self.lines.line
    }
    fn is(self, name: &str, ns: &str) -> bool {
        self.el.is(name, ns)
    }
}

struct Ctx<'a> {
    file: &'a Arc<str>,
    /// The user's bare JID, for 'to' attributes.
    jid: String,
}

impl Ctx<'_> {
    fn err(&self, line: u32, reason: impl Into<String>) -> FileError {
        FileError::new(self.file, line, reason)
    }
}

/// Checks and converts one user element.
pub fn parse_user(raw: &RawUser, config: &Config) -> Result<UserRecord, FileError> {
    let root = Node {
        el: &raw.element,
        lines: &raw.lines,
    };
    let line = root.line();
    let fail = |reason: String| FileError::new(&raw.file, line, reason);
    let name = raw
        .element
        .attr("name")
        .ok_or_else(|| fail("<user/> without a 'name' attribute".into()))?;
    let host = host_of(&raw.host);
    let account = Account::from_parts(name, host, config).map_err(|e| fail(e.to_string()))?;
    let ctx = Ctx {
        file: &raw.file,
        jid: account.to_string(),
    };
    let mut rec = UserRecord {
        account,
        file: raw.file.clone(),
        line,
        data: PortableUser::default(),
        password: None,
        derive: Vec::new(),
        notes: Vec::new(),
        ignored: Vec::new(),
    };
    let mut seen_roster = false;
    let mut seen_vcard = false;
    let mut seen_privacy = false;
    let mut private: Vec<(String, String)> = Vec::new();
    let mut pep = super::pep::Collector::default();
    for child in root.children() {
        let el = child.el;
        if child.is("scram-credentials", NS_SCRAM) {
            parse_scram(&ctx, child, &mut rec)?;
        } else if child.is("query", NS_ROSTER) {
            if std::mem::replace(&mut seen_roster, true) {
                return Err(ctx.err(child.line(), "a second roster"));
            }
            parse_roster(&ctx, child, &mut rec)?;
        } else if child.is("presence", ns::CLIENT) {
            parse_pending(&ctx, child, &mut rec)?;
        } else if child.is("vCard", NS_VCARD) {
            if std::mem::replace(&mut seen_vcard, true) {
                return Err(ctx.err(child.line(), "a second vCard"));
            }
            rec.data.vcard = Some(xml::to_string(el));
        } else if child.is("query", NS_PRIVATE) {
            parse_private(child, &mut private, &mut rec.ignored);
        } else if child.is("query", NS_PRIVACY) {
            if std::mem::replace(&mut seen_privacy, true) {
                return Err(ctx.err(child.line(), "a second privacy query"));
            }
            rec.data.privacy = parse_privacy(&ctx, child, &mut rec.ignored)?;
        } else if child.is("offline-messages", NS_PIE) || child.is("offline-messages", NS_PIE_OLD) {
            parse_offline(&ctx, child, host, &mut rec)?;
        } else if child.is("pubsub", NS_PUBSUB) || child.is("pubsub", NS_PUBSUB_OWNER) {
            let owner = format!("{}@{}", rec.account.user, rec.account.domain);
            pep.add(el, &owner, &mut rec.ignored);
        } else {
            rec.ignored.push(format!("<{}/> in '{}'", el.name(), el.ns()));
        }
    }
    private.sort_by(|a, b| a.0.cmp(&b.0));
    rec.data.private = private;
    rec.data.pep = pep.finish();
    rec.data.pending_in.sort_by(|a, b| a.0.cmp(&b.0));
    // The password attribute: ejabberd's "scram:" form, or a plaintext password.
    if let Some(password) = raw.element.attr("password").filter(|p| !p.is_empty()) {
        if let Some(encoded) = password.strip_prefix("scram:") {
            let creds = parse_ejabberd_scram(encoded).map_err(|why| ctx.err(line, why))?;
            if !rec.data.credentials.iter().any(|c| c.alg == creds.alg) {
                rec.data.credentials.push(creds);
            }
        } else {
            sasl::prepare_password(password).map_err(|_| {
                ctx.err(
                    line,
                    "the password contains characters that are not allowed (SASLprep)",
                )
            })?;
            rec.derive = HashAlg::ALL
                .into_iter()
                .filter(|alg| !rec.data.credentials.iter().any(|c| c.alg == *alg))
                .collect();
            if !rec.derive.is_empty() {
                rec.password = Some(password.to_owned());
            }
        }
    }
    rec.data.credentials.sort_by_key(|c| c.alg.mechanism_name());
    Ok(rec)
}

/// A host 'jid' is a domain; tolerate a JID with a node or resource by keeping its domain.
fn host_of(jid: &str) -> &str {
    let jid = jid.split_once('@').map_or(jid, |(_, d)| d);
    jid.split_once('/').map_or(jid, |(d, _)| d)
}

fn parse_scram(ctx: &Ctx<'_>, node: Node<'_>, rec: &mut UserRecord) -> Result<(), FileError> {
    let line = node.line();
    let mechanism = node
        .el
        .attr("mechanism")
        .ok_or_else(|| ctx.err(line, "<scram-credentials/> without a 'mechanism'"))?;
    let Some(alg) = HashAlg::from_mechanism_name(mechanism) else {
        rec.ignored.push(format!("{mechanism} credentials"));
        return Ok(());
    };
    if rec.data.credentials.iter().any(|c| c.alg == alg) {
        return Err(ctx.err(line, format!("a second set of {mechanism} credentials")));
    }
    let field = |name: &str| -> Result<String, FileError> {
        let mut found = node.children().filter(|c| c.is(name, NS_SCRAM));
        let first = found
            .next()
            .ok_or_else(|| ctx.err(line, format!("<scram-credentials/> without <{name}/>")))?;
        Ok(first.el.text().trim().to_owned())
    };
    let bytes = |name: &str| -> Result<Vec<u8>, FileError> {
        B64.decode(field(name)?)
            .map_err(|e| ctx.err(line, format!("<{name}/> is not base64: {e}")))
    };
    let iter = field("iter-count")?;
    let iterations: u32 = iter
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| ctx.err(line, format!("<iter-count/> '{iter}' is not a positive integer")))?;
    let creds = ScramCredentials {
        alg,
        salt: bytes("salt")?,
        iterations,
        stored_key: bytes("stored-key")?,
        server_key: bytes("server-key")?,
    };
    check_scram(&creds).map_err(|why| ctx.err(line, why))?;
    rec.data.credentials.push(creds);
    Ok(())
}

/// ejabberd's `password='scram:StoredKey,ServerKey,Salt,IterationCount'` (base64 fields);
/// the hash is told by the key length.
fn parse_ejabberd_scram(encoded: &str) -> Result<ScramCredentials, String> {
    let fields: Vec<&str> = encoded.split(',').collect();
    let [stored, server, salt, iterations] = fields[..] else {
        return Err("a 'scram:' password must have 4 comma-separated fields".into());
    };
    let decode = |what: &str, v: &str| {
        B64.decode(v.trim())
            .map_err(|e| format!("the {what} of the 'scram:' password is not base64: {e}"))
    };
    let stored_key = decode("stored key", stored)?;
    let alg = match stored_key.len() {
        20 => HashAlg::Sha1,
        32 => HashAlg::Sha256,
        n => {
            return Err(format!(
                "a 'scram:' stored key of {n} bytes matches no supported hash"
            ));
        }
    };
    let creds = ScramCredentials {
        alg,
        salt: decode("salt", salt)?,
        iterations: iterations
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("the iteration count '{iterations}' is not a positive integer"))?,
        stored_key,
        server_key: decode("server key", server)?,
    };
    check_scram(&creds)?;
    Ok(creds)
}

fn check_scram(c: &ScramCredentials) -> Result<(), String> {
    let len = match c.alg {
        HashAlg::Sha1 => 20,
        HashAlg::Sha256 => 32,
    };
    if c.stored_key.len() != len || c.server_key.len() != len {
        return Err(format!("{} keys must be {len} bytes", c.alg.mechanism_name()));
    }
    if c.salt.is_empty() {
        return Err("the SCRAM salt is empty".into());
    }
    Ok(())
}

/// A contact: a bare JID, normalized as the roster stores it.
fn bare_jid(ctx: &Ctx<'_>, line: u32, value: &str) -> Result<String, FileError> {
    BareJid::new(value)
        .map(|j| j.to_string())
        .map_err(|e| ctx.err(line, format!("'{value}' is not a bare JID: {e}")))
}

fn parse_roster(ctx: &Ctx<'_>, node: Node<'_>, rec: &mut UserRecord) -> Result<(), FileError> {
    let mut seen = HashSet::new();
    for item in node.children() {
        let line = item.line();
        if !item.is("item", NS_ROSTER) {
            rec.ignored.push(format!("<{}/> in the roster", item.el.name()));
            continue;
        }
        let raw_jid = item
            .el
            .attr("jid")
            .ok_or_else(|| ctx.err(line, "roster <item/> without a 'jid'"))?;
        let contact = bare_jid(ctx, line, raw_jid)?;
        if !seen.insert(contact.clone()) {
            return Err(ctx.err(line, format!("{contact} is in the roster twice")));
        }
        let subscription = item.el.attr("subscription").unwrap_or("none");
        if !matches!(subscription, "none" | "to" | "from" | "both") {
            return Err(ctx.err(
                line,
                format!("subscription '{subscription}' is not one of none, to, from, both"),
            ));
        }
        let ask = match item.el.attr("ask") {
            None => false,
            Some("subscribe") => true,
            Some(other) => return Err(ctx.err(line, format!("ask '{other}' is not 'subscribe'"))),
        };
        let approved = matches!(item.el.attr("approved"), Some("true" | "1"));
        let mut groups = Vec::new();
        for child in item.children() {
            if child.is("group", NS_ROSTER) {
                let g = child.el.text();
                if g.is_empty() {
                    rec.ignored.push("an empty roster group name".into());
                } else {
                    groups.push(g);
                }
            } else if child.is("note", NS_NOTES) {
                // As in a roster set, an empty note is no note.
                let text = child.el.text();
                if !text.is_empty() {
                    rec.notes.push((contact.clone(), text));
                }
            } else {
                rec.ignored
                    .push(format!("<{}/> in a roster item", child.el.name()));
            }
        }
        groups.sort();
        groups.dedup();
        rec.data.roster.push(StoredItem {
            contact,
            name: item.el.attr("name").filter(|n| !n.is_empty()).map(str::to_owned),
            subscription: subscription.to_owned(),
            ask,
            approved,
            groups,
        });
    }
    rec.data.roster.sort_by(|a, b| a.contact.cmp(&b.contact));
    rec.notes.sort();
    rec.notes.dedup_by(|a, b| a.0 == b.0);
    Ok(())
}

/// An inbound subscription request waiting for an answer (as ejabberd and Prosody write
/// them): kept as the stanza, addressed to the user.
fn parse_pending(ctx: &Ctx<'_>, node: Node<'_>, rec: &mut UserRecord) -> Result<(), FileError> {
    let line = node.line();
    if node.el.attr("type") != Some("subscribe") {
        rec.ignored
            .push("<presence/> other than a subscription request".into());
        return Ok(());
    }
    let from = node
        .el
        .attr("from")
        .ok_or_else(|| ctx.err(line, "subscription request without a 'from'"))?;
    let contact = jid::Jid::new(from)
        .map(|j| j.to_bare().to_string())
        .map_err(|e| ctx.err(line, format!("'{from}' is not a JID: {e}")))?;
    // §3.1.3 keeps one request per contact: the first.
    if rec.data.pending_in.iter().any(|(c, _)| *c == contact) {
        return Ok(());
    }
    let mut stanza = node.el.clone();
    xml::set_attr(&mut stanza, "from", &contact);
    xml::set_attr(&mut stanza, "to", &ctx.jid);
    rec.data.pending_in.push((contact, xml::to_string(&stanza)));
    Ok(())
}

/// XEP-0049 §2.3 reserved namespaces, which the private XML module refuses (as
/// `modules::private`): such data could never be read back.
fn is_reserved_private_ns(ns: &str) -> bool {
    ns.is_empty() || ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == NS_VCARD
}

/// Groups the elements by namespace, in order, as the XEP-0049 module stores them.
fn parse_private(node: Node<'_>, out: &mut Vec<(String, String)>, ignored: &mut Vec<String>) {
    for child in node.children() {
        let ns = child.el.ns();
        if is_reserved_private_ns(&ns) {
            ignored.push(format!("private XML in the reserved namespace '{ns}'"));
            continue;
        }
        let text = xml::to_string(child.el);
        match out.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, data)) => data.push_str(&text),
            None => out.push((ns, text)),
        }
    }
}

fn parse_offline(ctx: &Ctx<'_>, node: Node<'_>, host: &str, rec: &mut UserRecord) -> Result<(), FileError> {
    for msg in node.children() {
        let line = msg.line();
        if !msg.is("message", ns::CLIENT) {
            rec.ignored
                .push(format!("<{}/> in offline messages", msg.el.name()));
            continue;
        }
        let from = msg
            .el
            .attr("from")
            .ok_or_else(|| ctx.err(line, "offline message without a 'from'"))?;
        let sender = jid::Jid::new(from)
            .map_err(|e| ctx.err(line, format!("'{from}' is not a JID: {e}")))?
            .to_string();
        // The server's own delay (XEP-0203 from the host) carries when it was stored; it is
        // added back on delivery, so it is not kept in the stanza.
        let mut stanza = msg.el.clone();
        let mut stamp_ms = None;
        for child in stanza.take_nodes() {
            if let minidom::Node::Element(c) = &child
                && stamp_ms.is_none()
                && c.is("delay", NS_DELAY)
                && c.attr("from").is_none_or(|f| f.eq_ignore_ascii_case(host))
                && let Some(stamp) = c.attr("stamp")
            {
                let t = chrono::DateTime::parse_from_rfc3339(stamp)
                    .map_err(|e| ctx.err(line, format!("delay stamp '{stamp}': {e}")))?;
                stamp_ms = Some(t.timestamp_millis());
                continue;
            }
            stanza.append_node(child);
        }
        xml::set_attr(&mut stanza, "from", &sender);
        if stanza.attr("to").is_none() {
            xml::set_attr(&mut stanza, "to", &ctx.jid);
        }
        rec.data.offline.push(PortableOffline {
            stamp_ms,
            sender,
            stanza: xml::to_string(&stanza),
        });
    }
    Ok(())
}

/// XEP-0016 §2 lists: names unique, orders unique within a list, values checked.
fn parse_privacy(
    ctx: &Ctx<'_>,
    node: Node<'_>,
    ignored: &mut Vec<String>,
) -> Result<StoredPrivacy, FileError> {
    let mut lists: BTreeMap<String, StoredPrivacyList> = BTreeMap::new();
    let mut default = None;
    for child in node.children() {
        let line = child.line();
        let name = || {
            child
                .el
                .attr("name")
                .map(str::to_owned)
                .ok_or_else(|| ctx.err(line, format!("<{}/> without a 'name'", child.el.name())))
        };
        if child.is("default", NS_PRIVACY) {
            default = Some((name()?, line));
        } else if child.is("active", NS_PRIVACY) {
            // Per session: nothing to keep.
        } else if child.is("list", NS_PRIVACY) {
            let name = name()?;
            let items = parse_privacy_items(ctx, child)?;
            if lists.contains_key(&name) {
                return Err(ctx.err(line, format!("privacy list '{name}' twice")));
            }
            lists.insert(
                name.clone(),
                StoredPrivacyList {
                    name,
                    version: 0,
                    items,
                },
            );
        } else {
            ignored.push(format!("<{}/> in privacy lists", child.el.name()));
        }
    }
    let default_list = match default {
        Some((name, _)) if lists.contains_key(&name) => Some(name),
        Some((name, line)) => {
            ignored.push(format!(
                "default privacy list '{name}' (no such list, line {line})"
            ));
            None
        }
        None => None,
    };
    Ok(StoredPrivacy {
        default_list,
        lists: lists.into_values().collect(),
    })
}

fn parse_privacy_items(ctx: &Ctx<'_>, list: Node<'_>) -> Result<Vec<StoredPrivacyItem>, FileError> {
    let mut items: Vec<StoredPrivacyItem> = Vec::new();
    for item in list.children().filter(|c| c.is("item", NS_PRIVACY)) {
        let line = item.line();
        let el = item.el;
        let attr = |n: &'static str| el.attr(n);
        let (kind, value) = match attr("type") {
            None => (String::new(), String::new()),
            Some(kind) => {
                let value = attr("value")
                    .ok_or_else(|| ctx.err(line, "privacy item with a 'type' but no 'value'"))?;
                let value = match kind {
                    "jid" => crate::modules::blocking::model::normalize_jid(value)
                        .ok_or_else(|| ctx.err(line, format!("'{value}' is not a JID")))?,
                    "group" => value.to_owned(),
                    "subscription" if matches!(value, "none" | "to" | "from" | "both") => value.to_owned(),
                    "subscription" => {
                        return Err(ctx.err(
                            line,
                            format!("subscription '{value}' is not one of none, to, from, both"),
                        ));
                    }
                    other => return Err(ctx.err(line, format!("privacy item type '{other}' is unknown"))),
                };
                (kind.to_owned(), value)
            }
        };
        let action = match attr("action") {
            Some(a @ ("allow" | "deny")) => a.to_owned(),
            other => {
                return Err(ctx.err(
                    line,
                    format!("privacy item action {other:?} is not 'allow' or 'deny'"),
                ));
            }
        };
        let order_text = attr("order").unwrap_or("");
        let order: u32 = order_text.parse().map_err(|_| {
            ctx.err(
                line,
                format!("privacy item order '{order_text}' is not an unsigned integer"),
            )
        })?;
        let order = i64::from(order);
        if items.iter().any(|i| i.order == order) {
            return Err(ctx.err(line, format!("two privacy items with order {order}")));
        }
        let mut selectors = 0;
        for s in item.children() {
            selectors |= match s.el.name() {
                "message" => 1,
                "iq" => 2,
                "presence-in" => 4,
                "presence-out" => 8,
                other => return Err(ctx.err(s.line(), format!("<{other}/> is not a privacy item selector"))),
            };
        }
        items.push(StoredPrivacyItem {
            kind,
            value,
            action,
            order,
            selectors,
        });
    }
    items.sort_by_key(|i| i.order);
    Ok(items)
}
