//! XEP-0191 Blocking Command (v1.3) as a view of the default list (spec §5.3): the
//! blocklist is the JIDs of the default list's block items (jid, deny, no selectors).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::blocking::{Block, BlocklistResult, Unblock};

use super::Blocking;
use super::cache::{Edit, SessionPrivacy, WriteError};
use super::model::{self, BLOCKLIST_NAME, List};
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Registry};
use crate::server::Server;
use crate::xml::{self, ns};

pub const NS: &str = "urn:xmpp:blocking";
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";

pub(super) fn register(me: &Arc<Blocking>, r: &mut Registry) {
    r.feature(NS);
    let m = me.clone();
    r.iq(
        IqType::Get,
        NS,
        "blocklist",
        &[IqTarget::OwnAccount],
        move |req| {
            let m = m.clone();
            async move { m.blocklist(req).await }
        },
    );
    for (name, block) in [("block", true), ("unblock", false)] {
        let m = me.clone();
        r.iq(IqType::Set, NS, name, &[IqTarget::OwnAccount], move |req| {
            let m = m.clone();
            async move { m.block(req, block).await }
        });
    }
}

/// Which XEP-0191 payload carries a list of JIDs.
#[derive(Debug, Clone, Copy)]
pub enum JidList {
    /// §3.1 the answer to a blocklist request.
    Blocklist,
    /// §3.2 a block push.
    Block,
    /// §3.3 an unblock push (no item: everyone was unblocked, §3.4).
    Unblock,
}

/// The payload with one item per JID (typed by xmpp-parsers). The JIDs were normalized when
/// stored, so none fails to parse; one that did would be left out rather than sent broken.
pub fn block_payload(kind: JidList, jids: &[String]) -> Element {
    let items: Vec<Jid> = jids.iter().filter_map(|j| Jid::new(j).ok()).collect();
    match kind {
        JidList::Blocklist => BlocklistResult { items }.into(),
        JidList::Block => Block { items }.into(),
        JidList::Unblock => Unblock { items }.into(),
    }
}

impl Blocking {
    /// XEP-0191 §3.1: the blocklist; the session now gets pushes.
    async fn blocklist(&self, req: IqRequest) -> IqResult {
        let user = req.from.to_bare();
        let state = self.cache.get(&req.server, &user).await?;
        if let Some(session) = req.server.sessions.local(&req.from) {
            session
                .extension::<SessionPrivacy>()
                .wants_blocklist
                .store(true, Ordering::Release);
        }
        let jids: Vec<String> = state
            .default()
            .map(|l| l.blocked_jids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(IqResponse::with(block_payload(JidList::Blocklist, &jids)))
    }

    /// XEP-0191 §3.2 (block), §3.3 (unblock), §3.4 (unblock all).
    async fn block(&self, req: IqRequest, block: bool) -> IqResult {
        let payload = req.payload();
        let mut jids = Vec::new();
        for item in payload.children().filter(|c| c.is("item", NS)) {
            let raw = item.attr("jid").ok_or_else(StanzaError::bad_request)?;
            jids.push(model::normalize_jid(raw).ok_or_else(StanzaError::jid_malformed)?);
        }
        // §3.2: a block with no item is an error; an empty unblock unblocks everyone.
        if block && jids.is_empty() {
            return Err(StanzaError::bad_request().text("no item to block"));
        }
        let user = req.from.to_bare();
        let server = req.server.clone();
        let state = self.cache.get(&server, &user).await?;
        let name = state
            .default_list
            .clone()
            .unwrap_or_else(|| BLOCKLIST_NAME.to_owned());
        let result = self
            .cache
            .modify(&server, &user, &name, None, block, |_, old| {
                let empty = List::default();
                let old = old.unwrap_or(&empty);
                let items = if block {
                    model::with_blocks(old, &jids)
                } else {
                    model::without_blocks(old, &jids)
                };
                Ok(items.map_or(Edit::Keep, Edit::Replace))
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
        Ok(IqResponse::empty())
    }
}

/// XEP-0191 §3.2 / §3.3: on blocking, the contact sees the user go offline (unavailable
/// presence from each available resource); on unblocking, it gets each available resource's
/// current presence again. Only for a local contact with a subscription to the user's presence.
pub(super) async fn presence_to_contacts(
    server: &Arc<Server>,
    user: &BareJid,
    jids: &[String],
    blocked: bool,
) {
    let Some(node) = user.node() else { return };
    let Ok(roster) = server
        .storage
        .roster_load(user.domain().as_str(), node.as_str())
        .await
    else {
        return;
    };
    let resources: Vec<_> = server
        .sessions
        .sessions_of(user)
        .into_iter()
        .filter(|s| s.is_available())
        .collect();
    for j in jids {
        let Some(contact) = super::bare_of(j) else {
            continue;
        };
        let subscribed = roster
            .items
            .iter()
            .any(|i| i.contact == contact.as_str() && matches!(i.subscription.as_str(), "from" | "both"));
        if !subscribed {
            continue;
        }
        for target in server.sessions.sessions_of(&contact) {
            if !target.is_available() {
                continue;
            }
            for r in &resources {
                let mut p = if blocked {
                    let mut p = Element::bare("presence", ns::CLIENT);
                    xml::set_attr(&mut p, "type", "unavailable");
                    p
                } else {
                    match r.last_presence() {
                        Some(p) => p,
                        None => continue,
                    }
                };
                xml::set_attr(&mut p, "from", &r.jid.to_string());
                xml::set_attr(&mut p, "to", &target.jid.to_string());
                crate::router::push(&target, p);
            }
        }
    }
}
