//! `report`: comparison table over result files written with `--out`.

use crate::stats::fmt_num;
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub struct ReportArgs {
    /// Result files (tab-separated: label scenario metric value unit).
    #[arg(required = true)]
    files: Vec<String>,
    /// Label whose figures are divided by every other server's.
    #[arg(long, default_value = "switchboard")]
    baseline: String,
}

/// Whether a larger value of the metric is better (None: informational).
fn higher_is_better(metric: &str) -> Option<bool> {
    if (metric.ends_with("_per_sec") && !metric.starts_with("offered"))
        || metric == "sessions_ok"
        || metric == "delivered"
    {
        Some(true)
    } else if metric.contains("latency")
        || metric.starts_with("login_p")
        || metric.starts_with("mem_per")
        || metric.starts_with("server_cpu_per")
        || metric == "lost"
        || metric == "sessions_failed"
        || metric == "sessions_dropped"
        || metric == "error_stanzas"
        || metric == "initial_presence_s"
        || metric.starts_with("join_")
        || metric.starts_with("presence_per_join")
        || metric == "room_create_s"
        || metric == "disconnects"
        || metric.ends_with("_disturbed_pct")
    {
        Some(false)
    } else {
        None
    }
}

pub fn run(a: ReportArgs) -> Result<()> {
    // (label, scenario, metric, value, unit) in file order.
    let mut rows: Vec<(String, String, String, f64, String)> = Vec::new();
    for f in &a.files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let p: Vec<&str> = line.split('\t').collect();
            if p.len() < 4 {
                bail!("{f}: malformed line {line:?}");
            }
            rows.push((
                p[0].into(),
                p[1].into(),
                p[2].into(),
                p[3].parse().unwrap_or(f64::NAN),
                p.get(4).copied().unwrap_or("").into(),
            ));
        }
    }
    let mut labels: Vec<String> = Vec::new();
    let mut scenarios: Vec<String> = Vec::new();
    for r in &rows {
        if !labels.contains(&r.0) {
            labels.push(r.0.clone());
        }
        if !scenarios.contains(&r.1) {
            scenarios.push(r.1.clone());
        }
    }
    let has_base = labels.contains(&a.baseline);
    let others: Vec<&String> = labels.iter().filter(|l| **l != a.baseline).collect();
    let get = |label: &str, sc: &str, m: &str| {
        rows.iter()
            .rev()
            .find(|r| r.0 == label && r.1 == sc && r.2 == m)
            .map(|r| r.3)
    };
    for sc in &scenarios {
        let mut metrics: Vec<(String, String)> = Vec::new();
        for r in rows.iter().filter(|r| &r.1 == sc) {
            if !metrics.iter().any(|(m, _)| *m == r.2) {
                metrics.push((r.2.clone(), r.4.clone()));
            }
        }
        let mut header = format!("| {:<32} |", sc);
        for l in &labels {
            header.push_str(&format!(" {:>12} |", l));
        }
        if has_base {
            for o in &others {
                header.push_str(&format!(
                    " {:>14} |",
                    format!("{}/{}", short(&a.baseline), short(o))
                ));
            }
        }
        header.push_str(" better |");
        println!("{header}");
        let cols = labels.len() + if has_base { others.len() } else { 0 };
        let mut sep = format!("|{}|", "-".repeat(34));
        for i in 0..cols {
            let w = if i < labels.len() { 14 } else { 16 };
            sep.push_str(&format!("{}:|", "-".repeat(w - 1)));
        }
        sep.push_str("--------|");
        println!("{sep}");
        for (m, unit) in &metrics {
            let name = if unit.is_empty() {
                m.clone()
            } else {
                format!("{m} ({unit})")
            };
            let mut line = format!("| {:<32} |", name);
            for l in &labels {
                let v = get(l, sc, m).map(fmt_num).unwrap_or_else(|| "n/a".into());
                line.push_str(&format!(" {:>12} |", v));
            }
            if has_base {
                let b = get(&a.baseline, sc, m);
                for o in &others {
                    let ratio = match (b, get(o, sc, m)) {
                        (Some(b), Some(v)) if v != 0.0 && !v.is_nan() && !b.is_nan() => {
                            format!("{:.2}x", b / v)
                        }
                        _ => "-".into(),
                    };
                    line.push_str(&format!(" {:>14} |", ratio));
                }
            }
            let better = match higher_is_better(m) {
                Some(true) => "higher",
                Some(false) => "lower",
                None => "",
            };
            line.push_str(&format!(" {:<6} |", better));
            println!("{line}");
        }
        println!();
    }
    if !has_base {
        println!("(no results labelled '{}': ratios omitted)", a.baseline);
    }
    Ok(())
}

fn short(l: &str) -> &str {
    match l {
        "switchboard" => "sb",
        "prosody" => "pros",
        "ejabberd" => "ejab",
        _ => l,
    }
}
