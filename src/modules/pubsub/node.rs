//! One publish-subscribe node in memory: configuration, items (oldest first) and the
//! affiliations its owner granted, with the pure decisions about them (who may see it,
//! which items a publish evicts). Storage and delivery are the callers' business.

use std::collections::BTreeMap;

use minidom::Element;

use super::config::{AccessModel, NodeConfig};
use crate::storage::pep::{StoredPepItem, StoredPepNode};

/// A published item.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    /// Bare JID of the publisher.
    pub publisher: String,
    pub payload: Element,
    pub seq: i64,
}

/// XEP-0060 §4.1 affiliations a node's owner can grant (the owner itself is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affiliation {
    /// Service nodes only: PEP's owner is the account.
    Owner,
    Publisher,
    Member,
    Outcast,
}

impl Affiliation {
    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "owner" => Affiliation::Owner,
            "publisher" => Affiliation::Publisher,
            "member" => Affiliation::Member,
            "outcast" => Affiliation::Outcast,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
        }
    }
}

/// What the owner's roster says about a requester (for `presence` and `roster` access).
#[derive(Debug, Clone, Default)]
pub struct RosterFacts {
    /// The requester receives the owner's presence (subscription `from` or `both`).
    pub subscribed: bool,
    pub groups: Vec<String>,
}

/// Why access to a node is refused (XEP-0060 §6.5.9 / §6.1.3 conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `presence` model, no presence subscription: `not-authorized` +
    /// `presence-subscription-required`.
    PresenceSubscriptionRequired,
    /// `roster` model, not in an allowed group: `not-authorized` + `not-in-roster-group`.
    NotInRosterGroup,
    /// `whitelist` model, not on the list: `not-allowed` + `closed-node`.
    ClosedNode,
    /// An outcast: `forbidden`.
    Outcast,
    /// `authorize` model, no approved subscription: `not-authorized` + `not-subscribed`.
    NotSubscribed,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub config: NodeConfig,
    pub items: Vec<Item>,
    /// Bare JID -> affiliation.
    pub affiliations: BTreeMap<String, Affiliation>,
    next_seq: i64,
}

impl Node {
    pub fn new(config: NodeConfig) -> Node {
        Node {
            config,
            items: Vec::new(),
            affiliations: BTreeMap::new(),
            next_seq: 1,
        }
    }

    /// A node as stored; items whose payload no longer parses are skipped.
    pub fn from_stored(stored: StoredPepNode) -> Node {
        let mut node = Node::new(NodeConfig::from_text(&stored.config));
        for it in stored.items {
            match it.payload.parse::<Element>() {
                Ok(payload) => {
                    node.next_seq = node.next_seq.max(it.seq + 1);
                    node.items.push(Item {
                        id: it.id,
                        publisher: it.publisher,
                        payload,
                        seq: it.seq,
                    });
                }
                Err(e) => tracing::warn!(error = %e, item = %it.id, "skipping an unreadable PEP item"),
            }
        }
        for (jid, aff) in stored.affiliations {
            if let Some(a) = Affiliation::parse(&aff) {
                node.affiliations.insert(jid, a);
            }
        }
        node
    }

    /// Whether `requester` (not the owner) may retrieve items and get notifications.
    pub fn access(&self, requester: &str, roster: &RosterFacts) -> Result<(), Denied> {
        let affiliation = self.affiliations.get(requester).copied();
        if affiliation == Some(Affiliation::Outcast) {
            return Err(Denied::Outcast);
        }
        if matches!(
            affiliation,
            Some(Affiliation::Owner | Affiliation::Member | Affiliation::Publisher)
        ) {
            return Ok(());
        }
        match self.config.access_model {
            AccessModel::Open => Ok(()),
            AccessModel::Presence if roster.subscribed => Ok(()),
            AccessModel::Presence => Err(Denied::PresenceSubscriptionRequired),
            AccessModel::Roster
                if roster
                    .groups
                    .iter()
                    .any(|g| self.config.roster_groups_allowed.contains(g)) =>
            {
                Ok(())
            }
            AccessModel::Roster => Err(Denied::NotInRosterGroup),
            AccessModel::Whitelist => Err(Denied::ClosedNode),
            // Callers that know of subscriptions check approved ones first.
            AccessModel::Authorize => Err(Denied::NotSubscribed),
        }
    }

    pub fn last_item(&self) -> Option<&Item> {
        self.items.last()
    }

    /// Stores an item (a republished id moves to the newest place) and returns the ids it
    /// pushed out beyond `max_items`. Not persisted: nothing kept, nothing evicted.
    pub fn publish(&mut self, id: String, publisher: String, payload: Element) -> (Item, Vec<String>) {
        let item = Item {
            id,
            publisher,
            payload,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        if !self.config.persist_items {
            return (item, Vec::new());
        }
        self.items.retain(|i| i.id != item.id);
        self.items.push(item.clone());
        (item, self.trim())
    }

    /// Drops the oldest items beyond `max_items`; returns their ids.
    pub fn trim(&mut self) -> Vec<String> {
        let max = self.config.max_items as usize;
        if self.items.len() <= max {
            return Vec::new();
        }
        let excess = self.items.len() - max;
        self.items.drain(..excess).map(|i| i.id).collect()
    }

    pub fn retract(&mut self, id: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|i| i.id != id);
        self.items.len() != before
    }
}

impl Item {
    pub fn to_stored(&self) -> StoredPepItem {
        StoredPepItem {
            id: self.id.clone(),
            publisher: self.publisher.clone(),
            payload: crate::xml::to_string(&self.payload),
            seq: self.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u32) -> Element {
        format!("<p xmlns='urn:example' n='{n}'/>").parse().unwrap()
    }

    #[test]
    fn publish_keeps_max_items_newest_last() {
        let config = NodeConfig {
            max_items: 2,
            ..NodeConfig::default()
        };
        let mut node = Node::new(config);
        assert!(node.publish("a".into(), "o@x".into(), payload(1)).1.is_empty());
        assert!(node.publish("b".into(), "o@x".into(), payload(2)).1.is_empty());
        // Republishing "a" makes it the newest; nothing is evicted.
        assert!(node.publish("a".into(), "o@x".into(), payload(3)).1.is_empty());
        assert_eq!(
            node.publish("c".into(), "o@x".into(), payload(4)).1,
            vec!["b".to_string()]
        );
        let ids: Vec<_> = node.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert!(node.retract("a"));
        assert!(!node.retract("a"));
    }

    #[test]
    fn transient_nodes_keep_nothing() {
        let config = NodeConfig {
            persist_items: false,
            ..NodeConfig::default()
        };
        let mut node = Node::new(config);
        node.publish("a".into(), "o@x".into(), payload(1));
        assert!(node.items.is_empty());
    }

    #[test]
    fn access_models() {
        let mut node = Node::new(NodeConfig::default());
        let stranger = RosterFacts::default();
        let contact = RosterFacts {
            subscribed: true,
            groups: vec!["Friends".into()],
        };
        assert_eq!(
            node.access("s@x", &stranger),
            Err(Denied::PresenceSubscriptionRequired)
        );
        assert_eq!(node.access("c@x", &contact), Ok(()));
        node.config.access_model = AccessModel::Roster;
        assert_eq!(node.access("c@x", &contact), Err(Denied::NotInRosterGroup));
        node.config.roster_groups_allowed = vec!["Friends".into()];
        assert_eq!(node.access("c@x", &contact), Ok(()));
        node.config.access_model = AccessModel::Whitelist;
        assert_eq!(node.access("c@x", &contact), Err(Denied::ClosedNode));
        node.affiliations.insert("c@x".into(), Affiliation::Member);
        assert_eq!(node.access("c@x", &contact), Ok(()));
        node.config.access_model = AccessModel::Open;
        assert_eq!(node.access("s@x", &stranger), Ok(()));
        node.affiliations.insert("s@x".into(), Affiliation::Outcast);
        assert_eq!(node.access("s@x", &stranger), Err(Denied::Outcast));
    }
}
