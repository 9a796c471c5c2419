//! Ad-hoc commands (XEP-0050) on archives: a user purges their own archive, an admin any
//! account's. Both ask for confirmation; queued messages are written first, so nothing
//! routed before the purge survives it.

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::accounts::Account;
use crate::command::form::{Field, Form, Kind, flag, one};
use crate::command::{Access, Command, Ctx, Done, StageCtx};

use super::Archive;

pub const PURGE_MINE: &str = "https://github.com/switchboard-xmpp/switchboard#purge-my-archive";
pub const PURGE_USER: &str = "https://github.com/switchboard-xmpp/switchboard#purge-user-archive";

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
