//! XEP-0115 entity capabilities of local resources, for XEP-0163 `+notify` interest.
//!
//! Each available resource's announced `ver` is remembered; the features behind a `ver` are
//! cached once known. An unknown `ver` is asked for once (a disco#info query from the server
//! to the resource that announced it) and the answer cached only if its SHA-1 matches the
//! `ver`; an answer that does not match still counts for the resource that gave it (under a
//! per-resource key), so a lying client cannot poison the cache for others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use jid::FullJid;
use minidom::Element;
use sha1::{Digest, Sha1};
use xmpp_parsers::disco::DiscoInfoResult;

use crate::xml::{self, ns};

pub type Features = Arc<BTreeSet<String>>;

/// The id prefix of the server's caps queries: their answers are claimed by it.
pub const QUERY_ID_PREFIX: &str = "pep-caps-";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// An unanswered query is asked again (of the next resource announcing that `ver`) after this.
const RETRY_AFTER: Duration = Duration::from_secs(30);

struct Pending {
    ver: String,
    asked: FullJid,
    sha1: bool,
}

#[derive(Default)]
pub struct CapsCache {
    by_ver: DashMap<String, Features>,
    /// The `ver` (or a per-resource key) each available resource announced.
    of_resource: DashMap<FullJid, String>,
    /// Queries sent, by IQ id.
    pending: DashMap<String, Pending>,
    /// When each unknown `ver` was last asked for.
    asked: DashMap<String, Instant>,
    next_id: AtomicU64,
}

/// What a resource's presence changed.
pub struct PresenceCaps {
    /// The resource announced capabilities it had not announced before (first available
    /// presence, or a new `ver`) and they are known: its interests may have changed.
    pub interests_changed: bool,
    /// A disco#info query to send to the resource, when its `ver` is unknown.
    pub query: Option<Element>,
}

impl CapsCache {
    /// Records the capabilities in presence `presence` (broadcast by `from`).
    pub fn on_presence(&self, from: &FullJid, presence: &Element) -> PresenceCaps {
        let none = PresenceCaps {
            interests_changed: false,
            query: None,
        };
        if presence.attr("type").is_some() {
            self.forget(from);
            return none;
        }
        let Some(c) = presence.get_child("c", ns::CAPS) else {
            self.of_resource.remove(from);
            return none;
        };
        let (Some(ver), Some(node)) = (c.attr("ver"), c.attr("node")) else {
            return none;
        };
        let previous = self.of_resource.insert(from.clone(), ver.to_owned());
        let changed = previous.as_deref() != Some(ver);
        if self.by_ver.contains_key(ver) {
            return PresenceCaps {
                interests_changed: changed,
                query: None,
            };
        }
        let recently_asked = self.asked.get(ver).is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if recently_asked {
            return none;
        }
        self.asked.insert(ver.to_owned(), Instant::now());
        let id = format!(
            "{QUERY_ID_PREFIX}{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.pending.insert(
            id.clone(),
            Pending {
                ver: ver.to_owned(),
                asked: from.clone(),
                sha1: c.attr("hash") == Some("sha-1"),
            },
        );
        let mut query = Element::bare("query", NS_DISCO_INFO);
        xml::set_attr(&mut query, "node", &format!("{node}#{ver}"));
        let mut iq = Element::bare("iq", ns::CLIENT);
        xml::set_attr(&mut iq, "type", "get");
        xml::set_attr(&mut iq, "id", &id);
        xml::set_attr(&mut iq, "from", from.domain().as_str());
        xml::set_attr(&mut iq, "to", &from.to_string());
        iq.append_child(query);
        PresenceCaps {
            interests_changed: false,
            query: Some(iq),
        }
    }

    /// Whether `iq` (sent by a local resource) may be the answer to one of our queries.
    pub fn is_answer(iq: &Element) -> bool {
        iq.name() == "iq"
            && matches!(iq.attr("type"), Some("result" | "error"))
            && iq.attr("id").is_some_and(|id| id.starts_with(QUERY_ID_PREFIX))
    }

    /// Takes in the answer to a query. Returns the resource whose features became known
    /// (`None`: not ours, an error, or unusable).
    pub fn on_answer(&self, from: &FullJid, iq: &Element) -> Option<FullJid> {
        let id = iq.attr("id")?;
        let (_, pending) = self.pending.remove_if(id, |_, p| p.asked == *from)?;
        self.asked.remove(&pending.ver);
        if iq.attr("type") != Some("result") {
            return None;
        }
        let query = iq.get_child("query", NS_DISCO_INFO)?.clone();
        let info = match DiscoInfoResult::try_from(query) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(%from, error = %e, "unusable caps disco#info answer");
                return None;
            }
        };
        let features: Features = Arc::new(info.features.iter().cloned().collect());
        let verified = pending.sha1 && sha1_ver(&info) == pending.ver;
        if verified {
            self.by_ver.insert(pending.ver.clone(), features);
        } else {
            let key = resource_key(from);
            self.by_ver.insert(key.clone(), features);
            self.of_resource.insert(from.clone(), key);
            return Some(from.clone());
        }
        // The resource may have changed its `ver` while we waited.
        let current = self.of_resource.get(from).map(|v| v.clone());
        (current.as_deref() == Some(pending.ver.as_str())).then(|| from.clone())
    }

    /// The features of an available resource, if known.
    pub fn features_of(&self, jid: &FullJid) -> Option<Features> {
        let ver = self.of_resource.get(jid)?;
        self.by_ver.get(ver.as_str()).map(|f| f.clone())
    }

    /// Whether a resource wants notifications of `node` (XEP-0163 §4.3.1: `node+notify`).
    pub fn wants(&self, jid: &FullJid, node: &str) -> bool {
        self.features_of(jid)
            .is_some_and(|f| f.contains(&notify_feature(node)))
    }

    /// The resource went unavailable or away.
    pub fn forget(&self, jid: &FullJid) {
        if let Some((_, ver)) = self.of_resource.remove(jid)
            && ver.starts_with('!')
        {
            self.by_ver.remove(&ver);
        }
    }
}

pub fn notify_feature(node: &str) -> String {
    format!("{node}+notify")
}

fn resource_key(jid: &FullJid) -> String {
    format!("!{jid}")
}

/// XEP-0115 §5.1 verification string (SHA-1) of a disco#info result.
fn sha1_ver(info: &DiscoInfoResult) -> String {
    let data = xmpp_parsers::caps::compute_disco(info);
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    /// XEP-0115 §5.2's example (ver QgayPKawpkPSDYmwT/WM94uAlu0=).
    const EXAMPLE: &str = "<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>\
        <identity category='client' name='Exodus 0.9.1' type='pc'/>\
        <feature var='http://jabber.org/protocol/caps'/>\
        <feature var='http://jabber.org/protocol/disco#info'/>\
        <feature var='http://jabber.org/protocol/disco#items'/>\
        <feature var='http://jabber.org/protocol/muc'/></query>";

    fn presence(ver: &str) -> Element {
        format!("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='{ver}'/></presence>")
            .parse()
            .unwrap()
    }

    fn answer(id: &str, query: &str) -> Element {
        format!("<iq xmlns='jabber:client' type='result' id='{id}'>{query}</iq>")
            .parse()
            .unwrap()
    }

    #[test]
    fn one_query_per_unknown_ver_and_verified_answers_are_shared() {
        let cache = CapsCache::default();
        let (a, b) = (jid("a@x/1"), jid("b@x/1"));
        let ver = "QgayPKawpkPSDYmwT/WM94uAlu0=";
        let q = cache.on_presence(&a, &presence(ver)).query.expect("a query");
        assert_eq!(q.attr("to"), Some("a@x/1"));
        // Asked already: b's presence does not cause a second query.
        assert!(cache.on_presence(&b, &presence(ver)).query.is_none());
        let id = q.attr("id").unwrap();
        // Only the resource asked may answer.
        assert!(cache.on_answer(&b, &answer(id, EXAMPLE)).is_none());
        assert_eq!(cache.on_answer(&a, &answer(id, EXAMPLE)), Some(a.clone()));
        assert!(
            cache
                .features_of(&b)
                .unwrap()
                .contains("http://jabber.org/protocol/muc")
        );
        assert!(!cache.wants(&a, "http://jabber.org/protocol/muc"));
        // A known ver announced again: nothing to ask; a resource announcing it anew has
        // new interests.
        assert!(!cache.on_presence(&a, &presence(ver)).interests_changed);
        let c = jid("c@x/1");
        let again = cache.on_presence(&c, &presence(ver));
        assert!(again.interests_changed && again.query.is_none());
    }

    #[test]
    fn a_mismatching_answer_counts_only_for_its_resource() {
        let cache = CapsCache::default();
        let (a, b) = (jid("a@x/1"), jid("b@x/1"));
        let ver = "bogusbogusbogusbogusbogusbo=";
        let q = cache.on_presence(&a, &presence(ver)).query.unwrap();
        let lie =
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:x+notify'/></query>";
        assert_eq!(
            cache.on_answer(&a, &answer(q.attr("id").unwrap(), lie)),
            Some(a.clone())
        );
        assert!(cache.wants(&a, "urn:x"));
        cache.on_presence(&b, &presence(ver));
        assert!(!cache.wants(&b, "urn:x"));
        cache.forget(&a);
        assert!(!cache.wants(&a, "urn:x"));
    }
}
