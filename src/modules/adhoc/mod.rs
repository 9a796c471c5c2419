//! XEP-0050 ad-hoc commands: discovery and multi-stage sessions (execute, next, prev, complete,
//! cancel) driven by XEP-0004 forms. A small dispatcher: the commands are data
//! (`crate::command::Command`: node, name, who may run it, the forms it asks in order and
//! the function that acts on the answers) that the modules owning them register (`admin`,
//! `account_commands`, `motd`, `blacklist`, `muc`, `roster`). Invalid answers bring the same form back with an
//! error note; the session stays open.
//!
//! Protocol errors carry the XEP-0050 §4.6 specific conditions: `malformed-action` (an
//! action we do not know), `bad-action` (an action the current stage does not offer),
//! `bad-sessionid` (no such session, or not the requester's), `session-expired` (a session
//! that was completed, canceled or timed out), `bad-payload` (a data form that is not a
//! submission). `bad-locale` is never sent: commands speak English, and a request in another
//! language gets English rather than an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jid::FullJid;
use minidom::Element;

use crate::command::form::{self, Form, Values};
use crate::command::{Access, Command, Ctx, StageCtx};
use crate::error::{ErrorType, StanzaError};
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::xml;

pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// An abandoned session is forgotten after this long without a request.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// Open sessions per account; more are refused with `resource-constraint`.
pub const MAX_SESSIONS_PER_USER: usize = 8;
/// Ended sessions remembered (to answer `session-expired` rather than `bad-sessionid`).
const MAX_ENDED: usize = 4096;

struct Session {
    node: &'static str,
    owner: FullJid,
    stage: usize,
    /// Validated answers per stage.
    answers: Vec<Values>,
    touched: Instant,
}

impl Session {
    /// Answers of the stages before `stage`, merged.
    fn answers_before(&self, stage: usize) -> Values {
        let mut all = Values::new();
        for a in self.answers.iter().take(stage) {
            all.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all
    }
}

/// Open sessions, and the recently ended ones with their owners.
#[derive(Default)]
struct Sessions {
    open: HashMap<String, Session>,
    ended: HashMap<String, (FullJid, Instant)>,
}

impl Sessions {
    /// Forgets sessions idle for [`SESSION_TIMEOUT`] (remembered as ended for as long
    /// again), and ended ones past that.
    fn purge(&mut self, now: Instant) {
        let ended = &mut self.ended;
        ended.retain(|_, (_, at)| now.saturating_duration_since(*at) < SESSION_TIMEOUT);
        self.open.retain(|id, s| {
            let live = now.saturating_duration_since(s.touched) < SESSION_TIMEOUT;
            if !live {
                ended.insert(id.clone(), (s.owner.clone(), now));
            }
            live
        });
        if ended.len() > MAX_ENDED {
            ended.clear();
        }
    }

    /// Removes an open session, remembering that it ended.
    fn end(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.open.remove(id)?;
        if self.ended.len() < MAX_ENDED {
            self.ended.insert(id.to_owned(), (s.owner.clone(), now));
        }
        Some(s)
    }

    /// The error for a session id that is not open for `who`: expired if it was theirs.
    fn missing(&self, id: &str, who: &FullJid) -> StanzaError {
        match self.ended.get(id) {
            Some((owner, _)) if owner == who => session_expired(),
            _ => bad_sessionid(),
        }
    }
}

/// The ad-hoc commands module and its open sessions. The commands themselves are registered
/// by the modules that own them (`Registry::command`).
#[derive(Default)]
pub struct AdHoc {
    sessions: Mutex<Sessions>,
}

/// The registered commands in the order disco lists them: the administrative ones, then those
/// for every user.
fn commands(server: &Server) -> impl Iterator<Item = &'static Command> + '_ {
    let all = server.registry.commands();
    let by = move |access| all.iter().copied().filter(move |c: &&Command| c.access == access);
    by(Access::Admin).chain(by(Access::User))
}

fn allowed(server: &Server, cmd: &Command, who: &FullJid) -> bool {
    (cmd.enabled)(server)
        && match cmd.access {
            Access::Admin => server.is_admin(&who.to_bare()),
            Access::User => server.config().hosts(who.domain().as_str()),
        }
}

impl Module for AdHoc {
    fn name(&self) -> &'static str {
        "adhoc"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS_COMMANDS);
        let me = self.clone();
        r.iq(
            IqType::Set,
            NS_COMMANDS,
            "command",
            &[IqTarget::Server],
            move |req| {
                let me = me.clone();
                async move { me.handle(req).await }
            },
        );
        let me = self.clone();
        r.disco_node(
            NS_COMMANDS,
            &[IqTarget::Server],
            |_req| async move {
                let mut q = Element::bare("query", NS_INFO);
                xml::set_attr(&mut q, "node", NS_COMMANDS);
                q.append_child(identity("automation", "command-list", "Commands"));
                Ok(IqResponse::with(q))
            },
            move |req| {
                let me = me.clone();
                async move { Ok(IqResponse::with(me.list(&req))) }
            },
        );
        // Registered last (`modules::all`), so every module's commands are known here.
        for cmd in r.commands().to_vec() {
            r.disco_node(
                cmd.node,
                &[IqTarget::Server],
                move |req| async move {
                    if !(cmd.enabled)(&req.server) {
                        return Err(StanzaError::item_not_found());
                    }
                    if !allowed(&req.server, cmd, &req.from) {
                        return Err(StanzaError::forbidden());
                    }
                    let mut q = Element::bare("query", NS_INFO);
                    xml::set_attr(&mut q, "node", cmd.node);
                    q.append_child(identity("automation", "command-node", cmd.name));
                    for var in [NS_COMMANDS, form::NS_DATA] {
                        let mut f = Element::bare("feature", NS_INFO);
                        xml::set_attr(&mut f, "var", var);
                        q.append_child(f);
                    }
                    Ok(IqResponse::with(q))
                },
                move |req| async move {
                    if !(cmd.enabled)(&req.server) {
                        return Err(StanzaError::item_not_found());
                    }
                    if !allowed(&req.server, cmd, &req.from) {
                        return Err(StanzaError::forbidden());
                    }
                    let mut q = Element::bare("query", NS_ITEMS);
                    xml::set_attr(&mut q, "node", cmd.node);
                    Ok(IqResponse::with(q))
                },
            );
        }
    }
}

fn identity(category: &str, kind: &str, name: &str) -> Element {
    let mut el = Element::bare("identity", NS_INFO);
    xml::set_attr(&mut el, "category", category);
    xml::set_attr(&mut el, "type", kind);
    xml::set_attr(&mut el, "name", name);
    el
}

/// The reply's `<command/>` skeleton.
fn command_el(node: &str, sessionid: Option<&str>, status: &str) -> Element {
    let mut el = Element::bare("command", NS_COMMANDS);
    xml::set_attr(&mut el, "node", node);
    if let Some(id) = sessionid {
        xml::set_attr(&mut el, "sessionid", id);
    }
    xml::set_attr(&mut el, "status", status);
    el
}

async fn stage_form(
    server: &Arc<Server>,
    domain: &str,
    cmd: &Command,
    stage: usize,
    before: &Values,
) -> Form {
    (cmd.stages[stage])(StageCtx {
        server: server.clone(),
        domain: domain.to_string(),
        values: before.clone(),
    })
    .await
}

fn note(kind: &str, text: &str) -> Element {
    let mut n = xml::text_element("note", NS_COMMANDS, text);
    xml::set_attr(&mut n, "type", kind);
    n
}

/// XEP-0050 §4.6: an action the current stage does not offer.
fn bad_action(text: &str) -> StanzaError {
    StanzaError::bad_request()
        .text(text)
        .application("bad-action", NS_COMMANDS)
}

/// XEP-0050 §4.6: an action XEP-0050 does not define.
fn malformed_action(text: &str) -> StanzaError {
    StanzaError::bad_request()
        .text(text)
        .application("malformed-action", NS_COMMANDS)
}

/// XEP-0050 §4.6: no such session (or not the requester's).
fn bad_sessionid() -> StanzaError {
    StanzaError::bad_request()
        .text("unknown session")
        .application("bad-sessionid", NS_COMMANDS)
}

/// XEP-0050 §4.6: the session was completed, canceled or timed out.
fn session_expired() -> StanzaError {
    StanzaError::not_allowed()
        .text("the session is no longer active")
        .application("session-expired", NS_COMMANDS)
}

/// XEP-0050 §4.6: the payload is not a form submission.
fn bad_payload(text: &str) -> StanzaError {
    StanzaError::bad_request()
        .text(text)
        .application("bad-payload", NS_COMMANDS)
}

/// XEP-0050 §4.6 lists `forbidden` with type cancel.
fn forbidden() -> StanzaError {
    StanzaError::new(ErrorType::Cancel, "forbidden")
}

impl AdHoc {
    /// disco#items of the commands node: what this requester may run.
    fn list(&self, req: &IqRequest) -> Element {
        let mut q = Element::bare("query", NS_ITEMS);
        xml::set_attr(&mut q, "node", NS_COMMANDS);
        let domain = req.to.to_string();
        for cmd in commands(&req.server).filter(|c| allowed(&req.server, c, &req.from)) {
            let mut item = Element::bare("item", NS_ITEMS);
            xml::set_attr(&mut item, "jid", &domain);
            xml::set_attr(&mut item, "node", cmd.node);
            xml::set_attr(&mut item, "name", cmd.name);
            q.append_child(item);
        }
        q
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renders stage `stage` of a session: the form, the allowed actions, an optional note.
    #[allow(clippy::too_many_arguments)]
    async fn render_stage(
        &self,
        server: &Arc<Server>,
        domain: &str,
        cmd: &Command,
        id: &str,
        stage: usize,
        before: &Values,
        shown: Option<&Values>,
        error: Option<&str>,
    ) -> Element {
        let mut form = stage_form(server, domain, cmd, stage, before).await;
        if let Some(values) = shown {
            form.prefill(values);
        }
        let last = stage + 1 == cmd.stages.len();
        let mut el = command_el(cmd.node, Some(id), "executing");
        let mut actions = Element::bare("actions", NS_COMMANDS);
        xml::set_attr(&mut actions, "execute", if last { "complete" } else { "next" });
        if stage > 0 {
            actions.append_child(Element::bare("prev", NS_COMMANDS));
        }
        if !last {
            actions.append_child(Element::bare("next", NS_COMMANDS));
        }
        if last {
            actions.append_child(Element::bare("complete", NS_COMMANDS));
        }
        el.append_child(actions);
        if let Some(text) = error {
            el.append_child(note("error", text));
        }
        el.append_child(form.to_element("form"));
        el
    }

    async fn handle(&self, req: IqRequest) -> IqResult {
        let payload = req.payload();
        let node = payload
            .attr("node")
            .ok_or_else(|| StanzaError::bad_request().text("no command node"))?;
        let cmd: &'static Command = commands(&req.server)
            .find(|c| c.node == node && (c.enabled)(&req.server))
            .ok_or_else(StanzaError::item_not_found)?;
        if !allowed(&req.server, cmd, &req.from) {
            tracing::info!(requester = %req.from, command = cmd.node, "command refused: not an admin");
            crate::metrics::module_event("adhoc", "command_refused");
            return Err(forbidden());
        }
        let action = payload.attr("action").unwrap_or("execute").to_string();
        if !matches!(
            action.as_str(),
            "execute" | "next" | "prev" | "complete" | "cancel"
        ) {
            return Err(malformed_action("unknown action"));
        }
        // A data form that is not a submission (XEP-0004 §3.1) is not an answer; cancelling
        // may carry a form of type 'cancel'.
        if action != "cancel"
            && let Some(x) = payload.get_child("x", form::NS_DATA)
            && x.attr("type") != Some("submit")
        {
            return Err(bad_payload("the data form must be of type 'submit'"));
        }
        let submitted = form::parse_submit(payload);
        let now = Instant::now();
        let Some(id) = payload.attr("sessionid").map(str::to_owned) else {
            if action != "execute" {
                return Err(bad_sessionid().text("no session to continue"));
            }
            return self.start(req.server.clone(), &req, cmd, now).await;
        };

        // Continue an existing session.
        let (stage, before, stage_answers) = {
            let mut sessions = self.sessions();
            sessions.purge(now);
            let Some(s) = sessions
                .open
                .get_mut(&id)
                .filter(|s| s.owner == req.from && s.node == cmd.node)
            else {
                return Err(sessions.missing(&id, &req.from));
            };
            s.touched = now;
            if action == "cancel" {
                sessions.end(&id, now);
                return Ok(IqResponse::with(command_el(cmd.node, Some(&id), "canceled")));
            }
            if action == "prev" {
                if s.stage == 0 {
                    return Err(bad_action("there is no previous stage"));
                }
                s.stage -= 1;
            }
            (
                s.stage,
                s.answers_before(s.stage),
                s.answers.get(s.stage).cloned(),
            )
        };
        let server = &req.server;
        let domain = req.to.to_string();
        if action == "prev" {
            let el = self
                .render_stage(
                    server,
                    &domain,
                    cmd,
                    &id,
                    stage,
                    &before,
                    stage_answers.as_ref(),
                    None,
                )
                .await;
            return Ok(IqResponse::with(el));
        }
        let last = stage + 1 == cmd.stages.len();
        let action = match action.as_str() {
            "execute" if last => "complete",
            "execute" => "next",
            a => a,
        };
        if (action == "next" && last) || (action == "complete" && !last) {
            return Err(bad_action(&format!("'{action}' is not allowed at this stage")));
        }
        let form = stage_form(server, &domain, cmd, stage, &before).await;
        let submitted = submitted.unwrap_or_default();
        let answers = match form.validate(&submitted) {
            Ok(a) => a,
            Err(problem) => {
                let el = self
                    .render_stage(
                        server,
                        &domain,
                        cmd,
                        &id,
                        stage,
                        &before,
                        Some(&submitted),
                        Some(&problem),
                    )
                    .await;
                return Ok(IqResponse::with(el));
            }
        };
        // A session being completed leaves the table while its command runs, so a concurrent
        // request on it cannot run the command twice; a failed run puts it back.
        let taken = {
            let mut sessions = self.sessions();
            let Some(s) = sessions.open.get_mut(&id).filter(|s| s.stage == stage) else {
                return Err(sessions.missing(&id, &req.from));
            };
            s.answers.truncate(stage);
            s.answers.push(answers.clone());
            if action == "next" {
                s.stage = stage + 1;
                None
            } else {
                sessions.end(&id, Instant::now())
            }
        };
        if action == "next" {
            let mut all = before;
            all.extend(answers);
            let el = self
                .render_stage(server, &domain, cmd, &id, stage + 1, &all, None, None)
                .await;
            return Ok(IqResponse::with(el));
        }
        let mut all = before.clone();
        all.extend(answers.clone());
        match self.finish(&req, cmd, Some(&id), all).await {
            Ok(el) => Ok(IqResponse::with(el)),
            Err(problem) => {
                if let Some(mut session) = taken {
                    session.touched = Instant::now();
                    let mut sessions = self.sessions();
                    sessions.ended.remove(&id);
                    sessions.open.insert(id.clone(), session);
                }
                let el = self
                    .render_stage(
                        server,
                        &domain,
                        cmd,
                        &id,
                        stage,
                        &before,
                        Some(&answers),
                        Some(&problem),
                    )
                    .await;
                Ok(IqResponse::with(el))
            }
        }
    }

    /// Opens a session for `owner`, forgetting abandoned ones first; refused past
    /// [`MAX_SESSIONS_PER_USER`] per account.
    fn open_session(&self, node: &'static str, owner: &FullJid, now: Instant) -> Result<String, StanzaError> {
        let mut sessions = self.sessions();
        sessions.purge(now);
        let account = owner.to_bare();
        let open = sessions
            .open
            .values()
            .filter(|s| s.owner.to_bare() == account)
            .count();
        if open >= MAX_SESSIONS_PER_USER {
            return Err(StanzaError::resource_constraint().text("too many open command sessions"));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        sessions.open.insert(
            id.clone(),
            Session {
                node,
                owner: owner.clone(),
                stage: 0,
                answers: Vec::new(),
                touched: now,
            },
        );
        Ok(id)
    }

    /// `execute` without a session: the first form, or the result of a form-less command.
    async fn start(
        &self,
        server: Arc<Server>,
        req: &IqRequest,
        cmd: &'static Command,
        now: Instant,
    ) -> IqResult {
        if cmd.stages.is_empty() {
            return match self.finish(req, cmd, None, Values::new()).await {
                Ok(el) => Ok(IqResponse::with(el)),
                Err(problem) => {
                    let mut el = command_el(cmd.node, None, "completed");
                    el.append_child(note("error", &problem));
                    Ok(IqResponse::with(el))
                }
            };
        }
        let id = self.open_session(cmd.node, &req.from, now)?;
        Ok(IqResponse::with(
            self.render_stage(
                &server,
                &req.to.to_string(),
                cmd,
                &id,
                0,
                &Values::new(),
                None,
                None,
            )
            .await,
        ))
    }

    /// Runs the command; the completed `<command/>` or the problem to show.
    async fn finish(
        &self,
        req: &IqRequest,
        cmd: &Command,
        id: Option<&str>,
        values: Values,
    ) -> Result<Element, String> {
        let ctx = Ctx {
            server: req.server.clone(),
            requester: req.from.clone(),
            domain: req.to.to_string(),
            values,
        };
        let done = (cmd.run)(ctx).await;
        match &done {
            Ok(_) => {
                crate::metrics::module_event("adhoc", "command_completed");
                tracing::info!(requester = %req.from, command = cmd.node, "command completed")
            }
            Err(e) => {
                crate::metrics::module_event("adhoc", "command_failed");
                tracing::info!(requester = %req.from, command = cmd.node, error = %e, "command failed")
            }
        }
        let done = done?;
        let mut el = command_el(cmd.node, id, "completed");
        if let Some(text) = &done.note {
            el.append_child(note("info", text));
        }
        if let Some(result) = &done.result {
            el.append_child(result.to_element("result"));
        }
        Ok(el)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    #[test]
    fn sessions_are_capped_per_account_and_expire() {
        let adhoc = AdHoc::default();
        let t0 = Instant::now();
        for i in 0..MAX_SESSIONS_PER_USER {
            // Spread over resources: the cap is per account.
            adhoc.open_session("n", &jid(&format!("a@b/{i}")), t0).unwrap();
        }
        let err = adhoc.open_session("n", &jid("a@b/x"), t0).unwrap_err();
        assert_eq!(err.condition, "resource-constraint");
        // Another account is not affected.
        adhoc.open_session("n", &jid("c@b/x"), t0).unwrap();
        // Once abandoned sessions time out, they are forgotten and the account may open more.
        let later = t0 + SESSION_TIMEOUT + Duration::from_secs(1);
        adhoc.open_session("n", &jid("a@b/x"), later).unwrap();
        assert_eq!(adhoc.sessions().open.len(), 1);
        // The timed-out ones are told apart from ids never issued (XEP-0050 §4.6).
        let sessions = adhoc.sessions();
        let (expired, (owner, _)) = sessions
            .ended
            .iter()
            .find(|(_, (o, _))| o == &jid("a@b/0"))
            .unwrap();
        assert_eq!(owner, &jid("a@b/0"));
        assert_eq!(sessions.missing(expired, &jid("a@b/0")).condition, "not-allowed");
        assert_eq!(sessions.missing(expired, &jid("c@b/x")).condition, "bad-request");
        assert_eq!(sessions.missing("never", &jid("a@b/0")).condition, "bad-request");
    }

    #[test]
    fn every_registered_command_has_a_unique_node_and_a_disco_node() {
        let registry = Registry::build(crate::modules::all());
        let mut nodes: Vec<&str> = registry.commands().iter().map(|c| c.node).collect();
        assert!(
            nodes.len() > 30,
            "the modules' commands are registered: {nodes:?}"
        );
        for node in &nodes {
            assert!(
                registry
                    .disco_node_handler(node, IqTarget::Server, false)
                    .is_some(),
                "{node} has no disco#info (registered after the ad-hoc module?)"
            );
        }
        let n = nodes.len();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), n, "duplicate command nodes");
    }
}
