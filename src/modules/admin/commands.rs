//! The command table: XEP-0133 service administration and our own admin commands.

use futures::FutureExt;
use futures::future::BoxFuture;
use jid::{BareJid, Jid};

use crate::accounts::{self, Account};
use crate::c2s::session::TraceTraffic;
use crate::command::form::{Field, Form, Kind, one};
use crate::command::{
    Access, Command, Ctx, Done, StageCtx, admin_form, always, body, headline, message_form, now,
};
use crate::error::{StreamError, StreamErrorCondition};
use crate::server::Server;

macro_rules! node {
    ($name:literal) => {
        concat!("http://jabber.org/protocol/admin#", $name)
    };
}

/// Our own commands' nodes.
macro_rules! own {
    ($name:literal) => {
        concat!("https://github.com/switchboard-xmpp/switchboard#", $name)
    };
}

/// The administrative commands, in the order disco lists them (before `user::TABLE`).
pub static TABLE: &[Command] = &[
    Command {
        node: node!("add-user"),
        name: "Add a user",
        access: Access::Admin,
        enabled: always,
        stages: &[add_user_form],
        run: |c| add_user(c).boxed(),
    },
    Command {
        node: node!("delete-user"),
        name: "Delete users",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjids_form],
        run: |c| delete_users(c).boxed(),
    },
    Command {
        node: node!("disable-user"),
        name: "Disable users",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjids_form],
        run: |c| set_disabled(c, true).boxed(),
    },
    Command {
        node: node!("reenable-user"),
        name: "Re-enable users",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjids_form],
        run: |c| set_disabled(c, false).boxed(),
    },
    Command {
        node: node!("end-user-session"),
        name: "End user sessions",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjids_form],
        run: |c| end_sessions(c).boxed(),
    },
    Command {
        node: node!("change-user-password"),
        name: "Change a user's password",
        access: Access::Admin,
        enabled: always,
        stages: &[change_password_form],
        run: |c| change_password(c).boxed(),
    },
    Command {
        node: node!("get-user-roster"),
        name: "Get a user's roster",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjid_form],
        run: |c| user_roster(c).boxed(),
    },
    Command {
        node: node!("get-user-lastlogin"),
        name: "Get a user's last login",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjid_form],
        run: |c| user_lastlogin(c).boxed(),
    },
    Command {
        node: node!("user-stats"),
        name: "Get user statistics",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjid_form],
        run: |c| user_stats(c).boxed(),
    },
    Command {
        node: node!("get-registered-users-num"),
        name: "Get the number of registered users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| registered_num(c).boxed(),
    },
    Command {
        node: node!("get-registered-users-list"),
        name: "Get the list of registered users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| registered_list(c).boxed(),
    },
    Command {
        node: node!("get-disabled-users-num"),
        name: "Get the number of disabled users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| disabled_num(c).boxed(),
    },
    Command {
        node: node!("get-disabled-users-list"),
        name: "Get the list of disabled users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| disabled_list(c).boxed(),
    },
    Command {
        node: node!("get-online-users-num"),
        name: "Get the number of online users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| online_num(c).boxed(),
    },
    Command {
        node: node!("get-active-users-num"),
        name: "Get the number of active users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| active_num(c).boxed(),
    },
    Command {
        node: node!("get-online-users-list"),
        name: "Get the list of online users",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| online_list(c).boxed(),
    },
    Command {
        node: node!("get-active-users"),
        name: "Get the list of active users",
        access: Access::Admin,
        enabled: always,
        stages: &[|_| now(max_items_form())],
        run: |c| active_list(c).boxed(),
    },
    Command {
        node: node!("announce"),
        name: "Send an announcement to all online users",
        access: Access::Admin,
        enabled: always,
        stages: &[message_form],
        run: |c| announce(c).boxed(),
    },
    Command {
        node: node!("edit-admin"),
        name: "Edit the admin list (until restart or an admins reload)",
        access: Access::Admin,
        enabled: always,
        stages: &[|c| now(edit_admin_form(&c.server))],
        run: |c| edit_admin(c).boxed(),
    },
    Command {
        node: node!("restart"),
        name: "Restart the service",
        access: Access::Admin,
        enabled: always,
        stages: &[|_| now(delay_form(Stop::Restart))],
        run: |c| stop(c, Stop::Restart).boxed(),
    },
    Command {
        node: node!("shutdown"),
        name: "Shut down the service",
        access: Access::Admin,
        enabled: always,
        stages: &[|_| now(delay_form(Stop::Shutdown))],
        run: |c| stop(c, Stop::Shutdown).boxed(),
    },
    Command {
        node: own!("server-stats"),
        name: "Server statistics",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| server_stats(c).boxed(),
    },
    Command {
        node: own!("debug-log"),
        name: "Trace a user's XML traffic",
        access: Access::Admin,
        enabled: always,
        stages: &[accountjid_form, |c| debug_log_form(c).boxed()],
        run: |c| debug_log(c).boxed(),
    },
    Command {
        node: own!("reload-config"),
        name: "Reload the configuration",
        access: Access::Admin,
        enabled: always,
        stages: &[],
        run: |c| reload_config(c).boxed(),
    },
];

fn add_user_form(_: StageCtx) -> BoxFuture<'static, Form> {
    now(admin_form(
        "Adding a user",
        vec![
            Field::new(
                "accountjid",
                Kind::JidSingle,
                "The Jabber ID for the account to be added",
            )
            .required(),
            Field::new("password", Kind::TextPrivate, "The password for this account").required(),
            Field::new("password-verify", Kind::TextPrivate, "Retype password").required(),
        ],
    ))
}

fn accountjids_form(_: StageCtx) -> BoxFuture<'static, Form> {
    now(admin_form(
        "Choose accounts",
        vec![Field::new("accountjids", Kind::JidMulti, "The Jabber ID(s)").required()],
    ))
}

fn accountjid_form(_: StageCtx) -> BoxFuture<'static, Form> {
    now(admin_form(
        "Choose an account",
        vec![Field::new("accountjid", Kind::JidSingle, "The Jabber ID").required()],
    ))
}

fn change_password_form(_: StageCtx) -> BoxFuture<'static, Form> {
    now(admin_form(
        "Changing a user's password",
        vec![
            Field::new("accountjid", Kind::JidSingle, "The Jabber ID").required(),
            Field::new("password", Kind::TextPrivate, "The new password").required(),
        ],
    ))
}

/// The result form of a "number of ..." command (§4.13-§4.17).
fn count_result(title: &str, var: &str, label: &str, n: impl ToString) -> Done {
    Done::result(admin_form(
        title,
        vec![Field::new(var, Kind::TextSingle, label).value(n.to_string())],
    ))
}

/// The result form of a "list of ..." command (§4.18-§4.22).
fn list_result(title: &str, var: &str, label: &str, jids: Vec<String>) -> Done {
    Done::result(admin_form(
        title,
        vec![Field::new(var, Kind::JidMulti, label).values(jids)],
    ))
}

fn account(ctx: &Ctx, jid: &str) -> Result<Account, String> {
    Account::parse(jid, &ctx.server.config()).map_err(|e| e.to_string())
}

fn accounts_of(ctx: &Ctx, var: &str) -> Result<Vec<Account>, String> {
    ctx.values
        .get(var)
        .into_iter()
        .flatten()
        .map(|j| {
            // end-user-session accepts full JIDs: the account is the bare part.
            let bare = Jid::new(j)
                .map(|j| j.to_bare().to_string())
                .unwrap_or_else(|_| j.clone());
            account(ctx, &bare)
        })
        .collect()
}

fn bare(a: &Account) -> BareJid {
    BareJid::new(&a.to_string()).expect("a parsed account is a valid bare JID")
}

fn kick_all(server: &Server, a: &Account, reason: StreamError) -> usize {
    let sessions = server.sessions.sessions_of(&bare(a));
    for s in &sessions {
        s.kick(reason.clone());
    }
    sessions.len()
}

async fn add_user(ctx: Ctx) -> Result<Done, String> {
    let jid = one(&ctx.values, "accountjid").unwrap_or_default();
    let pw = one(&ctx.values, "password").unwrap_or_default();
    if one(&ctx.values, "password-verify") != Some(pw) {
        return Err("the passwords do not match".into());
    }
    let a = account(&ctx, jid)?;
    accounts::create(&ctx.server.storage, &ctx.server.config(), &a, pw)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, user = %a, "admin added user");
    Ok(Done::note(format!("User {a} was added")))
}

async fn delete_users(ctx: Ctx) -> Result<Done, String> {
    let list = accounts_of(&ctx, "accountjids")?;
    let mut missing = Vec::new();
    for a in &list {
        match accounts::remove(&ctx.server, a, None).await {
            Ok(()) => {
                tracing::info!(admin = %ctx.requester, user = %a, "admin deleted user");
                kick_all(
                    &ctx.server,
                    a,
                    StreamError::with_text(StreamErrorCondition::NotAuthorized, "account deleted"),
                );
            }
            Err(accounts::AccountError::NotFound(_)) => missing.push(a.to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
    if missing.is_empty() {
        Ok(Done::note("Deleted"))
    } else {
        Ok(Done::note(format!(
            "Deleted; these did not exist: {}",
            missing.join(", ")
        )))
    }
}

async fn set_disabled(ctx: Ctx, disabled: bool) -> Result<Done, String> {
    let list = accounts_of(&ctx, "accountjids")?;
    let mut missing = Vec::new();
    for a in &list {
        let found = ctx
            .server
            .storage
            .set_disabled(&a.domain, &a.user, disabled)
            .await
            .map_err(|e| e.to_string())?;
        if !found {
            missing.push(a.to_string());
            continue;
        }
        tracing::info!(admin = %ctx.requester, user = %a, disabled, "admin changed account state");
        if disabled {
            kick_all(
                &ctx.server,
                a,
                StreamError::with_text(StreamErrorCondition::NotAuthorized, "account disabled"),
            );
        }
    }
    let done = if disabled { "Disabled" } else { "Re-enabled" };
    if missing.is_empty() {
        Ok(Done::note(done))
    } else {
        Ok(Done::note(format!(
            "{done}; these do not exist: {}",
            missing.join(", ")
        )))
    }
}

async fn end_sessions(ctx: Ctx) -> Result<Done, String> {
    let mut ended = 0;
    for j in ctx.values.get("accountjids").into_iter().flatten() {
        let jid = Jid::new(j).map_err(|_| format!("'{j}' is not a valid JID"))?;
        let reason = StreamError::with_text(
            StreamErrorCondition::PolicyViolation,
            "session ended by an administrator",
        );
        match jid.try_as_full() {
            Ok(full) => {
                if let Some(s) = ctx.server.sessions.get(full) {
                    s.kick(reason);
                    ended += 1;
                }
            }
            Err(_) => {
                let a = account(&ctx, &jid.to_bare().to_string())?;
                ended += kick_all(&ctx.server, &a, reason);
            }
        }
        tracing::info!(admin = %ctx.requester, jid = %j, "admin ended sessions");
    }
    Ok(Done::note(format!("Ended {ended} session(s)")))
}

async fn change_password(ctx: Ctx) -> Result<Done, String> {
    let a = account(&ctx, one(&ctx.values, "accountjid").unwrap_or_default())?;
    let pw = one(&ctx.values, "password").unwrap_or_default();
    accounts::set_password(&ctx.server.storage, &ctx.server.config(), &a, pw)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, user = %a, "admin changed password");
    Ok(Done::note(format!("The password of {a} was changed")))
}

async fn existing(ctx: &Ctx) -> Result<Account, String> {
    let a = account(ctx, one(&ctx.values, "accountjid").unwrap_or_default())?;
    match ctx.server.storage.user_exists(&a.domain, &a.user).await {
        Ok(true) => Ok(a),
        Ok(false) => Err(format!("user {a} does not exist")),
        Err(e) => Err(e.to_string()),
    }
}

async fn user_roster(ctx: Ctx) -> Result<Done, String> {
    let a = existing(&ctx).await?;
    let roster = ctx
        .server
        .storage
        .roster_load(&a.domain, &a.user)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, user = %a, "admin read roster");
    let lines = roster.items.iter().map(|i| {
        let name = i.name.as_deref().unwrap_or("");
        format!("{} subscription={} name={name}", i.contact, i.subscription)
    });
    Ok(Done::result(admin_form(
        "Roster",
        vec![
            Field::new("accountjid", Kind::JidSingle, "The Jabber ID").value(a.to_string()),
            Field::new("roster", Kind::TextMulti, "Roster items").values(lines),
        ],
    )))
}

async fn user_lastlogin(ctx: Ctx) -> Result<Done, String> {
    let a = existing(&ctx).await?;
    tracing::info!(admin = %ctx.requester, user = %a, "admin read last login");
    let online = !ctx.server.sessions.sessions_of(&bare(&a)).is_empty();
    let value = if online {
        "online now".to_string()
    } else {
        match ctx
            .server
            .storage
            .last_logout(&a.domain, &a.user)
            .await
            .map_err(|e| e.to_string())?
        {
            Some((at, _)) => chrono::DateTime::from_timestamp(at, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            None => "never".to_string(),
        }
    };
    Ok(Done::result(admin_form(
        "Last login",
        vec![
            Field::new("accountjid", Kind::JidSingle, "The Jabber ID").value(a.to_string()),
            Field::new(
                "lastlogin",
                Kind::TextSingle,
                "End of the last session (XEP-0082)",
            )
            .value(value),
        ],
    )))
}

async fn user_stats(ctx: Ctx) -> Result<Done, String> {
    let a = existing(&ctx).await?;
    tracing::info!(admin = %ctx.requester, user = %a, "admin read user statistics");
    let sessions = ctx.server.sessions.sessions_of(&bare(&a));
    let roster = ctx
        .server
        .storage
        .roster_load(&a.domain, &a.user)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Done::result(admin_form(
        "User statistics",
        vec![
            Field::new("accountjid", Kind::JidSingle, "The Jabber ID").value(a.to_string()),
            Field::new("rostersize", Kind::TextSingle, "Roster size").value(roster.items.len().to_string()),
            Field::new("onlineresources", Kind::TextMulti, "Online resources")
                .values(sessions.iter().map(|s| s.jid.resource().to_string())),
        ],
    )))
}

async fn registered_users(ctx: &Ctx) -> Result<Vec<String>, String> {
    let users = ctx
        .server
        .storage
        .list_users(Some(&ctx.domain))
        .await
        .map_err(|e| e.to_string())?;
    Ok(users.into_iter().map(|(h, u)| format!("{u}@{h}")).collect())
}

fn online_users(ctx: &Ctx) -> Vec<String> {
    let mut users: Vec<String> = ctx
        .server
        .sessions
        .all_sessions()
        .iter()
        .filter(|s| s.jid.domain().as_str() == ctx.domain)
        .map(|s| s.jid.to_bare().to_string())
        .collect();
    users.sort();
    users.dedup();
    users
}

async fn registered_num(ctx: Ctx) -> Result<Done, String> {
    let n = ctx
        .server
        .storage
        .count_users(&ctx.domain)
        .await
        .map_err(|e| e.to_string())?;
    Ok(count_result(
        "Registered users",
        "registeredusersnum",
        "The number of registered users",
        n,
    ))
}

async fn registered_list(ctx: Ctx) -> Result<Done, String> {
    let users = registered_users(&ctx).await?;
    Ok(list_result(
        "Registered users",
        "registereduserjids",
        "The list of all users",
        users,
    ))
}

async fn disabled_users(ctx: &Ctx) -> Result<Vec<String>, String> {
    let users = ctx
        .server
        .storage
        .list_disabled(&ctx.domain)
        .await
        .map_err(|e| e.to_string())?;
    Ok(users.into_iter().map(|u| format!("{u}@{}", ctx.domain)).collect())
}

async fn disabled_num(ctx: Ctx) -> Result<Done, String> {
    let n = disabled_users(&ctx).await?.len();
    Ok(count_result(
        "Disabled users",
        "disabledusersnum",
        "The number of disabled users",
        n,
    ))
}

async fn disabled_list(ctx: Ctx) -> Result<Done, String> {
    let users = disabled_users(&ctx).await?;
    Ok(list_result(
        "Disabled users",
        "disableduserjids",
        "The list of all disabled users",
        users,
    ))
}

async fn online_num(ctx: Ctx) -> Result<Done, String> {
    let n = online_users(&ctx).len();
    Ok(count_result(
        "Online users",
        "onlineusersnum",
        "The number of online users",
        n,
    ))
}

async fn online_list(ctx: Ctx) -> Result<Done, String> {
    let users = online_users(&ctx);
    Ok(list_result(
        "Online users",
        "onlineuserjids",
        "The list of all online users",
        users,
    ))
}

async fn announce(ctx: Ctx) -> Result<Done, String> {
    let text = body(&ctx.values);
    let subject = one(&ctx.values, "subject");
    let mut sent = 0;
    for s in ctx.server.sessions.all_sessions() {
        if s.jid.domain().as_str() != ctx.domain {
            continue;
        }
        if crate::router::push(&s, headline(&ctx.domain, &s.jid.to_string(), subject, &text)) {
            sent += 1;
        }
    }
    tracing::info!(admin = %ctx.requester, sessions = sent, "admin sent an announcement");
    Ok(Done::note(format!("Sent to {sent} session(s)")))
}

/// Delays offered before a shutdown or restart, in seconds.
const SHUTDOWN_DELAYS: &[&str] = &["0", "5", "30", "60", "120", "300", "600", "1800", "3600"];

/// XEP-0133 §4.30 restart and §4.31 shutdown: the same drain, then the process ends or
/// executes itself again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Restart,
    Shutdown,
}

impl Stop {
    fn verb(self) -> &'static str {
        match self {
            Stop::Restart => "restarts",
            Stop::Shutdown => "shuts down",
        }
    }
}

fn delay_form(kind: Stop) -> Form {
    let (title, label) = match kind {
        Stop::Restart => ("Restarting the service", "Time delay before restarting"),
        Stop::Shutdown => ("Shutting down the service", "Time delay before shutting down"),
    };
    let mut delay = Field::new("delaytime", Kind::ListSingle, label).required();
    for d in SHUTDOWN_DELAYS {
        delay = delay.option(&format!("{d} seconds"), d);
    }
    admin_form(
        title,
        vec![
            delay,
            Field::new(
                "announcement",
                Kind::TextMulti,
                "Announcement to all online users",
            ),
        ],
    )
}

/// Announces at once, then drains after the delay: every stream gets `system-shutdown`
/// after what was queued for it (the announcement included).
async fn stop(ctx: Ctx, kind: Stop) -> Result<Done, String> {
    let delay: u64 = one(&ctx.values, "delaytime")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let text = ctx
        .values
        .get("announcement")
        .map(|v| v.join("\n"))
        .unwrap_or_default();
    match kind {
        Stop::Restart => tracing::warn!(admin = %ctx.requester, delay, "admin requested a restart"),
        Stop::Shutdown => tracing::warn!(admin = %ctx.requester, delay, "admin requested a shutdown"),
    }
    if !text.is_empty() {
        for s in ctx.server.sessions.all_sessions() {
            let domain = s.jid.domain().to_string();
            crate::router::push(&s, headline(&domain, &s.jid.to_string(), None, &text));
        }
    }
    let server = std::sync::Arc::downgrade(&ctx.server);
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
        let Some(server) = server.upgrade() else { return };
        match kind {
            Stop::Restart => server.stop.restart(),
            Stop::Shutdown => server.stop.shutdown(),
        }
    });
    Ok(Done::note(format!(
        "The service {} in {delay} seconds",
        kind.verb()
    )))
}

/// Resident memory from /proc/self/status (Linux), e.g. "12345 kB".
fn resident_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().to_string())
}

async fn server_stats(ctx: Ctx) -> Result<Done, String> {
    let s = &ctx.server;
    let registered = s
        .storage
        .count_users(&ctx.domain)
        .await
        .map_err(|e| e.to_string())?;
    let mut fields = vec![
        Field::new("uptime", Kind::TextSingle, "Uptime (seconds)")
            .value(s.started.elapsed().as_secs().to_string()),
        Field::new("sessions", Kind::TextSingle, "Connected sessions (all domains)")
            .value(s.sessions.session_count().to_string()),
        Field::new("onlineusersnum", Kind::TextSingle, "Online users on this domain")
            .value(online_users(&ctx).len().to_string()),
        Field::new(
            "registeredusersnum",
            Kind::TextSingle,
            "Registered users on this domain",
        )
        .value(registered.to_string()),
    ];
    let (read, written) = crate::metrics::stanza_totals();
    let secs = s.started.elapsed().as_secs_f64().max(1.0);
    fields.push(
        Field::new(
            "stanzas-in-rate",
            Kind::TextSingle,
            "Stanzas read per second (average since start)",
        )
        .value(format!("{:.2}", read as f64 / secs)),
    );
    fields.push(
        Field::new(
            "stanzas-out-rate",
            Kind::TextSingle,
            "Stanzas written per second (average since start)",
        )
        .value(format!("{:.2}", written as f64 / secs)),
    );
    if let Some(mem) = resident_memory() {
        fields.push(Field::new("memory", Kind::TextSingle, "Resident memory").value(mem));
    }
    tracing::info!(admin = %ctx.requester, "admin read server statistics");
    Ok(Done::result(admin_form("Server statistics", fields)))
}

async fn debug_log_form(c: StageCtx) -> Form {
    let mut which = Field::new("resource", Kind::ListSingle, "Session")
        .required()
        .option("All sessions", "*");
    if let Some(bare) = one(&c.values, "accountjid").and_then(|j| BareJid::new(j).ok()) {
        for s in c.server.sessions.sessions_of(&bare) {
            let r = s.jid.resource().to_string();
            which = which.option(&r, &r);
        }
    }
    let mut form = admin_form(
        "Trace XML traffic",
        vec![
            which.value("*"),
            Field::new("enable", Kind::Boolean, "Log this traffic (off: stop)").value("1"),
        ],
    );
    form.instructions =
        "Stanzas of the chosen sessions are logged at info level with target xmpp_trace".into();
    form
}

async fn debug_log(ctx: Ctx) -> Result<Done, String> {
    let a = account(&ctx, one(&ctx.values, "accountjid").unwrap_or_default())?;
    let resource = one(&ctx.values, "resource").unwrap_or("*");
    let enable = crate::command::form::flag(&ctx.values, "enable");
    let mut n = 0;
    for s in ctx.server.sessions.sessions_of(&bare(&a)) {
        if let Some(s) = s.local()
            && (resource == "*" || s.jid.resource().as_str() == resource)
        {
            s.extension::<TraceTraffic>()
                .0
                .store(enable, std::sync::atomic::Ordering::Relaxed);
            n += 1;
        }
    }
    tracing::info!(admin = %ctx.requester, user = %a, resource, enable, sessions = n, "admin switched traffic tracing");
    if n == 0 {
        return Err(format!("{a} has no such session now"));
    }
    let state = if enable { "on" } else { "off" };
    Ok(Done::note(format!("Tracing {state} for {n} session(s) of {a}")))
}

/// Re-reads the configuration file (as SIGHUP does); an invalid file changes nothing and the
/// error is the command's answer.
async fn reload_config(ctx: Ctx) -> Result<Done, String> {
    tracing::info!(admin = %ctx.requester, "admin requested a configuration reload");
    let outcome = crate::server::reload::reload(&ctx.server)
        .map_err(|e| format!("the configuration was not reloaded: {e}"))?;
    Ok(Done::note(outcome.summary()))
}

fn edit_admin_form(server: &Server) -> Form {
    let mut form = admin_form(
        "Editing the admin list",
        vec![
            Field::new("adminjids", Kind::JidMulti, "The admins")
                .required()
                .values(server.admins().iter().map(|j| j.to_string())),
        ],
    );
    form.instructions = "The change lasts until the server restarts or a reload changes \
                         `admins`; edit `admins` in the configuration to keep it"
        .into();
    form
}

async fn edit_admin(ctx: Ctx) -> Result<Done, String> {
    let mut list = Vec::new();
    for j in ctx.values.get("adminjids").into_iter().flatten() {
        let a = account(&ctx, j)?;
        let jid = bare(&a);
        if !list.contains(&jid) {
            list.push(jid);
        }
    }
    if list.is_empty() {
        return Err("the admin list cannot be empty".into());
    }
    let shown: Vec<String> = list.iter().map(|j| j.to_string()).collect();
    tracing::info!(admin = %ctx.requester, admins = %shown.join(","), "admin edited the admin list (until restart or an admins reload)");
    ctx.server.admins.replace(list);
    Ok(Done::note(format!(
        "Admins until restart or a reload that changes `admins`: {}",
        shown.join(", ")
    )))
}

/// §4.16, §4.21: "active" is ours to define; here, online now or logged out within this.
const ACTIVE_DAYS: i64 = 30;

/// Online users and those whose last session ended within [`ACTIVE_DAYS`], sorted.
async fn active_users(ctx: &Ctx) -> Result<Vec<String>, String> {
    let since = chrono::Utc::now().timestamp() - ACTIVE_DAYS * 86_400;
    let recent = ctx
        .server
        .storage
        .logged_out_since(&ctx.domain, since)
        .await
        .map_err(|e| e.to_string())?;
    let mut users = online_users(ctx);
    users.extend(recent.into_iter().map(|u| format!("{u}@{}", ctx.domain)));
    users.sort();
    users.dedup();
    Ok(users)
}

async fn active_num(ctx: Ctx) -> Result<Done, String> {
    let n = active_users(&ctx).await?.len();
    Ok(count_result(
        "Active users",
        "activeusersnum",
        "The number of active users (online, or logged in within 30 days)",
        n,
    ))
}

/// §4.21: how many users to list at most.
fn max_items_form() -> Form {
    let mut max = Field::new("max_items", Kind::ListSingle, "Maximum number of items to show");
    for n in ["25", "50", "75", "100", "150", "200"] {
        max = max.option(n, n);
    }
    max = max.option("None", "none");
    admin_form("Requesting the list of active users", vec![max.value("100")])
}

async fn active_list(ctx: Ctx) -> Result<Done, String> {
    let mut users = active_users(&ctx).await?;
    if let Some(max) = one(&ctx.values, "max_items").and_then(|m| m.parse::<usize>().ok()) {
        users.truncate(max);
    }
    Ok(list_result(
        "Active users",
        "activeuserjids",
        "The list of active users (online, or logged in within 30 days)",
        users,
    ))
}
