//! The one privacy model (xep/xep-ignore-list.md §5): named lists of ordered items, each
//! matching by JID, roster group or subscription, with allow/deny and stanza selectors.
//! Pure: evaluation takes the peer's roster facts as arguments.
//!
//! A compiled list indexes its JID items by value, so deciding a stanza from a peer costs
//! four hash lookups (the peer's full, bare, domain/resource and domain forms, XEP-0016 §2.1)
//! plus a scan of the group/subscription/fall-through items, usually none.

use std::collections::HashMap;

use jid::Jid;

use crate::storage::privacy::StoredPrivacyItem;

/// Selector bits; an item with none applies to everything (XEP-0016 §2.1).
pub const MESSAGE: u8 = 1;
pub const IQ: u8 = 2;
pub const PRESENCE_IN: u8 = 4;
pub const PRESENCE_OUT: u8 = 8;
pub const ALL: u8 = 0;

/// The name given to the default list when blocking creates it (spec §5.2).
pub const BLOCKLIST_NAME: &str = "blocklist";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No type: matches every peer (the fall-through item).
    Any,
    Jid,
    Group,
    Subscription,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Any => "",
            Kind::Jid => "jid",
            Kind::Group => "group",
            Kind::Subscription => "subscription",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "" => Kind::Any,
            "jid" => Kind::Jid,
            "group" => Kind::Group,
            "subscription" => Kind::Subscription,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    /// The JID (normalized), group name or subscription state; empty for `Kind::Any`.
    pub value: String,
    pub allow: bool,
    pub order: u32,
    pub selectors: u8,
}

impl Item {
    /// A XEP-0191 block: a JID item denying everything.
    pub fn block(jid: &str, order: u32) -> Item {
        Item {
            kind: Kind::Jid,
            value: jid.to_owned(),
            allow: false,
            order,
            selectors: ALL,
        }
    }

    /// Whether XEP-0191 shows this item as a blocked JID (spec §5.3).
    pub fn is_block(&self) -> bool {
        self.kind == Kind::Jid && !self.allow && self.selectors == ALL
    }

    /// Whether the item applies to a stanza of `selector`.
    pub fn applies_to(&self, selector: u8) -> bool {
        self.selectors == ALL || self.selectors & selector != 0
    }

    /// The key identifying an item within a list for the ignore protocol (spec §6).
    pub fn key(&self) -> (Kind, &str) {
        (self.kind, &self.value)
    }

    pub fn to_stored(&self) -> StoredPrivacyItem {
        StoredPrivacyItem {
            kind: self.kind.as_str().to_owned(),
            value: self.value.clone(),
            action: if self.allow { "allow" } else { "deny" }.to_owned(),
            order: i64::from(self.order),
            selectors: i64::from(self.selectors),
        }
    }

    pub fn from_stored(s: &StoredPrivacyItem) -> Option<Item> {
        Some(Item {
            kind: Kind::parse(&s.kind)?,
            value: s.value.clone(),
            allow: s.action == "allow",
            order: u32::try_from(s.order).ok()?,
            selectors: u8::try_from(s.selectors).ok()?,
        })
    }
}

/// What the evaluator needs to know about the peer from the owner's roster.
#[derive(Debug, Default, Clone)]
pub struct PeerFacts {
    /// "none", "to", "from" or "both" (none when not in the roster).
    pub subscription: String,
    pub groups: Vec<String>,
}

/// A list ready for evaluation.
#[derive(Debug, Clone, Default)]
pub struct List {
    pub name: String,
    pub version: i64,
    /// Sorted by order.
    pub items: Vec<Item>,
    /// JID item value -> indices into `items`.
    by_jid: HashMap<String, Vec<usize>>,
    /// Indices of the other items.
    others: Vec<usize>,
}

impl List {
    pub fn new(name: impl Into<String>, version: i64, mut items: Vec<Item>) -> List {
        items.sort_by_key(|i| i.order);
        let mut by_jid: HashMap<String, Vec<usize>> = HashMap::new();
        let mut others = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.kind == Kind::Jid {
                by_jid.entry(item.value.clone()).or_default().push(i);
            } else {
                others.push(i);
            }
        }
        List {
            name: name.into(),
            version,
            items,
            by_jid,
            others,
        }
    }

    /// Whether deciding needs the peer's roster facts.
    pub fn needs_roster(&self) -> bool {
        self.others
            .iter()
            .any(|&i| matches!(self.items[i].kind, Kind::Group | Kind::Subscription))
    }

    /// The first item (by order) that matches `peer` for `selector`; `None`: allowed by default.
    pub fn decide(&self, peer: &Jid, selector: u8, facts: Option<&PeerFacts>) -> Option<&Item> {
        let mut best: Option<usize> = None;
        let mut consider = |i: usize| {
            if self.items[i].applies_to(selector) && best.is_none_or(|b| i < b) {
                best = Some(i);
            }
        };
        if !self.by_jid.is_empty() {
            for key in jid_forms(peer) {
                if let Some(indices) = self.by_jid.get(key.as_str()) {
                    indices.iter().copied().for_each(&mut consider);
                }
            }
        }
        for &i in &self.others {
            let item = &self.items[i];
            let matches = match item.kind {
                Kind::Any => true,
                Kind::Group => facts.is_some_and(|f| f.groups.contains(&item.value)),
                Kind::Subscription => {
                    let sub = facts.map_or("none", |f| f.subscription.as_str());
                    sub == item.value
                }
                Kind::Jid => false,
            };
            if matches {
                consider(i);
            }
        }
        best.map(|i| &self.items[i])
    }

    /// `decide` for callers without the peer's roster facts: `None` when the answer depends
    /// on them, i.e. a group or subscription item applying to `selector` comes (by order)
    /// before the first JID or fall-through item that matches. JID-only lists (every
    /// XEP-0191 blocklist) always get an answer, the same as `decide`'s.
    pub fn decide_without_roster(&self, peer: &Jid, selector: u8) -> Option<Option<&Item>> {
        let mut best: Option<usize> = None;
        let mut consider = |i: usize| {
            if self.items[i].applies_to(selector) && best.is_none_or(|b| i < b) {
                best = Some(i);
            }
        };
        if !self.by_jid.is_empty() {
            for key in jid_forms(peer) {
                if let Some(indices) = self.by_jid.get(key.as_str()) {
                    indices.iter().copied().for_each(&mut consider);
                }
            }
        }
        for &i in &self.others {
            if self.items[i].kind == Kind::Any {
                consider(i);
            }
        }
        let limit = best.unwrap_or(self.items.len());
        let unknown = self.others.iter().any(|&i| {
            i < limit
                && matches!(self.items[i].kind, Kind::Group | Kind::Subscription)
                && self.items[i].applies_to(selector)
        });
        if unknown {
            None
        } else {
            Some(best.map(|i| &self.items[i]))
        }
    }

    /// Whether `selector` stanzas with `peer` are denied.
    pub fn denies(&self, peer: &Jid, selector: u8, facts: Option<&PeerFacts>) -> bool {
        self.decide(peer, selector, facts).is_some_and(|i| !i.allow)
    }

    /// The XEP-0191 view: JIDs of the block items, in list order (spec §5.3).
    pub fn blocked_jids(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.is_block())
            .map(|i| i.value.as_str())
            .collect()
    }

    pub fn to_stored(&self) -> Vec<StoredPrivacyItem> {
        self.items.iter().map(Item::to_stored).collect()
    }
}

/// The four forms of a JID that item values are compared with (XEP-0016 §2.1), most
/// specific first: user@domain/resource, user@domain, domain/resource, domain.
pub fn jid_forms(peer: &Jid) -> Vec<String> {
    let domain = peer.domain().as_str();
    let mut forms = Vec::with_capacity(4);
    match (peer.node(), peer.resource()) {
        (Some(node), Some(res)) => {
            forms.push(format!("{node}@{domain}/{res}"));
            forms.push(format!("{node}@{domain}"));
            forms.push(format!("{domain}/{res}"));
        }
        (Some(node), None) => forms.push(format!("{node}@{domain}")),
        (None, Some(res)) => forms.push(format!("{domain}/{res}")),
        (None, None) => {}
    }
    forms.push(domain.to_owned());
    forms
}

/// Normalizes a JID item value (stringprep via the jid crate). `None` if malformed.
pub fn normalize_jid(value: &str) -> Option<String> {
    Jid::new(value).ok().map(|j| j.to_string())
}

/// `list` with `jids` blocked: each JID not yet blocked gets a deny-all item placed before
/// every existing item (spec §5.3). Returns `None` when nothing changes.
pub fn with_blocks(list: &List, jids: &[String]) -> Option<Vec<Item>> {
    let blocked = list.blocked_jids();
    let mut new: Vec<&String> = Vec::new();
    for j in jids {
        if !blocked.contains(&j.as_str()) && !new.contains(&j) {
            new.push(j);
        }
    }
    if new.is_empty() {
        return None;
    }
    let n = u32::try_from(new.len()).unwrap_or(u32::MAX);
    let min = list.items.first().map_or(u32::MAX, |i| i.order);
    let mut items = Vec::with_capacity(list.items.len() + new.len());
    if min >= n.saturating_add(1) {
        // Room below the first item: existing orders are kept.
        let start = min - n;
        items.extend(
            new.iter()
                .enumerate()
                .map(|(k, j)| Item::block(j, start + k as u32)),
        );
        items.extend(list.items.iter().cloned());
    } else {
        // Renumber, keeping the relative order.
        items.extend(new.iter().map(|j| Item::block(j, 0)));
        items.extend(list.items.iter().cloned());
        for (k, item) in items.iter_mut().enumerate() {
            item.order = u32::try_from(k + 1).unwrap_or(u32::MAX);
        }
    }
    Some(items)
}

/// `list` without the block items of `jids` (all block items when `jids` is empty).
/// Items that are not blocks (spec §5.3) stay. `None` when nothing changes.
pub fn without_blocks(list: &List, jids: &[String]) -> Option<Vec<Item>> {
    let items: Vec<Item> = list
        .items
        .iter()
        .filter(|i| !(i.is_block() && (jids.is_empty() || jids.contains(&i.value))))
        .cloned()
        .collect();
    (items.len() != list.items.len()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    fn item(kind: Kind, value: &str, allow: bool, order: u32, selectors: u8) -> Item {
        Item {
            kind,
            value: value.into(),
            allow,
            order,
            selectors,
        }
    }

    #[test]
    fn jid_item_forms_match() {
        let l = List::new("l", 1, vec![item(Kind::Jid, "example.com", false, 1, ALL)]);
        assert!(l.denies(&jid("a@example.com/r"), MESSAGE, None));
        assert!(l.denies(&jid("example.com"), IQ, None));
        assert!(!l.denies(&jid("a@example.org"), MESSAGE, None));
        let l = List::new("l", 1, vec![item(Kind::Jid, "a@example.com", false, 1, ALL)]);
        assert!(l.denies(&jid("a@example.com/r"), MESSAGE, None));
        assert!(!l.denies(&jid("b@example.com/r"), MESSAGE, None));
        let l = List::new("l", 1, vec![item(Kind::Jid, "a@example.com/r", false, 1, ALL)]);
        assert!(l.denies(&jid("a@example.com/r"), MESSAGE, None));
        assert!(!l.denies(&jid("a@example.com/s"), MESSAGE, None));
        assert!(!l.denies(&jid("a@example.com"), MESSAGE, None));
    }

    #[test]
    fn first_matching_order_wins() {
        let l = List::new(
            "l",
            1,
            vec![
                item(Kind::Any, "", false, 10, ALL),
                item(Kind::Jid, "a@x", true, 5, ALL),
            ],
        );
        assert!(!l.denies(&jid("a@x/r"), MESSAGE, None));
        assert!(l.denies(&jid("b@x/r"), MESSAGE, None));
    }

    #[test]
    fn selectors_restrict_items() {
        let l = List::new(
            "l",
            1,
            vec![item(Kind::Jid, "a@x", false, 1, MESSAGE | PRESENCE_OUT)],
        );
        assert!(l.denies(&jid("a@x"), MESSAGE, None));
        assert!(l.denies(&jid("a@x"), PRESENCE_OUT, None));
        assert!(!l.denies(&jid("a@x"), IQ, None));
        assert!(!l.denies(&jid("a@x"), PRESENCE_IN, None));
        assert!(!l.items[0].is_block());
    }

    #[test]
    fn group_and_subscription_items_use_roster_facts() {
        let l = List::new(
            "l",
            1,
            vec![
                item(Kind::Group, "Enemies", false, 1, ALL),
                item(Kind::Subscription, "none", false, 2, MESSAGE),
            ],
        );
        assert!(l.needs_roster());
        let enemy = PeerFacts {
            subscription: "both".into(),
            groups: vec!["Enemies".into()],
        };
        let friend = PeerFacts {
            subscription: "both".into(),
            groups: vec!["Friends".into()],
        };
        assert!(l.denies(&jid("e@x"), IQ, Some(&enemy)));
        assert!(!l.denies(&jid("f@x"), MESSAGE, Some(&friend)));
        // Not in the roster: subscription none.
        assert!(l.denies(&jid("s@x"), MESSAGE, None));
        assert!(!l.denies(&jid("s@x"), IQ, None));
    }

    #[test]
    fn decide_without_roster_only_when_facts_cannot_matter() {
        let l = List::new(
            "l",
            1,
            vec![
                item(Kind::Jid, "a@x", false, 1, ALL),
                item(Kind::Group, "g", false, 2, PRESENCE_OUT),
                item(Kind::Jid, "b@x", false, 3, ALL),
                item(Kind::Any, "", true, 4, ALL),
            ],
        );
        // A JID item before every roster item: exact.
        assert!(
            !l.decide_without_roster(&jid("a@x/r"), PRESENCE_OUT)
                .unwrap()
                .unwrap()
                .allow
        );
        // The group item comes first and applies: undecidable.
        assert!(l.decide_without_roster(&jid("b@x/r"), PRESENCE_OUT).is_none());
        // ... unless it does not apply to the selector.
        assert!(
            !l.decide_without_roster(&jid("b@x/r"), PRESENCE_IN)
                .unwrap()
                .unwrap()
                .allow
        );
        assert!(
            l.decide_without_roster(&jid("c@x"), PRESENCE_IN)
                .unwrap()
                .unwrap()
                .allow
        );
        // A JID-only list always answers.
        let blocks = List::new("b", 1, vec![Item::block("a@x", 1)]);
        assert!(
            blocks
                .decide_without_roster(&jid("c@x"), PRESENCE_OUT)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn blocks_go_first_and_unblock_keeps_other_items() {
        let base = List::new(
            "blocklist",
            1,
            vec![
                item(Kind::Jid, "a@x", false, 5, MESSAGE),
                item(Kind::Group, "g", false, 6, ALL),
            ],
        );
        let items = with_blocks(&base, &["a@x".into(), "b@x".into()]).unwrap();
        let l = List::new("blocklist", 2, items);
        assert_eq!(l.blocked_jids(), vec!["a@x", "b@x"]);
        assert_eq!(
            l.items.iter().map(|i| i.order).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert!(with_blocks(&l, &["a@x".into()]).is_none());
        let items = without_blocks(&l, &[]).unwrap();
        assert_eq!(items, base.items);
        // No room below order 0: renumbered.
        let tight = List::new("b", 1, vec![item(Kind::Group, "g", false, 0, ALL)]);
        let items = with_blocks(&tight, &["c@x".into()]).unwrap();
        assert_eq!(items.iter().map(|i| i.order).collect::<Vec<_>>(), vec![1, 2]);
    }
}
