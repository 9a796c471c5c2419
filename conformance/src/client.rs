//! A thin test wrapper around `tokio_xmpp::Client`.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use minidom::Element;
use sasl::common::Credentials;
use tokio::time::{Instant, timeout};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{AuthError, Error};
use tokio_xmpp::jid::{FullJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, Stanza};

use crate::{TIMEOUT, ns, xml};

/// Time allowed for a tokio-xmpp login (it retries failures silently, so a
/// failed login shows up as this timeout).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

fn stanza_to_element(s: Stanza) -> Element {
    match s {
        Stanza::Message(m) => m.into(),
        Stanza::Iq(i) => i.into(),
        Stanza::Presence(p) => p.into(),
    }
}

/// Converts an element to a tokio-xmpp stanza (parsed by xmpp-parsers).
pub fn element_to_stanza(el: Element) -> Stanza {
    let s = xml::to_string(&el);
    match el.name() {
        "message" => {
            Stanza::Message(Message::try_from(el).unwrap_or_else(|e| panic!("invalid message {s}: {e:?}")))
        }
        "iq" => Stanza::Iq(Iq::try_from(el).unwrap_or_else(|e| panic!("invalid iq {s}: {e:?}"))),
        "presence" => {
            Stanza::Presence(Presence::try_from(el).unwrap_or_else(|e| panic!("invalid presence {s}: {e:?}")))
        }
        other => panic!("not a stanza: <{other}/>"),
    }
}

/// Logged-in tokio-xmpp client.
pub struct XmppClient {
    client: Client,
    jid: FullJid,
    /// Stream features of the bound stream, as parsed by xmpp-parsers.
    pub features: StreamFeatures,
    buffered: VecDeque<Element>,
    next_id: u64,
}

impl XmppClient {
    /// Starts tokio-xmpp with `connector` and waits for the Online event.
    pub async fn connect<C: ServerConnector>(
        connector: C,
        jid: Jid,
        password: &str,
    ) -> Result<XmppClient, String> {
        let mut client = Client::new_with_connector(jid, password, connector, Timeouts::tight());
        let online = timeout(LOGIN_TIMEOUT, async {
            loop {
                match client.next().await {
                    Some(Event::Online {
                        bound_jid, features, ..
                    }) => return Ok((bound_jid, features)),
                    Some(Event::Disconnected(e)) => return Err(format!("disconnected: {e}")),
                    Some(Event::Stanza(_)) => {}
                    None => return Err("client stream ended".to_string()),
                }
            }
        })
        .await
        .map_err(|_| {
            format!(
                "no Online event within {LOGIN_TIMEOUT:?} (tokio-xmpp retries connection/auth \
                 failures silently; wrong credentials or a broken handshake look like this)"
            )
        })??;
        let (bound, features) = online;
        let jid = bound
            .try_into_full()
            .map_err(|j| format!("server bound a bare JID {j}"))?;
        Ok(XmppClient {
            client,
            jid,
            features,
            buffered: VecDeque::new(),
            next_id: 0,
        })
    }

    /// The underlying tokio-xmpp client.
    pub fn inner_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Unwraps into the tokio-xmpp client (stanzas buffered by `wait_for` are lost).
    pub fn into_inner(self) -> Client {
        self.client
    }

    /// The bound full JID.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("tx{}", self.next_id)
    }

    /// Sends a stanza given as a minidom element.
    pub async fn send(&mut self, el: Element) {
        let stanza = element_to_stanza(el);
        self.client
            .send_stanza(stanza)
            .await
            .unwrap_or_else(|e| panic!("send failed: {e}"));
    }

    /// Sends a stanza given as XML text (`jabber:client` assumed).
    pub async fn send_xml(&mut self, s: &str) {
        self.send(xml::parse_client(s)).await;
    }

    /// Sends a chat message.
    pub async fn send_message(&mut self, to: &str, body: &str) {
        let id = self.id();
        self.send_xml(&format!(
            "<message type='chat' to='{}' id='{id}'><body>{}</body></message>",
            xml::escape(to),
            xml::escape(body)
        ))
        .await;
    }

    /// Next stanza within `d`, or `None`. Panics if the stream resets.
    pub async fn recv_within(&mut self, d: Duration) -> Option<Element> {
        if let Some(e) = self.buffered.pop_front() {
            return Some(e);
        }
        match timeout(d, self.client.next()).await {
            Err(_) => None,
            Ok(Some(Event::Stanza(s))) => Some(stanza_to_element(s)),
            Ok(Some(Event::Online { bound_jid, .. })) => panic!(
                "{}: stream was reset and re-established as {bound_jid} (the server dropped the session)",
                self.jid
            ),
            Ok(Some(Event::Disconnected(e))) => panic!("{}: disconnected: {e}", self.jid),
            Ok(None) => panic!("{}: client stream ended", self.jid),
        }
    }

    /// Next stanza; panics after the default timeout.
    pub async fn recv(&mut self) -> Element {
        match self.recv_within(TIMEOUT).await {
            Some(e) => e,
            None => panic!("{}: no stanza received within {TIMEOUT:?}", self.jid),
        }
    }

    /// Waits for a stanza matching `pred`; non-matching stanzas are kept for
    /// later `recv` calls.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&Element) -> bool) -> Element {
        let deadline = Instant::now() + TIMEOUT;
        let mut skipped = VecDeque::new();
        // Look at what is already buffered first.
        while let Some(e) = self.buffered.pop_front() {
            if pred(&e) {
                skipped.extend(self.buffered.drain(..));
                self.buffered = skipped;
                return e;
            }
            skipped.push_back(e);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left).await {
                Some(e) if pred(&e) => {
                    self.buffered = skipped;
                    return e;
                }
                Some(e) => skipped.push_back(e),
                None => panic!(
                    "{}: expected stanza not received within {TIMEOUT:?}; got instead: [{}]",
                    self.jid,
                    skipped.iter().map(xml::to_string).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }

    /// Waits for a `<message/>` (other stanzas are kept).
    pub async fn expect_message(&mut self) -> Element {
        self.wait_for(|e| e.name() == "message").await
    }

    /// Asserts no message arrives within `d` (presence/iq are kept).
    pub async fn expect_no_message(&mut self, d: Duration) {
        self.expect_none(d, "message", |e| e.name() == "message").await;
    }

    /// Asserts that no stanza matching `pred` is buffered or arrives within `window`.
    /// Every stanza in the window is inspected (buffered leftovers included, so a
    /// test must consume what it expects first); the ones that do not match are
    /// kept, in order, for later `recv`/`wait_for` calls.
    pub async fn expect_none(
        &mut self,
        window: Duration,
        what: &str,
        mut pred: impl FnMut(&Element) -> bool,
    ) {
        let deadline = Instant::now() + window;
        let mut kept: VecDeque<Element> = VecDeque::new();
        let mut check = |e: Element, kept: &mut VecDeque<Element>, jid: &FullJid| {
            if pred(&e) {
                panic!(
                    "{jid}: expected no {what} within {window:?}, got {}",
                    xml::to_string(&e)
                );
            }
            kept.push_back(e);
        };
        while let Some(e) = self.buffered.pop_front() {
            check(e, &mut kept, &self.jid);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.recv_within(left).await {
                None => break,
                Some(e) => check(e, &mut kept, &self.jid),
            }
        }
        self.buffered = kept;
    }

    /// Sends an IQ (`type` get/set) with `payload` to `to` and waits for the
    /// response with the same id (result or error), returned as an element.
    pub async fn iq(&mut self, type_: &str, to: Option<&str>, payload: &str) -> Element {
        let id = self.id();
        let to_attr = to
            .map(|t| format!(" to='{}'", xml::escape(t)))
            .unwrap_or_default();
        self.send_xml(&format!("<iq type='{type_}' id='{id}'{to_attr}>{payload}</iq>"))
            .await;
        self.wait_for(|e| {
            e.name() == "iq"
                && e.attr("id") == Some(id.as_str())
                && matches!(e.attr("type"), Some("result") | Some("error"))
        })
        .await
    }

    /// XEP-0199 ping to the server; asserts a result. Useful as a barrier:
    /// once answered, everything sent before has been processed.
    pub async fn ping_server(&mut self) {
        let r = self
            .iq(
                "get",
                Some(crate::DOMAIN),
                &format!("<ping xmlns='{}'/>", ns::PING),
            )
            .await;
        assert_eq!(
            r.attr("type"),
            Some("result"),
            "ping not answered with a result: {}",
            xml::to_string(&r)
        );
    }

    /// Sends available presence with the given priority and waits until the server processed
    /// it, so stanzas other clients send next find this resource available.
    pub async fn send_presence(&mut self, priority: i8) {
        self.send_xml(&format!("<presence><priority>{priority}</priority></presence>"))
            .await;
        self.ping_server().await;
    }

    /// Closes the stream cleanly.
    pub async fn close(self) {
        let _ = timeout(Duration::from_secs(5), self.client.send_end()).await;
    }
}

/// One SASL login attempt through tokio-xmpp's own authentication code
/// (`tokio_xmpp::client_login`), restricted to the given mechanisms. Unlike
/// [`XmppClient::connect`], this does not retry, so failures are observable.
/// Returns the SASL failure condition in kebab-case on failure.
pub async fn tokio_xmpp_sasl_login<C: ServerConnector>(
    connector: C,
    jid: &str,
    password: &str,
    mechanisms: &[&str],
) -> Result<(), String> {
    let jid: Jid = jid.parse().expect("JID");
    let (pending, binding) = connector
        .connect(&jid, ns::CLIENT, Timeouts::tight())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (features, stream) = pending
        .recv_features()
        .await
        .map_err(|e| format!("features: {e}"))?;
    let offered: BTreeSet<String> = features.sasl_mechanisms.clone();
    let wanted: BTreeSet<String> = mechanisms
        .iter()
        .map(|m| m.to_string())
        .filter(|m| offered.contains(m))
        .collect();
    if wanted.is_empty() {
        return Err(format!("none of {mechanisms:?} offered (offered: {offered:?})"));
    }
    let creds = Credentials::default()
        .with_username(jid.node().expect("localpart").as_str())
        .with_password(password)
        .with_channel_binding(binding);
    let fut = tokio_xmpp::client_login(stream, wanted, creds);
    match timeout(TIMEOUT, fut).await {
        Err(_) => Err("timeout".into()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(Error::Auth(AuthError::Fail(c)))) => Err(kebab(&format!("{c:?}"))),
        Ok(Err(e)) => Err(format!("error: {e}")),
    }
}

/// `NotAuthorized` -> `not-authorized`.
pub fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}
