//! RFC 7395 WebSocket transport (`--websocket PATH`): the scenarios keep speaking a plain
//! XMPP byte stream over a loopback socket, and a bridge task per connection turns it into
//! WebSocket messages (one element each, `<open/>`/`<close/>` for the stream header and
//! end) and back. The bridge is client-side work: it shows in the bench's CPU figures,
//! never in the server's.

use crate::xml::{Frame, Splitter};
use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Connects to `ws://host:port{path}` with the `xmpp` subprotocol and returns the plain
/// end of a bridge to it.
pub async fn connect(host: &str, port: u16, path: &str, domain: &str) -> Result<TcpStream> {
    let mut req = format!("ws://{host}:{port}{path}").into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("WebSocket connect {host}:{port}{path}"))?;
    // A loopback socket pair: the scenario's end and the bridge's end.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (bridge, _) = listener.accept().await?;
    client.set_nodelay(true)?;
    bridge.set_nodelay(true)?;
    tokio::spawn(run(bridge, ws, domain.to_string()));
    Ok(client)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn run(bridge: TcpStream, ws: Ws, domain: String) {
    let (mut rd, mut wr) = bridge.into_split();
    let (mut ws_tx, mut ws_rx) = ws.split();
    // Set when the server's SASL <success/> passes: the client's next bytes are a new
    // stream header, which the splitter must read from depth 0.
    let restarted = Arc::new(AtomicBool::new(false));
    let up = {
        let restarted = restarted.clone();
        let domain = domain.clone();
        async move {
            let mut sp = Splitter::new(4096);
            loop {
                if restarted.swap(false, Ordering::AcqRel) {
                    sp.reset_stream();
                }
                let frame = match sp.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => {
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
                if ws_tx.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let Message::Text(text) = msg else { continue };
            let text = text.as_str();
            let out: std::borrow::Cow<'_, str> = if text.starts_with("<open") {
                format!(
                    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='{domain}' id='ws' version='1.0'>"
                )
                .into()
            } else if text.starts_with("<close") {
                "</stream:stream>".into()
            } else {
                if text.starts_with("<success") {
                    restarted.store(true, Ordering::Release);
                }
                text.into()
            };
            if wr.write_all(out.as_bytes()).await.is_err() {
                return;
            }
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
