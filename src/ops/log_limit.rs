//! Logs an attacker cannot use to fill the disk: an event that a client can repeat at will
//! (a refused connection, a full offline store, a failed login...) is counted in metrics
//! every time, but logged only the first time per kind and key (a session or an IP address),
//! then as one summary line per interval while it keeps happening.
//!
//! Bounded whatever the client does: per kind, at most [`FIRST_LINES_PER_INTERVAL`] keys get
//! their own first line in an interval; events of further keys are summarized together under
//! the key `*`. So one kind writes at most about twice that many lines per interval, and the
//! table holds at most that many keys per kind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys of one kind that may log their own first line in one interval.
pub const FIRST_LINES_PER_INTERVAL: u32 = 10;

/// The kinds of repeatable events: a closed set (the metric label and the log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repeated {
    /// A message refused because the recipient's offline store is full (key: the sender).
    OfflineFull,
    /// A connection refused by the connection limits (key: the IP address).
    ConnectionRefused,
    /// `accept` failed (usually out of file descriptors).
    AcceptFailed,
    /// An authenticated login refused: too many sessions from the address (key: the IP).
    LoginRefused,
    /// A failed SASL authentication (key: the IP address).
    AuthFailure,
    /// A session ended for staying over its rate limit (key: the IP address).
    RateLimited,
    /// A failed TLS handshake or stream negotiation (key: the IP address).
    NegotiationFailed,
}

impl Repeated {
    pub const ALL: [Repeated; 7] = [
        Repeated::OfflineFull,
        Repeated::ConnectionRefused,
        Repeated::AcceptFailed,
        Repeated::LoginRefused,
        Repeated::AuthFailure,
        Repeated::RateLimited,
        Repeated::NegotiationFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Repeated::OfflineFull => "offline_full",
            Repeated::ConnectionRefused => "connection_refused",
            Repeated::AcceptFailed => "accept_failed",
            Repeated::LoginRefused => "login_refused",
            Repeated::AuthFailure => "auth_failure",
            Repeated::RateLimited => "rate_limited",
            Repeated::NegotiationFailed => "negotiation_failed",
        }
    }

    /// Whether the log keeps lines of this kind's level now.
    fn enabled(self) -> bool {
        match self.level() {
            tracing::Level::WARN => tracing::enabled!(tracing::Level::WARN),
            tracing::Level::DEBUG => tracing::enabled!(tracing::Level::DEBUG),
            _ => tracing::enabled!(tracing::Level::INFO),
        }
    }

    /// The level of the summary line: the level the kind's own line is written at.
    fn level(self) -> tracing::Level {
        match self {
            Repeated::ConnectionRefused | Repeated::AcceptFailed => tracing::Level::WARN,
            Repeated::NegotiationFailed => tracing::Level::DEBUG,
            _ => tracing::Level::INFO,
        }
    }
}

/// One key's current interval.
struct Window {
    started: Instant,
    /// Events in this interval that wrote no line of their own.
    suppressed: u64,
}

#[derive(Default)]
struct Table {
    windows: HashMap<(Repeated, Box<str>), Window>,
    /// Per kind: when its budget of first lines restarted, and how many were used.
    first_lines: HashMap<Repeated, (Instant, u32)>,
}

/// A summary to write once the table's lock is released.
struct Summary {
    kind: Repeated,
    key: Box<str>,
    suppressed: u64,
}

/// The rate limiter of repeated log lines; one per server (`Server::log_limit`).
pub struct LogLimiter {
    interval_ms: AtomicU64,
    table: Mutex<Table>,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval_ms: AtomicU64::new(interval.as_millis() as u64),
            table: Mutex::new(Table::default()),
        }
    }

    /// Changes the interval (a configuration reload); windows already open keep running.
    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
    }

    /// Counts one event of `kind` for `key`. `true`: write its line now (the first in a
    /// while for that key); `false`: it is counted in the next summary instead.
    pub fn note(&self, kind: Repeated, key: &str) -> bool {
        crate::metrics::repeated_event(kind.name());
        // A line its level filters out does not spend the key's first line (the level may be
        // raised later by a reload).
        if !kind.enabled() {
            return false;
        }
        let interval = self.interval();
        let now = Instant::now();
        let mut summaries = Vec::new();
        let log = {
            let Ok(mut table) = self.table.lock() else {
                return false;
            };
            let table = &mut *table;
            let key = if table.windows.contains_key(&(kind, key.into())) {
                key
            } else {
                // A new key: it spends one of the kind's first lines, or joins `*`.
                let budget = table.first_lines.entry(kind).or_insert((now, 0));
                if now.duration_since(budget.0) >= interval {
                    *budget = (now, 0);
                }
                if budget.1 < FIRST_LINES_PER_INTERVAL {
                    budget.1 += 1;
                    key
                } else {
                    "*"
                }
            };
            match table.windows.get_mut(&(kind, key.into())) {
                None => {
                    // `*` collects events that get no line of their own: its first is counted.
                    let aggregate = key == "*";
                    let window = Window {
                        started: now,
                        suppressed: u64::from(aggregate),
                    };
                    table.windows.insert((kind, key.into()), window);
                    !aggregate
                }
                Some(window) if now.duration_since(window.started) < interval => {
                    window.suppressed += 1;
                    false
                }
                Some(window) if window.suppressed > 0 => {
                    // The interval ended during a flood: its summary, and a new one begins.
                    summaries.push(Summary {
                        kind,
                        key: key.into(),
                        suppressed: window.suppressed,
                    });
                    window.started = now;
                    window.suppressed = 1;
                    false
                }
                Some(window) => {
                    // Quiet for a whole interval: a first occurrence again.
                    window.started = now;
                    true
                }
            }
        };
        if !log {
            crate::metrics::log_line_suppressed(kind.name());
        }
        self.write(&summaries);
        log
    }

    /// Writes the summaries of intervals that ended and forgets keys that went quiet. Called
    /// every second or so by the server (`lib::run`), so a flood's last summary is written
    /// even when nothing follows it.
    pub fn flush(&self) {
        let interval = self.interval();
        let now = Instant::now();
        let mut summaries = Vec::new();
        if let Ok(mut table) = self.table.lock() {
            table.windows.retain(|(kind, key), window| {
                if now.duration_since(window.started) < interval {
                    return true;
                }
                if window.suppressed == 0 {
                    return false;
                }
                summaries.push(Summary {
                    kind: *kind,
                    key: key.clone(),
                    suppressed: window.suppressed,
                });
                window.started = now;
                window.suppressed = 0;
                true
            });
        }
        self.write(&summaries);
    }

    fn write(&self, summaries: &[Summary]) {
        let secs = self.interval().as_secs_f64();
        for s in summaries {
            let (kind, key, n) = (s.kind.name(), &*s.key, s.suppressed);
            match s.kind.level() {
                tracing::Level::WARN => {
                    tracing::warn!(
                        kind,
                        key,
                        repeated = n,
                        "repeated event: {n} more in the last {secs}s"
                    )
                }
                tracing::Level::DEBUG => {
                    tracing::debug!(
                        kind,
                        key,
                        repeated = n,
                        "repeated event: {n} more in the last {secs}s"
                    )
                }
                _ => tracing::info!(
                    kind,
                    key,
                    repeated = n,
                    "repeated event: {n} more in the last {secs}s"
                ),
            }
        }
    }

    /// Keys currently tracked (for tests: the table stays bounded).
    pub fn tracked(&self) -> usize {
        self.table.lock().map_or(0, |t| t.windows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with every level enabled (lines go nowhere): `note` spends nothing on a level
    /// the log filters out.
    fn logging(f: impl FnOnce()) {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn filtered_levels_spend_no_first_line() {
        let limiter = LogLimiter::new(Duration::from_secs(60));
        // No subscriber: nothing is enabled, and the key stays unused.
        assert!(!limiter.note(Repeated::NegotiationFailed, "1.2.3.4"));
        assert_eq!(limiter.tracked(), 0);
        logging(|| assert!(limiter.note(Repeated::NegotiationFailed, "1.2.3.4")));
    }

    #[test]
    fn first_occurrence_logs_then_repeats_are_summarized() {
        logging(|| {
            let limiter = LogLimiter::new(Duration::from_millis(50));
            assert!(limiter.note(Repeated::OfflineFull, "a@x/r"));
            for _ in 0..100 {
                assert!(!limiter.note(Repeated::OfflineFull, "a@x/r"));
            }
            // Another kind and another key each have their own first line.
            assert!(limiter.note(Repeated::AuthFailure, "a@x/r"));
            assert!(limiter.note(Repeated::OfflineFull, "b@x/r"));
            std::thread::sleep(Duration::from_millis(60));
            // The interval ended with suppressed events: summarized, and still not a line of its own.
            assert!(!limiter.note(Repeated::OfflineFull, "a@x/r"));
            // b was quiet for a whole interval: a first occurrence again.
            std::thread::sleep(Duration::from_millis(60));
            limiter.flush();
            assert!(limiter.note(Repeated::OfflineFull, "b@x/r"));
        });
    }

    #[test]
    fn many_keys_share_one_summary_past_the_budget() {
        logging(|| {
            let limiter = LogLimiter::new(Duration::from_secs(60));
            let mut lines = 0;
            for i in 0..10_000 {
                if limiter.note(
                    Repeated::ConnectionRefused,
                    &format!("10.0.{}.{}", i / 256, i % 256),
                ) {
                    lines += 1;
                }
            }
            assert_eq!(lines, FIRST_LINES_PER_INTERVAL);
            assert_eq!(limiter.tracked(), FIRST_LINES_PER_INTERVAL as usize + 1);
        });
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        logging(|| {
            let limiter = LogLimiter::new(Duration::from_millis(20));
            limiter.note(Repeated::RateLimited, "1.2.3.4");
            std::thread::sleep(Duration::from_millis(30));
            limiter.flush();
            assert_eq!(limiter.tracked(), 0);
        });
    }
}
