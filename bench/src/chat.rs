//! `chat`: M sender -> receiver pairs exchanging one-to-one chat messages.

use crate::client::Conn;
use crate::client::{self, Session, StanzaReader};
use crate::seen::{Arrival, Seen};
use crate::stats::{self, Report, now_us, percentile, sample_pids};
use crate::xml::{Frame, TopName, escape, parse_element, quick_inspect, start_tag_attr};
use crate::{Common, Measure, for_each_user, prefetch_salts, summarize_errors};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    /// Number of sender/receiver pairs (uses 2*pairs accounts).
    #[arg(long, default_value_t = 50)]
    pairs: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Messages per second per pair. Without it, every sender sends as fast
    /// as it can with at most --window messages in flight.
    #[arg(long)]
    rate: Option<f64>,
    /// Messages in flight per pair in unlimited mode.
    #[arg(long, default_value_t = 16)]
    window: u64,
    /// Seconds to wait for outstanding messages after sending stopped.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds to wait after logging everybody in before sending.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Scenario name used in the output (default: chat-rate / chat-window).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Default)]
struct PairState {
    /// Messages written by the sender (counted before the write).
    sent: AtomicU64,
    /// Distinct messages of this run from the sender that reached the receiver.
    received: AtomicU64,
    notify: Notify,
}

#[derive(Default)]
struct Shared {
    last_rx_us: AtomicU64,
    errors: AtomicU64,
    bad: AtomicU64,
    /// Second copies of a message already counted.
    duplicates: AtomicU64,
    /// Messages that arrived after a later one of the same pair.
    out_of_order: AtomicU64,
    /// Bench-looking messages that are not this pair's of this run (another sender, an older
    /// run's offline copy, a sequence number never sent).
    foreign: AtomicU64,
    measuring: AtomicBool,
}

/// What the receiver expects: the sender's full JID and this run's number.
struct Expect {
    from: String,
    run: u64,
}

/// `RUN SEQ TIMESTAMP` of a bench chat body.
fn parse_body(body: &str) -> Option<(u64, u64, u64)> {
    let mut it = body.split(' ').map(|n| n.parse::<u64>().ok());
    let (run, seq, ts) = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some((run, seq, ts))
}

/// Receiver: counts each message of its pair's sender in this run once, with one latency
/// sample, until stopped.
async fn receive(
    mut r: StanzaReader,
    mut w: Conn,
    pair: Arc<PairState>,
    shared: Arc<Shared>,
    expect: Expect,
    mut stop: watch::Receiver<bool>,
    windowed: bool,
) -> (Vec<u32>, Conn) {
    let mut lat: Vec<u32> = Vec::with_capacity(4096);
    let mut seen = Seen::default();
    let mut highest = 0u64;
    loop {
        let f = tokio::select! {
            biased;
            f = r.next() => f,
            _ = stop.changed() => break,
        };
        let (a, b) = match f {
            Ok(Frame::Stanza(a, b)) => (a, b),
            Ok(Frame::StreamOpen(..)) => continue,
            Ok(Frame::StreamClose) | Err(_) => break,
        };
        let now = now_us();
        let bytes = &r.sp.buf[a..b];
        let Ok(i) = quick_inspect(bytes) else {
            shared.bad.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if i.is_error {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match i.name {
            TopName::Message => {
                let Some((run, seq, ts)) = i.body.and_then(parse_body) else {
                    continue;
                };
                let from_sender = start_tag_attr(bytes, b"from") == Some(expect.from.as_bytes());
                // A sequence number is only ours once the sender counted it as sent.
                let sent = pair.sent.load(Ordering::Acquire);
                if !from_sender || run != expect.run || seq == 0 || seq > sent {
                    shared.foreign.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if seen.mark(seq) == Arrival::Duplicate {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if seq < highest {
                    shared.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
                highest = highest.max(seq);
                lat.push(now.saturating_sub(ts).min(u32::MAX as u64) as u32);
                pair.received.fetch_add(1, Ordering::Release);
                shared.last_rx_us.fetch_max(now, Ordering::Relaxed);
                if windowed {
                    pair.notify.notify_one();
                }
            }
            TopName::Iq if i.ping => {
                if let Ok(e) = parse_element(bytes, "jabber:client")
                    && e.attr("type") == Some("get")
                {
                    let reply = format!(
                        "<iq type='result' id='{}' to='{}'/>",
                        escape(e.attr("id").unwrap_or("")),
                        escape(e.attr("from").unwrap_or(""))
                    );
                    let _ = w.write_all(reply.as_bytes()).await;
                }
            }
            _ => {}
        }
    }
    (lat, w)
}

/// Sender side reader: discard everything, count error stanzas.
async fn sink(mut r: StanzaReader, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let f = tokio::select! {
            f = r.next() => f,
            _ = stop.changed() => return,
        };
        match f {
            Ok(Frame::Stanza(a, b)) => {
                if let Ok(i) = quick_inspect(&r.sp.buf[a..b])
                    && i.is_error
                {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Frame::StreamOpen(..)) => {}
            _ => return,
        }
    }
}

fn push_u64(buf: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(v).as_bytes());
}

struct SendCfg {
    /// This run's number, first in every body.
    run: u64,
    rate: Option<f64>,
    window: u64,
    deadline: Instant,
    /// Offset of the first send for this pair (rate mode), to spread pairs.
    phase: Duration,
}

async fn send(mut w: Conn, to: String, pair: Arc<PairState>, cfg: SendCfg) -> (Conn, Result<()>) {
    let prefix = format!("<message type='chat' to='{}'><body>", escape(&to));
    let suffix = b"</body></message>";
    let mut buf = Vec::with_capacity((prefix.len() + 64) * cfg.window.min(64) as usize);
    let mut interval = cfg.rate.map(|r| {
        let start = tokio::time::Instant::now() + cfg.phase;
        let mut iv = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / r));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        iv
    });
    let deadline = tokio::time::Instant::from_std(cfg.deadline);
    let mut seq: u64 = 0;
    let res = async {
        loop {
            if let Some(iv) = interval.as_mut() {
                if tokio::time::timeout_at(deadline, iv.tick()).await.is_err() {
                    return Ok(());
                }
            } else {
                loop {
                    let sent = pair.sent.load(Ordering::Relaxed);
                    if sent - pair.received.load(Ordering::Acquire) < cfg.window {
                        break;
                    }
                    if tokio::time::timeout_at(deadline, pair.notify.notified())
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= cfg.deadline {
                return Ok(());
            }
            // In window mode, fill the whole free window with one write (a
            // busy client's socket buffer would hold them all anyway); this
            // keeps the bench's syscall count per message low.
            let batch = if interval.is_some() {
                1
            } else {
                let inflight = pair.sent.load(Ordering::Relaxed) - pair.received.load(Ordering::Relaxed);
                cfg.window.saturating_sub(inflight).max(1)
            };
            buf.clear();
            let ts = now_us();
            for _ in 0..batch {
                seq += 1;
                buf.extend_from_slice(prefix.as_bytes());
                push_u64(&mut buf, cfg.run);
                buf.push(b' ');
                push_u64(&mut buf, seq);
                buf.push(b' ');
                push_u64(&mut buf, ts);
                buf.extend_from_slice(suffix);
            }
            // Count before writing: a delivery is never ahead of `sent`, and the receiver
            // takes a sequence number above it for someone else's. A batch whose write fails
            // stays counted (part of it may be out): it shows as lost, next to the send error.
            pair.sent.fetch_add(batch, Ordering::Release);
            if let Err(e) = w.write_all(&buf).await {
                bail!("send failed: {e}");
            }
        }
    }
    .await;
    (w, res)
}

pub async fn run(a: ChatArgs) -> Result<()> {
    stats::raise_nofile();
    let t = a.common.target();
    let pids = a.measure.server_pid.clone();
    let users = a.pairs * 2;
    if !a.measure.no_prefetch {
        prefetch_salts(&t, a.common.first, users, a.common.concurrency).await;
    }
    // Log everybody in: even numbers receive, odd numbers send.
    let login_start = Instant::now();
    let sessions = for_each_user(a.common.first, users, a.common.concurrency, |n| {
        let t = t.clone();
        async move {
            let resource = format!("{}{}", t.resource, n);
            client::login(&t, n, &resource, true).await
        }
    })
    .await;
    let failed = summarize_errors("login", sessions.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} of {users} logins failed; not running the chat scenario");
    }
    eprintln!(
        "logged in {users} users in {:.1}s",
        login_start.elapsed().as_secs_f64()
    );
    let sessions: Vec<Session> = sessions.into_iter().map(|r| r.unwrap()).collect();

    let shared = Arc::new(Shared::default());
    // Tells this run's messages from any older run's (offline copies delivered at login).
    let run_id = now_us();
    let (stop_tx, stop_rx) = watch::channel(false);
    let windowed = a.rate.is_none();
    let mut pairs = Vec::new();
    let mut receivers = Vec::new();
    let mut sinks = Vec::new();
    let mut writers = Vec::new();
    let mut it = sessions.into_iter();
    while let (Some(rx), Some(tx)) = (it.next(), it.next()) {
        let pair = Arc::new(PairState::default());
        let expect = Expect {
            from: tx.full_jid.clone(),
            run: run_id,
        };
        receivers.push(tokio::spawn(receive(
            rx.reader,
            rx.wr,
            pair.clone(),
            shared.clone(),
            expect,
            stop_rx.clone(),
            windowed,
        )));
        sinks.push(tokio::spawn(sink(tx.reader, shared.clone(), stop_rx.clone())));
        writers.push((tx.wr, rx.full_jid));
        pairs.push(pair);
    }
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    // Anything that arrived during settling (presence, an older run's offline messages) is
    // not counted.
    shared.errors.store(0, Ordering::Relaxed);
    shared.foreign.store(0, Ordering::Relaxed);

    let before = sample_pids(&pids)?;
    let foreign = stats::Foreign::start(&pids, before);
    let bench_cpu0 = stats::self_cpu();
    shared.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let start_us = now_us();
    let deadline = start + Duration::from_secs_f64(a.duration);
    let n_pairs = pairs.len();
    let mut senders = Vec::new();
    for (i, ((w, to), pair)) in writers.into_iter().zip(pairs.iter()).enumerate() {
        let phase = match a.rate {
            Some(r) => Duration::from_secs_f64(i as f64 / n_pairs as f64 / r),
            None => Duration::ZERO,
        };
        let cfg = SendCfg {
            run: run_id,
            rate: a.rate,
            window: a.window.max(1),
            deadline,
            phase,
        };
        senders.push(tokio::spawn(send(w, to, pair.clone(), cfg)));
    }
    let mut send_errs = Vec::new();
    let mut writers = Vec::new();
    for s in senders {
        let (w, r) = s.await?;
        if let Err(e) = r {
            send_errs.push(e);
        }
        writers.push(w);
    }
    summarize_errors("send", send_errs.iter());
    let sent: u64 = pairs.iter().map(|p| p.sent.load(Ordering::Relaxed)).sum();
    let received = || -> u64 { pairs.iter().map(|p| p.received.load(Ordering::Relaxed)).sum() };
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain);
    while received() < sent && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = Instant::now();
    let after = sample_pids(&pids)?;
    let bench_cpu = stats::self_cpu() - bench_cpu0;
    let mut disturb = Report::new("", "");
    foreign.report(&mut disturb, after);
    let delivered = received();
    let last_rx = shared.last_rx_us.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);

    let mut lat = Vec::new();
    for r in receivers {
        let (l, mut w) = r.await?;
        lat.extend_from_slice(&l);
        let _ = w.write_all(b"</stream:stream>").await;
    }
    for mut w in writers {
        let _ = w.write_all(b"</stream:stream>").await;
    }
    for s in sinks {
        let _ = s.await;
    }
    lat.sort_unstable();

    let scenario = a.name.clone().unwrap_or_else(|| {
        if windowed {
            "chat-window".into()
        } else {
            "chat-rate".into()
        }
    });
    // Throughput over the time from the first send to the last delivery.
    let active = if last_rx > start_us {
        (last_rx - start_us) as f64 / 1e6
    } else {
        a.duration
    };
    let wall = end.duration_since(start).as_secs_f64();
    let mut r = Report::new(&a.measure.label, &scenario);
    r.add("pairs", n_pairs as f64, "");
    if let Some(rate) = a.rate {
        r.add("offered_msgs_per_sec", rate * n_pairs as f64, "/s");
    } else {
        r.add("window_per_pair", a.window as f64, "");
    }
    r.add("sent", sent as f64, "");
    r.add("delivered", delivered as f64, "");
    // Each delivery is a distinct sequence number the sender had counted: never above `sent`.
    let lost = sent
        .checked_sub(delivered)
        .expect("delivered counts distinct messages that were sent");
    r.add("lost", lost as f64, "");
    r.add("duplicates", shared.duplicates.load(Ordering::Relaxed) as f64, "");
    r.add(
        "out_of_order",
        shared.out_of_order.load(Ordering::Relaxed) as f64,
        "",
    );
    r.add("foreign", shared.foreign.load(Ordering::Relaxed) as f64, "");
    r.add("delivered_per_sec", delivered as f64 / active, "/s");
    r.add("latency_p50_ms", percentile(&lat, 50.0) / 1000.0, "ms");
    r.add("latency_p90_ms", percentile(&lat, 90.0) / 1000.0, "ms");
    r.add("latency_p99_ms", percentile(&lat, 99.0) / 1000.0, "ms");
    r.add("latency_max_ms", percentile(&lat, 100.0) / 1000.0, "ms");
    r.add("error_stanzas", shared.errors.load(Ordering::Relaxed) as f64, "");
    if let (Some(b), Some(af)) = (before, after) {
        if delivered > 0 {
            r.add(
                "server_cpu_per_msg_us",
                (af.cpu - b.cpu) * 1e6 / delivered as f64,
                "us",
            );
        }
        r.add("server_cpu_util_pct", (af.cpu - b.cpu) * 100.0 / wall, "%");
        r.add("server_rss_mb", af.rss as f64 / 1048576.0, "MiB");
    }
    r.add("bench_cpu_util_pct", bench_cpu * 100.0 / wall, "%");
    r.add_rows(&disturb);
    r.print();
    if let Some(out) = &a.measure.out {
        r.append_to(out)?;
    }
    if shared.bad.load(Ordering::Relaxed) > 0 {
        eprintln!(
            "warning: {} unparsable stanzas",
            shared.bad.load(Ordering::Relaxed)
        );
    }
    if delivered == 0 {
        return Err(anyhow!("no message was delivered"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_run_seq_timestamp() {
        assert_eq!(parse_body("7 12 345"), Some((7, 12, 345)));
        assert_eq!(parse_body("12 345"), None);
        assert_eq!(parse_body("7 12 345 9"), None);
        assert_eq!(parse_body("hello 12"), None);
    }
}
