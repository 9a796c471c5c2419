//! XEP-0124 / XEP-0206: BOSH at `/http-bind`. A BOSH session is a session that HTTP
//! requests attach to: its XMPP stream runs in a task of its own over a [`BoshTransport`]
//! (negotiated and attached to a `c2s::Session` like any transport), and each request
//! hands that task the stanzas of its `<body/>` (in `rid` order) and waits, up to `wait`
//! seconds, for what the session writes.
//!
//! What a session holds between requests (`State`): the next `rid` expected, bodies that
//! arrived early (inside the window of `requests`), the last responses (replayed when a
//! client re-sends a `rid`), the stanzas not yet collected, and the waiting requests.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use minidom::Element;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::c2s::negotiate::{self, Rules};
use crate::c2s::session::Session;
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::error::StreamError;
use crate::limits::ConnectionSlot;
use crate::sasl::ChannelBindings;
use crate::server::Server;
use crate::session::SharedStanza;
use crate::tls::TlsContext;
use crate::web::WebListener;
use crate::web::frame::{self, Frame};
use crate::xml::{ParserLimits, StreamEvent, StreamHeader, ns};

pub const PATH: &str = "/http-bind";

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// The longest a request is held (seconds); clients ask for less or get this.
const MAX_WAIT: u64 = 60;
/// Requests held at once (XEP-0124 `hold`): one is what every client uses.
const MAX_HOLD: u64 = 1;
/// Shortest interval between polls a client with `hold = 0` should keep (advertised).
const POLLING: u64 = 2;
/// The protocol version we speak (XEP-0124 1.11).
const VERSION: (u32, u32) = (1, 11);
/// Stanzas received but not yet taken by the session; past it the client is flooding.
const MAX_PENDING_EVENTS: usize = 256;
/// Bytes written by the session and not yet collected by a request; past it the
/// session ends (the client stopped polling but keeps the session alive otherwise).
const MAX_OUTGOING_BYTES: usize = 1 << 20;

/// The live BOSH sessions of a listener, by `sid`.
#[derive(Default)]
pub struct Sessions(DashMap<String, Arc<Shared>>);

/// One parsed request `<body/>`.
struct Body {
    children: Vec<Element>,
    restart: bool,
    terminate: bool,
}

/// How the session ended, for the terminate body.
#[derive(Clone)]
enum Ending {
    /// Closed normally (the client's terminate, or ours).
    Closed,
    /// With a stream error (already in `outgoing`).
    StreamError,
    /// A BOSH condition (XEP-0124 §17.2): item-not-found, policy-violation...
    Condition(&'static str),
}

struct State {
    next_rid: u64,
    early: BTreeMap<u64, Body>,
    /// (rid, response) of the last `requests` answers, for replays.
    answered: VecDeque<(u64, String)>,
    outgoing: Vec<String>,
    outgoing_bytes: usize,
    /// Requests waiting for something to carry, oldest first.
    waiters: VecDeque<oneshot::Sender<()>>,
    last_request: Instant,
    /// Stanzas handed to the session and not yet read by it.
    pending_events: usize,
    /// Request bytes received since the session last took them (what the rate limit
    /// charges).
    bytes_received: u64,
    ended: Option<Ending>,
    /// The client got its terminate answer: later requests get `item-not-found`.
    end_reported: bool,
}

/// What the HTTP side and the session task share.
pub struct Shared {
    sid: String,
    wait: Duration,
    hold: usize,
    requests: u64,
    inactivity: Duration,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<StreamEvent>,
    /// Set once the session ends, from either side.
    ended: watch::Sender<bool>,
}

/// Wakes the oldest request still waiting (one that timed out meanwhile does not count).
fn wake_oldest(state: &mut State) {
    while let Some(waiter) = state.waiters.pop_front() {
        if waiter.send(()).is_ok() {
            return;
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the session with `how` and answers every waiting request.
    fn end(&self, state: &mut State, how: Ending) {
        if state.ended.is_none() {
            state.ended = Some(how);
        }
        for w in state.waiters.drain(..) {
            let _ = w.send(());
        }
        self.ended.send_replace(true);
    }

    /// Hands the bodies now in order to the session.
    fn deliver(&self, state: &mut State, body: Body) -> Result<(), &'static str> {
        let push = |ev: StreamEvent, state: &mut State| {
            state.pending_events += 1;
            let _ = self.events.send(ev);
        };
        if body.restart {
            push(StreamEvent::Header(restart_header()), state);
        }
        for child in body.children {
            push(StreamEvent::Element(child), state);
        }
        if body.terminate {
            push(StreamEvent::Closed, state);
        }
        if state.pending_events > MAX_PENDING_EVENTS {
            return Err("policy-violation");
        }
        Ok(())
    }

    /// Takes one request's payload in (`rid` checked against the window) and waits for its
    /// answer.
    async fn request(self: &Arc<Self>, rid: u64, body: Body, size: usize) -> String {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            state.last_request = Instant::now();
            state.bytes_received += size as u64;
            if state.ended.is_some() {
                if state.end_reported {
                    return terminate_body(Some("item-not-found"), "");
                }
                return self.respond(&mut state, rid);
            }
            if rid < state.next_rid {
                // A replay (XEP-0124 §14.3): the same answer again, if still kept.
                return match state.answered.iter().find(|(r, _)| *r == rid) {
                    Some((_, answer)) => answer.clone(),
                    // Still being answered: this copy gets an empty answer.
                    None if rid + self.requests >= state.next_rid => {
                        format!("<body xmlns='{NS_HTTPBIND}'/>")
                    }
                    None => {
                        self.end(&mut state, Ending::Condition("item-not-found"));
                        terminate_body(Some("item-not-found"), "")
                    }
                };
            }
            if rid >= state.next_rid + self.requests {
                self.end(&mut state, Ending::Condition("item-not-found"));
                return terminate_body(Some("item-not-found"), "");
            }
            if state.early.insert(rid, body).is_some() {
                self.end(&mut state, Ending::Condition("item-not-found"));
                return terminate_body(Some("item-not-found"), "");
            }
            // Everything now in order goes to the session, in rid order.
            loop {
                let expected = state.next_rid;
                let Some(next) = state.early.remove(&expected) else {
                    break;
                };
                state.next_rid += 1;
                if let Err(condition) = self.deliver(&mut state, next) {
                    self.end(&mut state, Ending::Condition(condition));
                    return terminate_body(Some(condition), "");
                }
            }
            if !state.outgoing.is_empty() {
                return self.respond(&mut state, rid);
            }
            state.waiters.push_back(tx);
            // Past `hold` waiting requests, the oldest is answered (empty) to make room.
            if state.waiters.len() > self.hold {
                wake_oldest(&mut state);
            }
        }
        let _ = tokio::time::timeout(self.wait, rx).await;
        let mut state = self.lock();
        state.waiters.retain(|w| !w.is_closed());
        self.respond(&mut state, rid)
    }

    /// The answer to `rid`: what the session wrote so far (or the session's end), kept
    /// for replays.
    fn respond(&self, state: &mut State, rid: u64) -> String {
        let payload: String = state.outgoing.drain(..).collect();
        state.outgoing_bytes = 0;
        let answer = match &state.ended {
            None => format!(
                "<body xmlns='{NS_HTTPBIND}' xmlns:stream='{}'>{payload}</body>",
                ns::STREAM
            ),
            Some(Ending::Closed) => terminate_body(None, &payload),
            Some(Ending::StreamError) => terminate_body(Some("remote-stream-error"), &payload),
            Some(Ending::Condition(c)) => terminate_body(Some(c), &payload),
        };
        state.end_reported |= state.ended.is_some();
        state.answered.push_back((rid, answer.clone()));
        while state.answered.len() as u64 > self.requests {
            state.answered.pop_front();
        }
        answer
    }
}

fn terminate_body(condition: Option<&str>, payload: &str) -> String {
    let condition = condition.map(|c| format!(" condition='{c}'")).unwrap_or_default();
    format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:stream='{}' type='terminate'{condition}>{payload}</body>",
        ns::STREAM
    )
}

/// The stream header a restart (`xmpp:restart`) stands for.
fn restart_header() -> StreamHeader {
    StreamHeader {
        version: Some("1.0".into()),
        default_ns: Some(ns::CLIENT.into()),
        ..Default::default()
    }
}

/// An attribute in the `xmpp` (XEP-0206) namespace.
fn xbosh_attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.attrs()
        .iter()
        .find(|((n, k), _)| n.as_str() == NS_XBOSH && k.as_str() == name)
        .map(|(_, v)| v.as_str())
}

/// The CORS headers for a request from `origin` (XEP-0124 §15 for browsers), or `None`
/// when the origin is not allowed.
fn cors(server: &Server, headers: &HeaderMap) -> Option<Vec<(header::HeaderName, HeaderValue)>> {
    let origin = headers.get(header::ORIGIN);
    let allowed = &server.config().web.origins;
    let allow_origin = match origin {
        Some(o) if !allowed.is_empty() => {
            if !allowed.iter().any(|a| a.as_bytes() == o.as_bytes()) {
                return None;
            }
            o.clone()
        }
        _ => HeaderValue::from_static("*"),
    };
    Some(vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type"),
        ),
        (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        (header::VARY, HeaderValue::from_static("Origin")),
    ])
}

/// `OPTIONS /http-bind`: the CORS preflight.
pub async fn preflight(AxState(server): AxState<Arc<Server>>, headers: HeaderMap) -> Response {
    match cors(&server, &headers) {
        Some(h) => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().extend(h);
            response
        }
        None => (StatusCode::FORBIDDEN, "origin not allowed\n").into_response(),
    }
}

/// `POST /http-bind`: one request of a session, or the one that creates it.
pub async fn request(
    AxState(server): AxState<Arc<Server>>,
    Extension(listener): Extension<Arc<WebListener>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(cors) = cors(&server, &headers) else {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    };
    let answer = answer(&server, &listener, peer, &headers, &body).await;
    let mut response = ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], answer).into_response();
    response.headers_mut().extend(cors);
    response
}

async fn answer(
    server: &Arc<Server>,
    listener: &Arc<WebListener>,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let limits = negotiate::session_limits(server);
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| match frame::parse(text, limits) {
            Ok(Frame::Element(el)) if el.is("body", NS_HTTPBIND) => Some(el),
            _ => None,
        });
    let Some(el) = parsed else {
        return terminate_body(Some("bad-request"), "");
    };
    let Some(rid) = el.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate_body(Some("bad-request"), "");
    };
    let body_len = body.len();
    let Some(sid) = el.attr("sid") else {
        let ip = listener.client_ip(peer, headers);
        return create(server, listener, ip, rid, el).await;
    };
    let Some(shared) = listener.bosh.0.get(sid).map(|s| s.clone()) else {
        return terminate_body(Some("item-not-found"), "");
    };
    let body = Body {
        restart: xbosh_attr(&el, "restart") == Some("true"),
        terminate: el.attr("type") == Some("terminate"),
        children: el.children().cloned().collect(),
    };
    shared.request(rid, body, body_len).await
}

/// Session creation (XEP-0124 §7.1, XEP-0206 §3).
async fn create(
    server: &Arc<Server>,
    listener: &Arc<WebListener>,
    ip: IpAddr,
    rid: u64,
    el: Element,
) -> String {
    let to = el
        .attr("to")
        .unwrap_or_else(|| server.default_domain())
        .to_string();
    let Some(domain) = server.hosted_domain(&to).map(str::to_string) else {
        return terminate_body(Some("host-unknown"), "");
    };
    let slot = match server.connections.acquire(ip) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(%ip, ?refusal, "BOSH session refused: too many connections");
            return terminate_body(Some("policy-violation"), "");
        }
    };
    let number = |name: &str, max: u64| {
        el.attr(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(max, |v| v.min(max))
    };
    let wait = number("wait", MAX_WAIT);
    let inactivity = server.config().web.bosh_inactivity_secs;
    let hold = number("hold", MAX_HOLD);
    let ver = el
        .attr("ver")
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .map_or(VERSION, |v| v.min(VERSION));
    let sid = crate::c2s::stream::new_stream_id();
    let (events, events_rx) = mpsc::unbounded_channel();
    let (ended, ended_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        sid: sid.clone(),
        wait: Duration::from_secs(wait),
        hold: hold as usize,
        requests: hold + 1,
        inactivity: Duration::from_secs(inactivity),
        state: Mutex::new(State {
            next_rid: rid + 1,
            early: BTreeMap::new(),
            answered: VecDeque::new(),
            outgoing: Vec::new(),
            outgoing_bytes: 0,
            waiters: VecDeque::new(),
            last_request: Instant::now(),
            pending_events: 0,
            bytes_received: 0,
            ended: None,
            end_reported: false,
        }),
        events,
        ended,
    });
    listener.bosh.0.insert(sid.clone(), shared.clone());
    let transport = BoshTransport {
        shared: shared.clone(),
        events: events_rx,
        ended: ended_rx,
        queued: Vec::new(),
        domain: domain.clone(),
        event_timeout: None,
        secure: listener.secure(),
    };
    let span = tracing::info_span!("c2s", transport = "bosh", %ip, jid = tracing::field::Empty);
    tokio::spawn(serve(server.clone(), listener.clone(), transport, ip, slot).instrument(span));
    // The stream opens with the session: the features come in this answer.
    let header = StreamHeader {
        to: Some(domain.clone()),
        lang: el.attr("xml:lang").map(str::to_string),
        ..restart_header()
    };
    {
        let mut state = shared.lock();
        state.pending_events += 1;
        let _ = shared.events.send(StreamEvent::Header(header));
    }
    let (tx, rx) = oneshot::channel();
    {
        let mut state = shared.lock();
        if state.outgoing.is_empty() && state.ended.is_none() {
            state.waiters.push_back(tx);
        }
    }
    let _ = tokio::time::timeout(shared.wait, rx).await;
    let mut state = shared.lock();
    state.waiters.retain(|w| !w.is_closed());
    let answer = shared.respond(&mut state, rid);
    if state.ended.is_some() {
        return answer;
    }
    // The session's attributes go on this first answer.
    let attrs = format!(
        " sid='{sid}' wait='{wait}' hold='{hold}' requests='{}' inactivity='{inactivity}' polling='{POLLING}' ver='{}.{}' from='{}' authid='{sid}' xmlns:xmpp='{NS_XBOSH}' xmpp:version='1.0' xmpp:restartlogic='true'",
        hold + 1,
        ver.0,
        ver.1,
        crate::xml::escape(&domain),
    );
    let answer = answer.replacen("<body ", &format!("<body{attrs} "), 1);
    if let Some(last) = state.answered.back_mut() {
        last.1 = answer.clone();
    }
    answer
}

/// Runs one BOSH session's stream until it ends.
async fn serve(
    server: Arc<Server>,
    listener: Arc<WebListener>,
    transport: BoshTransport,
    ip: IpAddr,
    mut slot: ConnectionSlot,
) {
    let _done = listener.done.clone();
    let shared = transport.shared.clone();
    let (total, idle) = {
        let limits = &server.config().limits;
        (
            Duration::from_secs(limits.negotiation_timeout_secs),
            Duration::from_secs(limits.negotiation_idle_secs),
        )
    };
    let tls = server.tls.load_full();
    let conn_id = server.sessions.next_conn_id();
    let rules = Rules {
        require_encryption: listener.require_encryption,
        total,
        idle,
    };
    let negotiation = negotiate::negotiate(&server, &tls, transport, ip, conn_id, rules, &mut slot);
    if let Some(bound) = Box::pin(negotiation).await {
        drop(tls);
        let negotiate::Bound { stream, session } = bound;
        let session = match session {
            negotiate::BoundSession::New(jid, link) => Session::open(server, jid, link, listener.index).await,
            negotiate::BoundSession::Resumed(session) => *session,
        };
        crate::c2s::session::run(session, stream, listener.shutdown.clone()).await;
    }
    {
        let mut state = shared.lock();
        shared.end(&mut state, Ending::Closed);
    }
    listener.bosh.0.remove(&shared.sid);
}

/// The session task's side of a BOSH session.
pub struct BoshTransport {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<StreamEvent>,
    ended: watch::Receiver<bool>,
    /// Written since the last flush.
    queued: Vec<String>,
    domain: String,
    event_timeout: Option<Duration>,
    secure: bool,
}

impl BoshTransport {
    async fn read_event(&mut self) -> Result<StreamEvent, ReadError> {
        loop {
            // Inactivity counts from the last request while none is waiting.
            let deadline = {
                let state = self.shared.lock();
                if state.ended.is_some() {
                    return Err(ReadError::Io);
                }
                state
                    .waiters
                    .is_empty()
                    .then(|| state.last_request + self.shared.inactivity)
            };
            let inactive = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => tokio::time::sleep(self.shared.inactivity).await,
                }
            };
            tokio::select! {
                ev = self.events.recv() => {
                    let mut state = self.shared.lock();
                    state.pending_events = state.pending_events.saturating_sub(1);
                    return ev.ok_or(ReadError::Io);
                }
                _ = self.ended.wait_for(|e| *e) => return Err(ReadError::Io),
                () = inactive => {
                    let state = self.shared.lock();
                    if state.waiters.is_empty() && state.last_request + self.shared.inactivity <= Instant::now() {
                        tracing::debug!(sid = %self.shared.sid, "BOSH session inactive");
                        return Err(ReadError::Io);
                    }
                }
            }
        }
    }

    fn push(&mut self, el: &Element) {
        let mut out = Vec::with_capacity(256);
        if let Err(e) = crate::xml::write::write_element(el, &mut out) {
            tracing::error!(error = %e, element = el.name(), "could not serialize an outgoing element");
        }
        self.queued.push(String::from_utf8(out).unwrap_or_default());
    }

    fn end(&mut self, how: Ending) {
        let mut state = self.shared.lock();
        for s in self.queued.drain(..) {
            state.outgoing.push(s);
        }
        self.shared.end(&mut state, how);
    }
}

impl Transport for BoshTransport {
    async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        crate::c2s::stream::read_within(self.event_timeout, self.read_event()).await
    }

    fn take_bytes_read(&mut self) -> u64 {
        std::mem::take(&mut self.shared.lock().bytes_received)
    }

    fn set_event_timeout(&mut self, timeout: Option<Duration>) {
        self.event_timeout = timeout;
    }

    fn set_domain(&mut self, domain: &str) {
        domain.clone_into(&mut self.domain);
    }

    fn restart(&mut self, _limits: ParserLimits) {
        // Each request's body is parsed with the session's limit; the stream itself has
        // no parser state to reset.
    }

    fn open(&mut self, _to: Option<&str>) {
        // The session creation answer carries the stream's attributes; a restart has no
        // header of its own (XEP-0206 §5).
    }

    fn queue_features(&mut self, features: &Element) {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"<stream:features>");
        for child in features.children() {
            let _ = crate::xml::write::write_element(child, &mut out);
        }
        out.extend_from_slice(b"</stream:features>");
        self.queued.push(String::from_utf8(out).unwrap_or_default());
    }

    fn queue(&mut self, el: &Element) {
        self.push(el);
    }

    fn queue_shared(&mut self, stanza: &SharedStanza, to: &str) {
        self.queued.push(stanza.render(to));
    }

    fn discard_queued(&mut self) {
        self.queued.clear();
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        if state.ended.is_some() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        for s in self.queued.drain(..) {
            state.outgoing_bytes += s.len();
            state.outgoing.push(s);
        }
        if state.outgoing_bytes > MAX_OUTGOING_BYTES {
            crate::metrics::write_timeout_disconnect();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped collecting",
            ));
        }
        wake_oldest(&mut state);
        Ok(())
    }

    async fn fail(&mut self, error: &StreamError) {
        self.queued.push(error.to_xml());
        self.end(Ending::StreamError);
    }

    async fn close(&mut self) {
        self.end(Ending::Closed);
    }

    fn kind(&self) -> &'static str {
        "bosh"
    }

    fn is_secure(&self) -> bool {
        self.secure
    }

    fn channel_bindings(&self, _tls: &TlsContext) -> ChannelBindings {
        ChannelBindings::default()
    }
}
