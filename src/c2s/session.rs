//! A bound client session, apart from the connection that carries it.
//!
//! A transport attaches to the session and runs its loop until the connection ends; the
//! session then ends with it. The split is what a session that outlives its connection
//! (XEP-0198 resumption, BOSH, WebSocket reconnects) needs: such a session would wait
//! detached for the next transport instead of ending. The loop only multiplexes; reading,
//! writing, pacing and keepalive live in their own modules.

use std::sync::Arc;
use std::time::Duration;

use jid::FullJid;
use minidom::Element;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::c2s::csi::{self, Csi};
use crate::c2s::inbound::handle_stanza;
use crate::c2s::keepalive::{Due, Keepalive};
use crate::c2s::pace::Pacer;
use crate::c2s::sm::{self, Resumption, StreamManagement};
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::c2s::writer::{NS_SM, Unacked, queue_item, write_batch, write_items};
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router;
use crate::router::hooks::{Flow, SessionEvent};
use crate::server::Server;
use crate::session::{Outbound, SessionEntry, SessionLink};
use crate::xml::{self, StreamEvent, ns};

pub use crate::c2s::trace::TraceTraffic;

/// A bound session: its place in the session table, its mailbox, and the per-session state
/// that does not belong to any one connection.
pub struct Session {
    pub(super) server: Arc<Server>,
    pub(super) jid: FullJid,
    pub(super) entry: Arc<SessionEntry>,
    link: SessionLink,
    /// Stamped on every stanza: formatted once.
    jid_text: String,
    /// The `to` of shared stanzas (room broadcasts), escaped once.
    to_attr: String,
    trace: Arc<TraceTraffic>,
    pacer: Pacer,
    /// What was written and not yet acknowledged; outlives any one transport.
    pub(super) unacked: Unacked,
    /// XEP-0198 state: what the client sent, whether it may resume.
    pub(super) sm: StreamManagement,
    /// Where the session waits for a resuming client (`c2s/sm.rs`).
    pub(super) resumption: Arc<Resumption>,
    /// XEP-0352: the client's state and the stanzas held while it is inactive.
    csi: Csi,
    /// Released by `set_client_active` with no transport attached: written on attach.
    csi_released: Vec<Outbound>,
}

/// How a transport left its session.
pub enum Detached {
    /// The client closed the stream.
    Closed,
    /// The connection was lost (or a resuming client took the session elsewhere): a session
    /// with resumption enabled waits for its client instead of ending.
    Lost,
    /// The stream ended with this error (already sent to the client).
    Failed(StreamError),
}

/// Runs a bound (or resumed) session over `stream` until it ends: when the connection is lost
/// and resumption is on, the session waits detached for its client (`sm::hibernate`) instead.
/// What TCP and WebSocket connections run after negotiation.
pub async fn run<T: Transport>(mut session: Session, mut stream: T, shutdown: watch::Receiver<bool>) {
    tracing::Span::current().record("jid", tracing::field::display(&session.jid));
    let how = session.attach(&mut stream, shutdown.clone()).await;
    // This transport cannot come back: a resuming client brings a new one.
    drop(stream);
    sm::after_transport(session, how, shutdown).await;
}

impl Session {
    /// Opens the session bound as `jid` (runs the `session_opened` hooks).
    pub async fn open(server: Arc<Server>, jid: FullJid, link: SessionLink, listener: usize) -> Session {
        let entry = link.entry.clone();
        let hooks = &server.registry.hooks;
        if let Flow::Continue(event) = hooks
            .session_opening
            .run(&server, SessionEvent { entry: entry.clone() })
            .await
        {
            hooks.session_opened.notify(&server, &event).await;
        }
        let jid_text = jid.to_string();
        let to_attr = crate::session::attr_value(&jid_text);
        let trace = entry.extension::<TraceTraffic>();
        let resumption = entry.extension::<Resumption>();
        let pacer = Pacer::new(&server, listener, &jid);
        let csi = Csi::new(server.config().limits.csi_max_held);
        Session {
            server,
            jid,
            entry,
            link,
            jid_text,
            to_attr,
            trace,
            pacer,
            unacked: Unacked::default(),
            sm: StreamManagement::default(),
            resumption,
            csi,
            csi_released: Vec::new(),
        }
    }

    /// The bound JID.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// Sets the XEP-0352 client state (`<inactive/>` is `false`), as the client's own
    /// `<active/>`/`<inactive/>` does; for Bind2's inline CSI before the first attach. What
    /// going active releases is written when a transport attaches.
    pub fn set_client_active(&mut self, active: bool) {
        let released = self.csi.set_active(active);
        self.csi_released.extend(released);
    }

    /// Serves the session over `stream` until the connection ends, is kicked, or the server
    /// shuts down. The farewell (queued stanzas, stream error, close) is sent on the way out.
    pub async fn attach<T: Transport>(
        &mut self,
        stream: &mut T,
        mut shutdown: watch::Receiver<bool>,
    ) -> Detached {
        let server = self.server.clone();
        let _attached = crate::metrics::Attached::new(stream.kind());
        // Read once, in a block: the config guard must not live across the loop's awaits.
        let mut keepalive = {
            let limits = &server.config().limits;
            Keepalive::new(
                Duration::from_secs(limits.idle_ping_secs),
                Duration::from_secs(limits.ping_timeout_secs),
            )
        };
        // While set, the client is over its rate limit and is not read from until then.
        let mut paused_until: Option<Instant> = None;
        stream.take_bytes_read();
        let max_unacked = server.config().stream_management.max_unacked;
        // A resumed session: what the client never acknowledged goes out again first.
        if self.sm.enabled && self.replay(stream).await.is_err() {
            return Detached::Lost;
        }

        // The loop's long-lived futures are built once, not on every wake-up: the timer in
        // particular is re-armed lazily (the keepalive's clock moves, the timer does not)
        // instead of being re-registered with the runtime for each stanza.
        let entry = self.entry.clone();
        let kicked = entry.kicked();
        tokio::pin!(kicked);
        let stopping = shutdown.changed();
        tokio::pin!(stopping);
        let timer = tokio::time::sleep_until(keepalive.first_due());
        tokio::pin!(timer);
        // A client resuming on another connection before this one was seen to die.
        let resumption = self.resumption.clone();
        let displaced = resumption.displaced();
        tokio::pin!(displaced);
        // The time-based acknowledgement request (XEP-0198 §4), armed while stanzas wait.
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let ack_timer = tokio::time::sleep_until(far());
        tokio::pin!(ack_timer);
        let mut ack_armed: Option<Instant> = None;

        let released = std::mem::take(&mut self.csi_released);
        if write_items(stream, released, &self.to_attr, None, &mut self.unacked)
            .await
            .is_err()
        {
            return Detached::Lost;
        }

        let end: Result<(), StreamError> = loop {
            if self.unacked.request_due != ack_armed {
                ack_armed = self.unacked.request_due;
                ack_timer.as_mut().reset(ack_armed.unwrap_or_else(far));
            }
            tokio::select! {
                biased;
                reason = &mut kicked => break Err(reason),
                _ = &mut stopping => break Err(StreamError::new(StreamErrorCondition::SystemShutdown)),
                () = &mut displaced => return Detached::Lost,
                out = self.link.mailbox.recv() => {
                    let Some(first) = out else { return Detached::Lost };
                    let traced = self.trace.on().then_some(&self.jid);
                    let written = if self.csi.is_inactive() {
                        let released = self.csi.admit(first, &mut self.link.mailbox);
                        write_items(stream, released, &self.to_attr, traced, &mut self.unacked).await
                    } else {
                        write_batch(stream, &mut self.link.mailbox, first, &self.to_attr, traced, &mut self.unacked).await
                    };
                    if written.is_err() {
                        return Detached::Lost;
                    }
                    if self.unacked.keeping && self.unacked.pending() > max_unacked {
                        break Err(StreamError::with_text(StreamErrorCondition::ResourceConstraint, "too many unacknowledged stanzas"));
                    }
                }
                () = &mut ack_timer, if ack_armed.is_some() => {
                    ack_armed = None;
                    if self.unacked.request_now(stream) && stream.flush().await.is_err() {
                        return Detached::Lost;
                    }
                }
                event = stream.next_event(), if paused_until.is_none() => {
                    let now = Instant::now();
                    keepalive.read(now);
                    match event {
                        Ok(StreamEvent::Element(el)) => {
                            match self.pacer.charge(&server, &self.jid, stream.take_bytes_read()) {
                                Err(e) => break Err(e),
                                Ok(wait) if !wait.is_zero() => {
                                    let until = now + wait;
                                    paused_until = Some(until);
                                    timer.as_mut().reset(until);
                                }
                                Ok(_) => {}
                            }
                            crate::metrics::stanza_in(el.name());
                            if self.trace.on() {
                                tracing::info!(target: "xmpp_trace", jid = %self.jid, "C: {}", crate::c2s::trace::render(&el));
                            }
                            if el.ns() == NS_SM {
                                match sm::on_element(self, stream, &el).await {
                                    Ok(sm::Handled::Acknowledged) => keepalive.answered(),
                                    Ok(sm::Handled::Other) => {}
                                    Err(sm::ElementError::Stream(e)) => break Err(e),
                                    Err(sm::ElementError::Io) => return Detached::Lost,
                                }
                                continue;
                            }
                            // A nonza: XEP-0198 does not count it.
                            if let Some(active) = csi::request(&el) {
                                let released = self.csi.set_active(active);
                                let traced = self.trace.on().then_some(&self.jid);
                                if write_items(stream, released, &self.to_attr, traced, &mut self.unacked).await.is_err() {
                                    return Detached::Lost;
                                }
                                continue;
                            }
                            if self.sm.enabled {
                                // XEP-0198 §4: every stanza counts, our ping's answer too.
                                self.sm.handled = self.sm.handled.wrapping_add(1);
                            }
                            if keepalive.is_answer(&el) {
                                continue;
                            }
                            // Boxed: routing's deep future would otherwise sit in every idle session.
                            let handled = handle_stanza(&server, &self.entry, &self.jid_text, &mut self.pacer, el);
                            if let Err(e) = Box::pin(handled).await {
                                break Err(e);
                            }
                        }
                        Ok(StreamEvent::Closed) => {
                            stream.close().await;
                            break Ok(());
                        }
                        Ok(StreamEvent::Alive) => keepalive.answered(),
                        Ok(StreamEvent::Header(_)) => break Err(StreamError::new(StreamErrorCondition::BadFormat)),
                        Err(ReadError::Stream(e)) => break Err(e),
                        Err(ReadError::Io) => return Detached::Lost,
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if let Some(until) = paused_until {
                        // Paced: reading resumes (the idle clock restarts with it).
                        if now < until {
                            timer.as_mut().reset(until);
                            continue;
                        }
                        paused_until = None;
                        keepalive.read(now);
                        timer.as_mut().reset(keepalive.first_due());
                        continue;
                    }
                    match keepalive.due(now) {
                        Due::Later(due) => timer.as_mut().reset(due),
                        Due::TimedOut => {
                            // A dead connection, not a client's fault: resumable.
                            let error = StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "no answer to ping");
                            stream.fail(&error).await;
                            return Detached::Lost;
                        }
                        Due::Ping => {
                            let id = format!("ping-{}", self.entry.conn_id);
                            if self.sm.enabled {
                                // An `<r/>` probes without adding a stanza to both counts.
                                stream.queue(&crate::c2s::writer::request());
                            } else {
                                stream.queue_keepalive_ping(&self.jid, &id);
                            }
                            if stream.flush().await.is_err() {
                                return Detached::Lost;
                            }
                            timer.as_mut().reset(keepalive.sent(id));
                        }
                    }
                }
            }
        };

        let Err(error) = end else {
            return Detached::Closed;
        };
        // Flush what was queued for this client before the error (graceful shutdown). Tracked
        // stanzas go out too but are not acknowledged (the flush result is unknown): their
        // owner keeps them, so the client may see one again later, never lose it. Under
        // stream management all of them stay unacknowledged, to be kept when the session ends.
        let held = self.csi.take_all().into_iter();
        for item in held.chain(std::iter::from_fn(|| self.link.mailbox.try_recv().ok())) {
            queue_item(stream, &item, &self.to_attr, None);
            if self.unacked.keeping {
                self.unacked.written = self.unacked.written.wrapping_add(1);
                let position = self.unacked.written;
                self.unacked.pending.push_back((position, item));
            }
        }
        stream.fail(&error).await;
        Detached::Failed(error)
    }

    /// Writes again what the client never acknowledged (a resumed stream, XEP-0198 §5), then
    /// asks for an acknowledgement.
    async fn replay<T: Transport>(&mut self, stream: &mut T) -> std::io::Result<()> {
        let pending = self.unacked.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let traced = self.trace.on().then_some(&self.jid);
        for (_, item) in pending {
            queue_item(stream, &item, &self.to_attr, traced);
            self.unacked.written = self.unacked.written.wrapping_add(1);
            let position = self.unacked.written;
            self.unacked.pending.push_back((position, item));
        }
        self.unacked.request_now(stream);
        stream.flush().await
    }

    /// Ends the session once no transport is attached: unavailable presence if the client
    /// left without it, out of the session table, `session_closed` hooks, and what is still
    /// in the mailbox answered.
    pub async fn end(mut self, how: Detached) {
        let Session {
            server, jid, entry, ..
        } = &self;
        match &how {
            Detached::Failed(error) => tracing::info!(%jid, error = %error, "closing session"),
            Detached::Closed => tracing::info!(%jid, "session ended"),
            Detached::Lost => tracing::info!(%jid, reason = "connection lost", "session ended"),
        }
        if entry.is_available() {
            // RFC 6121 §4.5.2: leaving without unavailable presence still broadcasts it.
            // Routed while still in the table, so hooks can read this session's state.
            entry.set_presence(false, 0, None);
            let mut unavailable = Element::bare("presence", ns::CLIENT);
            xml::set_attr(&mut unavailable, "type", "unavailable");
            xml::set_attr(&mut unavailable, "from", &self.jid_text);
            router::route(server, jid, unavailable).await;
        }
        server.sessions.unbind(jid, entry.conn_id);
        let event = SessionEvent { entry: entry.clone() };
        server.registry.hooks.session_closed.notify(server, &event).await;
        server
            .registry
            .hooks
            .session_released
            .notify(server, &event)
            .await;
        // Stanzas still queued for a client that vanished are answered, not lost silently.
        self.link.mailbox.close();
        // Under stream management, what the client never acknowledged and what never left
        // are routed again now that this resource is gone: offline storage, or the account's
        // other resources, as the routing table says (XEP-0198 §5).
        let keeping = self.unacked.keeping;
        // Copies kept in offline storage against a crash: one already delivered from there
        // (to another resource) is not routed again.
        let spilled: Vec<u32> = self.sm.spilled.iter().map(|(position, _)| *position).collect();
        let still_kept = sm::unspill(&mut self).await;
        let mut unacknowledged = self.unacked.take_pending();
        unacknowledged.retain(|(position, _)| !spilled.contains(position) || still_kept.contains(position));
        let queued = std::iter::from_fn(|| self.link.mailbox.try_recv().ok());
        let left: Vec<Outbound> = unacknowledged
            .into_iter()
            .map(|(_, item)| item)
            .chain(queued)
            .collect();
        if keeping && !left.is_empty() {
            tracing::debug!(jid = %self.jid, stanzas = left.len(), "routing unacknowledged stanzas again");
        }
        for item in left {
            // Tracked stanzas are dropped unacknowledged: their owner still holds them.
            let Outbound::Stanza(el) = item else { continue };
            if el.name() != "message" {
                continue;
            }
            if keeping {
                sm::route_again(&self.server, *el).await;
            } else {
                router::bounce(&self.server, &el, StanzaError::recipient_unavailable());
            }
        }
        self.resumption.forget();
        self.entry.mark_ended();
    }
}
