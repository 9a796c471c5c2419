//! `muc`: one XEP-0045 room of N occupants (separate connections).
//!
//! 1. Log in N accounts (not measured).
//! 2. Join storm: occupant 1 creates the room (instant room, §10.1.2), then
//!    the other N-1 send their join presence at once. Measured: the time until
//!    every occupant has its own presence (status 110) and until all presence
//!    has arrived, and the presence stanzas received per join. The protocol
//!    itself costs N presences per join on average (N² for the storm: every
//!    occupant sees every occupant once), so `presence_per_join_vs_n` is 1.0
//!    for a server that sends nothing more.
//! 3. Stepped load: K posters send groupchat messages at increasing room
//!    rates (`--start-rate` deliveries/s, times `--factor` per step). Every
//!    occupant (the sender too: the room reflects it) receives each message.
//!    A step is kept up when all deliveries arrived, the posters could send at
//!    the offered rate and the p99 latency is under `--p99-limit-ms`.
//!    A failed step is run again up to `--retries` times (machine noise);
//!    when it still fails, `--refine` steps bisect between the best kept-up
//!    and the failed rate.
//!
//! The receive path is lean: the stanza splitter finds stanza boundaries and a
//! byte search finds the `<body>` marker; nothing is parsed into a tree except
//! the rare IQ.

use crate::client::Conn;
use crate::client::{self, StanzaReader};
use crate::seen::{Arrival, SharedSeen};
use crate::stats::{self, Report, now_us, sample_pids};
use crate::xml::{self, Frame, escape, parse_element};
use crate::{Common, Measure, for_each_user, prefetch_salts, summarize_errors};
use anyhow::{Result, bail};
use clap::Args;
use memchr::memmem;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Args)]
pub struct MucArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    /// Occupants of the room (accounts first..first+occupants-1).
    #[arg(long, default_value_t = 100)]
    occupants: u64,
    /// JID of the MUC service.
    #[arg(long, default_value = "conference.localhost")]
    service: String,
    /// Local part of the room JID (default: `bench` + occupants).
    #[arg(long)]
    room: Option<String>,
    /// Occupants that post (the first K).
    #[arg(long, default_value_t = 5)]
    posters: u64,
    /// Offered deliveries/s of the first step (room messages/s × occupants).
    #[arg(long, default_value_t = 2500.0)]
    start_rate: f64,
    /// Offered rate multiplier per step.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Most rate steps (retries not counted).
    #[arg(long, default_value_t = 18)]
    max_steps: u32,
    /// Times a failed step is run again at the same rate before it counts
    /// (another process taking the core for 100 ms fails a step).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Bisection steps between the best kept-up and the failed rate.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// Seconds of posting per step.
    #[arg(long, default_value_t = 3.0)]
    step_secs: f64,
    /// Seconds to wait for a step's last deliveries.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// A step is kept up only with p99 latency below this.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Give up the join storm after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    join_timeout: f64,
    /// Give up the join storm after this many seconds without any presence
    /// arriving (Prosody 0.12 sends nothing for minutes while it works
    /// through a backlog of 1,000 joins read in one go).
    #[arg(long, default_value_t = 240.0)]
    join_quiet: f64,
    /// Give up waiting for room creation after this many seconds.
    #[arg(long, default_value_t = 15.0)]
    quiet: f64,
}

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// Body prefix of the bench's groupchat messages: `sbm STEP SEQ TIMESTAMP_US`.
const MARK: &[u8] = b"<body>sbm ";
/// Latency histogram: 10 µs buckets up to 2 s, then one overflow bucket.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;

/// Figures of one rate step, filled by all readers.
struct StepStats {
    /// First arrivals (one per occupant and message): the drain's progress.
    deliveries: AtomicU64,
    /// Which occupant got which message, set up just before the step posts.
    seen: OnceLock<SharedSeen>,
    /// Second copies of a message an occupant already had.
    duplicates: AtomicU64,
    /// Error stanzas carrying this step's messages (a bounce is no delivery).
    errors: AtomicU64,
    last_rx_us: AtomicU64,
    hist: Vec<AtomicU32>,
}

impl StepStats {
    fn new() -> Self {
        StepStats {
            deliveries: AtomicU64::new(0),
            seen: OnceLock::new(),
            duplicates: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_rx_us: AtomicU64::new(0),
            hist: (0..=BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Occupant `row` received message `seq` at `now` (sent at `sent`). `false` when the
    /// message cannot be one of this step's.
    fn arrived(&self, row: usize, seq: u64, now: u64, sent: u64) -> bool {
        match self.seen.get().and_then(|seen| seen.mark(row, seq)) {
            None => false,
            Some(Arrival::Duplicate) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Arrival::First) => {
                self.record(now, sent);
                true
            }
        }
    }

    fn record(&self, now: u64, sent: u64) {
        let lat = now.saturating_sub(sent);
        let b = ((lat / BUCKET_US) as usize).min(BUCKETS);
        self.hist[b].fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        self.last_rx_us.fetch_max(now, Ordering::Relaxed);
    }

    /// Latency percentile in ms (bucket upper bound).
    fn percentile_ms(&self, p: f64) -> f64 {
        let counts: Vec<u64> = self
            .hist
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

/// State shared by every occupant's reader.
struct Shared {
    /// Occupants that received their own presence (status 110).
    joined: AtomicU64,
    /// When the last of them did (µs, `now_us`).
    last_join_us: AtomicU64,
    /// Presence stanzas received by all occupants.
    presence: AtomicU64,
    /// The room answered a join with status 201 (new room).
    created: AtomicU64,
    /// Presence errors (join refused).
    join_errors: AtomicU64,
    /// Other error stanzas (e.g. a refused groupchat message).
    errors: AtomicU64,
    /// Bench messages that are no step's, or not from the poster that sent them.
    foreign: AtomicU64,
    /// Connections the server closed.
    disconnects: AtomicU64,
    /// 0: no answer yet, 1: config result, 2: config error.
    config_state: AtomicU64,
    steps: Vec<StepStats>,
}

type Writer = Arc<Mutex<Conn>>;

/// Attribute `type='error'` (either quote) inside the start tag of `s`.
fn start_tag_is_error(s: &[u8]) -> bool {
    let end = memchr::memchr(b'>', s).unwrap_or(s.len());
    let tag = &s[..end];
    memmem::find(tag, b"type='error'").is_some() || memmem::find(tag, b"type=\"error\"").is_some()
}

fn has_status(s: &[u8], code: &[u8]) -> bool {
    let mut pat = Vec::with_capacity(16);
    for q in [b'\'', b'"'] {
        pat.clear();
        pat.extend_from_slice(b"code=");
        pat.push(q);
        pat.extend_from_slice(code);
        pat.push(q);
        if memmem::find(s, &pat).is_some() {
            return true;
        }
    }
    false
}

/// Parse `STEP SEQ TS<` after the marker: (step, seq, ts).
fn parse_mark(s: &[u8]) -> Option<(usize, u64, u64)> {
    let mut nums = [0u64; 3];
    let mut i = 0;
    for n in nums.iter_mut() {
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            *n = *n * 10 + (s[i] - b'0') as u64;
            i += 1;
        }
        if i == start {
            return None;
        }
        i += 1; // the space (or '<' after the last number)
    }
    Some((nums[0] as usize, nums[1], nums[2]))
}

async fn answer_iq(bytes: &[u8], sh: &Shared, wr: &Writer) {
    let Ok(e) = parse_element(bytes, "jabber:client") else {
        return;
    };
    match (e.attr("type"), e.attr("id")) {
        (Some("get"), _) if e.child_ns("ping", "urn:xmpp:ping").is_some() => {
            let reply = format!(
                "<iq type='result' id='{}' to='{}'/>",
                escape(e.attr("id").unwrap_or("")),
                escape(e.attr("from").unwrap_or(""))
            );
            let _ = wr.lock().await.write_all(reply.as_bytes()).await;
        }
        (Some("result"), Some("cfg1")) => sh.config_state.store(1, Ordering::Relaxed),
        (Some("error"), Some("cfg1")) => {
            eprintln!("room configuration refused: {}", String::from_utf8_lossy(bytes));
            sh.config_state.store(2, Ordering::Relaxed)
        }
        _ => {}
    }
}

/// Who posts message `seq`: the occupant JIDs of the posters, round-robin.
struct Posters {
    from: Vec<Vec<u8>>,
}

impl Posters {
    fn new(room: &str, first: u64, k: u64) -> Self {
        Posters {
            from: (0..k)
                .map(|i| format!("{room}/u{}", first + i).into_bytes())
                .collect(),
        }
    }

    fn of(&self, seq: u64) -> &[u8] {
        &self.from[(seq % self.from.len() as u64) as usize]
    }
}

/// One bench message seen by occupant `row`: counted once for its step, from its poster,
/// unless it comes back as an error.
fn on_bench_message(s: &[u8], mark_at: usize, row: usize, sh: &Shared, posters: &Posters) {
    let Some((step, seq, ts)) = parse_mark(&s[mark_at + MARK.len()..]) else {
        sh.foreign.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Some(st) = sh.steps.get(step) else {
        sh.foreign.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if start_tag_is_error(s) {
        // A bounce copies the body: a refusal, not a delivery.
        st.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let from_poster = xml::start_tag_attr(s, b"from") == Some(posters.of(seq));
    if !from_poster || !st.arrived(row, seq, now_us(), ts) {
        sh.foreign.fetch_add(1, Ordering::Relaxed);
    }
}

/// One occupant's receive loop (aborted at the end of the run).
async fn reader(mut r: StanzaReader, row: usize, sh: Arc<Shared>, posters: Arc<Posters>, wr: Writer) {
    loop {
        loop {
            let (a, b) = match r.sp.next_frame() {
                Ok(Some(Frame::Stanza(a, b))) => (a, b),
                Ok(Some(Frame::StreamOpen(..))) => continue,
                Ok(None) => break,
                Ok(Some(Frame::StreamClose)) | Err(_) => {
                    sh.disconnects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let s = &r.sp.buf[a..b];
            if s.starts_with(b"<message") {
                if let Some(p) = memmem::find(s, MARK) {
                    on_bench_message(s, p, row, &sh, &posters);
                } else if start_tag_is_error(s) {
                    sh.errors.fetch_add(1, Ordering::Relaxed);
                }
            } else if s.starts_with(b"<presence") {
                sh.presence.fetch_add(1, Ordering::Relaxed);
                if start_tag_is_error(s) {
                    if sh.join_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("join refused: {}", String::from_utf8_lossy(s));
                    }
                } else if has_status(s, b"110") {
                    if has_status(s, b"201") {
                        sh.created.fetch_add(1, Ordering::Relaxed);
                    }
                    sh.joined.fetch_add(1, Ordering::Relaxed);
                    sh.last_join_us.fetch_max(now_us(), Ordering::Relaxed);
                }
            } else if s.starts_with(b"<iq") {
                let bytes = s.to_vec();
                answer_iq(&bytes, &sh, &wr).await;
            } else if s.starts_with(b"<stream:error") || s.starts_with(b"<error") {
                eprintln!("stream error: {}", String::from_utf8_lossy(s));
            }
        }
        r.sp.prepare_read(16384);
        match r.rd.read_buf(&mut r.sp.buf).await {
            Ok(0) | Err(_) => {
                sh.disconnects.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Poll `v()` until it reaches `target`, or it has not moved for `quiet`,
/// or `overall` has passed. Returns whether the target was reached.
async fn wait_for(v: impl Fn() -> u64, target: u64, quiet: Duration, overall: Duration) -> bool {
    let start = Instant::now();
    let mut last = v();
    let mut moved = Instant::now();
    loop {
        let x = v();
        if x >= target {
            return true;
        }
        if x != last {
            last = x;
            moved = Instant::now();
        }
        if moved.elapsed() >= quiet || start.elapsed() >= overall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll until `done()`, or `progress()` has not moved for `quiet`, or
/// `overall` has passed. Returns whether `done()` became true.
async fn wait_progress(
    done: impl Fn() -> bool,
    progress: impl Fn() -> u64,
    quiet: Duration,
    overall: Duration,
) -> bool {
    let start = Instant::now();
    let mut last = progress();
    let mut moved = Instant::now();
    loop {
        if done() {
            return true;
        }
        let x = progress();
        if x != last {
            last = x;
            moved = Instant::now();
        }
        if moved.elapsed() >= quiet || start.elapsed() >= overall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Post `rate` room messages/s for `dur`, round-robin over the posters.
/// Timestamps are taken at send time. Returns the number of messages sent.
async fn post(posters: &[Writer], room: &str, step: usize, rate: f64, dur: Duration) -> u64 {
    let k = posters.len();
    let mut bufs: Vec<Vec<u8>> = vec![Vec::with_capacity(4096); k];
    let head = format!("<message to='{}' type='groupchat'>{}", escape(room), "<body>sbm ");
    let t0 = Instant::now();
    let mut j: u64 = 0;
    let mut num = itoa::Buffer::new();
    loop {
        let el = t0.elapsed();
        if el >= dur {
            break;
        }
        let due = (el.as_secs_f64() * rate).floor() as u64 + 1;
        let ts = now_us();
        while j < due {
            let b = &mut bufs[(j % k as u64) as usize];
            b.extend_from_slice(head.as_bytes());
            b.extend_from_slice(num.format(step).as_bytes());
            b.push(b' ');
            b.extend_from_slice(num.format(j).as_bytes());
            b.push(b' ');
            b.extend_from_slice(num.format(ts).as_bytes());
            b.extend_from_slice(b"</body></message>");
            j += 1;
        }
        for (w, b) in posters.iter().zip(bufs.iter_mut()) {
            if !b.is_empty() {
                if w.lock().await.write_all(b).await.is_err() {
                    return j;
                }
                b.clear();
            }
        }
        let next = t0 + Duration::from_secs_f64(j as f64 / rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    j
}

/// Outcome of one rate step.
struct StepResult {
    offered: f64,
    sent_rate: f64,
    delivered_per_sec: f64,
    lost: u64,
    duplicates: u64,
    errors: u64,
    p50: f64,
    p99: f64,
    cpu_per_delivery_us: f64,
    server_util: f64,
    bench_util: f64,
    kept_up: bool,
}

pub async fn run(a: MucArgs) -> Result<()> {
    let n = a.occupants;
    let k = a.posters.clamp(1, n.max(1));
    if n < 2 {
        bail!("--occupants must be at least 2");
    }
    let limit = stats::raise_nofile();
    if limit < n + 64 {
        eprintln!("warning: open-file limit {limit} is low for {n} occupants");
    }
    let t = a.common.target();
    let pids = a.measure.server_pid.clone();
    let first = a.common.first;
    let room = format!(
        "{}@{}",
        a.room.clone().unwrap_or_else(|| format!("bench{n}")),
        a.service
    );
    if !a.measure.no_prefetch {
        prefetch_salts(&t, first, n, a.common.concurrency).await;
    }

    // Log everybody in (not measured).
    let login_start = Instant::now();
    let sessions = for_each_user(first, n, a.common.concurrency, |u| {
        let t = t.clone();
        async move {
            let resource = format!("{}{}", t.resource, u);
            client::login(&t, u, &resource, true).await
        }
    })
    .await;
    let failed = summarize_errors("login", sessions.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} of {n} logins failed");
    }
    eprintln!(
        "{n} occupants logged in in {:.1}s",
        login_start.elapsed().as_secs_f64()
    );

    let max_runs = (a.max_steps as usize) * (1 + a.retries as usize) + a.refine as usize;
    let sh = Arc::new(Shared {
        joined: AtomicU64::new(0),
        last_join_us: AtomicU64::new(0),
        presence: AtomicU64::new(0),
        created: AtomicU64::new(0),
        join_errors: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        config_state: AtomicU64::new(0),
        steps: (0..max_runs).map(|_| StepStats::new()).collect(),
    });
    let mut writers: Vec<Writer> = Vec::new();
    let mut tasks = Vec::new();
    let poster_jids = Arc::new(Posters::new(&room, first, k));
    for (row, s) in sessions.into_iter().enumerate() {
        let s = s?;
        let w = Arc::new(Mutex::new(s.wr));
        tasks.push(tokio::spawn(reader(
            s.reader,
            row,
            sh.clone(),
            poster_jids.clone(),
            w.clone(),
        )));
        writers.push(w);
    }
    // Let the logins' own traffic (initial presence echoes) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let presence_before = sh.presence.load(Ordering::Relaxed);

    let join = |i: u64| {
        format!(
            "<presence to='{}/u{}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>",
            escape(&room),
            first + i
        )
    };
    let quiet = Duration::from_secs_f64(a.quiet);
    let overall = Duration::from_secs_f64(a.join_timeout);
    let foreign = stats::Foreign::start(&pids, sample_pids(&pids)?);

    // The owner creates the room and accepts the default configuration.
    let cpu0 = sample_pids(&pids)?;
    let t0 = Instant::now();
    writers[0].lock().await.write_all(join(0).as_bytes()).await?;
    if !wait_for(
        || sh.joined.load(Ordering::Relaxed) + sh.join_errors.load(Ordering::Relaxed),
        1,
        quiet,
        overall,
    )
    .await
        || sh.join_errors.load(Ordering::Relaxed) > 0
    {
        bail!("the owner could not create {room}");
    }
    if sh.created.load(Ordering::Relaxed) > 0 {
        let form = format!(
            "<iq type='set' id='cfg1' to='{}'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>",
            escape(&room)
        );
        writers[0].lock().await.write_all(form.as_bytes()).await?;
        wait_for(|| sh.config_state.load(Ordering::Relaxed), 1, quiet, overall).await;
        if sh.config_state.load(Ordering::Relaxed) != 1 {
            bail!("the room configuration was not accepted");
        }
    } else {
        eprintln!("note: {room} already existed (no status 201)");
    }
    let create_s = t0.elapsed().as_secs_f64();

    // Join storm: everybody else at once.
    let storm_start = Instant::now();
    let storm_start_us = now_us();
    for (i, w) in writers.iter().enumerate().skip(1) {
        w.lock().await.write_all(join(i as u64).as_bytes()).await?;
    }
    // Progress is any presence: a slow server may send thousands of other
    // occupants' presence between two joins.
    let all_joined = wait_progress(
        || sh.joined.load(Ordering::Relaxed) + sh.join_errors.load(Ordering::Relaxed) >= n,
        || sh.presence.load(Ordering::Relaxed),
        Duration::from_secs_f64(a.join_quiet),
        overall,
    )
    .await
        && sh.join_errors.load(Ordering::Relaxed) == 0;
    let join_all_s = (sh
        .last_join_us
        .load(Ordering::Relaxed)
        .saturating_sub(storm_start_us)) as f64
        / 1e6;
    // Protocol minimum for the whole storm: N² presences.
    let expected_presence = n * n;
    let settled = wait_for(
        || sh.presence.load(Ordering::Relaxed) - presence_before,
        expected_presence,
        Duration::from_secs(3).min(quiet),
        overall.saturating_sub(storm_start.elapsed()),
    )
    .await;
    let settled_s = storm_start.elapsed().as_secs_f64();
    // Catch presences beyond the protocol's own (a server that sends more).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu1 = sample_pids(&pids)?;
    let presence_rx = sh.presence.load(Ordering::Relaxed) - presence_before;
    let joined = sh.joined.load(Ordering::Relaxed);
    eprintln!(
        "join storm: {joined} of {n} joined in {join_all_s:.2}s ({} refused); {presence_rx} presences ({:.2} per join, protocol minimum {n}){}",
        sh.join_errors.load(Ordering::Relaxed),
        presence_rx as f64 / n as f64,
        if settled { "" } else { " (presence did not settle)" }
    );

    let mut r = Report::new(&a.measure.label, &format!("muc-{n}"));
    r.add("occupants", n as f64, "");
    r.add("posters", k as f64, "");
    r.add("room_create_s", create_s, "s");
    r.add("join_all_s", if all_joined { join_all_s } else { f64::NAN }, "s");
    r.add("join_settled_s", if settled { settled_s } else { f64::NAN }, "s");
    r.add("presence_per_join", presence_rx as f64 / n as f64, "");
    r.add("presence_per_join_vs_n", presence_rx as f64 / (n * n) as f64, "x");
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        r.add(
            "server_cpu_per_join_ms",
            (c1.cpu - c0.cpu) * 1000.0 / n as f64,
            "ms",
        );
    }
    if !all_joined {
        r.add("join_errors", sh.join_errors.load(Ordering::Relaxed) as f64, "");
        finish(&a, &r, &foreign, &pids)?;
        for tk in tasks {
            tk.abort();
        }
        bail!("only {joined} of {n} occupants joined");
    }

    // Stepped load.
    let posters: Vec<Writer> = writers.iter().take(k as usize).cloned().collect();
    let step_dur = Duration::from_secs_f64(a.step_secs);
    let mut results: Vec<StepResult> = Vec::new();
    let mut offered = a.start_rate;
    let mut steps_done = 0;
    let mut retried = 0;
    // Highest kept-up and lowest confirmed-failed offered rate.
    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    let mut refine_left = a.refine;
    let mut expected_total = 0u64;
    for idx in 0..max_runs {
        let msg_rate = offered / n as f64;
        let st = &sh.steps[idx];
        let c0 = sample_pids(&pids)?;
        let b0 = stats::self_cpu();
        // `post` sends at most ⌊rate × duration⌋ + 1 messages.
        let most = (msg_rate * step_dur.as_secs_f64()).ceil() as u64 + 2;
        let _ = st.seen.set(SharedSeen::new(n as usize, most));
        let start = Instant::now();
        let start_us = now_us();
        let sent = post(&posters, &room, idx, msg_rate, step_dur).await;
        let send_wall = start.elapsed().as_secs_f64();
        let expected = sent * n;
        expected_total += expected;
        let drain = Duration::from_secs_f64(a.drain);
        wait_for(|| st.deliveries.load(Ordering::Relaxed), expected, drain, drain).await;
        let wall = start.elapsed().as_secs_f64();
        let c1 = sample_pids(&pids)?;
        let bench_cpu = stats::self_cpu() - b0;
        // Each occupant's distinct messages among those actually sent: never above `expected`.
        let delivered = st.seen.get().map_or(0, |seen| seen.count_below(sent));
        let active = (st.last_rx_us.load(Ordering::Relaxed).saturating_sub(start_us)) as f64 / 1e6;
        let (cpu_us, util) = match (c0, c1) {
            (Some(c0), Some(c1)) if delivered > 0 => (
                (c1.cpu - c0.cpu) * 1e6 / delivered as f64,
                (c1.cpu - c0.cpu) * 100.0 / wall,
            ),
            _ => (f64::NAN, f64::NAN),
        };
        let sent_rate = sent as f64 / send_wall;
        let lost = expected
            .checked_sub(delivered)
            .expect("delivered counts distinct (occupant, message) pairs that were sent");
        let duplicates = st.duplicates.load(Ordering::Relaxed);
        let errors = st.errors.load(Ordering::Relaxed);
        let p99 = st.percentile_ms(99.0);
        let disconnected = sh.disconnects.load(Ordering::Relaxed) > 0;
        let kept_up = lost == 0
            && duplicates == 0
            && errors == 0
            && p99 < a.p99_limit_ms
            && sent_rate >= 0.95 * msg_rate
            && !disconnected;
        let res = StepResult {
            offered,
            sent_rate,
            delivered_per_sec: if active > 0.0 {
                delivered as f64 / active
            } else {
                0.0
            },
            lost,
            duplicates,
            errors,
            p50: st.percentile_ms(50.0),
            p99,
            cpu_per_delivery_us: cpu_us,
            server_util: util,
            bench_util: bench_cpu * 100.0 / wall,
            kept_up,
        };
        println!(
            "{:>10.0} {:>10.1} {:>10.0} {:>8} {:>6} {:>6} {:>9.2} {:>9.2} {:>11.2} {:>8.0} {:>8.0}  {}",
            res.offered,
            res.sent_rate,
            res.delivered_per_sec,
            res.lost,
            res.duplicates,
            res.errors,
            res.p50,
            res.p99,
            res.cpu_per_delivery_us,
            res.server_util,
            res.bench_util,
            if kept_up { "yes" } else { "NO" }
        );
        results.push(res);
        if disconnected {
            eprintln!(
                "{} occupants were disconnected: stopping",
                sh.disconnects.load(Ordering::Relaxed)
            );
            break;
        }
        if hi.is_none() {
            // Ramping up; a failure is retried once at the same rate.
            if kept_up {
                lo = Some(offered);
                offered *= a.factor;
                steps_done += 1;
                retried = 0;
                if steps_done >= a.max_steps {
                    break;
                }
            } else if retried < a.retries {
                retried += 1;
            } else {
                hi = Some(offered);
            }
        } else if kept_up {
            lo = Some(offered);
        } else {
            hi = Some(offered);
        }
        if let Some(h) = hi {
            // Bisect (geometrically) between the best kept-up and failed rates.
            let Some(l) = lo else { break };
            if refine_left == 0 {
                break;
            }
            refine_left -= 1;
            offered = (l * h).sqrt();
        }
        if !kept_up {
            // Let the backlog of the failed step drain before the next one.
            let total = || {
                sh.steps
                    .iter()
                    .map(|s| s.deliveries.load(Ordering::Relaxed))
                    .sum::<u64>()
            };
            wait_for(
                total,
                expected_total,
                Duration::from_secs(5),
                Duration::from_secs(60),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let best = results
        .iter()
        .filter(|s| s.kept_up)
        .max_by(|x, y| x.delivered_per_sec.total_cmp(&y.delivered_per_sec));
    r.add(
        "steps_kept_up",
        results.iter().filter(|s| s.kept_up).count() as f64,
        "",
    );
    match best {
        Some(b) => {
            r.add("deliveries_per_sec", b.delivered_per_sec, "/s");
            r.add("offered_deliveries_per_sec", b.offered, "/s");
            r.add("latency_p50_ms", b.p50, "ms");
            r.add("latency_p99_ms", b.p99, "ms");
            r.add("server_cpu_per_delivery_us", b.cpu_per_delivery_us, "us");
            r.add("server_cpu_util_pct", b.server_util, "%");
            r.add("bench_cpu_util_pct", b.bench_util, "%");
        }
        None => {
            r.add("deliveries_per_sec", f64::NAN, "/s");
            if let Some(f) = results.first() {
                r.add("offered_deliveries_per_sec", f.offered, "/s");
                r.add("latency_p99_ms", f.p99, "ms");
                r.add("server_cpu_per_delivery_us", f.cpu_per_delivery_us, "us");
            }
        }
    }
    // The lowest failed rate above the best kept-up one: how it failed.
    let floor = best.map_or(0.0, |b| b.offered);
    if let Some(f) = results
        .iter()
        .filter(|s| !s.kept_up && s.offered > floor)
        .min_by(|x, y| x.offered.total_cmp(&y.offered))
    {
        r.add("failed_offered_per_sec", f.offered, "/s");
        r.add("failed_p99_ms", f.p99, "ms");
        r.add("failed_lost", f.lost as f64, "");
        r.add("failed_duplicates", f.duplicates as f64, "");
        r.add("failed_errors", f.errors as f64, "");
    }
    r.add("disconnects", sh.disconnects.load(Ordering::Relaxed) as f64, "");
    r.add("error_stanzas", sh.errors.load(Ordering::Relaxed) as f64, "");
    let step_errors: u64 = sh.steps.iter().map(|s| s.errors.load(Ordering::Relaxed)).sum();
    r.add("bounced_messages", step_errors as f64, "");
    let duplicates: u64 = sh
        .steps
        .iter()
        .map(|s| s.duplicates.load(Ordering::Relaxed))
        .sum();
    r.add("duplicates", duplicates as f64, "");
    r.add("foreign", sh.foreign.load(Ordering::Relaxed) as f64, "");
    finish(&a, &r, &foreign, &pids)?;
    for tk in tasks {
        tk.abort();
    }
    for w in &writers {
        if let Ok(mut w) = w.try_lock() {
            let _ = w.write_all(b"</stream:stream>").await;
        }
    }
    Ok(())
}

fn finish(a: &MucArgs, r: &Report, foreign: &stats::Foreign, pids: &[u32]) -> Result<()> {
    let mut r2 = Report::new(&r.label, &r.scenario);
    r2.add_rows(r);
    foreign.report(&mut r2, sample_pids(pids)?);
    r2.print();
    if let Some(out) = &a.measure.out {
        r2.append_to(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marker() {
        assert_eq!(parse_mark(b"3 17 123456</body>"), Some((3, 17, 123456)));
        assert_eq!(parse_mark(b"x</body>"), None);
    }

    #[test]
    fn finds_status_and_error() {
        let p = b"<presence from='r@c/u1'><x xmlns='http://jabber.org/protocol/muc#user'><status code=\"110\"/><status code='201'/></x></presence>";
        assert!(has_status(p, b"110"));
        assert!(has_status(p, b"201"));
        assert!(!has_status(p, b"100"));
        assert!(!start_tag_is_error(p));
        assert!(start_tag_is_error(
            b"<presence type=\"error\" from='x'><error/></presence>"
        ));
    }

    fn shared(steps: usize) -> Shared {
        Shared {
            joined: AtomicU64::new(0),
            last_join_us: AtomicU64::new(0),
            presence: AtomicU64::new(0),
            created: AtomicU64::new(0),
            join_errors: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            config_state: AtomicU64::new(0),
            steps: (0..steps).map(|_| StepStats::new()).collect(),
        }
    }

    fn message(from: &str, typ: &str, body: &str) -> Vec<u8> {
        format!("<message from='{from}' to='u3@localhost/b'{typ}><body>{body}</body></message>").into_bytes()
    }

    fn feed(sh: &Shared, posters: &Posters, row: usize, m: &[u8]) {
        let at = memmem::find(m, MARK).expect("a bench message");
        on_bench_message(m, at, row, sh, posters);
    }

    #[test]
    fn each_delivery_counts_once_and_bounces_never() {
        let sh = shared(2);
        let _ = sh.steps[0].seen.set(SharedSeen::new(3, 10));
        // Two posters, u1 and u2: message 0 is u1's, message 1 is u2's.
        let posters = Posters::new("r@c", 1, 2);
        feed(&sh, &posters, 0, &message("r@c/u1", "", "sbm 0 0 5"));
        feed(&sh, &posters, 1, &message("r@c/u1", "", "sbm 0 0 5"));
        feed(&sh, &posters, 1, &message("r@c/u2", "", "sbm 0 1 5"));
        // The same message again: a duplicate, not a second delivery.
        feed(&sh, &posters, 1, &message("r@c/u2", "", "sbm 0 1 5"));
        // A bounce copying the body: an error of the step, no delivery.
        feed(&sh, &posters, 2, &message("r@c", " type='error'", "sbm 0 0 5"));
        // Wrong poster, a step not started, a number beyond the step: foreign.
        feed(&sh, &posters, 2, &message("r@c/u2", "", "sbm 0 0 5"));
        feed(&sh, &posters, 2, &message("r@c/u1", "", "sbm 1 0 5"));
        feed(&sh, &posters, 2, &message("r@c/u1", "", "sbm 0 10 5"));
        let st = &sh.steps[0];
        assert_eq!(st.deliveries.load(Ordering::Relaxed), 3);
        assert_eq!(st.seen.get().unwrap().count_below(2), 3);
        assert_eq!(st.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(st.errors.load(Ordering::Relaxed), 1);
        assert_eq!(sh.foreign.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn histogram_percentiles() {
        let s = StepStats::new();
        for i in 0..100 {
            s.record(1000 + i * 100, 1000);
        }
        // The 50th of 0, 100, .. 9900 µs is 4900 µs: its bucket ends at 4.91 ms.
        assert!((s.percentile_ms(50.0) - 4.91).abs() < 0.001);
        assert!((s.percentile_ms(99.0) - 9.81).abs() < 0.001);
    }
}
