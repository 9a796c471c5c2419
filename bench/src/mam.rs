//! `mam`: XEP-0313 archive queries against archives seeded beforehand
//! (bench/scripts/mam.sh seeds them through SQL, not over XMPP). C clients, each a user
//! with an archive, send Q queries one after another: the last page of `--page` messages
//! (an empty `<before/>`), or with `--fulltext`, a XEP-0431 search of those words. The
//! latency is from the query's send to its IQ result, all `<result/>` messages received.

use anyhow::{Result, bail};
use clap::Args;
use tokio::io::AsyncWriteExt;

use crate::client::{self, Session};
use crate::stats::{self, Report, percentile};
use crate::{Common, Measure, for_each_user, summarize_errors};

#[derive(Args)]
pub struct MamArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    measure: Measure,
    /// Clients querying at once (users first..first+clients-1, each its own archive).
    #[arg(long, default_value_t = 10)]
    clients: u64,
    /// Queries per client.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Messages per page (`<max/>`).
    #[arg(long, default_value_t = 50)]
    page: usize,
    /// A XEP-0431 full-text query instead of the last page.
    #[arg(long)]
    fulltext: Option<String>,
}

const MAM: &str = "urn:xmpp:mam:2";
const RSM: &str = "http://jabber.org/protocol/rsm";

fn query(id: &str, a: &MamArgs) -> String {
    let form = match &a.fulltext {
        Some(words) => format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>\
             <field var='{{urn:xmpp:fulltext:0}}fulltext'><value>{}</value></field></x>",
            crate::xml::escape(words)
        ),
        None => String::new(),
    };
    format!(
        "<iq type='set' id='{id}'><query xmlns='{MAM}' queryid='{id}'>{form}\
         <set xmlns='{RSM}'><max>{}</max><before/></set></query></iq>",
        a.page
    )
}

/// One client's queries: each latency in microseconds, and the results received.
async fn client_run(mut s: Session, a: &MamArgs) -> Result<(Vec<u32>, u64)> {
    let mut lat = Vec::with_capacity(a.queries);
    let mut results = 0u64;
    for i in 0..a.queries {
        let id = format!("q{i}");
        let start = stats::now_us();
        s.wr.write_all(query(&id, a).as_bytes()).await?;
        loop {
            let e = s.reader.next_element().await?;
            if e.name == "message" && e.child_ns("result", MAM).is_some() {
                results += 1;
            } else if e.name == "iq" && e.attr("id") == Some(id.as_str()) {
                if e.attr("type") != Some("result") {
                    bail!("query failed: {}", e.describe());
                }
                break;
            }
        }
        lat.push(u32::try_from(stats::now_us() - start).unwrap_or(u32::MAX));
    }
    Ok((lat, results))
}

pub async fn run(a: MamArgs) -> Result<()> {
    stats::raise_nofile();
    let t = a.common.target();
    if !a.measure.no_prefetch {
        crate::prefetch_salts(&t, a.common.first, a.clients, a.common.concurrency).await;
    }
    let logins = for_each_user(a.common.first, a.clients, a.common.concurrency, |n| {
        let t = t.clone();
        let resource = format!("{}{n}", t.resource);
        async move { client::login(&t, n, &resource, false).await }
    })
    .await;
    let failed = summarize_errors("login", logins.iter().filter_map(|r| r.as_ref().err()));
    if failed > 0 {
        bail!("{failed} logins failed");
    }
    let sessions: Vec<Session> = logins.into_iter().filter_map(Result::ok).collect();
    let a = std::sync::Arc::new(a);
    let server = stats::sample_pids(&a.measure.server_pid)?;
    let window = stats::Foreign::start(&a.measure.server_pid, server);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for s in sessions {
        let a = a.clone();
        tasks.push(tokio::spawn(async move { client_run(s, &a).await }));
    }
    let mut lat = Vec::new();
    let mut results = 0;
    for t in tasks {
        let (l, r) = t.await??;
        lat.extend(l);
        results += r;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let scenario = if a.fulltext.is_some() {
        "mam-fulltext"
    } else {
        "mam-page"
    };
    let mut r = Report::new(&a.measure.label, scenario);
    r.add("queries", lat.len() as f64, "");
    r.add("queries_per_sec", lat.len() as f64 / secs, "1/s");
    r.add("results_per_query", results as f64 / lat.len().max(1) as f64, "");
    for (name, p) in [
        ("latency_p50", 50.0),
        ("latency_p99", 99.0),
        ("latency_max", 100.0),
    ] {
        r.add(name, percentile(&lat, p) / 1000.0, "ms");
    }
    window.report(&mut r, stats::sample_pids(&a.measure.server_pid)?);
    r.print();
    if let Some(out) = &a.measure.out {
        r.append_to(out)?;
    }
    Ok(())
}
