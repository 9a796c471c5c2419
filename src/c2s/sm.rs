//! XEP-0198 stream management on a bound session: `<enable/>`, the `<r/>`/`<a/>` exchange
//! (counters in [`StreamManagement`] for what the client sent, in the writer's
//! [`crate::c2s::writer::Unacked`] for what it was sent), and resumption.
//!
//! # Resumption
//! A session with resumption enabled whose connection is lost does not end: it parks itself
//! in its entry's [`Resumption`] (an extension of the session entry, so the session directory
//! finds it by the full JID the resumption id names) and waits there, still bound and
//! available, its mailbox filling up to `limits.session_queue`, for the timeout. A client
//! that authenticates again and sends `<resume/>` takes it out and attaches its new transport
//! (TCP or WebSocket alike); the unacknowledged stanzas are written again. When the timeout
//! ends (or a new login replaces the resource, or the server stops), the session ends as any
//! other and its unacknowledged messages are routed again to the bare JID: offline storage
//! or the account's other resources. A client that resumes before its old connection was seen
//! to die displaces it ([`Resumption::displaced`]).
//!
//! For XEP-0386 Bind2 (inline enable and resume): [`Session::enable_stream_management`] and
//! [`resume`] do the work without a stream; the caller sends the element they return.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::sync::{Notify, watch};
use xmpp_parsers::sm::{A, Enable, Enabled, Failed, Resume, Resumed, StreamId};
use xmpp_parsers::stanza_error::DefinedCondition;

use crate::c2s::session::{Detached, Session};
use crate::c2s::transport::Transport;
use crate::c2s::writer::NS_SM;
use crate::error::{StreamError, StreamErrorCondition};
use crate::router;
use crate::server::Server;

/// How long a resuming client waits for its old connection to let go of the session.
const DISPLACE_GRACE: Duration = Duration::from_secs(5);

/// XEP-0198 state of one session that is not the writer's.
#[derive(Default)]
pub struct StreamManagement {
    /// `<enable/>` was accepted.
    pub enabled: bool,
    /// Stanzas received from the client and handled (our `h`), wrapping at 2^32.
    pub handled: u32,
    /// Resumption is on, with this timeout.
    pub resume_timeout: Option<Duration>,
    /// Unacknowledged messages written to offline storage when the connection was lost (so a
    /// crash while hibernating loses none): their position in the writer's count and their
    /// offline sequence number. Taken back out on resumption or when the session ends.
    pub spilled: Vec<(u32, i64)>,
}

/// The `<sm/>` stream feature, offered after authentication.
pub fn feature() -> Element {
    Element::bare("sm", NS_SM)
}

/// Where a session with resumption enabled waits for its client, per session entry.
#[derive(Default)]
pub struct Resumption {
    state: Mutex<Parked>,
    /// Asks the attached transport to let go (a client resumed elsewhere).
    displace: Notify,
    /// A session was parked.
    parked: Notify,
    /// The parked session was taken by a resuming client.
    taken: Notify,
}

#[derive(Default)]
struct Parked {
    /// The secret half of the resumption id.
    secret: Option<String>,
    session: Option<Box<Session>>,
}

impl Resumption {
    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when a resuming client asks the attached transport to let go. Made before
    /// it is awaited, it catches a request made in between.
    pub fn displaced(&self) -> tokio::sync::futures::Notified<'_> {
        self.displace.notified()
    }

    /// The session ended: nothing can resume it (and the entry no longer holds it).
    pub fn forget(&self) {
        let mut state = self.lock();
        state.secret = None;
        state.session = None;
    }
}

/// The id names the resource (so the directory finds the session) and a secret.
fn resumption_id(jid: &FullJid, secret: &str) -> String {
    format!("{}.{secret}", hex::encode(jid.as_str()))
}

fn parse_resumption_id(id: &str) -> Option<(FullJid, &str)> {
    let (jid, secret) = id.split_once('.')?;
    let jid = String::from_utf8(hex::decode(jid).ok()?).ok()?;
    Some((FullJid::new(&jid).ok()?, secret))
}

fn failed(h: Option<u32>, condition: DefinedCondition) -> Element {
    Failed {
        h,
        error: Some(condition),
    }
    .into()
}

impl Session {
    /// Turns stream management on (XEP-0198 §3): the answer to `<enable/>`, or to Bind2's
    /// inline enable. `resume`: the client wants resumption; `max`: the longest it wants the
    /// session kept (seconds; the server's `stream_management.resume_timeout_secs` caps it).
    /// Returns `<enabled/>`, or `<failed/>` when already enabled or switched off.
    pub fn enable_stream_management(&mut self, resume: bool, max: Option<u32>) -> Element {
        let config = self.server.config().stream_management.clone();
        if self.sm.enabled || !config.enabled {
            return failed(None, DefinedCondition::UnexpectedRequest);
        }
        self.sm.enabled = true;
        self.sm.handled = 0;
        self.unacked.keeping = true;
        self.unacked.written = 0;
        self.unacked.acked = 0;
        self.unacked.request_every = config.request_ack_every;
        self.unacked.request_after =
            (config.request_ack_after_secs > 0).then(|| Duration::from_secs(config.request_ack_after_secs));
        let mut enabled = Enabled {
            id: None,
            location: None,
            max: None,
            resume: false,
        };
        if resume && config.resume_timeout_secs > 0 {
            let timeout = match max {
                Some(asked) if asked > 0 => config.resume_timeout_secs.min(u64::from(asked)),
                _ => config.resume_timeout_secs,
            };
            let secret = {
                use rand::Rng;
                hex::encode(rand::rng().random::<[u8; 16]>())
            };
            let id = resumption_id(&self.jid, &secret);
            self.resumption.lock().secret = Some(secret);
            self.sm.resume_timeout = Some(Duration::from_secs(timeout));
            enabled.id = Some(StreamId(id));
            enabled.max = Some(u32::try_from(timeout).unwrap_or(u32::MAX));
            enabled.resume = true;
        }
        tracing::debug!(jid = %self.jid, resume = enabled.resume, "stream management enabled");
        enabled.into()
    }
}

/// What an SM element on a bound stream did.
pub enum Handled {
    /// An `<a/>`: the client is alive (answers a keepalive `<r/>`).
    Acknowledged,
    Other,
}

/// Why an SM element ended the stream.
pub enum ElementError {
    Stream(StreamError),
    Io,
}

/// Handles a XEP-0198 element the client sent on its bound stream.
pub async fn on_element<T: Transport>(
    session: &mut Session,
    stream: &mut T,
    el: &Element,
) -> Result<Handled, ElementError> {
    let answer = match el.name() {
        "a" if session.sm.enabled => {
            let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                return Err(ElementError::Stream(StreamError::with_text(
                    StreamErrorCondition::BadFormat,
                    "an <a/> needs an h counter",
                )));
            };
            if let Err(high) = session.unacked.acknowledge(h) {
                // XEP-0198 §5: acknowledging more than was sent is a stream error.
                let mut detail = Element::bare("handled-count-too-high", NS_SM);
                crate::xml::set_attr(&mut detail, "h", &high.h.to_string());
                crate::xml::set_attr(&mut detail, "send-count", &high.sent.to_string());
                return Err(ElementError::Stream(
                    StreamError::with_text(
                        StreamErrorCondition::UndefinedCondition,
                        "you acknowledged more stanzas than were sent",
                    )
                    .with_application(&detail),
                ));
            }
            return Ok(Handled::Acknowledged);
        }
        "r" if session.sm.enabled => A::new(session.sm.handled).into(),
        "enable" => match Enable::try_from(el.clone()) {
            Ok(enable) => session.enable_stream_management(enable.resume, enable.max),
            Err(_) => failed(None, DefinedCondition::BadRequest),
        },
        // Not enabled yet (`a`, `r`), or a resume on a bound stream.
        "a" | "r" | "resume" => failed(None, DefinedCondition::UnexpectedRequest),
        _ => {
            return Err(ElementError::Stream(StreamError::new(
                StreamErrorCondition::UnsupportedStanzaType,
            )));
        }
    };
    stream.queue(&answer);
    stream.flush().await.map_err(|_| ElementError::Io)?;
    Ok(Handled::Other)
}

/// A XEP-0198 element during negotiation (before a resource is bound): `<resume/>` after
/// authentication resumes a session (its `<resumed/>` is sent and the session returned, to be
/// attached to this stream); anything else is answered with `<failed/>`.
pub async fn on_negotiation_element<T: Transport>(
    server: &Arc<Server>,
    stream: &mut T,
    account: Option<&BareJid>,
    el: &Element,
) -> std::io::Result<Option<Box<Session>>> {
    let answer = match (el.name(), account) {
        ("resume", Some(account)) => match Resume::try_from(el.clone()) {
            Ok(request) => match resume(server, account, &request).await {
                Ok((session, resumed)) => {
                    stream.queue(&resumed);
                    stream.flush().await?;
                    return Ok(Some(session));
                }
                Err(failed) => failed,
            },
            Err(_) => failed(None, DefinedCondition::BadRequest),
        },
        // XEP-0198 §3: enabling before binding a resource is refused.
        _ => failed(None, DefinedCondition::UnexpectedRequest),
    };
    stream.queue(&answer);
    stream.flush().await?;
    Ok(None)
}

/// Takes the session `request.previd` names out of hibernation for `account`, acknowledging
/// what the client says it handled: the session and the `<resumed/>` to send, or the
/// `<failed/>` (XEP-0198 §5). The caller then runs the session on its transport
/// ([`crate::c2s::session::run`]), which first writes the unacknowledged stanzas again.
pub async fn resume(
    server: &Arc<Server>,
    account: &BareJid,
    request: &Resume,
) -> Result<(Box<Session>, Element), Element> {
    let not_found = || failed(None, DefinedCondition::ItemNotFound);
    let Some((jid, secret)) = parse_resumption_id(&request.previd.0) else {
        return Err(not_found());
    };
    if jid.to_bare() != *account {
        return Err(not_found());
    }
    let Some(entry) = server.sessions.get(&jid).and_then(|r| r.local().cloned()) else {
        return Err(not_found());
    };
    let resumption = entry.extension::<Resumption>();
    let deadline = tokio::time::Instant::now() + DISPLACE_GRACE;
    loop {
        let parked = resumption.parked.notified();
        let taken = {
            let mut state = resumption.lock();
            // Constant time: how long a refusal takes must not tell how much of a guess matched.
            let known = state
                .secret
                .as_deref()
                .is_some_and(|s| bool::from(crate::sasl::ct_eq(s.as_bytes(), secret.as_bytes())));
            if !known {
                return Err(not_found());
            }
            match state.session.take() {
                Some(mut session) => match session.unacked.acknowledge(request.h) {
                    Ok(()) => Some(session),
                    Err(high) => {
                        let handled = session.sm.handled;
                        state.session = Some(session);
                        let mut answer = failed(Some(handled), DefinedCondition::UndefinedCondition);
                        let mut detail = Element::bare("handled-count-too-high", NS_SM);
                        crate::xml::set_attr(&mut detail, "h", &high.h.to_string());
                        crate::xml::set_attr(&mut detail, "send-count", &high.sent.to_string());
                        answer.append_child(detail);
                        return Err(answer);
                    }
                },
                None => None,
            }
        };
        if let Some(mut session) = taken {
            resumption.taken.notify_waiters();
            // Replayed from memory now: the copies kept against a crash go.
            unspill(&mut session).await;
            tracing::info!(%jid, "session resumed");
            let resumed = Resumed {
                h: session.sm.handled,
                previd: request.previd.clone(),
            };
            return Ok((session, resumed.into()));
        }
        // Still attached: the old connection may be dead without the server knowing yet.
        resumption.displace.notify_waiters();
        if tokio::time::timeout_at(deadline, parked).await.is_err() {
            return Err(not_found());
        }
    }
}

/// A transport left `session`: a lost connection with resumption on hibernates (in a task of
/// its own, so the dead connection's task, slot and transport state go now); anything else
/// ends the session.
pub async fn after_transport(session: Session, how: Detached, shutdown: watch::Receiver<bool>) {
    match (session.sm.resume_timeout, how) {
        (Some(timeout), Detached::Lost) => {
            tokio::spawn(hibernate(session, timeout, shutdown));
        }
        (_, how) => session.end(how).await,
    }
}

/// Parks `session` until a client resumes it, the timeout ends, the resource is replaced (a
/// kick) or the server stops; in the last three cases it ends here.
async fn hibernate(session: Session, timeout: Duration, mut shutdown: watch::Receiver<bool>) {
    let entry = session.entry.clone();
    let resumption = session.resumption.clone();
    tracing::info!(jid = %session.jid, secs = timeout.as_secs(), "connection lost: session waits for resumption");
    let mut session = session;
    spill(&mut session).await;
    let taken = resumption.taken.notified();
    tokio::pin!(taken);
    taken.as_mut().enable();
    resumption.lock().session = Some(Box::new(session));
    resumption.parked.notify_waiters();
    let stopping = async {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(timeout) => {}
        _ = entry.kicked() => {}
        () = stopping => {}
        () = &mut taken => return,
    }
    // Whoever takes it out first owns it: a resuming client may just have.
    let Some(session) = resumption.lock().session.take() else {
        return;
    };
    session.end(Detached::Lost).await;
}

/// Writes the unacknowledged chat and normal messages of a session that lost its connection
/// to offline storage, so that a crash (kill -9) while it hibernates loses none of them. The
/// hot path writes nothing: this runs once per lost connection. Messages that arrive while
/// it hibernates stay in memory only (the remaining window).
async fn spill(session: &mut Session) {
    let Some(user) = session.jid.node().map(|n| n.to_string()) else {
        return;
    };
    let host = session.jid.domain().to_string();
    let max = session.server.config().limits.max_offline_messages;
    let now = chrono::Utc::now().timestamp_millis();
    let server = session.server.clone();
    for (position, item) in &session.unacked.pending {
        let crate::session::Outbound::Stanza(el) = item else {
            continue;
        };
        if el.name() != "message" || !matches!(el.attr("type"), None | Some("chat") | Some("normal")) {
            continue;
        }
        let Some(sender) = el.attr("from") else { continue };
        let text = crate::xml::to_string(el);
        match server
            .storage
            .offline_store(&host, &user, sender, &text, now, max)
            .await
        {
            Ok(crate::storage::offline::OfflineStored::Stored(seq)) => {
                session.sm.spilled.push((*position, seq))
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(jid = %session.jid, error = %e, "could not keep an unacknowledged message")
            }
        }
    }
}

/// Takes the spilled copies back out of offline storage. Returns the positions whose copy
/// was still there (a copy already delivered to another resource is not routed again).
pub(super) async fn unspill(session: &mut Session) -> Vec<u32> {
    let spilled = std::mem::take(&mut session.sm.spilled);
    let (Some(user), host) = (
        session.jid.node().map(|n| n.to_string()),
        session.jid.domain().to_string(),
    ) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for (position, seq) in spilled {
        match session.server.storage.offline_delete(&host, &user, &[seq]).await {
            Ok(1) => kept.push(position),
            Ok(_) => {}
            Err(e) => tracing::warn!(jid = %session.jid, error = %e, "could not remove a kept message"),
        }
    }
    kept
}

/// Routes a message its recipient never acknowledged again, now that its session is gone:
/// to the account's other resources or offline storage (RFC 6121 §8.5.3.2.1 for a full JID
/// that is no longer there). The sender's side already ran when it was first sent.
pub async fn route_again(server: &Arc<Server>, message: Element) {
    let Some(from) = message.attr("from").and_then(|f| FullJid::new(f).ok()) else {
        tracing::debug!("an unacknowledged message from a bare address is dropped");
        return;
    };
    let Some(to) = message.attr("to").and_then(|t| FullJid::new(t).ok()) else {
        return;
    };
    router::route_unacknowledged(server, &from, &to, message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumption_ids_name_the_resource_and_parse_back() {
        let jid = FullJid::new("alice@localhost/phone.1").unwrap();
        let id = resumption_id(&jid, "00ff");
        let (parsed, secret) = parse_resumption_id(&id).expect("parses");
        assert_eq!(parsed, jid);
        assert_eq!(secret, "00ff");
        for bad in ["", "nohex.00", "616c696365", "zz.00", "616c696365.00"] {
            assert!(parse_resumption_id(bad).is_none(), "{bad}");
        }
    }
}
