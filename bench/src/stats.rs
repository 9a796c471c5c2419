//! Server / bench resource sampling and result reporting.

use anyhow::{Context, Result};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the process-wide epoch (shared by senders and receivers
/// in this process, so one-way latency needs no clock sync).
#[inline]
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Snapshot of one or more server processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Resident set size, bytes (sum over the pids).
    pub rss: u64,
    /// utime + stime, seconds (sum over the pids).
    pub cpu: f64,
}

pub fn sample_pids(pids: &[u32]) -> Result<Option<ProcSample>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut s = ProcSample::default();
    for &pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        if let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) {
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            s.rss += kb * 1024;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // Fields after the parenthesised command name start at field 3.
        let rest = &stat[stat.rfind(')').map(|i| i + 1).unwrap_or(0)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        s.cpu += (utime + stime) / clk_tck();
    }
    Ok(Some(s))
}

fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn cpus_allowed(status_path: &str) -> Vec<usize> {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(parse_cpu_list)
        })
        .unwrap_or_default()
}

/// Busy seconds (user, system, steal; not niced) of the given CPUs, from /proc/stat.
pub fn cores_busy(cpus: &[usize]) -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(Ok(n)) = f.next().map(|n| n.parse::<usize>()) else {
            continue; // the aggregate "cpu" line
        };
        if !cpus.contains(&n) {
            continue;
        }
        let v: Vec<f64> = f.map(|x| x.parse().unwrap_or(0.0)).collect();
        // user nice system idle iowait irq softirq steal (guest is in user).
        // Niced work is left out: it yields to the (un-niced or negatively
        // niced) server and bench, so it fills idle time rather than competing.
        // So are irq/softirq: mostly the loopback traffic of the run itself.
        ticks += v
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| !matches!(i, 1 | 3 | 4 | 5 | 6))
            .map(|(_, x)| x)
            .sum::<f64>();
    }
    ticks / clk_tck()
}

/// Seconds the threads of `pid` ("self" for this process) have spent
/// runnable but waiting for a CPU (sum of /proc/PID/task/*/schedstat field 2).
pub fn runq_wait(pid: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for e in dir.flatten() {
        if let Ok(st) = std::fs::read_to_string(e.path().join("schedstat")) {
            ns += st
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// Measures how much other load disturbed a phase.
///
/// Run-queue wait alone can't tell: a multi-threaded server pinned to one
/// core also waits behind its own threads (BEAM's dirty I/O schedulers, for
/// one). So the disturbance of a side (server or bench) is estimated as
/// min(its run-queue wait, CPU time others used on its cores): it can only
/// have been kept from running by others as long as others actually ran.
pub struct Foreign {
    server_cpus: Vec<usize>,
    bench_cpus: Vec<usize>,
    all_cpus: Vec<usize>,
    pids: Vec<u32>,
    server_wait0: f64,
    bench_wait0: f64,
    server_busy0: f64,
    bench_busy0: f64,
    all_busy0: f64,
    server0: f64,
    bench0: f64,
    t0: Instant,
}

fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Foreign {
    pub fn start(pids: &[u32], server: Option<ProcSample>) -> Self {
        let bench_cpus = cpus_allowed("/proc/self/status");
        let mut server_cpus = Vec::new();
        for pid in pids {
            server_cpus.extend(cpus_allowed(&format!("/proc/{pid}/status")));
        }
        server_cpus.sort_unstable();
        server_cpus.dedup();
        let all_cpus = union(&server_cpus, &bench_cpus);
        Foreign {
            server_busy0: cores_busy(&server_cpus),
            bench_busy0: cores_busy(&bench_cpus),
            all_busy0: cores_busy(&all_cpus),
            server_cpus,
            bench_cpus,
            all_cpus,
            pids: pids.to_vec(),
            server_wait0: pids.iter().map(|p| runq_wait(&p.to_string())).sum(),
            bench_wait0: runq_wait("self"),
            server0: server.map(|s| s.cpu).unwrap_or(0.0),
            bench0: self_cpu(),
            t0: Instant::now(),
        }
    }

    /// Add the disturbance figures (at the end of the phase) to a report:
    /// `server_disturbed_pct`, `bench_disturbed_pct` (percent of the wall
    /// time each side was kept from running by other processes, estimated),
    /// and `foreign_cpu_pct` (CPU others used on the measured cores, percent
    /// of one CPU; informational).
    pub fn report(&self, r: &mut Report, server: Option<ProcSample>) {
        let wall = self.t0.elapsed().as_secs_f64();
        let server_cpu = server.map(|s| s.cpu).unwrap_or(0.0) - self.server0;
        let bench_cpu = self_cpu() - self.bench0;
        let disjoint = !self.server_cpus.iter().any(|c| self.bench_cpus.contains(c));
        let all_foreign = (cores_busy(&self.all_cpus) - self.all_busy0 - server_cpu - bench_cpu).max(0.0);
        let (server_foreign, bench_foreign) = if disjoint && !self.server_cpus.is_empty() {
            (
                (cores_busy(&self.server_cpus) - self.server_busy0 - server_cpu).max(0.0),
                (cores_busy(&self.bench_cpus) - self.bench_busy0 - bench_cpu).max(0.0),
            )
        } else {
            (all_foreign, all_foreign)
        };
        let server_wait: f64 =
            self.pids.iter().map(|p| runq_wait(&p.to_string())).sum::<f64>() - self.server_wait0;
        let bench_wait = runq_wait("self") - self.bench_wait0;
        if !self.pids.is_empty() {
            r.add(
                "server_disturbed_pct",
                server_wait.min(server_foreign) * 100.0 / wall,
                "%",
            );
        }
        r.add(
            "bench_disturbed_pct",
            bench_wait.min(bench_foreign) * 100.0 / wall,
            "%",
        );
        r.add("foreign_cpu_pct", all_foreign * 100.0 / wall, "%");
    }
}

/// CPU seconds (user + system) used by this bench process so far.
pub fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the provided struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raise RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
        rl.rlim_cur
    }
}

/// Percentile (0..=100) of a sorted slice.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64
}

/// Collected figures of one scenario run.
pub struct Report {
    pub label: String,
    pub scenario: String,
    pub rows: Vec<(String, f64, &'static str)>,
}

impl Report {
    pub fn new(label: &str, scenario: &str) -> Self {
        Report {
            label: label.to_string(),
            scenario: scenario.to_string(),
            rows: Vec::new(),
        }
    }

    pub fn add(&mut self, metric: &str, value: f64, unit: &'static str) {
        self.rows.push((metric.to_string(), value, unit));
    }

    pub fn add_rows(&mut self, other: &Report) {
        self.rows.extend(other.rows.iter().cloned());
    }

    pub fn print(&self) {
        println!("== {} / {} ==", self.label, self.scenario);
        for (m, v, u) in &self.rows {
            println!("  {:<28} {:>14} {}", m, fmt_num(*v), u);
        }
        if let Some((_, v, _)) = self.rows.iter().find(|r| r.0 == "bench_cpu_util_pct")
            && *v > 80.0
        {
            println!("  WARNING: the bench itself used {v:.0}% of a CPU: figures may be bench-bound");
        }
        for who in ["server", "bench"] {
            if let Some((_, v, _)) = self.rows.iter().find(|r| r.0 == format!("{who}_disturbed_pct"))
                && *v > 5.0
            {
                println!(
                    "  WARNING: other processes kept the {who} from running ~{v:.0}% of the time: figures are disturbed"
                );
            }
        }
    }

    /// Append tab-separated `label scenario metric value unit` lines.
    pub fn append_to(&self, path: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        for (m, v, u) in &self.rows {
            writeln!(f, "{}\t{}\t{}\t{}\t{}", self.label, self.scenario, m, v, u)?;
        }
        Ok(())
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.fract() == 0.0 || v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
