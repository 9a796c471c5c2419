//! Ad-hoc commands (XEP-0050) on archives: a user purges their own archive, an admin any
//! account's or room's. Both ask for confirmation; queued messages are written first, so nothing
//! routed before the purge survives it.

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::accounts::Account;
use crate::command::form::{Field, Form, Kind, flag, one};
use crate::command::{Access, Command, Ctx, Done, StageCtx};

use super::Archive;

pub const PURGE_MINE: &str = "https://github.com/switchboard-xmpp/switchboard#purge-my-archive";
pub const PURGE_USER: &str = "https://github.com/switchboard-xmpp/switchboard#purge-user-archive";
pub const PURGE_ROOM: &str = "https://github.com/switchboard-xmpp/switchboard#purge-room-archive";

pub static TABLE: &[Command] = &[
    Command {
        node: PURGE_USER,
        name: "Purge a user's message archive",
        access: Access::Admin,
        enabled: |_| true,
        stages: &[user_form],
        run: |c| purge_user(c).boxed(),
    },
    Command {
        node: PURGE_ROOM,
        name: "Purge a room's message archive",
        access: Access::Admin,
        enabled: |_| true,
        stages: &[room_form],
        run: |c| purge_room(c).boxed(),
    },
    Command {
        node: PURGE_MINE,
        name: "Purge my message archive",
        access: Access::User,
        enabled: |_| true,
        stages: &[confirm_form],
        run: |c| purge_mine(c).boxed(),
    },
];

fn confirm() -> Field {
    Field::new("confirm", Kind::Boolean, "Delete every archived message").required()
}

fn confirm_form(_: StageCtx) -> BoxFuture<'static, Form> {
    futures::future::ready(Form {
        title: "Purge my message archive".into(),
        instructions: "Every message of your archive (XEP-0313) is deleted; this cannot be undone.".into(),
        form_type: None,
        fields: vec![confirm()],
    })
    .boxed()
}

fn user_form(_: StageCtx) -> BoxFuture<'static, Form> {
    futures::future::ready(Form {
        title: "Purge a user's message archive".into(),
        instructions: "Every message of the account's archive (XEP-0313) is deleted.".into(),
        form_type: None,
        fields: vec![
            Field::new("accountjid", Kind::JidSingle, "The Jabber ID").required(),
            confirm(),
        ],
    })
    .boxed()
}

fn room_form(_: StageCtx) -> BoxFuture<'static, Form> {
    futures::future::ready(Form {
        title: "Purge a room's message archive".into(),
        instructions: "Every message of the room's archive (XEP-0313) is deleted.".into(),
        form_type: None,
        fields: vec![
            Field::new("roomjid", Kind::JidSingle, "The room's address").required(),
            confirm(),
        ],
    })
    .boxed()
}

async fn purge_room(ctx: Ctx) -> Result<Done, String> {
    let given = one(&ctx.values, "roomjid").unwrap_or_default();
    let room = jid::BareJid::new(given).map_err(|_| format!("not a room address: {given}"))?;
    let config = ctx.server.config();
    let muc = config.muc.service_domain(&config.domains);
    if room.node().is_none() || muc.is_none_or(|d| !d.eq_ignore_ascii_case(room.domain().as_str())) {
        return Err(format!("not a room of this server: {room}"));
    }
    if !flag(&ctx.values, "confirm") {
        return Ok(Done::note("Nothing deleted (not confirmed)"));
    }
    let archive = ctx
        .server
        .registry
        .provided::<Archive>()
        .ok_or("message archives are not enabled")?;
    let n = archive.purge_room(&ctx.server, &room).await?;
    tracing::info!(%room, by = %ctx.requester, messages = n, "room message archive purged");
    Ok(Done::note(format!("Deleted {n} archived message(s)")))
}

async fn purge(ctx: &Ctx, account: &Account) -> Result<Done, String> {
    if !flag(&ctx.values, "confirm") {
        return Ok(Done::note("Nothing deleted (not confirmed)"));
    }
    if let Some(archive) = ctx.server.registry.provided::<Archive>() {
        archive.writer(&ctx.server).flush().await;
    }
    let n = ctx
        .server
        .storage
        .archive_purge(&account.domain, &account.user)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(account = %account, by = %ctx.requester, messages = n, "message archive purged");
    Ok(Done::note(format!("Deleted {n} archived message(s)")))
}

async fn purge_mine(ctx: Ctx) -> Result<Done, String> {
    let account =
        Account::parse(ctx.requester.to_bare().as_str(), &ctx.server.config()).map_err(|e| e.to_string())?;
    purge(&ctx, &account).await
}

async fn purge_user(ctx: Ctx) -> Result<Done, String> {
    let jid = one(&ctx.values, "accountjid").unwrap_or_default();
    let account = Account::parse(jid, &ctx.server.config()).map_err(|e| e.to_string())?;
    purge(&ctx, &account).await
}
