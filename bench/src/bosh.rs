//! `bosh-poll`: N BOSH sessions (XEP-0124/0206) each keeping one long-poll request open
//! (`hold=1`), and K TCP senders sending them chat messages at a fixed total rate. Reports
//! the messages delivered through the polls, the server CPU per delivered message, and the
//! server memory per BOSH session.
//!
//! Each BOSH session is one HTTP/1.1 keep-alive connection: a poll is answered when a
//! message arrives (or after `wait`), and the next poll goes out at once.

use crate::client::{self, Session, Target};
use crate::stats::{Report, sample_pids};
use crate::{Common, Measure, for_each_user, summarize_errors};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const XBOSH: &str = "urn:xmpp:xbosh";

#[derive(Args)]
pub struct BoshArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    /// BOSH sessions (users first..first+sessions-1), on --port (the HTTP port).
    #[arg(long, default_value_t = 2000)]
    sessions: u64,
    /// TCP senders (the users after the BOSH ones), on --c2s-port.
    #[arg(long, default_value_t = 10)]
    senders: u64,
    #[arg(long, default_value_t = 5222)]
    c2s_port: u16,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// BOSH `wait`: how long the server holds an empty poll (seconds).
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// Seconds to wait for the last messages after sending stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

/// One BOSH session's client side over one keep-alive connection.
struct Bosh {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    host: String,
    sid: String,
    rid: u64,
}

impl Bosh {
    async fn post(&mut self, body: &str) -> Result<String> {
        let req = format!(
            "POST /http-bind HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.wr.write_all(req.as_bytes()).await?;
        let mut line = String::new();
        let mut length = None;
        let mut status = 0;
        loop {
            line.clear();
            if self.rd.read_line(&mut line).await? == 0 {
                bail!("connection closed");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if l.starts_with("HTTP/") {
                status = l.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| anyhow!("no Content-Length (HTTP {status})"))?;
        let mut body = vec![0; length];
        self.rd.read_exact(&mut body).await?;
        let body = String::from_utf8(body)?;
        if status != 200 {
            bail!("HTTP {status}: {body}");
        }
        if body.contains("type='terminate'") || body.contains("type=\"terminate\"") {
            bail!("session terminated: {body}");
        }
        Ok(body)
    }

    /// Sends `payload` with the next rid (and `attrs`).
    async fn send(&mut self, attrs: &str, payload: &str) -> Result<String> {
        let body = format!(
            "<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' rid='{}' sid='{}' {attrs}>{payload}</body>",
            self.rid, self.sid
        );
        self.rid += 1;
        self.post(&body).await
    }

    /// Polls until the answers so far contain `needle`.
    async fn until(&mut self, first: String, needle: &str) -> Result<String> {
        let mut seen = first;
        while !seen.contains(needle) {
            seen = self.send("", "").await?;
        }
        Ok(seen)
    }
}

fn attr<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    for q in ['\'', '"'] {
        let key = format!(" {name}={q}");
        if let Some(i) = body.find(&key) {
            let rest = &body[i + key.len()..];
            return rest.find(q).map(|j| &rest[..j]);
        }
    }
    None
}

/// Creates a session, logs in with PLAIN, binds, and sends initial presence.
async fn login(t: &Target, n: u64, wait: u64) -> Result<(Bosh, String)> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .with_context(|| format!("connect {}:{}", t.host, t.port))?;
    tcp.set_nodelay(true)?;
    let (rd, wr) = tcp.into_split();
    let mut b = Bosh {
        rd: BufReader::with_capacity(4096, rd),
        wr,
        host: format!("{}:{}", t.host, t.port),
        sid: String::new(),
        rid: 1_000 + n * 7,
    };
    let created = b
        .post(&format!(
            "<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' rid='{}' to='{}' xml:lang='en' wait='{wait}' hold='1' ver='1.6' xmpp:version='1.0' content='text/xml; charset=utf-8'/>",
            b.rid, t.domain
        ))
        .await?;
    b.rid += 1;
    b.sid = attr(&created, "sid")
        .ok_or_else(|| anyhow!("no sid: {created}"))?
        .to_string();
    b.until(created, "mechanisms").await?;
    let user = t.username(n);
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{}", t.password));
    let answer = b
        .send(
            "",
            &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"),
        )
        .await?;
    let answer = b.until(answer, "xmpp-sasl").await?;
    if !answer.contains("<success") {
        bail!("SASL failed: {answer}");
    }
    let answer = b.send("xmpp:restart='true'", "").await?;
    b.until(answer, "urn:ietf:params:xml:ns:xmpp-bind").await?;
    let answer = b
        .send(
            "",
            &format!(
                "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{}{n}</resource></bind></iq>",
                t.resource
            ),
        )
        .await?;
    let answer = b.until(answer, "</jid>").await?;
    let jid = answer
        .split_once("<jid>")
        .and_then(|(_, r)| r.split_once("</jid>"))
        .map(|(j, _)| j.to_string())
        .ok_or_else(|| anyhow!("no bound JID: {answer}"))?;
    b.send("", "<presence xmlns='jabber:client'/>").await?;
    Ok((b, jid))
}

/// Keeps one poll open until `stop`, counting this run's messages.
async fn poll(mut b: Bosh, delivered: Arc<AtomicU64>, mut stop: watch::Receiver<bool>) -> Result<()> {
    loop {
        let answer = tokio::select! {
            a = b.send("", "") => a?,
            _ = stop.changed() => return Ok(()),
        };
        let n = answer.matches("<body>bosh-bench</body>").count() as u64;
        delivered.fetch_add(n, Ordering::Relaxed);
    }
}

/// Sends to `targets` round-robin at `rate` messages a second until `deadline`.
async fn send(
    mut s: Session,
    targets: Arc<Vec<String>>,
    offset: usize,
    rate: f64,
    deadline: Instant,
) -> Result<u64> {
    let tick = Duration::from_millis(10);
    let mut due = 0.0;
    let mut sent = 0u64;
    let mut next = offset;
    let mut buf = String::new();
    let mut interval = tokio::time::interval(tick);
    while Instant::now() < deadline {
        interval.tick().await;
        due += rate * tick.as_secs_f64();
        buf.clear();
        while due >= 1.0 {
            due -= 1.0;
            let to = &targets[next % targets.len()];
            next += 1;
            buf.push_str("<message type='chat' to='");
            buf.push_str(to);
            buf.push_str("'><body>bosh-bench</body></message>");
            sent += 1;
        }
        if !buf.is_empty() {
            s.wr.write_all(buf.as_bytes()).await?;
        }
    }
    // Keep the stream open until the run ends; the caller drops it.
    tokio::spawn(async move { while s.reader.next().await.is_ok() {} });
    Ok(sent)
}

pub async fn run(a: BoshArgs) -> Result<()> {
    crate::stats::raise_nofile();
    let bosh_target = a.common.target();
    let pids = a.measure.server_pid.clone();
    let before_login = sample_pids(&pids)?;
    let start = Instant::now();
    let logins = for_each_user(a.common.first, a.sessions, a.common.concurrency, |n| {
        let t = bosh_target.clone();
        let wait = a.wait;
        async move { login(&t, n, wait).await }
    })
    .await;
    let failed = summarize_errors("BOSH login", logins.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} of {} BOSH logins failed", a.sessions);
    }
    eprintln!(
        "{} BOSH sessions in {:.1}s",
        a.sessions,
        start.elapsed().as_secs_f64()
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut jids = Vec::new();
    let mut polls = Vec::new();
    for (b, jid) in logins.into_iter().map(|r| r.expect("checked")) {
        jids.push(jid);
        polls.push(tokio::spawn(poll(b, delivered.clone(), stop_rx.clone())));
    }
    let jids = Arc::new(jids);
    // The senders log in over TCP.
    let mut c2s = a.common.clone();
    c2s.port = a.c2s_port;
    c2s.websocket = None;
    let c2s = c2s.target();
    let senders = for_each_user(
        a.common.first + a.sessions,
        a.senders,
        a.common.concurrency,
        |n| {
            let t = c2s.clone();
            async move { client::login(&t, n, &format!("sender{n}"), false).await }
        },
    )
    .await;
    let failed = summarize_errors("sender login", senders.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} sender logins failed");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sample_pids(&pids)?;
    delivered.store(0, Ordering::Relaxed);

    let bench_cpu0 = crate::stats::self_cpu();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.duration);
    let per_sender = a.rate / a.senders.max(1) as f64;
    let stride = jids.len() / a.senders.max(1) as usize;
    let mut tasks = Vec::new();
    for (i, s) in senders.into_iter().enumerate() {
        let s = s.expect("checked");
        tasks.push(tokio::spawn(send(
            s,
            jids.clone(),
            i * stride,
            per_sender,
            deadline,
        )));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await??;
    }
    let drain_until = Instant::now() + Duration::from_secs_f64(a.drain);
    while delivered.load(Ordering::Relaxed) < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let after = sample_pids(&pids)?;
    let bench_cpu = crate::stats::self_cpu() - bench_cpu0;
    let got = delivered.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for p in polls {
        if let Ok(Err(e)) = p.await {
            eprintln!("poll ended: {e}");
        }
    }

    let mut r = Report::new(&a.measure.label, "bosh-poll");
    r.add("bosh_sessions", a.sessions as f64, "");
    r.add("sent", sent as f64, "");
    r.add("delivered", got as f64, "");
    r.add("delivered_per_sec", got as f64 / wall, "/s");
    if let (Some(b), Some(i), Some(e)) = (before_login, idle, after) {
        r.add(
            "server_rss_per_bosh_session_kib",
            (i.rss.saturating_sub(b.rss)) as f64 / 1024.0 / a.sessions.max(1) as f64,
            "KiB",
        );
        r.add(
            "server_cpu_per_delivered_msg_us",
            (e.cpu - i.cpu) * 1e6 / got.max(1) as f64,
            "µs",
        );
        r.add("server_cpu_util_pct", (e.cpu - i.cpu) * 100.0 / wall, "%");
    }
    r.add("bench_cpu_util_pct", bench_cpu * 100.0 / wall, "%");
    r.print();
    if let Some(out) = &a.measure.out {
        r.append_to(out)?;
    }
    if got < sent {
        eprintln!("{} of {sent} messages not delivered in time", sent - got);
    }
    Ok(())
}
