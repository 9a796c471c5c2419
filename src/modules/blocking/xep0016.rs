//! XEP-0016 Privacy Lists (v1.7): the model seen directly (spec §5.1). Deviations, per spec
//! §5.6: list pushes go only to resources that used this protocol in their session, and
//! changing the default list is not refused while other resources use it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use minidom::Element;

use super::Blocking;
use super::cache::{Edit, SessionPrivacy, WriteError};
use super::ignore::{item_element, parse_item};
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Registry};
use crate::session::SessionEntry;
use crate::xml;

pub const NS: &str = "jabber:iq:privacy";

pub(super) fn register(me: &Arc<Blocking>, r: &mut Registry) {
    r.feature(NS);
    let m = me.clone();
    r.iq(IqType::Get, NS, "query", &[IqTarget::OwnAccount], move |req| {
        let m = m.clone();
        async move { m.privacy_get(req).await }
    });
    let m = me.clone();
    r.iq(IqType::Set, NS, "query", &[IqTarget::OwnAccount], move |req| {
        let m = m.clone();
        async move { m.privacy_set(req).await }
    });
}

/// The list push (XEP-0016 §2.6): `<query><list name='..'/></query>`.
pub fn push_payload(name: &str) -> Element {
    let mut list = Element::bare("list", NS);
    xml::set_attr(&mut list, "name", name);
    let mut q = Element::bare("query", NS);
    q.append_child(list);
    q
}

fn named(name: &str, element: &str) -> Element {
    let mut el = Element::bare(element, NS);
    xml::set_attr(&mut el, "name", name);
    el
}

impl Blocking {
    /// Marks the requesting session as a user of this protocol (it gets pushes from now on).
    fn mark(&self, req: &IqRequest) -> Option<Arc<SessionEntry>> {
        let session = req.server.sessions.local(&req.from)?;
        let state = session.extension::<SessionPrivacy>();
        state.wants_privacy.store(true, Ordering::Release);
        Some(session)
    }

    /// §2.2 (names), §2.3 (one list).
    async fn privacy_get(&self, req: IqRequest) -> IqResult {
        let session = self.mark(&req);
        let user = req.from.to_bare();
        let state = self.cache.get(&req.server, &user).await?;
        let lists: Vec<&Element> = req.payload().children().filter(|c| c.is("list", NS)).collect();
        let mut q = Element::bare("query", NS);
        match lists.as_slice() {
            [] => {
                if let Some(active) = session.and_then(|s| s.privacy_list()) {
                    q.append_child(named(&active, "active"));
                }
                if let Some(default) = &state.default_list {
                    q.append_child(named(default, "default"));
                }
                let mut names: Vec<&String> = state.lists.keys().collect();
                names.sort();
                for n in names {
                    q.append_child(named(n, "list"));
                }
            }
            [one] => {
                let name = one.attr("name").unwrap_or("");
                let list = state.lists.get(name).ok_or_else(StanzaError::item_not_found)?;
                let mut l = named(name, "list");
                for item in &list.items {
                    l.append_child(item_element(item, NS));
                }
                q.append_child(l);
            }
            _ => return Err(StanzaError::bad_request().text("one list at a time")),
        }
        Ok(IqResponse::with(q))
    }

    /// §2.4 (active), §2.5 (default), §2.6 (edit), §2.7 (remove).
    async fn privacy_set(&self, req: IqRequest) -> IqResult {
        let session = self.mark(&req);
        let server = req.server.clone();
        let user = req.from.to_bare();
        let mut children = req.payload().children();
        let (Some(child), None) = (children.next(), children.next()) else {
            return Err(StanzaError::bad_request().text("exactly one child"));
        };
        let name = child.attr("name").filter(|n| !n.is_empty());
        let state = self.cache.get(&server, &user).await?;
        match child.name() {
            "active" => {
                if let Some(n) = name
                    && !state.lists.contains_key(n)
                {
                    return Err(StanzaError::item_not_found());
                }
                if let Some(s) = session {
                    s.set_privacy_list(name.map(str::to_owned));
                }
            }
            "default" => {
                let (before, after) = self.cache.set_default(&server, &user, name).await?;
                self.notify(&server, &user, &before, &after, None, Some(&req.from))
                    .await;
            }
            "list" => {
                let name = name.ok_or_else(|| StanzaError::bad_request().text("list without name"))?;
                let mut items = Vec::new();
                for el in child.children().filter(|c| c.is("item", NS)) {
                    let (item, order) = parse_item(el, NS)?;
                    if order.is_none() {
                        return Err(StanzaError::bad_request().text("item without order"));
                    }
                    if items.iter().any(|i: &super::model::Item| i.order == item.order) {
                        return Err(StanzaError::bad_request().text("duplicate order"));
                    }
                    items.push(item);
                }
                let deleting = items.is_empty();
                if deleting {
                    // §2.7: a list in use by another resource cannot be removed.
                    let in_use = server
                        .sessions
                        .sessions_of(&user)
                        .iter()
                        .any(|s| s.jid != req.from && s.privacy_list_is(name));
                    if in_use || state.default_list.as_deref() == Some(name) {
                        return Err(StanzaError::conflict().text("list in use"));
                    }
                    if !state.lists.contains_key(name) {
                        return Err(StanzaError::item_not_found());
                    }
                }
                let result = self
                    .cache
                    .modify(&server, &user, name, None, false, |_, _| {
                        Ok(if deleting {
                            Edit::Delete
                        } else {
                            Edit::Replace(items)
                        })
                    })
                    .await;
                match result {
                    Ok(Some(change)) => {
                        let (before, after) = (change.before.clone(), change.after.clone());
                        self.notify(&server, &user, &before, &after, Some(&change), None)
                            .await;
                    }
                    Ok(None) => {}
                    Err(WriteError::Stale(_)) => return Err(StanzaError::conflict().text("retry")),
                    Err(WriteError::Stanza(e)) => return Err(e),
                }
                if deleting
                    && let Some(s) = session
                    && s.privacy_list_is(name)
                {
                    s.set_privacy_list(None);
                }
            }
            _ => return Err(StanzaError::bad_request()),
        }
        Ok(IqResponse::empty())
    }
}
