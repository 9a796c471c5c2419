//! RFC 7395 WebSocket transport (`--websocket PATH`): the scenarios keep speaking a plain
//! XMPP byte stream over an in-memory pipe, and a bridge task per connection turns it into
//! WebSocket messages (one element each, `<open/>`/`<close/>` for the stream header and
//! end) and back. The bridge is client-side work: it shows in the bench's CPU figures,
//! never in the server's. It batches like a TCP client does (every element already read
//! goes out in one flush, every message already received in one pipe write), so it is
//! not what limits a WebSocket run.

use crate::xml::{Frame, Splitter};
use anyhow::{Context, Result};
use futures::{FutureExt, SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Pipe buffer per direction: a window of chat messages fits.
const PIPE: usize = 64 * 1024;

/// Connects to `ws://host:port{path}` with the `xmpp` subprotocol and returns the plain
/// end of a bridge to it.
pub async fn connect(host: &str, port: u16, path: &str, domain: &str) -> Result<DuplexStream> {
    let mut req = format!("ws://{host}:{port}{path}").into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("WebSocket connect {host}:{port}{path}"))?;
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_nodelay(true)?;
    }
    // An in-memory pipe: the scenario's end and the bridge's end.
    let (client, bridge) = tokio::io::duplex(PIPE);
    tokio::spawn(run(bridge, ws, domain.to_string()));
    Ok(client)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn run(bridge: DuplexStream, ws: Ws, domain: String) {
    let (mut rd, mut wr) = tokio::io::split(bridge);
    let (mut ws_tx, mut ws_rx) = ws.split();
    // Set when the server's SASL <success/> passes: the client's next bytes are a new
    // stream header, which the splitter must read from depth 0.
    let restarted = Arc::new(AtomicBool::new(false));
    let up = {
        let restarted = restarted.clone();
        let domain = domain.clone();
        async move {
            let mut sp = Splitter::new(4096);
            let mut fed = false;
            loop {
                if restarted.swap(false, Ordering::AcqRel) {
                    sp.reset_stream();
                }
                let frame = match sp.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        // Everything read so far is queued: one write for all of it.
                        if std::mem::take(&mut fed) && ws_tx.flush().await.is_err() {
                            return;
                        }
                        sp.prepare_read(2048);
                        match rd.read_buf(&mut sp.buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => continue,
                        }
                    }
                    Err(_) => return,
                };
                let text = match frame {
                    Frame::StreamOpen(..) => {
                        format!("<open xmlns='{FRAMING}' to='{domain}' version='1.0'/>")
                    }
                    Frame::StreamClose => format!("<close xmlns='{FRAMING}'/>"),
                    Frame::Stanza(a, b) => with_client_namespace(&sp.buf[a..b]),
                };
                if ws_tx.feed(Message::text(text)).await.is_err() {
                    return;
                }
                fed = true;
            }
        }
    };
    let down = async move {
        let mut out = Vec::with_capacity(PIPE);
        while let Some(Ok(msg)) = ws_rx.next().await {
            // This message and all that already arrived, in one pipe write.
            let mut next = Some(msg);
            while let Some(msg) = next {
                if let Message::Text(text) = msg {
                    let text = text.as_str();
                    if text.starts_with("<open") {
                        out.extend_from_slice(format!(
                            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='{domain}' id='ws' version='1.0'>"
                        ).as_bytes());
                    } else if text.starts_with("<close") {
                        out.extend_from_slice(b"</stream:stream>");
                    } else {
                        if text.starts_with("<success") {
                            restarted.store(true, Ordering::Release);
                        }
                        out.extend_from_slice(text.as_bytes());
                    }
                }
                next = if out.len() < PIPE / 2 {
                    ws_rx.next().now_or_never().flatten().and_then(|m| m.ok())
                } else {
                    None
                };
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    };
    tokio::join!(up, down);
}

/// The element with `xmlns='jabber:client'` on its start tag when it declares none: over
/// TCP stanzas inherit the stream's default namespace, a WebSocket message stands alone.
fn with_client_namespace(el: &[u8]) -> String {
    let s = String::from_utf8_lossy(el);
    let end = s.find('>').unwrap_or(s.len());
    if s[..end].contains("xmlns=") {
        return s.into_owned();
    }
    let name_end = s[1..]
        .find([' ', '/', '>', '\t', '\n'])
        .map_or(s.len(), |i| i + 1);
    let mut out = String::with_capacity(s.len() + 24);
    out.push_str(&s[..name_end]);
    out.push_str(" xmlns='jabber:client'");
    out.push_str(&s[name_end..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_namespace_added_only_when_missing() {
        assert_eq!(
            super::with_client_namespace(b"<message to='a'/>"),
            "<message xmlns='jabber:client' to='a'/>"
        );
        assert_eq!(
            super::with_client_namespace(b"<presence/>"),
            "<presence xmlns='jabber:client'/>"
        );
        let sasl = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>x</auth>";
        assert_eq!(super::with_client_namespace(sasl.as_bytes()), sasl);
    }
}
