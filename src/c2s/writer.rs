//! The session's writer: turns mailbox items into bytes on the transport, in batches, and
//! acknowledges tracked stanzas once they are written.
//!
//! The socket write is the acknowledgement for now: on a transport that acknowledges receipt
//! itself (XEP-0198 later), tracked stanzas wait in [`Unacked`] until the client confirms them.

use std::collections::VecDeque;

use jid::FullJid;
use tokio::sync::{mpsc, oneshot};

use crate::c2s::transport::Transport;
use crate::session::Outbound;

/// Stanzas written per batch before the transport is flushed.
pub const WRITE_BATCH: usize = 64;

/// Stanzas written to the client and, among them, the tracked ones it has not acknowledged
/// yet. Empty (no allocation) unless the transport acknowledges receipt.
#[derive(Default)]
pub struct Unacked {
    /// Stanzas written on this session, counted as XEP-0198 counts them (wrapping at 2^32).
    written: u32,
    /// Tracked stanzas awaiting the client's acknowledgement, oldest first, each with its
    /// position in `written`.
    pending: VecDeque<(u32, oneshot::Sender<()>)>,
}

impl Unacked {
    /// The client has handled `handled` stanzas: acknowledges the tracked ones among them.
    pub fn acknowledge(&mut self, handled: u32) {
        while let Some((position, _)) = self.pending.front() {
            // Positions wrap like the counter: "at or before" is a distance under 2^31.
            if handled.wrapping_sub(*position) >= 1 << 31 {
                break;
            }
            let (_, written) = self.pending.pop_front().expect("checked");
            delivered(written);
        }
    }

    /// Tracked stanzas still awaiting acknowledgement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// A tracked stanza reached the client: its owner may let go of it.
fn delivered(written: oneshot::Sender<()>) {
    // Only offline delivery tracks its stanzas.
    crate::metrics::offline_delivered();
    let _ = written.send(());
}

/// Writes `first` and what else is already queued (up to `WRITE_BATCH` stanzas), flushes, and
/// then acknowledges the tracked stanzas among them, or holds them in `unacked` when the
/// transport acknowledges receipt itself.
pub async fn write_batch(
    stream: &mut impl Transport,
    mailbox: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
    to_attr: &str,
    traced: Option<&FullJid>,
    unacked: &mut Unacked,
) -> std::io::Result<()> {
    let mut acks = Vec::new();
    let mut next = Some(first);
    let mut count = 0;
    let start = unacked.written;
    while let Some(item) = next.take() {
        count += 1;
        if let Some(written) = queue_item(stream, item, to_attr, traced) {
            acks.push((start.wrapping_add(count), written));
        }
        if (count as usize) < WRITE_BATCH {
            next = mailbox.try_recv().ok();
        }
    }
    stream.flush().await?;
    unacked.written = start.wrapping_add(count);
    if stream.acknowledges_receipt() {
        unacked.pending.extend(acks);
    } else {
        acks.into_iter().for_each(|(_, written)| delivered(written));
    }
    Ok(())
}

/// Writes `items` (stanzas client state indication released, `c2s::csi`) in order, in
/// batches like the mailbox's. Not the hot path: a flush, after a client's quiet spell.
pub async fn write_items(
    stream: &mut impl Transport,
    items: Vec<Outbound>,
    to_attr: &str,
    traced: Option<&FullJid>,
    unacked: &mut Unacked,
) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    // Through a channel of their own, so acknowledgement and batching stay write_batch's.
    let (tx, mut queued) = mpsc::channel(items.len());
    for item in items {
        let _ = tx.try_send(item);
    }
    drop(tx);
    while let Some(first) = queued.recv().await {
        write_batch(stream, &mut queued, first, to_attr, traced, unacked).await?;
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
        tracing::info!(target: "xmpp_trace", %jid, "S: {}", crate::c2s::trace::render(&el));
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
            &mut Unacked::default(),
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
                &mut Unacked::default(),
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

    /// A transport whose client acknowledges receipt (as XEP-0198 will), writing into memory.
    #[derive(Default)]
    struct Acknowledging {
        out: Vec<u8>,
    }

    impl Transport for Acknowledging {
        async fn next_event(&mut self) -> Result<xml::StreamEvent, crate::c2s::stream::ReadError> {
            std::future::pending().await
        }
        fn take_bytes_read(&mut self) -> u64 {
            0
        }
        fn set_event_timeout(&mut self, _timeout: Option<std::time::Duration>) {}
        fn set_domain(&mut self, _domain: &str) {}
        fn restart(&mut self, _limits: crate::xml::ParserLimits) {}
        fn kind(&self) -> &'static str {
            "memory"
        }
        fn open(&mut self, _to: Option<&str>) {}
        fn queue_features(&mut self, _features: &Element) {}
        fn queue(&mut self, el: &Element) {
            crate::xml::write::write_element(el, &mut self.out).unwrap();
        }
        fn queue_shared(&mut self, _stanza: &crate::session::SharedStanza, _to: &str) {}
        fn discard_queued(&mut self) {}
        async fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        async fn fail(&mut self, _error: &crate::error::StreamError) {}
        async fn close(&mut self) {}
        fn acknowledges_receipt(&self) -> bool {
            true
        }
        fn is_secure(&self) -> bool {
            false
        }
        fn channel_bindings(&self, _tls: &crate::tls::TlsContext) -> crate::sasl::ChannelBindings {
            Default::default()
        }
    }

    #[tokio::test]
    async fn tracked_stanzas_wait_for_the_clients_acknowledgement_when_it_gives_one() {
        let mut stream = Acknowledging::default();
        let mut unacked = Unacked::default();
        let (tx, mut mailbox) = mpsc::channel(8);
        let (written, mut ack) = tokio::sync::oneshot::channel();
        tx.try_send(Outbound::Tracked(Box::new(message("b")), written))
            .unwrap();
        let first = Outbound::Stanza(Box::new(message("a")));
        write_batch(&mut stream, &mut mailbox, first, "", None, &mut unacked)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&stream.out).contains("b"), "written");
        assert!(ack.try_recv().is_err(), "written is not acknowledged");
        assert_eq!(unacked.pending(), 1);
        unacked.acknowledge(1);
        assert!(
            ack.try_recv().is_err(),
            "the client handled only the first stanza"
        );
        unacked.acknowledge(2);
        assert!(ack.try_recv().is_ok(), "acknowledged with the second");
        assert_eq!(unacked.pending(), 0);
    }

    #[test]
    fn acknowledgement_positions_wrap_like_the_counter() {
        let mut unacked = Unacked {
            written: u32::MAX,
            pending: VecDeque::new(),
        };
        let (written, mut ack) = tokio::sync::oneshot::channel();
        unacked.pending.push_back((0, written));
        unacked.acknowledge(u32::MAX);
        assert!(ack.try_recv().is_err(), "2^32 - 1 is before 0 (wrapped)");
        unacked.acknowledge(0);
        assert!(ack.try_recv().is_ok());
    }
}
