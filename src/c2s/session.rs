//! The session loop of a bound client: read stanzas and route them, write what the mailbox
//! brings, ping when idle, and leave cleanly on close, kick or shutdown.

use std::sync::Arc;
use std::time::Duration;

use jid::FullJid;
use minidom::Element;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::c2s::negotiate::Bound;
use crate::c2s::pace::Pacer;
use crate::c2s::stream::{ReadError, XmppStream};
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router;
use crate::router::hooks::SessionEvent;
use crate::server::Server;
use crate::session::{Outbound, SessionEntry};
use crate::xml::{self, StreamEvent, ns};

/// Stanzas written per batch before the socket is flushed.
const WRITE_BATCH: usize = 64;

/// Per-session traffic tracing, switched on by an administrator (ad-hoc command): every
/// stanza this session reads or writes is logged at info level with target "xmpp_trace".
#[derive(Default)]
pub struct TraceTraffic(pub std::sync::atomic::AtomicBool);

impl TraceTraffic {
    fn on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub async fn run(server: Arc<Server>, bound: Bound, listener: usize, mut shutdown: watch::Receiver<bool>) {
    let Bound {
        mut stream,
        jid,
        mut link,
    } = bound;
    let idle = Duration::from_secs(server.config().limits.idle_ping_secs);
    let ping_timeout = Duration::from_secs(server.config().limits.ping_timeout_secs);
    let mut ping_id: Option<String> = None;
    let entry = link.entry.clone();
    let hooks = &server.registry.hooks;
    let _ = hooks
        .session_opened
        .run(&server, SessionEvent { entry: entry.clone() })
        .await;
    // Stamped on every stanza: format it once.
    let jid_text = jid.to_string();
    // The `to` of shared stanzas (room broadcasts), escaped once.
    let to_attr = crate::session::attr_value(&jid_text);
    let trace = entry.extension::<TraceTraffic>();
    let mut pacer = Pacer::new(&server, listener, &jid);
    // While set, the client is over its rate limit and is not read from until then.
    let mut paused_until: Option<Instant> = None;
    stream.take_bytes_read();

    // The loop's long-lived futures are built once, not on every wake-up: the timer in
    // particular is re-armed lazily (`last_read` moves, the timer does not) instead of being
    // re-registered with the runtime for each stanza.
    let kicked = entry.kicked();
    tokio::pin!(kicked);
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    let mut last_read = Instant::now();
    let mut ping_sent = last_read;
    let timer = tokio::time::sleep_until(last_read + idle);
    tokio::pin!(timer);

    let end: Option<StreamError> = loop {
        tokio::select! {
            biased;
            reason = &mut kicked => break Some(reason),
            _ = &mut stopping => break Some(StreamError::new(StreamErrorCondition::SystemShutdown)),
            out = link.mailbox.recv() => {
                let Some(first) = out else { break None };
                let traced = trace.on().then_some(&jid);
                if write_batch(&mut stream, &mut link.mailbox, first, &to_attr, traced).await.is_err() {
                    break None;
                }
            }
            event = stream.next_event(), if paused_until.is_none() => {
                last_read = Instant::now();
                match event {
                    Ok(StreamEvent::Element(el)) => {
                        match pacer.charge(&server, &jid, stream.take_bytes_read()) {
                            Err(e) => break Some(e),
                            Ok(wait) if !wait.is_zero() => {
                                let until = last_read + wait;
                                paused_until = Some(until);
                                timer.as_mut().reset(until);
                            }
                            Ok(_) => {}
                        }
                        crate::metrics::stanza_in(el.name());
                        if trace.on() {
                            tracing::info!(target: "xmpp_trace", %jid, "C: {}", xml::to_string(&el));
                        }
                        if is_ping_answer(&el, ping_id.as_deref()) {
                            ping_id = None;
                            continue;
                        }
                        // Boxed: routing's deep future would otherwise sit in every idle session.
                        if let Err(e) = Box::pin(handle_stanza(&server, &entry, &jid_text, &mut pacer, el)).await {
                            break Some(e);
                        }
                    }
                    Ok(StreamEvent::Closed) => {
                        stream.close().await;
                        break None;
                    }
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
                    last_read = now;
                    timer.as_mut().reset(now + idle);
                    continue;
                }
                // Idle `idle` after the last read: ping. Ping unanswered: `ping_timeout` after
                // sending it, unless the client sent something since (then `idle` after that).
                let due = match ping_id {
                    Some(_) if last_read > ping_sent => last_read + idle,
                    Some(_) => ping_sent + ping_timeout,
                    None => last_read + idle,
                };
                if now < due {
                    timer.as_mut().reset(due);
                    continue;
                }
                if ping_id.is_some() {
                    break Some(StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "no answer to ping"));
                }
                let id = format!("ping-{}", entry.conn_id);
                stream.queue(&server_ping(&server, &jid, &id));
                if stream.flush().await.is_err() {
                    break None;
                }
                ping_id = Some(id);
                ping_sent = Instant::now();
                timer.as_mut().reset(ping_sent + ping_timeout);
            }
        }
    };

    if let Some(error) = end {
        // Flush what was queued for this client before the error (graceful shutdown). Tracked
        // stanzas go out too but are not acknowledged (the flush result is unknown): their
        // owner keeps them, so the client may see one again later, never lose it.
        while let Ok(item) = link.mailbox.try_recv() {
            queue_item(&mut stream, item, &to_attr, None);
        }
        tracing::info!(%jid, error = %error, "closing session");
        stream.fail(&error).await;
    } else {
        tracing::info!(%jid, "session ended");
    }
    if entry.is_available() {
        // RFC 6121 §4.5.2: leaving without unavailable presence still broadcasts it. Routed
        // while still in the table, so hooks can read this session's state.
        entry.set_presence(false, 0, None);
        let mut unavailable = Element::bare("presence", ns::CLIENT);
        xml::set_attr(&mut unavailable, "type", "unavailable");
        xml::set_attr(&mut unavailable, "from", &jid_text);
        router::route(&server, &jid, unavailable).await;
    }
    server.sessions.unbind(&jid, entry.conn_id);
    let _ = hooks
        .session_closed
        .run(&server, SessionEvent { entry: entry.clone() })
        .await;
    // Stanzas still queued for a client that vanished are answered, not lost silently.
    link.mailbox.close();
    // Tracked stanzas are dropped unacknowledged instead: their owner still holds them.
    while let Ok(item) = link.mailbox.try_recv() {
        if let Outbound::Stanza(el) = item
            && el.name() == "message"
        {
            router::bounce(&server, &el, StanzaError::recipient_unavailable());
        }
    }
    entry.mark_ended();
}

/// Writes `first` and what else is already queued (up to `WRITE_BATCH` stanzas), flushes, and
/// then acknowledges the tracked stanzas among them.
async fn write_batch(
    stream: &mut XmppStream,
    mailbox: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
    to_attr: &str,
    traced: Option<&FullJid>,
) -> std::io::Result<()> {
    let mut acks = Vec::new();
    let mut next = Some(first);
    let mut count = 0;
    while let Some(item) = next.take() {
        acks.extend(queue_item(stream, item, to_attr, traced));
        count += 1;
        if count < WRITE_BATCH {
            next = mailbox.try_recv().ok();
        }
    }
    stream.flush().await?;
    for written in acks {
        // Only offline delivery tracks its stanzas.
        crate::metrics::offline_delivered();
        let _ = written.send(());
    }
    Ok(())
}

/// Buffers one mailbox item; returns its acknowledgement if tracked. `to_attr` is this
/// session's JID, escaped, for shared stanzas.
fn queue_item(
    stream: &mut XmppStream,
    item: Outbound,
    to_attr: &str,
    traced: Option<&FullJid>,
) -> Option<tokio::sync::oneshot::Sender<()>> {
    let (el, written) = match item {
        Outbound::Stanza(el) => (el, None),
        Outbound::Tracked(el, written) => (el, Some(written)),
        Outbound::Shared(shared) => {
            crate::metrics::stanza_out(shared.name());
            if let Some(jid) = traced {
                tracing::info!(target: "xmpp_trace", %jid, "S: {}", shared.render(to_attr));
            }
            stream.queue_shared(&shared, to_attr);
            return None;
        }
    };
    crate::metrics::stanza_out(el.name());
    if let Some(jid) = traced {
        tracing::info!(target: "xmpp_trace", %jid, "S: {}", xml::to_string(&el));
    }
    stream.queue(&el);
    written
}

fn server_ping(server: &Server, to: &FullJid, id: &str) -> Element {
    let mut iq = Element::builder("iq", ns::CLIENT)
        .append(Element::bare("ping", "urn:xmpp:ping"))
        .build();
    xml::set_attr(&mut iq, "type", "get");
    xml::set_attr(&mut iq, "id", id);
    xml::set_attr(&mut iq, "from", to.domain().as_str());
    xml::set_attr(&mut iq, "to", &to.to_string());
    let _ = server;
    iq
}

fn is_ping_answer(el: &Element, ping_id: Option<&str>) -> bool {
    ping_id.is_some()
        && el.is("iq", ns::CLIENT)
        && el.attr("id") == ping_id
        && matches!(el.attr("type"), Some("result") | Some("error"))
}

/// Validates and stamps one stanza from the client, then routes it. An `Err` closes the stream.
async fn handle_stanza(
    server: &Arc<Server>,
    entry: &SessionEntry,
    jid_text: &str,
    pacer: &mut Pacer,
    mut el: Element,
) -> Result<(), StreamError> {
    let jid = &entry.jid;
    let name = el.name();
    if !matches!(name, "message" | "presence" | "iq") {
        return Err(StreamError::with_text(
            StreamErrorCondition::UnsupportedStanzaType,
            format!("<{name}/> is not supported here"),
        ));
    }
    if !el.has_ns(ns::CLIENT) {
        return Err(StreamError::new(StreamErrorCondition::InvalidNamespace));
    }
    // RFC 6120 §8.1.2.1: a 'from' must be the client's own full or bare JID.
    if let Some(from) = el.attr("from") {
        let ok = jid::Jid::new(from).is_ok_and(|f| match f.try_as_full() {
            Ok(full) => full == jid,
            Err(bare) => *bare == jid.to_bare(),
        });
        if !ok {
            return Err(StreamError::with_text(
                StreamErrorCondition::InvalidFrom,
                "the from address is not yours",
            ));
        }
    }
    xml::set_attr(&mut el, "from", jid_text);
    // Looked up once: attribute lookups are a visible cost on the hot path.
    let stanza_type = xml::stanza_type(&el);
    if let Err(error) = validate(&el, stanza_type) {
        router::bounce(server, &el, error);
        return Ok(());
    }
    if let Some(error) = flood_check(server, entry, pacer, &el, stanza_type) {
        router::bounce(server, &el, error);
        return Ok(());
    }
    if el.name() == "presence" && matches!(stanza_type, None | Some("unavailable")) && el.attr("to").is_none()
    {
        // This session records its own availability: only it knows it is still the session
        // bound to this full JID (a replacing connection may already own the name).
        match router::announced_availability(&el) {
            Ok((available, priority)) => {
                entry.set_presence(available, priority, available.then(|| el.clone()))
            }
            Err(error) => {
                router::bounce(server, &el, error);
                return Ok(());
            }
        }
    }
    router::route(server, jid, el).await;
    Ok(())
}

/// Presence and subscription flood limits: available-presence broadcasts per session
/// (`limits.presence_per_second`) and subscription requests per account
/// (`limits.subscriptions_per_minute`). Unavailable presence always passes: going offline
/// must work.
fn flood_check(
    server: &Server,
    entry: &SessionEntry,
    pacer: &mut Pacer,
    el: &Element,
    stanza_type: Option<&str>,
) -> Option<StanzaError> {
    if el.name() != "presence" {
        return None;
    }
    match stanza_type {
        None if el.attr("to").is_none() && !pacer.allow_presence() => {
            Some(StanzaError::policy_violation().text("too many presence updates; wait a moment"))
        }
        Some("subscribe")
            if !server
                .subscriptions_by_account
                .try_record(&entry.jid.to_bare().to_string()) =>
        {
            Some(StanzaError::policy_violation().text("too many subscription requests; try again later"))
        }
        _ => None,
    }
}

/// Stanza-level checks of RFC 6120 §8 (`stanza_type`: `xml::stanza_type(el)`).
fn validate(el: &Element, stanza_type: Option<&str>) -> Result<(), StanzaError> {
    match el.name() {
        "iq" => {
            if el.attr("id").is_none_or(str::is_empty) {
                return Err(StanzaError::bad_request().text("an IQ needs an id"));
            }
            match stanza_type {
                Some("get") | Some("set") => {
                    if el.children().count() != 1 {
                        return Err(StanzaError::bad_request().text("a get or set IQ has exactly one child"));
                    }
                }
                Some("result") => {
                    if el.children().count() > 1 {
                        return Err(StanzaError::bad_request());
                    }
                }
                Some("error") => {}
                _ => return Err(StanzaError::bad_request().text("unknown IQ type")),
            }
        }
        "message" => {
            if !matches!(
                stanza_type,
                None | Some("normal") | Some("chat") | Some("groupchat") | Some("headline") | Some("error")
            ) {
                return Err(StanzaError::bad_request().text("unknown message type"));
            }
        }
        _ => {
            if !matches!(
                stanza_type,
                None | Some("unavailable")
                    | Some("subscribe")
                    | Some("subscribed")
                    | Some("unsubscribe")
                    | Some("unsubscribed")
                    | Some("probe")
                    | Some("error")
            ) {
                return Err(StanzaError::bad_request().text("unknown presence type"));
            }
        }
    }
    // A malformed 'to' is answered by the router, which parses it anyway.
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::c2s::stream::Conn;

    async fn pair() -> (XmppStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream = XmppStream::new(Conn::Plain(server), Default::default(), "localhost".into());
        (stream, client)
    }

    fn message(id: &str) -> Element {
        let mut el = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut el, "id", id);
        el
    }

    #[tokio::test]
    async fn tracked_stanzas_are_acknowledged_after_the_flush() {
        let (mut stream, mut client) = pair().await;
        let (tx, mut mailbox) = mpsc::channel(8);
        let (written, mut ack) = tokio::sync::oneshot::channel();
        tx.try_send(Outbound::Tracked(Box::new(message("b")), written))
            .unwrap();
        tx.try_send(Outbound::Stanza(Box::new(message("c")))).unwrap();
        assert!(ack.try_recv().is_err(), "nothing written yet");
        write_batch(
            &mut stream,
            &mut mailbox,
            Outbound::Stanza(Box::new(message("a"))),
            "",
            None,
        )
        .await
        .unwrap();
        ack.await.expect("acknowledged once flushed");
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        // Quotes normalised: the serializer's choice is not the point.
        while got.matches("<message").count() < 3 {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf));
            let n = read.await.expect("data within 5 s").unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&std::str::from_utf8(&buf[..n]).unwrap().replace('"', "'"));
        }
        let order: Vec<usize> = ["id='a'", "id='b'", "id='c'"]
            .iter()
            .map(|id| got.find(id).unwrap_or_else(|| panic!("{id} missing: {got}")))
            .collect();
        assert!(order.is_sorted(), "written in queue order: {got}");
    }

    #[tokio::test]
    async fn a_failed_write_acknowledges_nothing() {
        let (mut stream, client) = pair().await;
        drop(client);
        let (_tx, mut mailbox) = mpsc::channel::<Outbound>(8);
        let big = "x".repeat(64 * 1024);
        let mut failed = false;
        // The peer is gone: a write fails within a few attempts (the first may still land in
        // the kernel buffer before the reset arrives).
        for _ in 0..50 {
            let (written, ack) = tokio::sync::oneshot::channel();
            let mut el = message("t");
            el.append_text_node(big.clone());
            if write_batch(
                &mut stream,
                &mut mailbox,
                Outbound::Tracked(Box::new(el), written),
                "",
                None,
            )
            .await
            .is_err()
            {
                assert!(ack.await.is_err(), "not acknowledged");
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(failed, "writing to a closed peer never failed");
    }
}
