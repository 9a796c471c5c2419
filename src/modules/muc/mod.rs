//! XEP-0045 multi-user chat, served on its own component domain (`[muc] domain`).
//!
//! - `service`: the room directory and what is addressed to the service domain itself
//!   (disco#info, disco#items of public rooms). A room whose bounded queue is full slows its
//!   senders down (their reads pause while they wait for a slot) rather than refusing them.
//! - `room`: a room is a task owning its state, fed through a bounded inbox; presence (enter,
//!   exit, nick change), groupchat and private messages, subject, history.
//! - `info`: a room's disco#info and muc#roominfo form (§6.4).
//! - `occupants`, `affiliations`: who is in the room, roles and affiliations (§5).
//! - `admin`: muc#admin (roles and affiliation lists) and muc#owner (configuration, destroy).
//! - `config`: the muc#roomconfig form (§10.2) and its effects.
//! - `history`: discussion history sent on join (§7.2.13-15), stored for persistent rooms.
//! - `archive`: the room's XEP-0313 archive (kept by the archive module): who may read it,
//!   join history read from it.
//! - `register`: registration with a room and reserved nicknames (§7.10, §7.12).
//! - `voice`: voice requests and their approval (§7.13, §8.6).
//! - `removal`: what the service announces on its own: affiliation changes of absent users
//!   (101), removal at shutdown (332) or after a technical problem (333).
//! - `rsm`: XEP-0059 paging of the service's disco#items.
//! - `courier`: private messages, invitations and declines, judged by the recipient's
//!   blocking and privacy rules (`hooks.inbound`) and stored offline when nobody is online.
//!
//! Delivery to occupants goes straight into the mailboxes of the sessions each occupant holds
//! (no session-table lookup), which never wait: a slow occupant is disconnected, never stalls
//! a room. A broadcast is serialized once (`session::SharedStanza`); each writer fills in its
//! own `to`.

pub mod admin;
pub mod affiliations;
pub mod archive;
pub mod config;
pub mod courier;
pub mod history;
pub mod info;
pub mod occupants;
pub mod register;
pub mod removal;
pub mod room;
pub mod rsm;
pub mod service;
pub mod service_admin;
pub mod voice;

use std::sync::Arc;

use crate::router::registry::{Module, Registry};

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const NS_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const NS_DATA: &str = "jabber:x:data";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const NS_CONFERENCE: &str = "jabber:x:conference";

/// The running service, for callers that hold no module (the admin commands, the shutdown
/// announcement in `run`): published on the registry.
pub(crate) fn running_service(server: &crate::server::Server) -> Option<Arc<service::Service>> {
    server.registry.provided::<service::Service>()
}

/// The MUC module: registers the service domain and the session-end hook.
pub struct Muc {
    service: Arc<service::Service>,
}

impl Muc {
    pub fn new() -> Self {
        Muc {
            service: Arc::new(service::Service::default()),
        }
    }
}

impl Default for Muc {
    fn default() -> Self {
        Self::new()
    }
}

impl Module for Muc {
    fn name(&self) -> &'static str {
        "muc"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.provide(self.service.clone());
        for command in service_admin::COMMANDS {
            r.command(command);
        }
        let me = self.clone();
        r.service(
            "Chatrooms",
            |config| config.muc.service_domain(&config.domains),
            move |server, from, stanza| {
                let service = me.service.clone();
                // Awaited by the sending session: a busy room slows its reads down.
                async move { service.handle(&server, from, stanza).await }
            },
        );
        // Unavailable broadcast presence leaves every room too (§7.14), like a disconnect.
        let me = self.clone();
        r.hooks
            .presence_broadcasted
            .observe("muc", move |server, routed| {
                if routed.stanza.attr("type") == Some("unavailable")
                    && let Some(session) = server.sessions.local(&routed.from)
                {
                    me.service.session_closed(server, &session);
                }
            });
        let me = self.clone();
        r.hooks.session_closed.observe("muc", move |server, event| {
            // Rooms still joined here had no unavailable presence sent for this session.
            removal::session_lost(&me.service, server, &event.entry);
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::router::registry::Registry;

    #[test]
    fn service_domain_is_registered() {
        let config = Config::parse("domains = [\"example.org\"]\n", "test").unwrap();
        let registry = Registry::build(crate::modules::all());
        let services: Vec<_> = registry.services(&config).collect();
        assert_eq!(services, vec![("conference.example.org", "Chatrooms")]);
        assert!(registry.service_for(&config, "Conference.Example.org").is_some());
        let off = Config::parse("domains = [\"example.org\"]\n[muc]\nenabled = false\n", "test").unwrap();
        assert_eq!(off.muc.service_domain(&off.domains), None);
    }
}
