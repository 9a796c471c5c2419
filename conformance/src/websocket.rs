//! A raw RFC 7395 client over tokio-tungstenite: one text message per element, for the
//! WebSocket transport's tests (and the error paths a library would never produce).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::tls::Io;
use crate::{DOMAIN, TIMEOUT, ns};

pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const PATH: &str = "/xmpp-websocket";

/// What arrived.
#[derive(Debug)]
pub enum WsIncoming {
    Element(Element),
    /// A text message that is not XML.
    Text(String),
    Ping(Vec<u8>),
    /// A close frame (its code).
    Close(Option<u16>),
    /// The connection ended.
    Ended,
}

pub struct WsClient {
    ws: WebSocketStream<Box<dyn Io>>,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    next_id: u32,
}

/// The upgrade request for `addr`, with the `xmpp` subprotocol unless `protocol` is `None`.
pub fn request(
    addr: SocketAddr,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}{PATH}")
        .into_client_request()
        .expect("request");
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().expect("header"));
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().expect("header"));
    }
    req
}

/// Tries the upgrade; the HTTP status on refusal.
pub async fn try_connect(req: tungstenite::handshake::client::Request) -> Result<WsClient, u16> {
    let uri = req.uri();
    let addr = format!("{}:{}", uri.host().expect("host"), uri.port_u16().expect("port"));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    try_upgrade(req, Box::new(tcp)).await
}

/// Tries the upgrade over an established connection (plain or TLS).
pub async fn try_upgrade(
    req: tungstenite::handshake::client::Request,
    io: Box<dyn Io>,
) -> Result<WsClient, u16> {
    match tokio_tungstenite::client_async(req, io).await {
        Ok((ws, resp)) => Ok(WsClient {
            ws,
            protocol: resp
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            next_id: 0,
        }),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket connect failed: {e}"),
    }
}

impl WsClient {
    pub async fn connect(addr: SocketAddr) -> WsClient {
        try_connect(request(addr, Some("xmpp"), None))
            .await
            .unwrap_or_else(|s| panic!("upgrade refused with HTTP {s}"))
    }

    /// Over TLS to an HTTPS listener (`wss://localhost:port`), checking its certificate
    /// against `tls`'s roots.
    pub async fn connect_tls(addr: SocketAddr, tls: &rustls::ClientConfig) -> WsClient {
        let io = crate::tls::connect_https(addr, tls).await;
        let mut req = format!("wss://localhost:{}{PATH}", addr.port())
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().expect("header"));
        try_upgrade(req, Box::new(io))
            .await
            .unwrap_or_else(|s| panic!("upgrade refused with HTTP {s}"))
    }

    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("ws{}", self.next_id)
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send text");
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(Message::binary(data.to_vec()))
            .await
            .expect("send binary");
    }

    pub async fn send_element(&mut self, el: &Element) {
        self.send_text(&String::from(el)).await;
    }

    pub async fn send_open(&mut self) {
        self.send_text(&format!("<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>"))
            .await;
    }

    pub async fn next_within(&mut self, d: Duration) -> Option<WsIncoming> {
        let msg = match tokio::time::timeout(d, self.ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return Some(WsIncoming::Ended),
            Ok(Some(Ok(m))) => m,
        };
        Some(match msg {
            Message::Text(t) => match t.as_str().parse::<Element>() {
                Ok(el) => WsIncoming::Element(el),
                Err(_) => WsIncoming::Text(t.to_string()),
            },
            Message::Ping(p) => WsIncoming::Ping(p.to_vec()),
            Message::Close(c) => WsIncoming::Close(c.map(|c| u16::from(c.code))),
            Message::Binary(_) | Message::Pong(_) | Message::Frame(_) => {
                return Box::pin(self.next_within(d)).await;
            }
        })
    }

    /// The next element; panics on anything else.
    pub async fn expect_element(&mut self) -> Element {
        match self.next_within(TIMEOUT).await {
            Some(WsIncoming::Element(el)) => el,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    /// Reads until an element matches.
    pub async fn read_until(&mut self, mut pred: impl FnMut(&Element) -> bool) -> Element {
        loop {
            match self.next_within(TIMEOUT).await {
                Some(WsIncoming::Element(el)) if pred(&el) => return el,
                Some(WsIncoming::Element(_)) | Some(WsIncoming::Ping(_)) => {}
                other => panic!("expected an element, got {other:?}"),
            }
        }
    }

    /// Sends `<open/>` and returns the server's `<open/>` and features.
    pub async fn open(&mut self) -> (Element, Element) {
        self.send_open().await;
        let open = self.expect_element().await;
        assert!(
            open.is("open", FRAMING),
            "expected <open/>, got {}",
            String::from(&open)
        );
        let features = self.expect_element().await;
        assert!(
            features.is("features", ns::STREAM),
            "expected features, got {}",
            String::from(&features)
        );
        (open, features)
    }

    /// Logs in with SASL PLAIN and binds `resource`: the whole RFC 7395 §3.5 sequence.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> String {
        self.open().await;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send_text(&format!(
            "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
            ns::SASL
        ))
        .await;
        let success = self.expect_element().await;
        assert!(
            success.is("success", ns::SASL),
            "expected <success/>, got {}",
            String::from(&success)
        );
        // RFC 7395 §3.5: the stream restarts with a new <open/>.
        let (_, features) = self.open().await;
        assert!(
            features.has_child("bind", ns::BIND),
            "{}",
            String::from(&features)
        );
        let id = self.id();
        self.send_text(&format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'><bind xmlns='{}'><resource>{resource}</resource></bind></iq>",
            ns::BIND
        ))
        .await;
        let bound = self.read_until(|e| e.attr("id") == Some(&id)).await;
        assert_eq!(bound.attr("type"), Some("result"), "{}", String::from(&bound));
        bound
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(|j| j.text())
            .expect("bound JID")
    }

    /// Expects a stream error with `condition`, then `<close/>` and a close frame; returns
    /// the close code.
    pub async fn expect_stream_error(&mut self, condition: &str) -> Option<u16> {
        let error = self.read_until(|e| e.is("error", ns::STREAM)).await;
        assert!(
            error.has_child(condition, ns::STREAMS_ERR),
            "expected <{condition}/>, got {}",
            String::from(&error)
        );
        self.expect_close().await
    }

    /// Expects `<close/>` then a close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let close = self.read_until(|e| e.is("close", FRAMING)).await;
        assert!(close.attr("see-other-uri").is_none(), "{}", String::from(&close));
        self.expect_close_frame().await
    }

    pub async fn expect_close_frame(&mut self) -> Option<u16> {
        match self.next_within(TIMEOUT).await {
            Some(WsIncoming::Close(code)) => code,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Sends a message and asks the server to close.
    pub async fn close(mut self) {
        self.send_text(&format!("<close xmlns='{FRAMING}'/>")).await;
        let _ = self
            .ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}
