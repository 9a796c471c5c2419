//! The incremental ignore-list protocol, `urn:switchboard:ignore:0` (xep/xep-ignore-list.md
//! §6): single-item add/remove with an expected version, a version on every answer, delta
//! pushes to the account's other resources, paged fetch.
//!
//! Requests come through the IQ registry like any other, as one handler for the whole
//! namespace (`Registry::iq_namespace`): an unknown element is `bad-request` (spec §9). Only
//! the account's own requests (no `to`, or the sender's bare JID) reach it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use minidom::Element;

use super::Blocking;
use super::cache::{Change, Edit, SessionPrivacy, WriteError};
use super::model::{self, BLOCKLIST_NAME, Item, Kind, List};
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqTarget, IqType, Registry};
use crate::xml;

pub const NS: &str = "urn:switchboard:ignore:0";
/// Page size when the client gives none, and the largest page served.
pub const DEFAULT_MAX: usize = 100;
pub const LIMIT_MAX: usize = 500;

pub(super) fn register(me: &Arc<Blocking>, r: &mut Registry) {
    r.feature(NS);
    let m = me.clone();
    // Every element of the namespace: an unknown one is `bad-request` (spec §9).
    r.iq_namespace(NS, &[IqTarget::OwnAccount], move |req| {
        let m = m.clone();
        async move { m.handle(&req).await.map(IqResponse::with) }
    });
}

/// `conflict` with the list's current version (spec §6.6).
fn version_mismatch(current: i64) -> StanzaError {
    let mut mismatch = Element::bare("version-mismatch", NS);
    xml::set_attr(&mut mismatch, "current", &current.to_string());
    StanzaError::conflict().with_application(mismatch)
}

/// `<item/>` in this namespace (also used by the XEP-0016 view with its own namespace).
pub fn item_element(item: &Item, namespace: &str) -> Element {
    let mut el = Element::bare("item", namespace);
    if item.kind != Kind::Any {
        xml::set_attr(&mut el, "type", item.kind.as_str());
        xml::set_attr(&mut el, "value", &item.value);
    }
    xml::set_attr(&mut el, "action", if item.allow { "allow" } else { "deny" });
    xml::set_attr(&mut el, "order", &item.order.to_string());
    for (bit, name) in SELECTORS {
        if item.selectors & bit != 0 {
            el.append_child(Element::bare(name, namespace));
        }
    }
    el
}

pub const SELECTORS: [(u8, &str); 4] = [
    (model::MESSAGE, "message"),
    (model::IQ, "iq"),
    (model::PRESENCE_IN, "presence-in"),
    (model::PRESENCE_OUT, "presence-out"),
];

/// Parses an `<item/>` (XEP-0016 §2.1 syntax). `order`: `None` when absent.
pub fn parse_item(el: &Element, namespace: &str) -> Result<(Item, Option<u32>), StanzaError> {
    let kind = match el.attr("type") {
        None => Kind::Any,
        Some(t) => Kind::parse(t)
            .filter(|k| *k != Kind::Any)
            .ok_or_else(|| StanzaError::bad_request().text("unknown item type"))?,
    };
    let value = match (kind, el.attr("value")) {
        (Kind::Any, _) => String::new(),
        (_, None) => return Err(StanzaError::bad_request().text("item without value")),
        (Kind::Jid, Some(v)) => model::normalize_jid(v).ok_or_else(StanzaError::jid_malformed)?,
        (Kind::Subscription, Some(v)) => {
            if !matches!(v, "none" | "to" | "from" | "both") {
                return Err(StanzaError::bad_request().text("unknown subscription"));
            }
            v.to_owned()
        }
        (_, Some(v)) => v.to_owned(),
    };
    let allow = match el.attr("action").unwrap_or("deny") {
        "allow" => true,
        "deny" => false,
        _ => return Err(StanzaError::bad_request().text("action is allow or deny")),
    };
    let order = el
        .attr("order")
        .map(|o| o.parse::<u32>())
        .transpose()
        .map_err(|_| StanzaError::bad_request().text("order is a non-negative integer"))?;
    let mut selectors = 0;
    for c in el.children().filter(|c| c.ns() == namespace) {
        let bit = SELECTORS
            .iter()
            .find(|(_, n)| *n == c.name())
            .map(|(b, _)| *b)
            .ok_or_else(|| StanzaError::bad_request().text("unknown selector"))?;
        selectors |= bit;
    }
    Ok((
        Item {
            kind,
            value,
            allow,
            order: order.unwrap_or(0),
            selectors,
        },
        order,
    ))
}

/// The delta push for a change (spec §6.5).
pub fn delta_payload(change: &Change) -> Element {
    let mut delta = Element::bare("delta", NS);
    xml::set_attr(&mut delta, "list", &change.name);
    xml::set_attr(&mut delta, "version", &change.version.to_string());
    let previous = change.old.as_ref().map_or(0, |l| l.version);
    xml::set_attr(&mut delta, "previous", &previous.to_string());
    let empty = List::default();
    let old = change.old.as_deref().unwrap_or(&empty);
    let Some(new) = change.new.as_deref() else {
        xml::set_attr(&mut delta, "deleted", "true");
        return delta;
    };
    let mut add = Element::bare("add", NS);
    let mut remove = Element::bare("remove", NS);
    for item in &new.items {
        if !old.items.contains(item) {
            add.append_child(item_element(item, NS));
        }
    }
    for item in &old.items {
        if !new.items.iter().any(|n| n.key() == item.key()) {
            remove.append_child(item_element(item, NS));
        }
    }
    if add.children().next().is_some() {
        delta.append_child(add);
    }
    if remove.children().next().is_some() {
        delta.append_child(remove);
    }
    delta
}

fn parse_version(el: &Element) -> Result<Option<i64>, StanzaError> {
    el.attr("version")
        .map(|v| v.parse::<i64>())
        .transpose()
        .map_err(|_| StanzaError::bad_request().text("version is an integer"))
}

impl Blocking {
    /// One request from the account's own resource: the answer's payload.
    async fn handle(&self, req: &IqRequest) -> Result<Element, StanzaError> {
        let (server, from, payload) = (&req.server, &req.from, req.payload());
        if let Some(session) = server.sessions.local(from) {
            session
                .extension::<SessionPrivacy>()
                .wants_ignore
                .store(true, Ordering::Release);
        }
        let user = from.to_bare();
        let state = self.cache.get(server, &user).await?;
        let version = parse_version(payload)?;
        // No list named: the default list (the blocklist), spec §6.1.
        let name = match payload.attr("list").or(payload.attr("name")) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => state
                .default_list
                .clone()
                .unwrap_or_else(|| BLOCKLIST_NAME.to_owned()),
        };
        let is_set = req.kind == IqType::Set;
        match (is_set, payload.name()) {
            (false, "lists") => {
                let mut out = Element::bare("lists", NS);
                let mut names: Vec<&String> = state.lists.keys().collect();
                names.sort();
                for n in names {
                    let mut l = Element::bare("list", NS);
                    xml::set_attr(&mut l, "name", n);
                    xml::set_attr(&mut l, "version", &state.lists[n].version.to_string());
                    xml::set_attr(&mut l, "total", &state.lists[n].items.len().to_string());
                    if state.default_list.as_ref() == Some(n) {
                        xml::set_attr(&mut l, "default", "true");
                    }
                    out.append_child(l);
                }
                Ok(out)
            }
            (false, "list") => {
                let list = state.lists.get(&name);
                let current = list.map_or(0, |l| l.version);
                if version.is_some_and(|v| v != current) {
                    return Err(version_mismatch(current));
                }
                let start: usize = payload
                    .attr("start")
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| StanzaError::bad_request().text("start is an integer"))?
                    .unwrap_or(0);
                let max: usize = payload
                    .attr("max")
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| StanzaError::bad_request().text("max is an integer"))?
                    .unwrap_or(DEFAULT_MAX)
                    .min(LIMIT_MAX);
                let items: &[Item] = list.map_or(&[], |l| &l.items);
                let mut out = Element::bare("list", NS);
                xml::set_attr(&mut out, "name", &name);
                xml::set_attr(&mut out, "version", &current.to_string());
                xml::set_attr(&mut out, "total", &items.len().to_string());
                xml::set_attr(&mut out, "start", &start.to_string());
                for item in items.iter().skip(start).take(max) {
                    out.append_child(item_element(item, NS));
                }
                Ok(out)
            }
            (true, "add" | "remove") => {
                let adding = payload.name() == "add";
                let mut items = payload.children().filter(|c| c.is("item", NS));
                let (Some(item_el), None) = (items.next(), items.next()) else {
                    return Err(StanzaError::bad_request().text("exactly one item"));
                };
                let (item, order) = parse_item(item_el, NS)?;
                if item.kind == Kind::Any {
                    return Err(StanzaError::bad_request().text("item needs a type"));
                }
                let make_default = payload.attr("list").is_none_or(str::is_empty);
                let result = self
                    .cache
                    .modify(server, &user, &name, version, make_default, |_, old| {
                        edit(old, item, order, adding)
                    })
                    .await;
                let change = match result {
                    Ok(c) => c,
                    Err(WriteError::Stale(v)) => {
                        return Err(version_mismatch(v));
                    }
                    Err(WriteError::Stanza(e)) => return Err(e),
                };
                let version = match &change {
                    Some(c) => {
                        self.notify(server, &user, &c.before, &c.after, Some(c), Some(from))
                            .await;
                        c.version
                    }
                    None => state.lists.get(&name).map_or(0, |l| l.version),
                };
                let mut ack = Element::bare("ack", NS);
                xml::set_attr(&mut ack, "list", &name);
                xml::set_attr(&mut ack, "version", &version.to_string());
                Ok(ack)
            }
            (true, "default") => {
                let target = payload.attr("list").filter(|n| !n.is_empty());
                let (before, after) = self.cache.set_default(server, &user, target).await?;
                self.notify(server, &user, &before, &after, None, Some(from))
                    .await;
                Ok(Element::bare("ack", NS))
            }
            _ => Err(StanzaError::bad_request().text("unknown request")),
        }
    }
}

/// Adds (or replaces, same type and value) or removes one item (spec §6.2, §6.3).
fn edit(old: Option<&List>, item: Item, order: Option<u32>, adding: bool) -> Result<Edit, StanzaError> {
    let mut items: Vec<Item> = old.map(|l| l.items.clone()).unwrap_or_default();
    let existing = items.iter().position(|i| i.key() == item.key());
    if !adding {
        let Some(pos) = existing else {
            return Err(StanzaError::item_not_found());
        };
        items.remove(pos);
        return Ok(Edit::Replace(items));
    }
    let mut item = item;
    item.order = match (order, existing) {
        (Some(o), _) => o,
        (None, Some(pos)) => items[pos].order,
        (None, None) => items
            .iter()
            .map(|i| i.order)
            .max()
            .map_or(1, |m| m.saturating_add(1)),
    };
    if items
        .iter()
        .enumerate()
        .any(|(k, i)| i.order == item.order && Some(k) != existing)
    {
        return Err(StanzaError::bad_request().text("order already used by another item"));
    }
    match existing {
        Some(pos) if items[pos] == item => return Ok(Edit::Keep),
        Some(pos) => items[pos] = item,
        None => items.push(item),
    }
    Ok(Edit::Replace(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid_item(value: &str) -> Item {
        Item {
            kind: Kind::Jid,
            value: value.into(),
            allow: false,
            order: 0,
            selectors: 0,
        }
    }

    fn items(edit: Edit) -> Vec<Item> {
        match edit {
            Edit::Replace(items) => items,
            _ => panic!("not a replace"),
        }
    }

    #[test]
    fn add_appends_replaces_and_checks_orders() {
        let l = List::new("l", 1, items(edit(None, jid_item("a@x"), None, true).unwrap()));
        assert_eq!(l.items[0].order, 1);
        let l = List::new(
            "l",
            2,
            items(edit(Some(&l), jid_item("b@x"), None, true).unwrap()),
        );
        assert_eq!(l.items.iter().map(|i| i.order).collect::<Vec<_>>(), vec![1, 2]);
        // Same type and value: replaced in place, order kept.
        let mut allow = jid_item("a@x");
        allow.allow = true;
        let l2 = List::new("l", 3, items(edit(Some(&l), allow, None, true).unwrap()));
        assert_eq!(l2.items.len(), 2);
        assert!(l2.items[0].allow && l2.items[0].order == 1);
        // Identical: nothing to do.
        assert!(matches!(
            edit(Some(&l), jid_item("b@x"), None, true).unwrap(),
            Edit::Keep
        ));
        // An order used by another item.
        let e = edit(Some(&l), jid_item("c@x"), Some(2), true).err().unwrap();
        assert_eq!(e.condition, "bad-request");
    }

    #[test]
    fn remove_needs_the_item() {
        let l = List::new("l", 1, vec![jid_item("a@x")]);
        assert!(items(edit(Some(&l), jid_item("a@x"), None, false).unwrap()).is_empty());
        let e = edit(Some(&l), jid_item("b@x"), None, false).err().unwrap();
        assert_eq!(e.condition, "item-not-found");
    }

    #[test]
    fn parse_item_validates() {
        let el: Element =
            "<item xmlns='urn:switchboard:ignore:0' type='jid' value='A@X' order='3'><message/></item>"
                .parse()
                .unwrap();
        let (item, order) = parse_item(&el, NS).unwrap();
        assert_eq!(item.value, "a@x");
        assert_eq!(order, Some(3));
        assert_eq!(item.selectors, model::MESSAGE);
        assert!(!item.allow);
        for bad in [
            "<item xmlns='urn:switchboard:ignore:0' type='jid'/>",
            "<item xmlns='urn:switchboard:ignore:0' type='nope' value='x'/>",
            "<item xmlns='urn:switchboard:ignore:0' type='subscription' value='maybe'/>",
            "<item xmlns='urn:switchboard:ignore:0' type='jid' value='x' action='drop'/>",
            "<item xmlns='urn:switchboard:ignore:0' type='jid' value='x'><video/></item>",
        ] {
            let el: Element = bad.parse().unwrap();
            assert!(parse_item(&el, NS).is_err(), "{bad}");
        }
    }
}
