//! Commands every user may run on their own account, as ejabberd and Prosody offer them:
//! ping the server, change one's password, end one's other sessions, list one's sessions and
//! XEP-0484 login tokens, end those tokens. They act only on the
//! requester's account; an admin sees them too, after the administrative ones.

use futures::FutureExt;
use futures::future::BoxFuture;

use std::sync::Arc;

use crate::accounts::{self, Account};
use crate::command::form::{Field, Form, Kind, one};
use crate::command::{Access, Command, Ctx, Done, StageCtx};
use crate::error::{StreamError, StreamErrorCondition};
use crate::router::registry::{Module, Registry};
use crate::storage::fast::FastToken;

macro_rules! own {
    ($name:literal) => {
        concat!("https://github.com/switchboard-xmpp/switchboard#", $name)
    };
}

pub const PING: &str = own!("ping");
pub const CHANGE_PASSWORD: &str = own!("change-my-password");
pub const END_OTHER_SESSIONS: &str = own!("end-my-other-sessions");
pub const LIST_LOGINS: &str = own!("list-my-sessions-and-tokens");
pub const REVOKE_TOKENS: &str = own!("end-my-fast-tokens");

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
    Command {
        node: LIST_LOGINS,
        name: "List my sessions and login tokens",
        access: Access::User,
        enabled: |_| true,
        stages: &[],
        run: |c| list_logins(c).boxed(),
    },
    Command {
        node: REVOKE_TOKENS,
        name: "End my login tokens",
        access: Access::User,
        enabled: |_| true,
        stages: &[],
        run: |c| revoke_tokens(c).boxed(),
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

/// The account's sessions (full JIDs) and its XEP-0484 FAST tokens (which app on which
/// device, until when), as a result form. The tokens themselves are never shown.
async fn list_logins(ctx: Ctx) -> Result<Done, String> {
    let a = requester(&ctx)?;
    let mut sessions: Vec<String> = ctx
        .server
        .sessions
        .sessions_of(&ctx.requester.to_bare())
        .into_iter()
        .map(|s| s.jid.to_string())
        .collect();
    sessions.sort();
    let tokens = ctx
        .server
        .storage
        .fast_tokens(&a.domain, &a.user)
        .await
        .map_err(|e| e.to_string())?;
    let form = Form {
        title: "My sessions and login tokens".into(),
        instructions: "End sessions with \"End my other sessions\", tokens with \"End my login tokens\"."
            .into(),
        form_type: None,
        fields: vec![
            Field::new("sessions", Kind::TextMulti, "Sessions").values(sessions),
            Field::new("tokens", Kind::TextMulti, "Login tokens (XEP-0484 FAST)")
                .values(tokens.iter().map(describe_token)),
        ],
    };
    Ok(Done {
        note: None,
        result: Some(form),
    })
}

/// "software on device (user agent id), expires 2026-12-21T10:00:00Z".
fn describe_token(t: &FastToken) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    let expiry = chrono::DateTime::from_timestamp(t.expires_at, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!(
        "{} on {} ({}), expires {expiry}",
        or(&t.software, "an unnamed app"),
        or(&t.device, "an unnamed device"),
        t.user_agent
    )
}

/// Revokes every FAST token of the account: each app must log in with the password again.
async fn revoke_tokens(ctx: Ctx) -> Result<Done, String> {
    let a = requester(&ctx)?;
    let n = ctx
        .server
        .storage
        .fast_tokens_revoke_all(&a.domain, &a.user)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user = %a, revoked = n, "user ended their login tokens");
    Ok(Done::note(format!("Ended {n} login token(s)")))
}
