//! The session's writer: turns mailbox items into bytes on the transport, in batches, and
//! acknowledges tracked stanzas once they are written.
//!
//! Without XEP-0198 the socket write is the acknowledgement. With stream management enabled
//! (or on a transport that acknowledges receipt itself) every written stanza waits in
//! [`Unacked`] until the client confirms it: tracked ones are acknowledged to their owner
//! only then, and all of them can be replayed on a resumed stream (`c2s/sm.rs`).

use std::collections::VecDeque;

use jid::FullJid;
use minidom::Element;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use crate::c2s::transport::Transport;
use crate::session::Outbound;

/// Stanzas written per batch before the transport is flushed.
pub const WRITE_BATCH: usize = 64;

/// XEP-0198's namespace.
pub const NS_SM: &str = "urn:xmpp:sm:3";

/// Stanzas written to the client and, among them, those it has not acknowledged yet. Empty
/// (no allocation) unless stream management is on or the transport acknowledges receipt.
#[derive(Default)]
pub struct Unacked {
    /// Stanzas written on this session, counted as XEP-0198 counts them (wrapping at 2^32).
    pub(crate) written: u32,
    /// The last `h` the client acknowledged.
    pub(crate) acked: u32,
    /// Whether written stanzas are kept until acknowledged (XEP-0198 enabled).
    pub(crate) keeping: bool,
    /// Written stanzas awaiting the client's acknowledgement, oldest first, each with its
    /// position in `written`. Without `keeping` (an acknowledging transport), only tracked ones.
    pub(crate) pending: VecDeque<(u32, Outbound)>,
    /// Ask for an acknowledgement (`<r/>`) after this many stanzas (0: never by count).
    pub(crate) request_every: u32,
    /// Stanzas written since the last `<r/>`.
    pub(crate) since_request: u32,
    /// Ask after this long with stanzas unacknowledged (None: never by time).
    pub(crate) request_after: Option<Duration>,
    /// When the time-based request is due (set while stanzas wait and no `<r/>` is out).
    pub(crate) request_due: Option<Instant>,
}

/// The client acknowledged more stanzas than were sent (XEP-0198 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooHigh {
    pub h: u32,
    pub sent: u32,
}

impl Unacked {
    /// The client has handled `handled` stanzas (its `h`): acknowledges those among the
    /// pending ones. An `h` beyond what was written is refused and changes nothing.
    pub fn acknowledge(&mut self, handled: u32) -> Result<(), TooHigh> {
        // Both counters wrap: compare distances from the last acknowledgement. One behind it
        // is a stale repeat, harmless.
        if handled.wrapping_sub(self.acked) >= 1 << 31 {
            return Ok(());
        }
        if handled.wrapping_sub(self.acked) > self.written.wrapping_sub(self.acked) {
            return Err(TooHigh {
                h: handled,
                sent: self.written,
            });
        }
        self.acked = handled;
        while let Some((position, _)) = self.pending.front() {
            // Positions wrap like the counter: "at or before" is a distance under 2^31.
            if handled.wrapping_sub(*position) >= 1 << 31 {
                break;
            }
            let (_, item) = self.pending.pop_front().expect("checked");
            if let Outbound::Tracked(_, written) = item {
                delivered(written);
            }
        }
        if self.pending.is_empty() {
            self.request_due = None;
        }
        Ok(())
    }

    /// Stanzas still awaiting acknowledgement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Counts a stanza written outside the mailbox (a keepalive ping): the client counts it
    /// too. Nothing is kept to replay.
    pub fn count_unkept(&mut self) {
        if self.keeping {
            self.written = self.written.wrapping_add(1);
        }
    }

    /// Takes the unacknowledged stanzas out (to replay on a resumed stream, or to hand to
    /// offline storage), restarting the count at the client's `h`.
    pub fn take_pending(&mut self) -> VecDeque<(u32, Outbound)> {
        self.written = self.acked;
        self.since_request = 0;
        self.request_due = None;
        std::mem::take(&mut self.pending)
    }

    /// Queues `<r/>` if one is due by count (or `now_please`: a tracked stanza's owner waits
    /// for the answer); arms the time-based request otherwise.
    fn request_if_due(&mut self, stream: &mut impl Transport, now: Instant, now_please: bool) {
        if !self.keeping || self.pending.is_empty() {
            return;
        }
        if now_please || (self.request_every > 0 && self.since_request >= self.request_every) {
            stream.queue(&request());
            self.since_request = 0;
            self.request_due = None;
        } else if self.request_due.is_none() {
            self.request_due = self.request_after.map(|after| now + after);
        }
    }

    /// The time-based request fired: queues `<r/>` if stanzas still wait.
    pub fn request_now(&mut self, stream: &mut impl Transport) -> bool {
        self.request_due = None;
        if !self.keeping || self.pending.is_empty() {
            return false;
        }
        stream.queue(&request());
        self.since_request = 0;
        true
    }
}

/// `<r/>`: the server asks the client how much it handled.
pub fn request() -> Element {
    Element::bare("r", NS_SM)
}

/// A tracked stanza reached the client: its owner may let go of it.
fn delivered(written: oneshot::Sender<()>) {
    // Only offline delivery tracks its stanzas.
    crate::metrics::offline_delivered();
    let _ = written.send(());
}

/// Writes `first` and what else is already queued (up to `WRITE_BATCH` stanzas), flushes, and
/// then acknowledges the tracked stanzas among them, or holds them in `unacked` when the
/// client acknowledges receipt itself (stream management, or such a transport).
pub async fn write_batch(
    stream: &mut impl Transport,
    mailbox: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
    to_attr: &str,
    traced: Option<&FullJid>,
    unacked: &mut Unacked,
) -> std::io::Result<()> {
    let keep_all = unacked.keeping;
    let keep_tracked = keep_all || stream.acknowledges_receipt();
    let mut acks = Vec::new();
    let mut next = Some(first);
    let mut count: u32 = 0;
    let mut tracked_kept = false;
    let start = unacked.written;
    while let Some(item) = next.take() {
        count += 1;
        queue_item(stream, &item, to_attr, traced);
        let position = start.wrapping_add(count);
        match item {
            item if keep_all => {
                tracked_kept |= matches!(item, Outbound::Tracked(..));
                unacked.pending.push_back((position, item));
            }
            Outbound::Tracked(el, written) if keep_tracked => unacked
                .pending
                .push_back((position, Outbound::Tracked(el, written))),
            Outbound::Tracked(_, written) => acks.push(written),
            _ => {}
        }
        if (count as usize) < WRITE_BATCH {
            next = mailbox.try_recv().ok();
        }
    }
    unacked.written = start.wrapping_add(count);
    unacked.since_request = unacked.since_request.saturating_add(count);
    // Offline storage deletes a message only on the client's acknowledgement: ask at once.
    unacked.request_if_due(stream, Instant::now(), tracked_kept);
    stream.flush().await?;
    acks.into_iter().for_each(delivered);
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

/// Buffers one mailbox item. `to_attr` is this session's JID, escaped, for shared stanzas.
pub fn queue_item(stream: &mut impl Transport, item: &Outbound, to_attr: &str, traced: Option<&FullJid>) {
    let el = match item {
        Outbound::Stanza(el) | Outbound::Tracked(el, _) => el,
        Outbound::Shared(shared) => {
            crate::metrics::stanza_out(shared.name());
            if let Some(jid) = traced {
                tracing::info!(target: "xmpp_trace", %jid, "S: {}", shared.render(to_attr));
            }
            stream.queue_shared(shared, to_attr);
            return;
        }
    };
    crate::metrics::stanza_out(el.name());
    if let Some(jid) = traced {
        tracing::info!(target: "xmpp_trace", %jid, "S: {}", crate::c2s::trace::render(el));
    }
    stream.queue(el);
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
        unacked.acknowledge(1).unwrap();
        assert!(
            ack.try_recv().is_err(),
            "the client handled only the first stanza"
        );
        unacked.acknowledge(2).unwrap();
        assert!(ack.try_recv().is_ok(), "acknowledged with the second");
        assert_eq!(unacked.pending(), 0);
    }

    #[test]
    fn acknowledgement_positions_wrap_like_the_counter() {
        let mut unacked = Unacked {
            written: 0,
            acked: u32::MAX - 1,
            ..Default::default()
        };
        let (written, mut ack) = tokio::sync::oneshot::channel();
        unacked
            .pending
            .push_back((0, Outbound::Tracked(Box::new(message("w")), written)));
        unacked.acknowledge(u32::MAX).unwrap();
        assert!(ack.try_recv().is_err(), "2^32 - 1 is before 0 (wrapped)");
        unacked.acknowledge(0).unwrap();
        assert!(ack.try_recv().is_ok());
        assert_eq!(
            unacked.acknowledge(1),
            Err(TooHigh { h: 1, sent: 0 }),
            "one more than was written"
        );
    }

    #[test]
    fn an_acknowledgement_beyond_what_was_written_is_refused() {
        let mut unacked = Unacked {
            written: 3,
            ..Default::default()
        };
        assert_eq!(unacked.acknowledge(4), Err(TooHigh { h: 4, sent: 3 }));
        unacked.acknowledge(2).unwrap();
        unacked.acknowledge(1).unwrap();
        assert_eq!(unacked.acked, 2, "a stale h changes nothing");
        unacked.acknowledge(3).unwrap();
    }
}
