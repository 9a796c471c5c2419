//! Routing: classify a stanza's destination and apply RFC 6120 §10 / RFC 6121 §8.
//!
//! This file transcribes the routing table in ARCHITECTURE.md, one arm per row. Nothing here
//! touches a socket: delivery goes through the session directory's recipients, and this is the
//! only way a stanza reaches a session (`deliver`, `push`, `deliver_tracked`, `deliver_shared`).

pub mod hooks;
pub mod registry;

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::error::StanzaError;
use crate::server::Server;
use crate::session::{DeliveryError, Recipient, SessionRecord, SharedStanza};
use crate::xml::{self, ns};
use hooks::{Delivered, Flow, Routed};
use registry::{IqRequest, IqTarget, IqType};

/// Where a stanza is going, relative to this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// No `to`.
    Unaddressed,
    /// A hosted domain (with or without a resource).
    Host(String),
    Bare(BareJid),
    Full(FullJid),
    /// A domain we do not host.
    Remote(Jid),
    /// A component domain registered by a module (`Registry::service`), in its configured
    /// spelling; the whole stanza goes to that module.
    Service(String),
}

/// Classifies a parsed `to` address.
pub fn classify(server: &Server, to: Option<&Jid>) -> Destination {
    let Some(to) = to else {
        return Destination::Unaddressed;
    };
    let Some(domain) = server.hosted_domain(to.domain().as_str()) else {
        if let Some((service, _)) = server
            .registry
            .service_for(&server.config(), to.domain().as_str())
        {
            return Destination::Service(service.to_string());
        }
        return Destination::Remote(to.clone());
    };
    match (to.node(), to.try_as_full()) {
        (None, _) => Destination::Host(domain.to_string()),
        (Some(_), Ok(full)) => Destination::Full(full.clone()),
        (Some(_), Err(bare)) => Destination::Bare(bare.clone()),
    }
}

/// The stanza kinds RFC 6120 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Presence,
    Iq,
}

/// Routes one stanza from a local, bound session. `stanza` already carries the stamped `from`.
/// The sender's side (`outbound`: its privacy lists, carbons of what it sent) runs here, then
/// the recipient's side as for any stanza that arrives (`arrived`).
pub async fn route(server: &Arc<Server>, from: &FullJid, stanza: Element) {
    let _timer = crate::metrics::RouteTimer::start(stanza.name());
    let to = match stanza.attr("to").map(Jid::new).transpose() {
        Ok(to) => to,
        Err(_) => return bounce(server, &stanza, StanzaError::jid_malformed()),
    };
    let hooks = &server.registry.hooks;
    let (to, stanza) = if hooks.outbound.is_empty() && hooks.sent.is_empty() {
        (to, stanza)
    } else {
        let routed = Routed {
            from: from.clone(),
            to,
            stanza,
            excluded: Vec::new(),
        };
        let routed = match hooks.outbound.run(server, routed).await {
            Flow::Continue(r) => r,
            Flow::Handled => return,
        };
        hooks.sent.notify(server, &routed).await;
        (routed.to, routed.stanza)
    };
    arrived(server, from, to, stanza).await;
}

/// Routes a stanza whose sender's side was already handled where it was sent (another node
/// of a cluster, later a component): `from` is trusted as it is, and only the recipient's
/// side runs (services, `inbound`, the routing table). `to` is the stanza's parsed `to`.
pub async fn arrived(server: &Arc<Server>, from: &FullJid, to: Option<Jid>, stanza: Element) {
    let hooks = &server.registry.hooks;
    let kind = match stanza.name() {
        "message" => Kind::Message,
        "presence" => Kind::Presence,
        _ => Kind::Iq,
    };
    let dest = classify(server, to.as_ref());
    if let Destination::Service(domain) = &dest {
        if let Some((_, handler)) = server.registry.service_for(&server.config(), domain) {
            handler(server.clone(), from.clone(), stanza).await;
        }
        return;
    }
    let (stanza, excluded) = match &dest {
        Destination::Bare(_) | Destination::Full(_) if !hooks.inbound.is_empty() => {
            let routed = Routed {
                from: from.clone(),
                to,
                stanza,
                excluded: Vec::new(),
            };
            match hooks.inbound.run(server, routed).await {
                Flow::Continue(r) => (r.stanza, r.excluded),
                Flow::Handled => return,
            }
        }
        _ => (stanza, Vec::new()),
    };
    match kind {
        Kind::Iq => route_iq(server, from, stanza, dest).await,
        Kind::Message => route_message(server, from, stanza, dest, &excluded).await,
        Kind::Presence => route_presence(server, from, stanza, dest, &excluded).await,
    }
}

async fn route_iq(server: &Arc<Server>, from: &FullJid, iq: Element, dest: Destination) {
    let kind = match iq.attr("type") {
        Some("get") => IqType::Get,
        Some("set") => IqType::Set,
        // Results and errors go only to a full JID; to anything else they are dropped
        // (RFC 6120 §8.2.3: never answer them).
        _ => {
            if let Destination::Full(to) = &dest {
                deliver_to_full(server, to, iq);
            }
            return;
        }
    };
    let (target, to) = match dest {
        Destination::Unaddressed => (IqTarget::OwnAccount, from.to_bare()),
        Destination::Host(domain) => match BareJid::new(&domain) {
            Ok(d) => (IqTarget::Server, d),
            Err(_) => return bounce(server, &iq, StanzaError::jid_malformed()),
        },
        Destination::Bare(bare) if bare == from.to_bare() => (IqTarget::OwnAccount, bare),
        Destination::Bare(bare) => (IqTarget::OtherAccount, bare),
        Destination::Full(full) => {
            // RFC 6121 §8.5.3.1 / §8.5.3.2.1: to a connected resource, deliver; else error.
            if server.sessions.get(&full).is_none() {
                return bounce(server, &iq, StanzaError::service_unavailable());
            }
            return deliver_to_full(server, &full, iq);
        }
        Destination::Remote(_) => return bounce(server, &iq, StanzaError::remote_server_not_found()),
        Destination::Service(_) => return, // handed to the service in `route`
    };
    let Some(payload) = iq.children().next() else {
        return bounce(server, &iq, StanzaError::bad_request());
    };
    let handler = server
        .registry
        .handler(kind, &payload.ns(), payload.name(), target)
        .cloned();
    let Some(handler) = handler else {
        return bounce(server, &iq, StanzaError::service_unavailable());
    };
    let request = IqRequest {
        server: server.clone(),
        from: from.clone(),
        to,
        target,
        kind,
        iq,
    };
    let reply_base = result_skeleton(&request.iq);
    match handler(request).await {
        Ok(response) => {
            let mut reply = reply_base;
            if let Some(payload) = response.payload {
                reply.append_child(payload);
            }
            deliver_to_full(server, from, reply);
            if let Some((account, reason)) = response.then_close {
                for session in server.sessions.sessions_of(&account) {
                    session.kick(reason.clone());
                }
            }
        }
        Err(error) => {
            let mut reply = reply_base;
            xml::set_attr(&mut reply, "type", "error");
            reply.append_child(error.to_element());
            deliver_to_full(server, from, reply);
        }
    }
}

/// An empty `<iq type='result'/>` answering `iq`, addressed back to its sender.
fn result_skeleton(iq: &Element) -> Element {
    let mut reply = xml::iq_result(iq, None);
    if let Some(from) = iq.attr("from") {
        xml::set_attr(&mut reply, "to", from);
    }
    if let Some(to) = iq.attr("to") {
        xml::set_attr(&mut reply, "from", to);
    }
    reply
}

async fn route_message(
    server: &Arc<Server>,
    from: &FullJid,
    msg: Element,
    dest: Destination,
    excluded: &[FullJid],
) {
    // A static str: `msg` moves on while the type is still needed.
    let mtype = match xml::stanza_type(&msg) {
        None => "normal",
        Some(known) if !known.is_empty() => known,
        // Refused by c2s validation; from a module, treated like an unknown type: normal.
        Some(_) => "normal",
    };
    match dest {
        // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
        Destination::Unaddressed => message_to_bare(server, from, from.to_bare(), msg, mtype, excluded).await,
        Destination::Bare(bare) => message_to_bare(server, from, bare, msg, mtype, excluded).await,
        Destination::Full(full) => match server.sessions.get(&full) {
            Some(session) => {
                if !server.registry.hooks.message_delivered.is_empty()
                    && server.sessions.count_of(&full.to_bare()) > 1
                {
                    let recipients = vec![full.clone()];
                    notify_delivered(server, from, &msg, recipients).await;
                }
                deliver(server, &session, msg)
            }
            // RFC 6121 §8.5.3.2.1: resource not connected.
            None => match mtype {
                "normal" | "chat" => {
                    message_to_bare(server, from, full.to_bare(), msg, mtype, excluded).await
                }
                "groupchat" => bounce(server, &msg, StanzaError::service_unavailable()),
                _ => {} // headline, error: silently ignored
            },
        },
        Destination::Host(_) => match mtype {
            "error" | "headline" | "groupchat" => {}
            _ => bounce(server, &msg, StanzaError::service_unavailable()),
        },
        Destination::Remote(_) => bounce(server, &msg, StanzaError::remote_server_not_found()),
        Destination::Service(_) => {} // handed to the service in `route`
    }
}

/// Routes again a message that reached a session whose client never acknowledged it
/// (XEP-0198), once that session ended: as a message to a full JID no longer there (RFC 6121
/// §8.5.3.2.1), to the account's other resources or offline storage. The recipient's
/// `inbound` hooks (archiving, blocking) already ran for it and do not run again.
pub async fn route_unacknowledged(server: &Arc<Server>, from: &FullJid, to: &FullJid, msg: Element) {
    let mtype = match xml::stanza_type(&msg) {
        None | Some("normal") => "normal",
        Some("chat") => "chat",
        // Headlines, errors and room messages are not worth keeping (as for a gone resource).
        _ => return,
    };
    message_to_bare(server, from, to.to_bare(), msg, mtype, &[]).await;
}

/// Tells `message_delivered` observers (carbons) who got a message.
async fn notify_delivered(server: &Arc<Server>, from: &FullJid, msg: &Element, recipients: Vec<FullJid>) {
    let delivered = Delivered {
        from: from.clone(),
        stanza: msg.clone(),
        recipients,
    };
    server
        .registry
        .hooks
        .message_delivered
        .notify(server, &delivered)
        .await;
}

/// RFC 6121 §8.5.2: a message to a local bare JID.
/// `excluded`: resources an `inbound` handler ruled out; the rule picks among the others.
async fn message_to_bare(
    server: &Arc<Server>,
    from: &FullJid,
    to: BareJid,
    msg: Element,
    mtype: &str,
    excluded: &[FullJid],
) {
    if mtype == "error" {
        return;
    }
    if mtype == "groupchat" {
        return bounce(server, &msg, StanzaError::service_unavailable());
    }
    let sessions = server.sessions.sessions_of(&to);
    // Chat and normal go to the most available resource(s): the highest priority.
    let rule = if mtype == "headline" {
        AccountRule::Eligible
    } else {
        AccountRule::Top
    };
    let targets = rule.pick_except(&sessions, excluded);
    if !targets.is_empty() {
        if !server.registry.hooks.message_delivered.is_empty() && sessions.len() > targets.len() {
            // The excluded resources count as recipients: they get no carbon either.
            let recipients = targets
                .iter()
                .map(|s| s.jid.clone())
                .chain(excluded.iter().cloned())
                .collect();
            notify_delivered(server, from, &msg, recipients).await;
        }
        let last = targets.len() - 1;
        for (i, session) in targets.iter().enumerate() {
            if i == last {
                deliver(server, session, msg);
                break;
            }
            deliver(server, session, msg.clone());
        }
        return;
    }
    if mtype == "headline" {
        return;
    }
    // No resource can take it now: offline storage may claim it. Otherwise (or for a
    // nonexistent account, answered the same way per RFC 6121 §8.5.1 so existence does not
    // leak) the sender learns it was not delivered rather than losing it silently.
    let routed = Routed {
        from: from.clone(),
        to: Some(Jid::from(to)),
        stanza: msg,
        excluded: Vec::new(),
    };
    if let Flow::Continue(routed) = server.registry.hooks.message_offline.run(server, routed).await {
        bounce(server, &routed.stanza, StanzaError::service_unavailable());
    }
}

async fn route_presence(
    server: &Arc<Server>,
    from: &FullJid,
    presence: Element,
    dest: Destination,
    excluded: &[FullJid],
) {
    let ptype = xml::stanza_type(&presence);
    match dest {
        Destination::Unaddressed => broadcast_own_presence(server, from, presence, ptype).await,
        Destination::Full(full) => {
            // Directed presence to a connected resource; otherwise dropped (RFC 6121 §4.6).
            if let Some(session) = server.sessions.get(&full) {
                deliver(server, &session, presence);
            }
        }
        Destination::Bare(bare) => {
            let hooks = &server.registry.hooks.presence_to_account;
            let presence = if hooks.is_empty() {
                presence
            } else {
                let routed = Routed {
                    from: from.clone(),
                    to: Some(Jid::from(bare.clone())),
                    stanza: presence,
                    excluded: Vec::new(),
                };
                match hooks.run(server, routed).await {
                    Flow::Continue(r) => r.stanza,
                    Flow::Handled => return,
                }
            };
            // Default: directed presence to an account reaches every available resource.
            if matches!(ptype, None | Some("unavailable")) {
                let sessions = server.sessions.sessions_of(&bare);
                for session in AccountRule::Available.pick_except(&sessions, excluded) {
                    deliver(server, session, presence.clone());
                }
            }
        }
        Destination::Host(_) | Destination::Service(_) => {}
        Destination::Remote(_) => {
            if matches!(ptype, Some("subscribe") | Some("probe")) {
                bounce(server, &presence, StanzaError::remote_server_not_found());
            }
        }
    }
}

/// Presence without `to` (RFC 6121 §4.2, §4.4, §4.5): records the sender's availability, then
/// the `presence_broadcast` hooks (roster broadcast) or, by default, tells the account's other
/// available resources.
async fn broadcast_own_presence(
    server: &Arc<Server>,
    from: &FullJid,
    presence: Element,
    ptype: Option<&str>,
) {
    // The sending session already recorded its availability (c2s::session); a subscription
    // type without 'to' means nothing.
    if !matches!(ptype, None | Some("unavailable")) {
        return;
    }
    let observers = &server.registry.hooks.presence_broadcasted;
    // Observers see the presence once broadcast; the interceptors consume it (a small
    // element, copied only when someone observes).
    let observed = (!observers.is_empty()).then(|| Routed {
        from: from.clone(),
        to: None,
        stanza: presence.clone(),
        excluded: Vec::new(),
    });
    broadcast_by_hooks_or_default(server, from, presence).await;
    if let Some(routed) = observed {
        observers.notify(server, &routed).await;
    }
}

/// The `presence_broadcast` interceptors (the roster), or by default the account's other
/// available resources.
async fn broadcast_by_hooks_or_default(server: &Arc<Server>, from: &FullJid, presence: Element) {
    let hooks = &server.registry.hooks.presence_broadcast;
    let presence = if hooks.is_empty() {
        presence
    } else {
        let routed = Routed {
            from: from.clone(),
            to: None,
            stanza: presence,
            excluded: Vec::new(),
        };
        match hooks.run(server, routed).await {
            Flow::Continue(r) => r.stanza,
            Flow::Handled => return,
        }
    };
    let sessions = server.sessions.sessions_of(&from.to_bare());
    for session in &sessions {
        if session.jid != *from && session.is_available() {
            let mut copy = presence.clone();
            xml::set_attr(&mut copy, "to", &session.jid.to_string());
            deliver(server, session, copy);
        }
    }
}

/// Which of an account's resources a stanza for the account reaches (RFC 6121 §8.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRule {
    /// Every available resource: presence (§8.5.2.1.1, §4.2.2, §4.5.2).
    Available,
    /// Available with a non-negative priority: headlines, subscription requests (§3.1.3).
    Eligible,
    /// The eligible resources of the highest priority (all of them if tied): chat and normal
    /// messages (§8.5.2.1.1).
    Top,
    /// The resources that asked for the roster: roster pushes and subscription answers
    /// (§2.1.6, §3.1.6).
    RosterPushes,
}

impl AccountRule {
    /// The resources among `sessions` (one account's) this rule picks, in directory order.
    pub fn pick(self, sessions: &[Recipient]) -> Vec<&Recipient> {
        self.pick_except(sessions, &[])
    }

    /// Like `pick`, among the resources not in `excluded` (ruled out by `inbound`: the
    /// highest priority is then the highest among those left).
    pub fn pick_except<'a>(self, sessions: &'a [Recipient], excluded: &[FullJid]) -> Vec<&'a Recipient> {
        let open = |s: &&Recipient| excluded.is_empty() || !excluded.contains(&s.jid);
        let candidates = sessions.iter().filter(open);
        match self {
            AccountRule::Available => candidates.filter(|s| s.is_available()).collect(),
            AccountRule::Eligible => candidates.filter(|s| s.is_eligible()).collect(),
            AccountRule::Top => {
                let eligible: Vec<&Recipient> = candidates.filter(|s| s.is_eligible()).collect();
                let top = eligible.iter().map(|s| s.priority()).max();
                eligible
                    .into_iter()
                    .filter(|s| Some(s.priority()) == top)
                    .collect()
            }
            AccountRule::RosterPushes => candidates.filter(|s| s.wants_roster_pushes()).collect(),
        }
    }
}

/// How the copies of a stanza delivered to an account are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// As they are.
    AsIs,
    /// To the account's bare JID (presence from a contact, RFC 6121 §4.2.2).
    Bare,
    /// Each to its recipient's full JID (the account's own broadcasts).
    EachResource,
}

/// Delivers a copy of the server's `stanza` (a presence broadcast, a probe answer, a
/// subscription stanza the roster forwards, a push) from `from` to the resources of `to`
/// that `rule` picks. Presence notifications (`AccountRule::Available`) from another account
/// reach only the resources the recipient filter lets them reach (privacy lists, blocking:
/// routed stanzas were already judged by `inbound`). Failures are not bounced: these are
/// state the next one supersedes. Returns how many copies were queued.
pub fn deliver_to_account(
    server: &Server,
    from: &FullJid,
    to: &BareJid,
    stanza: &Element,
    rule: AccountRule,
    addressing: Addressing,
) -> usize {
    let sessions = server.sessions.sessions_of(to);
    if sessions.is_empty() {
        return 0;
    }
    let filtered = rule == AccountRule::Available;
    let mut queued = 0;
    for session in rule.pick(&sessions) {
        if filtered && !recipient_allows(server, from, session, stanza) {
            continue;
        }
        let mut copy = stanza.clone();
        match addressing {
            Addressing::AsIs => {}
            Addressing::Bare => xml::set_attr(&mut copy, "to", to.as_str()),
            Addressing::EachResource => xml::set_attr(&mut copy, "to", &session.jid.to_string()),
        }
        if rule == AccountRule::Available {
            crate::metrics::presence_fanout(1);
        }
        queued += usize::from(push(session, copy));
    }
    queued
}

/// The per-recipient filter (`Hooks::recipient_filter`, where privacy lists and blocking
/// decide) on presence `stanza` from `from` to the resource `to`. Between the resources of
/// one account everything passes; free when no module registered a filter.
pub fn recipient_allows(server: &Server, from: &FullJid, to: &SessionRecord, stanza: &Element) -> bool {
    let filters = &server.registry.hooks.recipient_filter;
    if filters.is_empty() || (from.node() == to.jid.node() && from.domain() == to.jid.domain()) {
        return true;
    }
    filters.allows(server, from, to, stanza)
}

/// Availability and priority announced by a broadcast presence (RFC 6121 §4.7.2.3).
pub fn announced_availability(presence: &Element) -> Result<(bool, i32), StanzaError> {
    let available = presence.attr("type").is_none();
    let priority =
        match presence.get_child("priority", ns::CLIENT) {
            None => 0,
            Some(p) => p.text().trim().parse::<i8>().map(i32::from).map_err(|_| {
                StanzaError::bad_request().text("priority must be an integer from -128 to 127")
            })?,
        };
    Ok((available, priority))
}

/// Delivers to a connected full JID, if still there.
pub fn deliver_to_full(server: &Arc<Server>, to: &FullJid, stanza: Element) {
    if let Some(session) = server.sessions.get(to) {
        deliver(server, &session, stanza);
    }
}

/// Hands `stanza` to one recipient. When it cannot take it, the sender is answered
/// (`resource-constraint` for a recipient too slow to read, `recipient-unavailable` for one
/// that just left).
pub fn deliver(server: &Arc<Server>, session: &Recipient, stanza: Element) {
    match session.deliver(stanza) {
        Ok(()) => {}
        Err((DeliveryError::Overloaded, stanza)) => {
            // The recipient is being disconnected as too slow: tell the sender.
            bounce(
                server,
                &stanza,
                StanzaError::resource_constraint().text("the recipient is not reading"),
            );
        }
        Err((DeliveryError::Gone, stanza)) => {
            bounce(server, &stanza, StanzaError::recipient_unavailable());
        }
    }
}

/// Hands the server's own stanza (a push, a copy, an answer) to one recipient, best effort:
/// a recipient that cannot take it is already being disconnected or gone, and nobody is to
/// be told. Returns whether it was queued.
pub fn push(session: &Recipient, stanza: Element) -> bool {
    session.deliver(stanza).is_ok()
}

/// Hands `stanza` to one recipient and learns when its session wrote it to the socket (offline
/// storage deletes a message only then). On failure the stanza comes back.
pub fn deliver_tracked(
    session: &Recipient,
    stanza: Element,
) -> Result<tokio::sync::oneshot::Receiver<()>, (DeliveryError, Element)> {
    session.deliver_tracked(stanza)
}

/// Hands one copy of a stanza serialized for many (a room's broadcast) to one recipient.
pub fn deliver_shared(session: &Recipient, stanza: &Arc<SharedStanza>) -> Result<(), DeliveryError> {
    session.deliver_shared(stanza)
}

/// Answers a stanza with an error (RFC 6120 §8.3), unless it is an error or IQ result itself.
pub fn bounce(server: &Arc<Server>, stanza: &Element, error: StanzaError) {
    if matches!(stanza.attr("type"), Some("error") | Some("result")) {
        return;
    }
    let Some(from) = stanza.attr("from").and_then(|f| FullJid::new(f).ok()) else {
        return;
    };
    let reply = error.reply_to(stanza);
    if let Some(session) = server.sessions.get(&from) {
        // Never bounce a bounce: a failed error delivery is dropped.
        let _ = session.deliver(reply);
    }
}

#[cfg(test)]
mod tests {
    /// Modules hand stanzas to the router (`deliver`, `push`, `deliver_tracked`,
    /// `deliver_shared`); only the session layers (`session/`, and `c2s/`, whose writer
    /// drains the mailbox) and the router put them in a mailbox. A method call named like a
    /// delivery anywhere else in `src/` is code reaching past the router.
    #[test]
    fn modules_reach_sessions_only_through_the_router() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        // The session layers: the router, the sessions, and the transports (c2s, web) that
        // attach to them.
        let allowed = ["router", "session", "c2s", "web"].map(|d| src.join(d));
        let mut files = vec![src.clone()];
        let mut offenders = Vec::new();
        let mut scanned = 0;
        while let Some(path) = files.pop() {
            if allowed.contains(&path) {
                continue;
            }
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    files.push(entry.unwrap().path());
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            scanned += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let direct = [".deliver(", ".deliver_tracked(", ".deliver_shared(", "Outbound::"]
                    .iter()
                    .any(|p| line.contains(p));
                if direct {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(scanned > 40, "the sources were not found ({scanned} files)");
        assert!(
            offenders.is_empty(),
            "direct session delivery:\n{}",
            offenders.join("\n")
        );
    }
}
