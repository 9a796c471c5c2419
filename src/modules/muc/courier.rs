//! Deliveries from a room that the recipient's own rules must judge first: private messages,
//! mediated invitations and declines. They pass `hooks.inbound` (XEP-0191 blocking, XEP-0016
//! privacy lists) with `from` the sender's occupant JID or the inviter, as the blocking module
//! expects. Hooks await and a room handles its commands synchronously, so each room hands
//! these to its courier: one task per room, fed by a bounded queue and delivering in order, so
//! private messages keep the order the room saw them in.
//!
//! An invitation or decline for an account with no available resource goes to offline
//! storage (`hooks.message_offline`), like any normal message to a bare JID, and is delivered
//! at the next login.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::mpsc;

use crate::error::StanzaError;
use crate::router::hooks::{Flow, Routed};
use crate::router::registry::{IqRequest, IqTarget, IqType};
use crate::router::{bounce, deliver_to_full};
use crate::server::Server;
use crate::xml;

/// XEP-0054.
pub const NS_VCARD: &str = "vcard-temp";

/// Deliveries a room may have in flight before senders get `resource-constraint`.
const COURIER_QUEUE: usize = 256;

pub enum Delivery {
    /// A private message, `stanza` already from the sender's occupant JID, to each session of
    /// the target occupant. `original` is what the sender sent (errors answer it).
    Private {
        occupant: FullJid,
        to: Vec<FullJid>,
        stanza: Element,
        original: Element,
    },
    /// An invitation or decline from the room to an account; `by` is who invited or declined.
    ToAccount {
        by: FullJid,
        to: BareJid,
        stanza: Element,
        original: Element,
    },
    /// A vCard request to an occupant, answered by the server for the occupant's account
    /// (XEP-0054 §3.2: vCards belong to bare JIDs), asked as `asker` (the requester's occupant
    /// JID); `target` is the occupant JID addressed.
    VCard {
        asker: FullJid,
        account: BareJid,
        target: String,
        original: Element,
    },
}

impl Delivery {
    fn original(&self) -> &Element {
        match self {
            Delivery::Private { original, .. }
            | Delivery::ToAccount { original, .. }
            | Delivery::VCard { original, .. } => original,
        }
    }
}

pub struct Courier {
    tx: mpsc::Sender<Delivery>,
}

impl Courier {
    /// Starts the courier task; it ends once the room drops its `Courier` and the queue is empty.
    pub fn start(server: Arc<Server>) -> Courier {
        let (tx, mut rx) = mpsc::channel::<Delivery>(COURIER_QUEUE);
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                deliver(&server, d).await;
            }
        });
        Courier { tx }
    }

    /// Queues a delivery; a full queue answers the sender instead of waiting.
    pub fn send(&self, server: &Arc<Server>, d: Delivery) {
        if let Err(e) = self.tx.try_send(d) {
            let d = match e {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
            };
            bounce(
                server,
                d.original(),
                StanzaError::resource_constraint().text("the room is too busy"),
            );
        }
    }
}

/// Runs the recipient's inbound hooks; `None` when they stopped the stanza.
async fn judged(server: &Arc<Server>, from: FullJid, to: Jid, stanza: Element) -> Option<Element> {
    let hooks = &server.registry.hooks.inbound;
    if hooks.is_empty() {
        return Some(stanza);
    }
    let routed = Routed {
        from,
        to: Some(to),
        stanza,
        excluded: Vec::new(),
    };
    match hooks.run(server, routed).await {
        Flow::Continue(r) => Some(r.stanza),
        Flow::Handled => None,
    }
}

/// Runs the server's vCard handler for `account` as `asker`, after the account's own rules.
async fn vcard(
    server: &Arc<Server>,
    asker: FullJid,
    account: BareJid,
    iq: &Element,
) -> Result<Option<Element>, StanzaError> {
    let Some(iq) = judged(server, asker.clone(), Jid::from(account.clone()), iq.clone()).await else {
        return Err(StanzaError::service_unavailable());
    };
    let handler = server
        .registry
        .handler(IqType::Get, NS_VCARD, "vCard", IqTarget::OtherAccount)
        .cloned()
        .ok_or_else(StanzaError::service_unavailable)?;
    let request = IqRequest {
        server: server.clone(),
        from: asker,
        to: account,
        target: IqTarget::OtherAccount,
        kind: IqType::Get,
        iq,
    };
    handler(request).await.map(|r| r.payload)
}

async fn deliver(server: &Arc<Server>, d: Delivery) {
    match d {
        Delivery::VCard {
            asker,
            account,
            target,
            original,
        } => {
            let answer = vcard(server, asker, account, &original).await;
            let Some(requester) = original.attr("from").and_then(|f| FullJid::new(f).ok()) else {
                return;
            };
            let mut reply = match answer {
                Ok(payload) => xml::iq_result(&original, payload),
                Err(e) => e.reply_to(&original),
            };
            xml::set_attr(&mut reply, "from", &target);
            xml::set_attr(&mut reply, "to", &requester.to_string());
            match original.attr("id") {
                Some(id) => xml::set_attr(&mut reply, "id", id),
                None => xml::remove_attr(&mut reply, "id"),
            }
            deliver_to_full(server, &requester, reply);
        }
        Delivery::Private {
            occupant,
            to,
            stanza,
            original,
        } => {
            let mut refused = false;
            for session in to {
                let mut copy = stanza.clone();
                xml::set_attr(&mut copy, "to", &session.to_string());
                match judged(server, occupant.clone(), Jid::from(session.clone()), copy).await {
                    Some(out) => deliver_to_full(server, &session, out),
                    None => refused = true,
                }
            }
            if refused {
                // The hook could not answer (the occupant JID is no session): XEP-0191 §3.4
                // says a blocked sender's message gets service-unavailable, from the target.
                bounce(server, &original, StanzaError::service_unavailable());
            }
        }
        Delivery::ToAccount {
            by,
            to,
            stanza,
            original,
        } => {
            let Some(out) = judged(server, by.clone(), Jid::from(to.clone()), stanza).await else {
                return bounce(server, &original, StanzaError::service_unavailable());
            };
            let mut delivered = false;
            for session in server.sessions.sessions_of(&to) {
                if session.is_available() {
                    crate::router::deliver(server, &session, out.clone());
                    delivered = true;
                }
            }
            if delivered {
                return;
            }
            // Nobody online: stored for the next login, as a message to the bare JID would be.
            let routed = Routed {
                from: by,
                to: Some(Jid::from(to)),
                stanza: out,
                excluded: Vec::new(),
            };
            if let Flow::Continue(_) = server.registry.hooks.message_offline.run(server, routed).await {
                bounce(server, &original, StanzaError::service_unavailable());
            }
        }
    }
}
