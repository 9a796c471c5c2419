//! The session's writer: turns mailbox items into bytes on the transport, in batches, and
//! acknowledges tracked stanzas once they are written.
//!
//! The socket write is the acknowledgement for now: a transport that acknowledges receipt
//! itself (XEP-0198) will hold tracked stanzas until the client confirms them.

use jid::FullJid;
use tokio::sync::mpsc;

use crate::c2s::transport::Transport;
use crate::session::Outbound;
use crate::xml;

/// Stanzas written per batch before the transport is flushed.
pub const WRITE_BATCH: usize = 64;

/// Writes `first` and what else is already queued (up to `WRITE_BATCH` stanzas), flushes, and
/// then acknowledges the tracked stanzas among them.
pub async fn write_batch(
    stream: &mut impl Transport,
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
pub fn queue_item(
    stream: &mut impl Transport,
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::c2s::stream::{Conn, XmppStream};
    use crate::session::Outbound;
    use crate::xml::{self, ns};
    use minidom::Element;
    use std::time::Duration;
    use tokio::sync::mpsc;

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
