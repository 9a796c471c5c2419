//! `presence-setup` and `presence`: U users, each with K mutual contacts.
//!
//! Contacts form a ring: user i is subscribed both ways to users
//! i±1 .. i±K/2 (mod U), so every user has exactly K contacts.

use crate::client::Conn;
use crate::client::{self, Session, StanzaReader};
use crate::stats::{self, Report, now_us, percentile, sample_pids};
use crate::xml::{Frame, StanzaType, TopName, escape, parse_element, quick_inspect};
use crate::{Common, Measure, for_each_user, prefetch_salts, summarize_errors};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

#[derive(Args, Clone)]
pub struct RosterShape {
    /// Number of users (accounts first..first+users-1).
    #[arg(long = "user-count", default_value_t = 1000)]
    pub user_count: u64,
    /// Mutual contacts per user (even, less than --user-count).
    #[arg(long, default_value_t = 20)]
    pub contacts: u64,
}

impl RosterShape {
    fn check(&self) -> Result<()> {
        if !self.contacts.is_multiple_of(2) || self.contacts == 0 || self.contacts >= self.user_count {
            bail!("--contacts must be even, positive and below --user-count");
        }
        Ok(())
    }

    /// Indices (0-based) of the contacts of user `i`.
    fn contacts_of(&self, i: u64) -> impl Iterator<Item = u64> + '_ {
        let u = self.user_count;
        (1..=self.contacts / 2).flat_map(move |d| [(i + d) % u, (i + u - d) % u])
    }
}

#[derive(Args)]
pub struct SetupArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    shape: RosterShape,
    /// Give up waiting for a phase after this many seconds without progress.
    #[arg(long, default_value_t = 10.0)]
    quiet: f64,
}

#[derive(Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    #[command(flatten)]
    shape: RosterShape,
    /// Seconds of presence updates.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Presence updates per user per second.
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Seconds to wait for outstanding deliveries after the updates stop.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Give up waiting for initial presence after this many seconds without progress.
    #[arg(long, default_value_t = 5.0)]
    quiet: f64,
}

fn bare(t: &client::Target, n: u64) -> String {
    format!("{}@{}", t.username(n), t.domain)
}

/// Wait until `done()` or until `counter()` has not moved for `quiet`.
async fn wait_progress(total: impl Fn() -> u64, target: u64, quiet: Duration, overall: Duration) -> bool {
    let start = Instant::now();
    let mut last = total();
    let mut last_change = Instant::now();
    loop {
        let v = total();
        if v >= target {
            return true;
        }
        if v != last {
            last = v;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= quiet || start.elapsed() >= overall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn login_all(
    t: &Arc<client::Target>,
    first: u64,
    count: u64,
    concurrency: usize,
) -> Result<Vec<Session>> {
    let sessions = for_each_user(first, count, concurrency, |n| {
        let t = t.clone();
        async move {
            let resource = format!("{}{}", t.resource, n);
            client::login(&t, n, &resource, true).await
        }
    })
    .await;
    let failed = summarize_errors("login", sessions.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} of {count} logins failed");
    }
    Ok(sessions.into_iter().map(|r| r.unwrap()).collect())
}

#[derive(Default)]
struct SetupUser {
    requesters: Mutex<Vec<String>>,
    /// Stanzas received, of any kind.
    rx: AtomicU64,
    roster_both: AtomicU64,
    roster_done: AtomicBool,
    roster_error: AtomicBool,
}

async fn setup_reader(mut r: StanzaReader, st: Arc<SetupUser>, mut stop: watch::Receiver<bool>) {
    loop {
        let f = tokio::select! {
            f = r.next() => f,
            _ = stop.changed() => return,
        };
        let (a, b) = match f {
            Ok(Frame::Stanza(a, b)) => (a, b),
            Ok(Frame::StreamOpen(..)) => continue,
            _ => return,
        };
        st.rx.fetch_add(1, Ordering::Relaxed);
        let Ok(e) = parse_element(&r.sp.buf[a..b], "jabber:client") else {
            continue;
        };
        match (e.name.as_str(), e.attr("type")) {
            ("presence", Some("subscribe")) => {
                if let Some(from) = e.attr("from") {
                    let from = from.split('/').next().unwrap_or(from).to_string();
                    st.requesters.lock().unwrap().push(from);
                }
            }
            ("iq", Some("result")) if e.attr("id") == Some("roster1") => {
                let both = e
                    .child_ns("query", "jabber:iq:roster")
                    .map(|q| {
                        q.children
                            .iter()
                            .filter(|i| i.attr("subscription") == Some("both"))
                            .count()
                    })
                    .unwrap_or(0);
                st.roster_both.store(both as u64, Ordering::Relaxed);
                st.roster_done.store(true, Ordering::Relaxed);
            }
            ("iq", Some("error")) if e.attr("id") == Some("roster1") => {
                st.roster_error.store(true, Ordering::Relaxed);
                st.roster_done.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Create the mutual subscriptions (not measured).
pub async fn setup(a: SetupArgs) -> Result<()> {
    a.shape.check()?;
    stats::raise_nofile();
    let t = a.common.target();
    let u = a.shape.user_count;
    let first = a.common.first;
    let start = Instant::now();
    let sessions = login_all(&t, first, u, a.common.concurrency).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut users = Vec::new();
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    for s in sessions {
        let st = Arc::new(SetupUser::default());
        tasks.push(tokio::spawn(setup_reader(s.reader, st.clone(), stop_rx.clone())));
        users.push(st);
        writers.push(s.wr);
    }
    let quiet = Duration::from_secs_f64(a.quiet);
    let overall = Duration::from_secs(600);
    let expected = u * a.shape.contacts;

    // Phase 1: everybody asks every contact for a subscription.
    for (i, w) in writers.iter_mut().enumerate() {
        let mut buf = String::new();
        for c in a.shape.contacts_of(i as u64) {
            buf.push_str(&format!(
                "<presence to='{}' type='subscribe'/>",
                escape(&bare(&t, first + c))
            ));
        }
        w.write_all(buf.as_bytes()).await?;
    }
    let requests = || -> u64 {
        users
            .iter()
            .map(|s| s.requesters.lock().unwrap().len() as u64)
            .sum()
    };
    let ok1 = wait_progress(requests, expected, quiet, overall).await;
    eprintln!(
        "phase 1: {} of {expected} subscription requests delivered{}",
        requests(),
        if ok1 {
            ""
        } else {
            " (stalled; already subscribed?)"
        }
    );

    // Phase 2: approve every request.
    for (st, w) in users.iter().zip(writers.iter_mut()) {
        let reqs = std::mem::take(&mut *st.requesters.lock().unwrap());
        let mut buf = String::new();
        for from in reqs {
            buf.push_str(&format!("<presence to='{}' type='subscribed'/>", escape(&from)));
        }
        w.write_all(buf.as_bytes()).await?;
    }
    // Servers differ in what they send the requester on approval (a
    // 'subscribed' presence, the contact's available presence, roster
    // pushes), so wait for the traffic to calm down, then poll the rosters.
    let rx_any = || -> u64 { users.iter().map(|s| s.rx.load(Ordering::Relaxed)).sum() };
    wait_progress(rx_any, u64::MAX, quiet.min(Duration::from_secs(2)), overall).await;
    let k = a.shape.contacts;
    let mut complete_before = 0;
    let mut stalled_rounds = 0;
    loop {
        let pending: Vec<usize> = (0..users.len())
            .filter(|&i| users[i].roster_both.load(Ordering::Relaxed) < k)
            .collect();
        if pending.is_empty() {
            break;
        }
        for &i in &pending {
            users[i].roster_done.store(false, Ordering::Relaxed);
            writers[i]
                .write_all(b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
                .await?;
        }
        let answered = || -> u64 {
            pending
                .iter()
                .filter(|&&i| users[i].roster_done.load(Ordering::Relaxed))
                .count() as u64
        };
        wait_progress(answered, pending.len() as u64, quiet, overall).await;
        let complete = users
            .iter()
            .filter(|s| s.roster_both.load(Ordering::Relaxed) >= k)
            .count();
        eprintln!("phase 2: {complete} of {u} rosters complete");
        if users.iter().all(|s| s.roster_error.load(Ordering::Relaxed)) {
            let _ = stop_tx.send(true);
            bail!("the server answers roster requests with errors: no roster support?");
        }
        if complete == users.len() {
            break;
        }
        if complete <= complete_before {
            stalled_rounds += 1;
            if stalled_rounds >= 3 {
                break;
            }
        } else {
            stalled_rounds = 0;
        }
        complete_before = complete;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let both: Vec<u64> = users
        .iter()
        .map(|s| s.roster_both.load(Ordering::Relaxed))
        .collect();
    let complete = both.iter().filter(|&&b| b >= a.shape.contacts).count();
    let _ = stop_tx.send(true);
    for w in writers.iter_mut() {
        let _ = w.write_all(b"</stream:stream>").await;
    }
    for tk in tasks {
        let _ = tk.await;
    }
    println!(
        "roster setup: {complete} of {u} users have {} mutual contacts (min {}, in {:.1}s)",
        a.shape.contacts,
        both.iter().min().copied().unwrap_or(0),
        start.elapsed().as_secs_f64()
    );
    if complete as u64 != u {
        bail!("roster setup incomplete");
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    available: AtomicU64,
    updates: AtomicU64,
    last_rx_us: AtomicU64,
    errors: AtomicU64,
    measuring: AtomicBool,
}

/// Count initial presence, then time-stamped updates from contacts.
async fn presence_reader(
    mut r: StanzaReader,
    me: u64,
    my_bare: String,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u32> {
    let mut lat = Vec::new();
    loop {
        let f = tokio::select! {
            biased;
            f = r.next() => f,
            _ = stop.changed() => break,
        };
        let (a, b) = match f {
            Ok(Frame::Stanza(a, b)) => (a, b),
            Ok(Frame::StreamOpen(..)) => continue,
            _ => break,
        };
        let now = now_us();
        let Ok(i) = quick_inspect(&r.sp.buf[a..b]) else {
            continue;
        };
        if i.is_error {
            c.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if i.name != TopName::Presence || i.typ != StanzaType::None {
            continue;
        }
        // Updates carry "SENDER SEQ TIMESTAMP" in <status>.
        let parsed = i.body.and_then(|s| {
            let mut it = s.split(' ');
            let from: u64 = it.next()?.parse().ok()?;
            let _seq = it.next()?;
            let ts: u64 = it.next()?.parse().ok()?;
            Some((from, ts))
        });
        match parsed {
            Some((from, ts)) => {
                if from == me {
                    continue; // our own presence echoed back
                }
                if c.measuring.load(Ordering::Relaxed) {
                    lat.push(now.saturating_sub(ts).min(u32::MAX as u64) as u32);
                }
                c.updates.fetch_add(1, Ordering::Relaxed);
                c.last_rx_us.fetch_max(now, Ordering::Relaxed);
            }
            None => {
                // Initial presence: count contacts only, not our own echo.
                let own = parse_element(&r.sp.buf[a..b], "jabber:client")
                    .ok()
                    .and_then(|e| {
                        e.attr("from")
                            .map(|f| f.split('/').next() == Some(my_bare.as_str()))
                    })
                    .unwrap_or(false);
                if !own {
                    c.available.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    lat
}

async fn updater(
    mut w: Conn,
    me: u64,
    rate: f64,
    phase: Duration,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> Conn {
    let mut iv = tokio::time::interval_at(
        tokio::time::Instant::now() + phase,
        Duration::from_secs_f64(1.0 / rate),
    );
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let dl = tokio::time::Instant::from_std(deadline);
    let mut seq = 0u64;
    let mut buf = Vec::with_capacity(96);
    while tokio::time::timeout_at(dl, iv.tick()).await.is_ok() {
        if Instant::now() >= deadline {
            break;
        }
        seq += 1;
        buf.clear();
        buf.extend_from_slice(b"<presence><status>");
        let mut b = itoa::Buffer::new();
        buf.extend_from_slice(b.format(me).as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(b.format(seq).as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(b.format(now_us()).as_bytes());
        buf.extend_from_slice(b"</status></presence>");
        sent.fetch_add(1, Ordering::Relaxed);
        if w.write_all(&buf).await.is_err() {
            sent.fetch_sub(1, Ordering::Relaxed);
            break;
        }
    }
    w
}

/// Measured: log in U users with rosters, then presence updates fan out.
pub async fn run(a: PresenceArgs) -> Result<()> {
    a.shape.check()?;
    let limit = stats::raise_nofile();
    if limit < a.shape.user_count + 64 {
        eprintln!(
            "warning: open-file limit {limit} is low for {} users",
            a.shape.user_count
        );
    }
    let t = a.common.target();
    let pids = a.measure.server_pid.clone();
    let u = a.shape.user_count;
    let k = a.shape.contacts;
    let first = a.common.first;
    if !a.measure.no_prefetch {
        prefetch_salts(&t, first, u, a.common.concurrency).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let c = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let before = sample_pids(&pids)?;
    let foreign = stats::Foreign::start(&pids, before);
    let start = Instant::now();
    // Log in everybody; each reader starts right after its own login so
    // that the initial presence flood is counted.
    let sem = Arc::new(tokio::sync::Semaphore::new(a.common.concurrency.max(1)));
    let mut logins = Vec::new();
    for n in first..first + u {
        let permit = sem.clone().acquire_owned().await?;
        let t = t.clone();
        let c = c.clone();
        let stop = stop_rx.clone();
        logins.push(tokio::spawn(async move {
            let resource = format!("{}{}", t.resource, n);
            // Like a real client: fetch the roster, then go available.
            let r = async {
                let mut s = client::login(&t, n, &resource, false).await?;
                s.wr.write_all(
                    b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence/>",
                )
                .await?;
                Ok::<_, anyhow::Error>(s)
            }
            .await;
            drop(permit);
            let s = r?;
            let my_bare = bare(&t, n);
            let reader = tokio::spawn(presence_reader(s.reader, n - first, my_bare, c, stop));
            Ok::<_, anyhow::Error>((s.wr, reader))
        }));
    }
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let mut errs = Vec::new();
    for l in logins {
        match l.await? {
            Ok((w, r)) => {
                writers.push(w);
                readers.push(r);
            }
            Err(e) => errs.push(e),
        }
    }
    let login_wall = start.elapsed();
    let failed = summarize_errors("login", errs.iter());
    if failed > 0 {
        let _ = stop_tx.send(true);
        bail!("{failed} of {u} logins failed");
    }
    // Every user should see the available presence of each of its K contacts.
    let expected_avail = u * k;
    let converged = wait_progress(
        || c.available.load(Ordering::Relaxed),
        expected_avail,
        Duration::from_secs_f64(a.quiet),
        Duration::from_secs(300),
    )
    .await;
    let converge_time = start.elapsed();
    let after_login = sample_pids(&pids)?;
    let available = c.available.load(Ordering::Relaxed);
    if !converged {
        eprintln!("warning: only {available} of {expected_avail} initial presences arrived");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Presence churn.
    let mid = sample_pids(&pids)?;
    let bench_cpu0 = stats::self_cpu();
    c.measuring.store(true, Ordering::Relaxed);
    let sent = Arc::new(AtomicU64::new(0));
    let churn_start = Instant::now();
    let churn_start_us = now_us();
    let deadline = churn_start + Duration::from_secs_f64(a.duration);
    let mut ups = Vec::new();
    for (i, w) in writers.into_iter().enumerate() {
        let phase = Duration::from_secs_f64(i as f64 / u as f64 / a.rate);
        ups.push(tokio::spawn(updater(
            w,
            i as u64,
            a.rate,
            phase,
            deadline,
            sent.clone(),
        )));
    }
    let mut writers = Vec::new();
    for up in ups {
        writers.push(up.await?);
    }
    let updates_sent = sent.load(Ordering::Relaxed);
    let expected = updates_sent * k;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain);
    while c.updates.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = Instant::now();
    let after = sample_pids(&pids)?;
    let bench_cpu = stats::self_cpu() - bench_cpu0;
    let mut disturb = Report::new("", "");
    foreign.report(&mut disturb, after);
    let delivered = c.updates.load(Ordering::Relaxed);
    let last_rx = c.last_rx_us.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut lat = Vec::new();
    for r in readers {
        lat.extend_from_slice(&r.await?);
    }
    for mut w in writers {
        let _ = w.write_all(b"</stream:stream>").await;
    }
    lat.sort_unstable();

    let mut r = Report::new(&a.measure.label, "presence");
    r.add("users", u as f64, "");
    r.add("contacts_per_user", k as f64, "");
    r.add("logins_per_sec", u as f64 / login_wall.as_secs_f64(), "/s");
    r.add(
        "initial_presence_s",
        if converged {
            converge_time.as_secs_f64()
        } else {
            f64::NAN
        },
        "s",
    );
    r.add("initial_presence_rx", available as f64, "");
    r.add("updates_sent", updates_sent as f64, "");
    r.add("deliveries_expected", expected as f64, "");
    r.add("deliveries", delivered as f64, "");
    r.add("lost", expected.saturating_sub(delivered) as f64, "");
    let active = if last_rx > churn_start_us {
        (last_rx - churn_start_us) as f64 / 1e6
    } else {
        a.duration
    };
    r.add("deliveries_per_sec", delivered as f64 / active, "/s");
    r.add("latency_p50_ms", percentile(&lat, 50.0) / 1000.0, "ms");
    r.add("latency_p99_ms", percentile(&lat, 99.0) / 1000.0, "ms");
    r.add("error_stanzas", c.errors.load(Ordering::Relaxed) as f64, "");
    if let (Some(b), Some(al), Some(m), Some(af)) = (before, after_login, mid, after) {
        r.add(
            "server_cpu_per_login_ms",
            (al.cpu - b.cpu) * 1000.0 / u as f64,
            "ms",
        );
        if updates_sent > 0 {
            r.add(
                "server_cpu_per_update_us",
                (af.cpu - m.cpu) * 1e6 / updates_sent as f64,
                "us",
            );
        }
        if delivered > 0 {
            r.add(
                "server_cpu_per_delivery_us",
                (af.cpu - m.cpu) * 1e6 / delivered as f64,
                "us",
            );
        }
        r.add(
            "server_cpu_util_pct",
            (af.cpu - m.cpu) * 100.0 / end.duration_since(churn_start).as_secs_f64(),
            "%",
        );
        r.add("server_rss_mb", af.rss as f64 / 1048576.0, "MiB");
    }
    r.add(
        "bench_cpu_util_pct",
        bench_cpu * 100.0 / end.duration_since(churn_start).as_secs_f64(),
        "%",
    );
    r.add_rows(&disturb);
    r.print();
    if let Some(out) = &a.measure.out {
        r.append_to(out)?;
    }
    if delivered == 0 {
        return Err(anyhow!("no presence update was delivered"));
    }
    Ok(())
}
