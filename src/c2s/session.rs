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
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::c2s::writer::{Unacked, queue_item, write_batch, write_items};
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
    server: Arc<Server>,
    jid: FullJid,
    entry: Arc<SessionEntry>,
    link: SessionLink,
    /// Stamped on every stanza: formatted once.
    jid_text: String,
    /// The `to` of shared stanzas (room broadcasts), escaped once.
    to_attr: String,
    trace: Arc<TraceTraffic>,
    pacer: Pacer,
    /// What was written and not yet acknowledged; outlives any one transport.
    unacked: Unacked,
    /// XEP-0352: the client's state and the stanzas held while it is inactive.
    csi: Csi,
    /// Released by `set_client_active` with no transport attached: written on attach.
    csi_released: Vec<Outbound>,
}

/// How a transport left its session.
pub enum Detached {
    /// The client closed the stream or the connection was lost.
    Closed,
    /// The stream ended with this error (already sent to the client).
    Failed(StreamError),
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
            csi,
            csi_released: Vec::new(),
        }
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
        let released = std::mem::take(&mut self.csi_released);
        if write_items(stream, released, &self.to_attr, None, &mut self.unacked)
            .await
            .is_err()
        {
            return Detached::Closed;
        }

        let end: Option<StreamError> = loop {
            tokio::select! {
                biased;
                reason = &mut kicked => break Some(reason),
                _ = &mut stopping => break Some(StreamError::new(StreamErrorCondition::SystemShutdown)),
                out = self.link.mailbox.recv() => {
                    let Some(first) = out else { break None };
                    let traced = self.trace.on().then_some(&self.jid);
                    let written = if self.csi.is_inactive() {
                        let released = self.csi.admit(first, &mut self.link.mailbox);
                        write_items(stream, released, &self.to_attr, traced, &mut self.unacked).await
                    } else {
                        write_batch(stream, &mut self.link.mailbox, first, &self.to_attr, traced, &mut self.unacked).await
                    };
                    if written.is_err() {
                        break None;
                    }
                }
                event = stream.next_event(), if paused_until.is_none() => {
                    let now = Instant::now();
                    keepalive.read(now);
                    match event {
                        Ok(StreamEvent::Element(el)) => {
                            match self.pacer.charge(&server, &self.jid, stream.take_bytes_read()) {
                                Err(e) => break Some(e),
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
                            if keepalive.is_answer(&el) {
                                continue;
                            }
                            if let Some(active) = csi::request(&el) {
                                let released = self.csi.set_active(active);
                                let traced = self.trace.on().then_some(&self.jid);
                                if write_items(stream, released, &self.to_attr, traced, &mut self.unacked).await.is_err() {
                                    break None;
                                }
                                continue;
                            }
                            // Boxed: routing's deep future would otherwise sit in every idle session.
                            let handled = handle_stanza(&server, &self.entry, &self.jid_text, &mut self.pacer, el);
                            if let Err(e) = Box::pin(handled).await {
                                break Some(e);
                            }
                        }
                        Ok(StreamEvent::Closed) => {
                            stream.close().await;
                            break None;
                        }
                        Ok(StreamEvent::Alive) => keepalive.answered(),
                        Ok(StreamEvent::Header(_)) => break Some(StreamError::new(StreamErrorCondition::BadFormat)),
                        Err(ReadError::Stream(e)) => break Some(e),
                        Err(ReadError::Io) => break None,
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
                            break Some(StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "no answer to ping"));
                        }
                        Due::Ping => {
                            let id = format!("ping-{}", self.entry.conn_id);
                            stream.queue_keepalive_ping(&self.jid, &id);
                            if stream.flush().await.is_err() {
                                break None;
                            }
                            timer.as_mut().reset(keepalive.sent(id));
                        }
                    }
                }
            }
        };

        let Some(error) = end else {
            return Detached::Closed;
        };
        // Flush what was queued for this client before the error (graceful shutdown). Tracked
        // stanzas go out too but are not acknowledged (the flush result is unknown): their
        // owner keeps them, so the client may see one again later, never lose it.
        for item in self.csi.take_all() {
            queue_item(stream, item, &self.to_attr, None);
        }
        while let Ok(item) = self.link.mailbox.try_recv() {
            queue_item(stream, item, &self.to_attr, None);
        }
        stream.fail(&error).await;
        Detached::Failed(error)
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
        // Tracked stanzas are dropped unacknowledged instead: their owner still holds them.
        while let Ok(item) = self.link.mailbox.try_recv() {
            if let Outbound::Stanza(el) = item
                && el.name() == "message"
            {
                router::bounce(&self.server, &el, StanzaError::recipient_unavailable());
            }
        }
        self.entry.mark_ended();
    }
}
