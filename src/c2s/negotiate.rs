//! Stream negotiation (RFC 6120 §4-§7): header, features, STARTTLS, SASL, resource binding.
//! Ends with a bound session or a closed stream.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use minidom::Element;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Account;
use crate::c2s::auth::{self, AuthOutcome};
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::c2s::{bind2, fast, sasl2};
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::limits::ConnectionSlot;
use crate::ops::log_limit::Repeated;
use crate::sasl::ChannelBindings;
use crate::server::Server;
use crate::session::{BindOutcome, SessionLink};
use crate::tls::TlsContext;
use crate::xml::{self, ParserLimits, StreamEvent, StreamHeader, ns};

/// A negotiated stream: bound to a new session, or resuming one (XEP-0198).
pub struct Bound<T> {
    pub stream: T,
    pub session: BoundSession,
}

pub enum BoundSession {
    /// A resource was bound: the session is to be opened.
    New(FullJid, SessionLink),
    /// A detached session was resumed (`<resumed/>` already sent).
    Resumed(Box<crate::c2s::session::Session>),
}

/// Where negotiation stands.
struct State<'a> {
    ip: IpAddr,
    require_encryption: bool,
    cb: ChannelBindings,
    account: Option<Account>,
    domain: String,
    failed_auths: u32,
    conn_id: u64,
    /// The certificate snapshot this connection uses (STARTTLS, channel binding).
    tls: Arc<TlsContext>,
    /// The connection's place under the limits; moves to the authenticated count at login.
    slot: &'a mut ConnectionSlot,
}

/// Failed SASL attempts allowed on one stream before it is closed (RFC 6120 §6.4.5).
const MAX_AUTH_ATTEMPTS: u32 = 5;
/// How long a new connection waits for the session it replaces to finish closing.
const REPLACE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn preauth_limits(server: &Server) -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: server.config().limits.max_stanza_size_preauth,
        max_depth: server.config().limits.max_depth,
    }
}

pub fn session_limits(server: &Server) -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: server.config().limits.max_stanza_size,
        max_depth: server.config().limits.max_depth,
    }
}

/// What the listener and the limits ask of a negotiation.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Refuse authentication before TLS.
    pub require_encryption: bool,
    /// From the connection to the bound session.
    pub total: Duration,
    /// For each header or element (and the STARTTLS handshake): a connection that sends
    /// (almost) nothing is let go long before `total`.
    pub idle: Duration,
}

/// Negotiates a stream on `stream`, a fresh transport made with [`preauth_limits`]. `None` when the stream ended (errors
/// were already sent).
#[allow(clippy::too_many_arguments)]
pub async fn negotiate<T: Transport>(
    server: &Arc<Server>,
    tls: &Arc<TlsContext>,
    mut stream: T,
    ip: IpAddr,
    conn_id: u64,
    rules: Rules,
    slot: &mut ConnectionSlot,
) -> Option<Bound<T>> {
    let deadline = tokio::time::Instant::now() + rules.total;
    let mut state = State {
        ip,
        require_encryption: rules.require_encryption,
        cb: ChannelBindings::default(),
        account: None,
        domain: server.default_domain().to_string(),
        failed_auths: 0,
        conn_id,
        tls: tls.clone(),
        slot,
    };
    stream.set_domain(&state.domain);
    state.cb = stream.channel_bindings(tls);
    stream.set_event_timeout(Some(rules.idle));
    loop {
        let Ok(result) = tokio::time::timeout_at(deadline, step(server, &mut stream, &mut state)).await
        else {
            stream
                .fail(&StreamError::with_text(
                    StreamErrorCondition::ConnectionTimeout,
                    "negotiation took too long",
                ))
                .await;
            return None;
        };
        match result {
            // Authenticated: the idle limit for unauthenticated connections no longer applies
            // (XEP-0478 now advertises the session's idle time); the overall deadline does.
            Ok(Step::Restart) => stream.set_event_timeout(None),
            Ok(Step::StartTls) => {
                let handshake = deadline.min(tokio::time::Instant::now() + rules.idle);
                stream = tokio::time::timeout_at(handshake, starttls(server, stream, &mut state))
                    .await
                    .ok()??;
                stream.set_event_timeout(Some(rules.idle));
            }
            Ok(Step::Bound(jid, link)) => {
                stream.set_event_timeout(None);
                let session = BoundSession::New(jid, link);
                return Some(Bound { stream, session });
            }
            Ok(Step::Resumed(session)) => {
                stream.set_event_timeout(None);
                let session = BoundSession::Resumed(session);
                return Some(Bound { stream, session });
            }
            Err(ReadError::Stream(e)) => {
                if server
                    .log_limit
                    .note(Repeated::NegotiationFailed, &ip.to_string())
                {
                    tracing::debug!(%ip, error = %e, "negotiation failed (repeats summarized)");
                }
                stream.fail(&e).await;
                return None;
            }
            Err(ReadError::Io) => return None,
        }
    }
}

enum Step {
    /// A new stream begins on the same connection (after SASL success).
    Restart,
    StartTls,
    Bound(FullJid, SessionLink),
    Resumed(Box<crate::c2s::session::Session>),
}

/// Runs one stream: header, features, then elements until the stream restarts or binds.
async fn step<T: Transport>(
    server: &Arc<Server>,
    stream: &mut T,
    state: &mut State<'_>,
) -> Result<Step, ReadError> {
    let header = loop {
        match stream.next_event().await? {
            StreamEvent::Header(h) => break h,
            StreamEvent::Alive => continue,
            _ => {
                return Err(ReadError::Stream(StreamError::new(
                    StreamErrorCondition::BadFormat,
                )));
            }
        }
    };
    accept_header(server, stream, state, &header)?;
    stream.open(header.from.as_deref());
    let features = features(server, stream.is_secure(), stream.offers_starttls(), state);
    stream.queue_features(&features);
    stream.flush().await.map_err(|_| ReadError::Io)?;
    loop {
        let el = match stream.next_event().await? {
            StreamEvent::Element(el) => el,
            StreamEvent::Alive => continue,
            StreamEvent::Closed => {
                stream.close().await;
                return Err(ReadError::Io);
            }
            StreamEvent::Header(_) => {
                return Err(ReadError::Stream(StreamError::new(
                    StreamErrorCondition::BadFormat,
                )));
            }
        };
        let tls = stream.is_secure();
        if el.is("starttls", ns::TLS) {
            if !stream.offers_starttls() {
                let text = if tls {
                    "TLS is already established"
                } else {
                    "STARTTLS is not available on this transport"
                };
                return Err(ReadError::Stream(StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    text,
                )));
            }
            Transport::queue(stream, &Element::bare("proceed", ns::TLS));
            stream.flush().await.map_err(|_| ReadError::Io)?;
            return Ok(Step::StartTls);
        }
        if el.is("auth", ns::SASL) && state.account.is_none() {
            let encryption_ok = tls || !state.require_encryption;
            match auth::authenticate(
                server,
                stream,
                &el,
                &state.domain,
                state.ip,
                &state.cb,
                encryption_ok,
            )
            .await?
            {
                AuthOutcome::Success(account) => {
                    admit(server, stream, state, &account)?;
                    state.account = Some(account);
                    stream.flush().await.map_err(|_| ReadError::Io)?;
                    stream.restart(session_limits(server));
                    return Ok(Step::Restart);
                }
                AuthOutcome::Failed => {
                    state.failed_auths += 1;
                    if state.failed_auths >= MAX_AUTH_ATTEMPTS {
                        return Err(ReadError::Stream(StreamError::with_text(
                            StreamErrorCondition::PolicyViolation,
                            "too many failed authentication attempts",
                        )));
                    }
                    continue;
                }
            }
        }
        if el.is("authenticate", sasl2::NS) && state.account.is_none() {
            let encryption_ok = tls || !state.require_encryption;
            let outcome = sasl2::authenticate(
                server,
                stream,
                &el,
                &state.domain,
                state.ip,
                &state.cb,
                encryption_ok,
            )
            .await?;
            match outcome {
                sasl2::Outcome::Success(done) => {
                    if let Some(step) = sasl2_success(server, stream, state, &el, *done).await? {
                        return Ok(step);
                    }
                    continue;
                }
                sasl2::Outcome::Failed => {
                    state.failed_auths += 1;
                    if state.failed_auths >= MAX_AUTH_ATTEMPTS {
                        return Err(ReadError::Stream(StreamError::with_text(
                            StreamErrorCondition::PolicyViolation,
                            "too many failed authentication attempts",
                        )));
                    }
                    continue;
                }
            }
        }
        if el.is("abort", sasl2::NS) && state.account.is_none() {
            Transport::queue(stream, &sasl2::failure_element(crate::sasl::SaslFailure::Aborted));
            stream.flush().await.map_err(|_| ReadError::Io)?;
            continue;
        }
        if el.is("abort", ns::SASL) && state.account.is_none() {
            // An abort outside an exchange still gets its failure (RFC 6120 §6.4.4).
            let failure = Element::builder("failure", ns::SASL)
                .append(Element::bare("aborted", ns::SASL))
                .build();
            Transport::queue(stream, &failure);
            stream.flush().await.map_err(|_| ReadError::Io)?;
            continue;
        }
        if el.ns() == crate::c2s::writer::NS_SM {
            let account = state
                .account
                .as_ref()
                .and_then(|a| BareJid::new(&a.to_string()).ok());
            let resumed = crate::c2s::sm::on_negotiation_element(server, stream, account.as_ref(), &el);
            if let Some(session) = resumed.await.map_err(|_| ReadError::Io)? {
                return Ok(Step::Resumed(session));
            }
            continue;
        }
        if el.is("iq", ns::CLIENT) {
            if let Some(step) = negotiation_iq(server, stream, state, &el).await? {
                return Ok(step);
            }
            continue;
        }
        if el.ns() != ns::CLIENT || !matches!(el.name(), "message" | "presence") {
            return Err(ReadError::Stream(StreamError::new(
                StreamErrorCondition::UnsupportedStanzaType,
            )));
        }
        return Err(ReadError::Stream(StreamError::with_text(
            StreamErrorCondition::NotAuthorized,
            "authenticate and bind a resource first",
        )));
    }
}

/// Checks the client's header (RFC 6120 §4.7, §4.9.3).
fn accept_header(
    server: &Server,
    stream: &mut impl Transport,
    state: &mut State<'_>,
    header: &StreamHeader,
) -> Result<(), ReadError> {
    let fail = |c, t: &str| Err(ReadError::Stream(StreamError::with_text(c, t)));
    if let Some(to) = &header.to {
        match server.hosted_domain(to) {
            Some(d) => {
                if state.account.as_ref().is_some_and(|a| a.domain != d) {
                    return fail(
                        StreamErrorCondition::HostUnknown,
                        "the domain changed after authentication",
                    );
                }
                state.domain = d.to_string();
                stream.set_domain(d);
            }
            None => {
                stream.set_domain(server.default_domain());
                return fail(
                    StreamErrorCondition::HostUnknown,
                    "this server does not host that domain",
                );
            }
        }
    }
    if header.default_ns.as_deref() != Some(ns::CLIENT) {
        return fail(
            StreamErrorCondition::InvalidNamespace,
            "the default namespace must be jabber:client",
        );
    }
    // RFC 6120 §4.7.5: no version means pre-1.0, which we do not speak.
    let major = header
        .version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(1) => Ok(()),
        _ => fail(
            StreamErrorCondition::UnsupportedVersion,
            "only XMPP 1.0 is supported",
        ),
    }
}

/// The `<stream:features/>` for the current stage.
fn features(server: &Server, tls: bool, starttls: bool, state: &State<'_>) -> Element {
    let mut f = Element::bare("features", ns::STREAM);
    if state.account.is_some() {
        f.append_child(Element::bare("bind", ns::BIND));
        f.append_child(
            Element::builder("session", ns::SESSION)
                .append(Element::bare("optional", ns::SESSION))
                .build(),
        );
        return session_features(server, f);
    }
    if !tls && state.require_encryption {
        // Without STARTTLS (a plain WebSocket listener not trusted as secure) there is
        // nothing to offer: logins are refused with `encryption-required`.
        if starttls {
            f.append_child(
                Element::builder("starttls", ns::TLS)
                    .append(Element::bare("required", ns::TLS))
                    .build(),
            );
        }
        return f;
    }
    if starttls {
        f.append_child(Element::bare("starttls", ns::TLS));
    }
    let mut mechs = Element::bare("mechanisms", ns::SASL);
    let offered = auth::offered_mechanisms(tls, &state.cb);
    for m in offered.iter().copied() {
        mechs.append_child(xml::text_element("mechanism", ns::SASL, m.name()));
    }
    f.append_child(mechs);
    let mut inline = vec![bind2::feature(server)];
    let fast_mechanisms = fast::offered(tls, &state.cb);
    if !fast_mechanisms.is_empty() {
        inline.push(fast::feature(&fast_mechanisms));
    }
    f.append_child(sasl2::feature(&offered, inline));
    let cb_types = state.cb.supported_types();
    if tls && !cb_types.is_empty() {
        let mut cb = Element::bare("sasl-channel-binding", ns::SASL_CB);
        for t in cb_types {
            let mut c = Element::bare("channel-binding", ns::SASL_CB);
            xml::set_attr(&mut c, "type", t);
            cb.append_child(c);
        }
        f.append_child(cb);
    }
    if server.config().registration.enabled {
        f.append_child(Element::bare("register", ns::REGISTER_FEATURE));
    }
    // Before authentication the server closes a connection silent for this long.
    f.append_child(stream_limits(
        server.config().limits.max_stanza_size_preauth,
        server.config().limits.negotiation_idle_secs,
    ));
    f
}

/// The features of an authenticated stream beside resource binding: capabilities, what
/// modules offer, the limits. Alone (after a Bind2 success) they tell the client what it may
/// still enable on the bound session.
fn session_features(server: &Server, mut f: Element) -> Element {
    f.append_child(caps(server));
    if server.config().stream_management.enabled {
        f.append_child(crate::c2s::sm::feature());
    }
    f.append_child(Element::bare("csi", crate::c2s::csi::NS));
    for feature in server.registry.stream_features() {
        f.append_child(feature.clone());
    }
    let limits = &server.config().limits;
    f.append_child(stream_limits(limits.max_stanza_size, limits.idle_ping_secs));
    f
}

/// XEP-0478 stream limits.
fn stream_limits(max_bytes: usize, idle_seconds: u64) -> Element {
    Element::builder("limits", "urn:xmpp:stream-limits:0")
        .append(xml::text_element(
            "max-bytes",
            "urn:xmpp:stream-limits:0",
            &max_bytes.to_string(),
        ))
        .append(xml::text_element(
            "idle-seconds",
            "urn:xmpp:stream-limits:0",
            &idle_seconds.to_string(),
        ))
        .build()
}

/// XEP-0115 entity capabilities of the server.
fn caps(server: &Server) -> Element {
    let mut c = Element::bare("c", ns::CAPS);
    xml::set_attr(&mut c, "hash", "sha-1");
    xml::set_attr(&mut c, "node", crate::modules::disco::CAPS_NODE);
    xml::set_attr(&mut c, "ver", &server.caps_ver);
    c
}

/// IQs allowed during negotiation: bind, legacy session, and in-band registration.
async fn negotiation_iq(
    server: &Arc<Server>,
    stream: &mut impl Transport,
    state: &mut State<'_>,
    iq: &Element,
) -> Result<Option<Step>, ReadError> {
    let Some(account) = state.account.clone() else {
        let encryption_ok = stream.is_secure() || !state.require_encryption;
        if server.config().registration.enabled
            && encryption_ok
            && crate::modules::register::is_register_iq(iq)
        {
            let reply = crate::modules::register::preauth(server, state.ip, &state.domain, iq).await;
            stream.send(&reply).await.map_err(|_| ReadError::Io)?;
            return Ok(None);
        }
        return Err(ReadError::Stream(StreamError::with_text(
            StreamErrorCondition::NotAuthorized,
            "authenticate first",
        )));
    };
    let reply = |payload: Option<Element>| xml::iq_result(iq, payload);
    let child = iq.children().next();
    if iq.attr("type") == Some("set") && child.is_some_and(|c| c.is("bind", ns::BIND)) {
        let bind = child.expect("checked");
        let requested = bind
            .get_child("resource", ns::BIND)
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let resource = requested.unwrap_or_else(generated_resource);
        let Ok(jid) = FullJid::new(&format!("{}@{}/{}", account.user, account.domain, resource)) else {
            let err = StanzaError::bad_request().text("the resource is not valid");
            stream.send(&err.reply_to(iq)).await.map_err(|_| ReadError::Io)?;
            return Ok(None);
        };
        return match bind_session(server, state, &jid).await {
            BindOutcome::Bound(link) => {
                let payload = Element::builder("bind", ns::BIND)
                    .append(xml::text_element("jid", ns::BIND, &jid.to_string()))
                    .build();
                stream
                    .send(&reply(Some(payload)))
                    .await
                    .map_err(|_| ReadError::Io)?;
                Ok(Some(Step::Bound(jid, link)))
            }
            BindOutcome::TooManyResources => {
                let err = StanzaError::resource_constraint().text("too many resources for this account");
                stream.send(&err.reply_to(iq)).await.map_err(|_| ReadError::Io)?;
                Ok(None)
            }
        };
    }
    if iq.attr("type") == Some("set") && child.is_some_and(|c| c.is("session", ns::SESSION)) {
        stream.send(&reply(None)).await.map_err(|_| ReadError::Io)?;
        return Ok(None);
    }
    Err(ReadError::Stream(StreamError::with_text(
        StreamErrorCondition::NotAuthorized,
        "bind a resource first",
    )))
}

/// Binds `jid` for this connection, replacing a session already bound there.
async fn bind_session(server: &Server, state: &State<'_>, jid: &FullJid) -> BindOutcome {
    server.sessions.take_over(jid, REPLACE_GRACE).await;
    let limits = &server.config().limits;
    let outcome = server.sessions.bind(
        jid.clone(),
        state.conn_id,
        limits.session_queue,
        limits.max_resources_per_user,
    );
    if matches!(outcome, BindOutcome::Bound(_)) {
        tracing::info!(%jid, ip = %state.ip, "session bound");
    }
    outcome
}

/// After authentication the connection counts among its address's sessions, unless they
/// are already as many as allowed: then the stream ends (what was queued is dropped).
fn admit(
    server: &Server,
    stream: &mut impl Transport,
    state: &mut State<'_>,
    account: &Account,
) -> Result<(), ReadError> {
    if state.slot.authenticate(&server.connections).is_ok() {
        return Ok(());
    }
    if server
        .log_limit
        .note(Repeated::LoginRefused, &state.ip.to_string())
    {
        tracing::info!(ip = %state.ip, jid = %account, "login refused: too many sessions from the address (repeats summarized)");
    }
    stream.discard_queued();
    Err(ReadError::Stream(StreamError::with_text(
        StreamErrorCondition::PolicyViolation,
        "too many sessions from your address",
    )))
}

/// Completes a SASL2 login (XEP-0388 §2.6.1): admission, the Bind2 request if any (XEP-0386),
/// the `<success/>`, then the stream's new features without a restart. `Some` when a
/// session was bound.
async fn sasl2_success<T: Transport>(
    server: &Arc<Server>,
    stream: &mut T,
    state: &mut State<'_>,
    authenticate: &Element,
    done: sasl2::Authenticated,
) -> Result<Option<Step>, ReadError> {
    let sasl2::Authenticated {
        account,
        mechanism,
        additional,
        user_agent,
        fast_token,
    } = done;
    admit(server, stream, state, &account)?;
    let ua_id = user_agent.as_ref().and_then(|ua| ua.id.as_deref());
    let mut extra = Vec::new();
    let fast_offered = fast::offered(stream.is_secure(), &state.cb);
    if let Some(token) = fast::issue_if_due(
        server,
        authenticate,
        &account,
        user_agent.as_ref(),
        &fast_offered,
        fast_token.as_ref(),
    )
    .await
    {
        extra.push(token);
    }
    let mut bound = None;
    if let Some(bind) = authenticate.get_child("bind", bind2::NS) {
        let resource = bind2::resource(bind, &account, ua_id);
        let jid =
            FullJid::new(&format!("{}@{}/{}", account.user, account.domain, resource)).map_err(|_| {
                ReadError::Stream(StreamError::with_text(
                    StreamErrorCondition::BadFormat,
                    "the Bind2 tag makes no valid resource",
                ))
            })?;
        match bind_session(server, state, &jid).await {
            BindOutcome::Bound(link) => {
                let mut el = Element::bare("bound", bind2::NS);
                for answer in bind2::run_inline(server, &jid, bind) {
                    el.append_child(answer);
                }
                extra.push(el);
                bound = Some((jid, link));
            }
            BindOutcome::TooManyResources => {
                stream.discard_queued();
                return Err(ReadError::Stream(StreamError::with_text(
                    StreamErrorCondition::ResourceConstraint,
                    "too many resources for this account",
                )));
            }
        }
    }
    let identifier = match &bound {
        Some((jid, _)) => jid.to_string(),
        None => account.to_string(),
    };
    let success = sasl2::success_element(additional.as_deref(), &identifier, extra);
    Transport::queue(stream, &success);
    auth::logged_in(&account, &mechanism, state.ip, stream.kind());
    state.account = Some(account);
    // No restart (§2.6.1): the running stream gets the session's limits and new features.
    stream.set_limits(session_limits(server));
    stream.set_event_timeout(None);
    let features = match &bound {
        Some(_) => session_features(server, Element::bare("features", ns::STREAM)),
        None => features(server, stream.is_secure(), false, state),
    };
    stream.queue_features(&features);
    stream.flush().await.map_err(|_| ReadError::Io)?;
    Ok(bound.map(|(jid, link)| Step::Bound(jid, link)))
}

fn generated_resource() -> String {
    use rand::Rng;
    let bytes: [u8; 8] = rand::rng().random();
    format!("sb-{}", hex::encode(bytes))
}

/// Upgrades the connection to TLS after `<proceed/>` and starts a fresh stream on it.
async fn starttls<T: Transport>(server: &Arc<Server>, stream: T, state: &mut State<'_>) -> Option<T> {
    let acceptor = TlsAcceptor::from(state.tls.server_config.clone());
    let Some(mut stream) = stream.start_tls(acceptor).await else {
        // A failed handshake; the transport logged why at debug level. Counted, and any
        // log line of ours summarized, since a client can repeat it at will.
        server
            .log_limit
            .note(Repeated::NegotiationFailed, &state.ip.to_string());
        return None;
    };
    stream.restart(preauth_limits(server));
    state.cb = stream.channel_bindings(&state.tls);
    Some(stream)
}
