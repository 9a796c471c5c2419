//! XEP-0133 §4.11: the service-wide blacklist of bare JIDs and whole domains the service
//! refuses to communicate with. Stored in SQL (`service_blacklist`), edited by the
//! `edit-blacklist` admin command.
//!
//! Enforcement (XEP-0133 leaves the behaviour to the service):
//! - a local account that is listed, or whose domain is listed, is turned away as its session
//!   opens with the stream error `<not-authorized/>` ("account blacklisted"), before anything it
//!   sends is read; the edit command also ends the sessions it already has;
//! - a stanza a local user sends to a listed JID, or to any JID of a listed domain, is answered
//!   `<not-allowed/>` (type cancel: the service's policy, retrying will not help); errors and
//!   IQ results to them are dropped.
//!
//! The cached list is server state (`server::policy::Blacklist`, also read by the SASL
//! login check). Traffic pays nothing while the list is empty: both hooks have a synchronous
//! `wants` check reading one atomic flag.

use std::sync::Arc;

use futures::FutureExt;
use jid::{BareJid, Jid};

use crate::command::form::{Field, Form, Kind};
use crate::command::{Access, Command, Ctx, Done, StageCtx, admin_form, always};
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router::hooks::{Flow, Routed, SessionEvent, Stage};
use crate::router::registry::{Module, Registry};
use crate::server::Server;

/// Parses one entry of the edit form: a bare JID or a domain, normalised.
pub fn parse_entry(text: &str) -> Result<String, String> {
    let jid = Jid::new(text.trim()).map_err(|_| format!("'{text}' is not a valid JID"))?;
    if jid.resource().is_some() {
        return Err(format!(
            "'{text}': give a bare JID or a domain, without a resource"
        ));
    }
    Ok(jid.to_bare().to_string())
}

/// Whether a listed entry covers the account `bare` (the account itself or its domain).
pub fn covers(entry: &str, bare: &BareJid) -> bool {
    entry == bare.as_str() || entry == bare.domain().as_str()
}

pub struct Blacklist;

/// XEP-0133 §4.11.
static EDIT: Command = Command {
    node: "http://jabber.org/protocol/admin#edit-blacklist",
    name: "Edit the blacklist",
    access: Access::Admin,
    enabled: always,
    stages: &[|c| edit_blacklist_form(c).boxed()],
    run: |c| edit_blacklist(c).boxed(),
};

fn wants_outbound(server: &Server, routed: &Routed) -> bool {
    routed
        .to
        .as_ref()
        .is_some_and(|to| server.blacklist.is_listed(to))
}

fn wants_session(server: &Server, event: &SessionEvent) -> bool {
    !server.blacklist.is_loaded() || server.blacklist.is_listed(&Jid::from(event.entry.jid.clone()))
}

impl Module for Blacklist {
    fn name(&self) -> &'static str {
        "blacklist"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.command(&EDIT);
        // Admission: a refused session is kicked before it reads anything, and the
        // `session_opened` observers (message of the day...) never see it.
        r.hooks.session_opening.add_for(
            Stage::Admission,
            "blacklist",
            wants_session,
            |server, event| async move {
                server.blacklist.ensure_loaded(&server.storage).await;
                if !server.blacklist.is_listed(&Jid::from(event.entry.jid.clone())) {
                    return Flow::Continue(event);
                }
                tracing::info!(jid = %event.entry.jid, "blacklisted account refused");
                event.entry.kick(StreamError::with_text(
                    StreamErrorCondition::NotAuthorized,
                    "account blacklisted",
                ));
                Flow::Handled
            },
        );
        // Admission: nothing else (privacy, roster, carbons) sees a refused stanza.
        r.hooks.outbound.add_for(
            Stage::Admission,
            "blacklist",
            wants_outbound,
            |server, routed| async move {
                crate::router::bounce(
                    &server,
                    &routed.stanza,
                    StanzaError::not_allowed().text("the service does not communicate with this address"),
                );
                Flow::Handled
            },
        );
    }
}

async fn edit_blacklist_form(c: StageCtx) -> Form {
    let current = c.server.storage.blacklist().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the blacklist");
        Vec::new()
    });
    let mut form = admin_form(
        "Editing the blacklist",
        vec![Field::new("blacklistjids", Kind::JidMulti, "The blacklist").values(current)],
    );
    form.instructions = "Bare JIDs and domains the service refuses to communicate with: their \
                         accounts here cannot log in, and what local users send them is refused"
        .into();
    form
}

/// §4.11: the submitted list replaces the stored one; listed local accounts are disconnected.
async fn edit_blacklist(ctx: Ctx) -> Result<Done, String> {
    let mut list: Vec<String> = Vec::new();
    for j in ctx.values.get("blacklistjids").into_iter().flatten() {
        let entry = parse_entry(j)?;
        // An admin locking themselves out would need the database to undo it.
        if covers(&entry, &ctx.requester.to_bare()) {
            return Err(format!("'{entry}' would blacklist your own account"));
        }
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
    list.sort();
    ctx.server
        .storage
        .set_blacklist(&list)
        .await
        .map_err(|e| e.to_string())?;
    ctx.server.blacklist.set(&list);
    tracing::info!(admin = %ctx.requester, blacklist = %list.join(","), "admin edited the blacklist");
    let mut ended = 0;
    for s in ctx.server.sessions.all_sessions() {
        let bare = s.jid.to_bare();
        if list.iter().any(|e| covers(e, &bare)) {
            s.kick(StreamError::with_text(
                StreamErrorCondition::NotAuthorized,
                "account blacklisted",
            ));
            ended += 1;
        }
    }
    Ok(Done::note(format!(
        "The blacklist has {} entr{}; {ended} session(s) ended",
        list.len(),
        if list.len() == 1 { "y" } else { "ies" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bare_jids_or_domains() {
        assert_eq!(parse_entry(" Spam.Example ").unwrap(), "spam.example");
        assert_eq!(parse_entry("bad@example.net").unwrap(), "bad@example.net");
        assert!(parse_entry("bad@example.net/res").is_err());
        assert!(parse_entry("a@@b").is_err());
        let bare = BareJid::new("bob@example.org").unwrap();
        assert!(covers("example.org", &bare));
        assert!(covers("bob@example.org", &bare));
        assert!(!covers("alice@example.org", &bare));
    }
}
