//! `login-idle`: N clients log in and stay connected.

use crate::client::{self, Session};
use crate::stats::{self, Report, percentile, sample_pids};
use crate::xml::{Frame, TopName, parse_element, quick_inspect};
use crate::{Common, Measure, prefetch_salts, summarize_errors};
use anyhow::{Result, anyhow};
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Args)]
pub struct LoginIdleArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    /// Number of sessions to establish.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Seconds to wait after the last login before sampling server memory.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to keep the sessions open after sampling.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

/// Keep a session open: answer pings, discard everything else, until told
/// to stop. Returns false if the server dropped the session.
async fn idle(mut s: Session, mut stop: watch::Receiver<bool>) -> bool {
    s.reader.sp.shrink(512);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = s.wr.write_all(b"</stream:stream>").await;
                let _ = s.wr.shutdown().await;
                return true;
            }
            f = s.reader.next() => match f {
                Ok(Frame::Stanza(a, b)) => {
                    let bytes = &s.reader.sp.buf[a..b];
                    let is_ping = matches!(quick_inspect(bytes), Ok(i) if i.ping && i.name == TopName::Iq);
                    if is_ping
                        && let Ok(e) = parse_element(bytes, "jabber:client")
                        && e.attr("type") == Some("get")
                    {
                        let reply = format!(
                            "<iq type='result' id='{}' to='{}'/>",
                            crate::xml::escape(e.attr("id").unwrap_or("")),
                            crate::xml::escape(e.attr("from").unwrap_or(""))
                        );
                        if s.wr.write_all(reply.as_bytes()).await.is_err() {
                            return false;
                        }
                    }
                }
                Ok(Frame::StreamOpen(..)) => {}
                Ok(Frame::StreamClose) | Err(_) => return false,
            }
        }
    }
}

pub async fn run(a: LoginIdleArgs) -> Result<()> {
    let limit = stats::raise_nofile();
    if limit < a.count + 64 {
        eprintln!(
            "warning: open-file limit {limit} is below count {} + 64; raise `ulimit -n`",
            a.count
        );
    }
    let t = a.common.target();
    let pids = a.measure.server_pid.clone();
    if !a.measure.no_prefetch {
        prefetch_salts(&t, a.common.first, a.count, a.common.concurrency).await;
    }
    let salts_before = t.salts.len();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (res_tx, mut res_rx) = mpsc::unbounded_channel::<Result<u32>>();
    let dropped = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(a.common.concurrency.max(1)));
    let mut handles = Vec::with_capacity(a.count as usize);

    let before = sample_pids(&pids)?;
    let foreign = stats::Foreign::start(&pids, before);
    let bench_cpu0 = stats::self_cpu();
    let start = Instant::now();
    for n in a.common.first..a.common.first + a.count {
        let permit = sem.clone().acquire_owned().await?;
        let t = t.clone();
        let res_tx = res_tx.clone();
        let stop = stop_rx.clone();
        let dropped = dropped.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let resource = format!("{}{}", t.resource, n);
            let r = client::login(&t, n, &resource, true).await;
            drop(permit);
            match r {
                Ok(s) => {
                    let _ = res_tx.send(Ok(t0.elapsed().as_micros() as u32));
                    if !idle(s, stop).await {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let _ = res_tx.send(Err(e));
                }
            }
        }));
    }
    drop(res_tx);
    let mut lat = Vec::with_capacity(a.count as usize);
    let mut errs = Vec::new();
    for _ in 0..a.count {
        match res_rx.recv().await {
            Some(Ok(us)) => lat.push(us),
            Some(Err(e)) => errs.push(e),
            None => break,
        }
    }
    let login_wall = start.elapsed();
    let bench_cpu = stats::self_cpu() - bench_cpu0;
    let at_end = sample_pids(&pids)?;
    let mut disturb = Report::new("", "");
    foreign.report(&mut disturb, at_end);
    let failed = summarize_errors("login", errs.iter());
    let ok = lat.len() as u64;
    if t.mech == client::Mech::ScramSha1 && t.salts.len() > salts_before {
        eprintln!(
            "note: {} PBKDF2 computations happened inside the measured phase (server uses a fresh salt per login?)",
            t.salts.len() - salts_before
        );
    }

    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let after = sample_pids(&pids)?;
    let still = ok - dropped.load(Ordering::Relaxed);

    let mut r = Report::new(&a.measure.label, "login-idle");
    lat.sort_unstable();
    r.add("sessions_ok", ok as f64, "");
    r.add("sessions_failed", failed as f64, "");
    r.add("logins_per_sec", ok as f64 / login_wall.as_secs_f64(), "/s");
    r.add("login_p50_ms", percentile(&lat, 50.0) / 1000.0, "ms");
    r.add("login_p99_ms", percentile(&lat, 99.0) / 1000.0, "ms");
    if let (Some(b), Some(af)) = (before, after) {
        r.add("server_rss_before_mb", b.rss as f64 / 1048576.0, "MiB");
        r.add("server_rss_after_mb", af.rss as f64 / 1048576.0, "MiB");
        if still > 0 {
            r.add(
                "mem_per_session_kb",
                (af.rss as f64 - b.rss as f64) / 1024.0 / still as f64,
                "KiB",
            );
        }
        if ok > 0 {
            r.add(
                "server_cpu_per_login_ms",
                (af.cpu - b.cpu) * 1000.0 / ok as f64,
                "ms",
            );
        }
        if let Some(e) = at_end {
            r.add(
                "server_cpu_util_pct",
                (e.cpu - b.cpu) * 100.0 / login_wall.as_secs_f64(),
                "%",
            );
        }
    }
    r.add(
        "bench_cpu_util_pct",
        bench_cpu * 100.0 / login_wall.as_secs_f64(),
        "%",
    );

    r.add_rows(&disturb);
    if a.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    }
    r.add("sessions_dropped", dropped.load(Ordering::Relaxed) as f64, "");
    r.print();
    if let Some(out) = &a.measure.out {
        r.append_to(out)?;
    }

    let _ = stop_tx.send(true);
    let close = async {
        for h in handles {
            let _ = h.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), close)
        .await
        .is_err()
    {
        eprintln!("warning: not all sessions closed within 10s");
    }
    if ok == 0 {
        return Err(anyhow!("no session could log in"));
    }
    Ok(())
}
