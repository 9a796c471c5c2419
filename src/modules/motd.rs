//! The message of the day (XEP-0133 §4.23-§4.25): admins set, edit and delete it per hosted
//! domain (stored in SQL as the subject line, a newline and the body); every session that
//! opens on that domain gets it as a headline.

use std::sync::Arc;

use futures::FutureExt;

use crate::command::form::{Field, Form, Kind, one};
use crate::command::{
    Access, Command, Ctx, Done, StageCtx, admin_form, always, body, headline, message_form,
};
use crate::router::hooks::SessionEvent;
use crate::router::registry::{Module, Registry};
use crate::server::Server;

macro_rules! node {
    ($name:literal) => {
        concat!("http://jabber.org/protocol/admin#", $name)
    };
}

static COMMANDS: &[Command] = &[
    Command {
        node: node!("set-motd"),
        name: "Set the message of the day",
        access: Access::Admin,
        enabled: always,
        stages: &[message_form],
        run: |c| set_motd(c).boxed(),
    },
    Command {
        node: node!("edit-motd"),
        name: "Edit the message of the day",
        access: Access::Admin,
        enabled: always,
        stages: &[|c| edit_motd_form(c).boxed()],
        run: |c| set_motd(c).boxed(),
    },
    Command {
        node: node!("delete-motd"),
        name: "Delete the message of the day",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| delete_motd(c).boxed(),
    },
];

pub struct Motd;

impl Module for Motd {
    fn name(&self) -> &'static str {
        "motd"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        for command in COMMANDS {
            r.command(command);
        }
        r.hooks.session_opened.observe_async("motd", |server, event| {
            let (server, event) = (
                server.clone(),
                SessionEvent {
                    entry: event.entry.clone(),
                },
            );
            async move { show_motd(&server, &event).await }
        });
    }
}

/// The message of the day as a headline to a session that just opened.
async fn show_motd(server: &Server, event: &SessionEvent) {
    let domain = event.entry.jid.domain().to_string();
    match server.storage.motd(&domain).await {
        Ok(Some(stored)) => {
            let (subject, text) = stored.split_once('\n').unwrap_or(("", stored.as_str()));
            crate::router::push(
                &event.recipient(),
                headline(&domain, &event.entry.jid.to_string(), Some(subject), text),
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the message of the day"),
    }
}

async fn edit_motd_form(c: StageCtx) -> Form {
    let mut form = admin_form(
        "Editing the message of the day",
        vec![
            Field::new("subject", Kind::TextSingle, "Subject"),
            Field::new("body", Kind::TextMulti, "Message").required(),
        ],
    );
    if let Ok(Some(stored)) = c.server.storage.motd(&c.domain).await {
        let (subject, text) = stored.split_once('\n').unwrap_or(("", stored.as_str()));
        if !subject.is_empty() {
            form.fields[0].values = vec![subject.to_string()];
        }
        form.fields[1].values = text.lines().map(str::to_owned).collect();
    }
    form
}

/// Stored as the subject line (may be empty), a newline, and the body.
async fn set_motd(ctx: Ctx) -> Result<Done, String> {
    let subject = one(&ctx.values, "subject").unwrap_or_default();
    let text = format!("{subject}\n{}", body(&ctx.values));
    ctx.server
        .storage
        .set_motd(&ctx.domain, Some(&text))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, domain = %ctx.domain, "admin set the message of the day");
    Ok(Done::note("The message of the day was set"))
}

async fn delete_motd(ctx: Ctx) -> Result<Done, String> {
    ctx.server
        .storage
        .set_motd(&ctx.domain, None)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, domain = %ctx.domain, "admin deleted the message of the day");
    Ok(Done::note("The message of the day was deleted"))
}
