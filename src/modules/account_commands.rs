//! Commands every user may run on their own account, as ejabberd and Prosody offer them:
//! ping the server, change one's password, end one's other sessions. They act only on the
//! requester's account; an admin sees them too, after the administrative ones.

use futures::FutureExt;
use futures::future::BoxFuture;

use std::sync::Arc;

use crate::accounts::{self, Account};
use crate::command::form::{Field, Form, Kind, one};
use crate::command::{Access, Command, Ctx, Done, StageCtx};
use crate::error::{StreamError, StreamErrorCondition};
use crate::router::registry::{Module, Registry};

macro_rules! own {
    ($name:literal) => {
        concat!("https://github.com/switchboard-xmpp/switchboard#", $name)
    };
}

pub const PING: &str = own!("ping");
pub const CHANGE_PASSWORD: &str = own!("change-my-password");
pub const END_OTHER_SESSIONS: &str = own!("end-my-other-sessions");

pub struct AccountCommands;

impl Module for AccountCommands {
    fn name(&self) -> &'static str {
        "account_commands"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        for command in TABLE {
            r.command(command);
        }
    }
}

pub static TABLE: &[Command] = &[
    Command {
        node: PING,
        name: "Ping",
        access: Access::User,
        enabled: |_| true,
        stages: &[],
        run: |c| ping(c).boxed(),
    },
    Command {
        node: CHANGE_PASSWORD,
        name: "Change my password",
        access: Access::User,
        enabled: |_| true,
        stages: &[password_form],
        run: |c| change_password(c).boxed(),
    },
    Command {
        node: END_OTHER_SESSIONS,
        name: "End my other sessions",
        access: Access::User,
        enabled: |_| true,
        stages: &[],
        run: |c| end_other_sessions(c).boxed(),
    },
];

async fn ping(_: Ctx) -> Result<Done, String> {
    Ok(Done::note("Pong"))
}

fn password_form(_: StageCtx) -> BoxFuture<'static, Form> {
    let form = Form {
        title: "Change my password".into(),
        instructions: "Your other sessions stay logged in; end them with \"End my other sessions\".".into(),
        form_type: None,
        fields: vec![
            Field::new("password", Kind::TextPrivate, "New password").required(),
            Field::new("password-verify", Kind::TextPrivate, "Retype the new password").required(),
        ],
    };
    futures::future::ready(form).boxed()
}

/// The requester's own account.
fn requester(ctx: &Ctx) -> Result<Account, String> {
    Account::parse(ctx.requester.to_bare().as_str(), &ctx.server.config()).map_err(|e| e.to_string())
}

async fn change_password(ctx: Ctx) -> Result<Done, String> {
    let pw = one(&ctx.values, "password").unwrap_or_default();
    if one(&ctx.values, "password-verify") != Some(pw) {
        return Err("the passwords do not match".into());
    }
    let a = requester(&ctx)?;
    accounts::set_password(&ctx.server.storage, &ctx.server.config(), &a, pw)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user = %a, "user changed their password");
    Ok(Done::note("Your password was changed"))
}

async fn end_other_sessions(ctx: Ctx) -> Result<Done, String> {
    let others: Vec<_> = ctx
        .server
        .sessions
        .sessions_of(&ctx.requester.to_bare())
        .into_iter()
        .filter(|s| s.jid != ctx.requester)
        .collect();
    for s in &others {
        s.kick(StreamError::with_text(
            StreamErrorCondition::PolicyViolation,
            "session ended from another session of this account",
        ));
    }
    tracing::info!(user = %ctx.requester, ended = others.len(), "user ended their other sessions");
    Ok(Done::note(format!("Ended {} other session(s)", others.len())))
}
