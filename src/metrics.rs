//! Prometheus metrics, served at `/metrics` on the HTTP listener. Every metric name is here;
//! the call sites use the functions below.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SESSIONS: &str = "switchboard_sessions";
pub const TRANSPORT_SESSIONS: &str = "switchboard_transport_sessions";
pub const LOGINS: &str = "switchboard_logins_total";
pub const AUTH_FAILURES: &str = "switchboard_auth_failures_total";
pub const STANZAS_IN: &str = "switchboard_stanzas_in_total";
pub const STANZAS_OUT: &str = "switchboard_stanzas_out_total";
pub const OFFLINE_DELIVERED: &str = "switchboard_offline_delivered_total";
pub const OFFLINE_STORED: &str = "switchboard_offline_stored_total";
pub const OFFLINE_REFUSED: &str = "switchboard_offline_refused_total";
pub const QUEUE_OVERFLOW_DISCONNECTS: &str = "switchboard_queue_overflow_disconnects_total";
pub const QUEUE_DROPS: &str = "switchboard_queue_drops_total";
pub const WRITE_TIMEOUT_DISCONNECTS: &str = "switchboard_write_timeout_disconnects_total";
pub const ROUTE_SECONDS: &str = "switchboard_route_duration_seconds";
pub const ROSTER_PUSHES: &str = "switchboard_roster_pushes_total";
pub const PRESENCE_FANOUT: &str = "switchboard_presence_fanout_total";
pub const MODULE_EVENTS: &str = "switchboard_module_events_total";
pub const MUC_SENDER_WAITS: &str = "switchboard_muc_sender_waits_total";
pub const MUC_OVERLOAD_BOUNCES: &str = "switchboard_muc_overload_bounces_total";
pub const REPEATED_EVENTS: &str = "switchboard_repeated_events_total";
pub const LOG_LINES_SUPPRESSED: &str = "switchboard_log_lines_suppressed_total";
pub const CSI_HELD: &str = "switchboard_csi_held_total";
pub const CSI_COLLAPSED: &str = "switchboard_csi_collapsed_total";
pub const CSI_FLUSHES: &str = "switchboard_csi_flushes_total";
pub const CSI_FLUSHED: &str = "switchboard_csi_flushed_total";

/// Routing latency buckets (seconds): a local route takes tens of microseconds; storage
/// (offline, roster writes) milliseconds.
const ROUTE_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// Totals kept beside the recorder, for the server statistics command (rates).
static IN_TOTAL: AtomicU64 = AtomicU64::new(0);
static OUT_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Installs the process-wide recorder once. `None` if another recorder was installed first
/// (the metrics are then not exported).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            // Buckets, so the latency is a Prometheus histogram rather than a summary.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ROUTE_SECONDS.to_owned()), ROUTE_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed: /metrics stays empty");
                return None;
            }
            metrics::describe_gauge!(SESSIONS, "Bound client sessions");
            metrics::describe_gauge!(
                TRANSPORT_SESSIONS,
                "Sessions with a connection attached, by transport (tcp, websocket, bosh)"
            );
            metrics::describe_counter!(
                LOGINS,
                "Successful SASL authentications by mechanism and transport"
            );
            metrics::describe_counter!(AUTH_FAILURES, "Failed SASL authentications by mechanism");
            metrics::describe_counter!(STANZAS_IN, "Stanzas read from clients by kind");
            metrics::describe_counter!(STANZAS_OUT, "Stanzas written to clients by kind");
            metrics::describe_counter!(OFFLINE_DELIVERED, "Stored offline messages written to a client");
            metrics::describe_counter!(OFFLINE_STORED, "Messages stored for offline accounts");
            metrics::describe_counter!(
                OFFLINE_REFUSED,
                "Messages refused because the account's offline queue was full"
            );
            metrics::describe_counter!(
                QUEUE_DROPS,
                "Stanzas not queued because the recipient's queue was full"
            );
            metrics::describe_counter!(
                WRITE_TIMEOUT_DISCONNECTS,
                "Sessions disconnected because a socket write did not finish in time"
            );
            metrics::describe_histogram!(
                ROUTE_SECONDS,
                metrics::Unit::Seconds,
                "Time to route one stanza from a client, by kind"
            );
            metrics::describe_counter!(ROSTER_PUSHES, "Roster pushes sent to interested resources");
            metrics::describe_counter!(
                PRESENCE_FANOUT,
                "Presence stanzas the roster module handed to sessions (broadcasts, probes)"
            );
            metrics::describe_counter!(MODULE_EVENTS, "Per-module events by module and event");
            metrics::describe_counter!(
                MUC_SENDER_WAITS,
                "Stanzas whose sender waited (its reads paused) for room in a busy room's queue"
            );
            metrics::describe_counter!(
                MUC_OVERLOAD_BOUNCES,
                "Stanzas refused with resource-constraint: the room's queue stayed full"
            );
            metrics::describe_counter!(
                QUEUE_OVERFLOW_DISCONNECTS,
                "Sessions disconnected because their outgoing queue was full"
            );
            metrics::describe_counter!(
                REPEATED_EVENTS,
                "Events a client can repeat (refused connections, full offline stores, failed logins...), by kind; each counted, logged with rate limiting"
            );
            metrics::describe_counter!(
                LOG_LINES_SUPPRESSED,
                "Log lines of repeated events left out (summarized instead), by kind"
            );
            metrics::describe_counter!(
                CSI_HELD,
                "Stanzas held for inactive clients (XEP-0352) by kind: presence, message"
            );
            metrics::describe_counter!(CSI_COLLAPSED, "Held presence replaced by a newer one from the same sender");
            metrics::describe_counter!(
                CSI_FLUSHES,
                "Writes of held stanzas by reason: urgent, active, overflow, closing"
            );
            metrics::describe_counter!(CSI_FLUSHED, "Held stanzas written, by the flush's reason");
            register_families();
            Some(handle)
        })
        .as_ref()
}

/// Module events with a series from the start (`module_event` call sites; others appear at
/// their first use).
const MODULE_EVENT_NAMES: &[(&str, &str)] = &[
    ("blocking", "presence_denied"),
    ("blocking", "outbound_denied"),
    ("blocking", "inbound_denied"),
    ("blocking", "inbound_denied_some_resources"),
    ("adhoc", "command_refused"),
    ("adhoc", "command_completed"),
    ("adhoc", "command_failed"),
    ("push", "enabled"),
    ("push", "published"),
    ("push", "disabled_by_app_server"),
];

/// The transports' names in the `transport` label (`Transport::kind`).
const TRANSPORTS: [&str; 3] = ["tcp", "websocket", "bosh"];

/// Creates every family's series at zero, so the first scrape of a fresh server already
/// shows all of them (dashboards and alerts see zeros, not absent series).
fn register_families() {
    metrics::gauge!(SESSIONS).set(0.0);
    let mechanisms = crate::sasl::Mechanism::ALL.map(|m| m.name());
    for m in mechanisms.iter().chain(["unknown"].iter()) {
        for transport in TRANSPORTS {
            metrics::counter!(LOGINS, "mechanism" => *m, "transport" => transport).increment(0);
        }
        metrics::counter!(AUTH_FAILURES, "mechanism" => *m).increment(0);
    }
    for transport in TRANSPORTS {
        metrics::gauge!(TRANSPORT_SESSIONS, "transport" => transport).set(0.0);
    }
    for k in KINDS {
        IN_BY_KIND.get(k, |k| metrics::counter!(STANZAS_IN, "kind" => k));
        OUT_BY_KIND.get(k, |k| metrics::counter!(STANZAS_OUT, "kind" => k));
        ROUTE_BY_KIND.get(k, |k| metrics::histogram!(ROUTE_SECONDS, "kind" => k));
    }
    for name in [
        OFFLINE_DELIVERED,
        OFFLINE_STORED,
        OFFLINE_REFUSED,
        QUEUE_OVERFLOW_DISCONNECTS,
        QUEUE_DROPS,
        WRITE_TIMEOUT_DISCONNECTS,
        ROSTER_PUSHES,
        PRESENCE_FANOUT,
        MUC_SENDER_WAITS,
        MUC_OVERLOAD_BOUNCES,
    ] {
        metrics::counter!(name).increment(0);
    }
    for (module, event) in MODULE_EVENT_NAMES {
        metrics::counter!(MODULE_EVENTS, "module" => *module, "event" => *event).increment(0);
    }
    for kind in ["presence", "message"] {
        metrics::counter!(CSI_HELD, "kind" => kind).increment(0);
    }
    metrics::counter!(CSI_COLLAPSED).increment(0);
    for reason in CsiFlushReason::ALL {
        metrics::counter!(CSI_FLUSHES, "reason" => reason.name()).increment(0);
        metrics::counter!(CSI_FLUSHED, "reason" => reason.name()).increment(0);
    }
    for kind in crate::ops::log_limit::Repeated::ALL {
        metrics::counter!(REPEATED_EVENTS, "kind" => kind.name()).increment(0);
        metrics::counter!(LOG_LINES_SUPPRESSED, "kind" => kind.name()).increment(0);
    }
}

/// The Prometheus text exposition, with the current session count.
pub fn render(sessions: usize) -> String {
    let Some(handle) = install() else {
        return String::new();
    };
    metrics::gauge!(SESSIONS).set(sessions as f64);
    handle.run_upkeep();
    handle.render()
}

/// The `kind` label's values: a closed set, so clients cannot grow the label space.
const KINDS: [&str; 4] = ["message", "presence", "iq", "other"];

fn kind_index(name: &str) -> usize {
    match name {
        "message" => 0,
        "presence" => 1,
        "iq" => 2,
        _ => 3,
    }
}

fn kind(name: &str) -> &'static str {
    KINDS[kind_index(name)]
}

/// Per-kind handles of a hot series, looked up in the registry once instead of on every
/// stanza (a labelled lookup hashes the key each time).
struct PerKind<T>(OnceLock<[T; 4]>);

impl<T> PerKind<T> {
    const fn new() -> Self {
        PerKind(OnceLock::new())
    }

    fn get(&self, name: &str, make: impl Fn(&'static str) -> T) -> &T {
        &self.0.get_or_init(|| KINDS.map(&make))[kind_index(name)]
    }
}

static IN_BY_KIND: PerKind<metrics::Counter> = PerKind::new();
static OUT_BY_KIND: PerKind<metrics::Counter> = PerKind::new();
static ROUTE_BY_KIND: PerKind<metrics::Histogram> = PerKind::new();

fn mechanism(name: &str) -> &'static str {
    crate::sasl::Mechanism::from_name(name)
        .map(|m| m.name())
        .or_else(|| crate::sasl::ht::from_name(name).map(|m| m.name))
        .unwrap_or("unknown")
}

pub fn login(mech: &str, transport: &'static str) {
    metrics::counter!(LOGINS, "mechanism" => mechanism(mech), "transport" => transport).increment(1);
}

/// Counts a connection attached to its session, by transport, while it lives.
pub struct Attached(metrics::Gauge);

impl Attached {
    pub fn new(transport: &'static str) -> Attached {
        let gauge = metrics::gauge!(TRANSPORT_SESSIONS, "transport" => transport);
        gauge.increment(1.0);
        Attached(gauge)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

pub fn auth_failure(mech: &str) {
    metrics::counter!(AUTH_FAILURES, "mechanism" => mechanism(mech)).increment(1);
}

pub fn stanza_in(name: &str) {
    IN_TOTAL.fetch_add(1, Ordering::Relaxed);
    IN_BY_KIND
        .get(name, |k| metrics::counter!(STANZAS_IN, "kind" => k))
        .increment(1);
}

pub fn stanza_out(name: &str) {
    OUT_TOTAL.fetch_add(1, Ordering::Relaxed);
    OUT_BY_KIND
        .get(name, |k| metrics::counter!(STANZAS_OUT, "kind" => k))
        .increment(1);
}

pub fn offline_delivered() {
    metrics::counter!(OFFLINE_DELIVERED).increment(1);
}

pub fn queue_overflow_disconnect() {
    metrics::counter!(QUEUE_OVERFLOW_DISCONNECTS).increment(1);
}

pub fn offline_stored() {
    metrics::counter!(OFFLINE_STORED).increment(1);
}

pub fn offline_refused() {
    metrics::counter!(OFFLINE_REFUSED).increment(1);
}

pub fn queue_drop() {
    metrics::counter!(QUEUE_DROPS).increment(1);
}

pub fn write_timeout_disconnect() {
    metrics::counter!(WRITE_TIMEOUT_DISCONNECTS).increment(1);
}

/// `n` roster pushes sent for one change.
pub fn roster_pushes(n: usize) {
    metrics::counter!(ROSTER_PUSHES).increment(n as u64);
}

/// `n` presence stanzas handed to sessions for one broadcast, probe or initial presence.
pub fn presence_fanout(n: usize) {
    // Once per presence delivery: the handle is looked up once.
    static FANOUT: OnceLock<metrics::Counter> = OnceLock::new();
    FANOUT
        .get_or_init(|| metrics::counter!(PRESENCE_FANOUT))
        .increment(n as u64);
}

/// A module's countable event (`module` and `event` are fixed names, never client input).
pub fn module_event(module: &'static str, event: &'static str) {
    metrics::counter!(MODULE_EVENTS, "module" => module, "event" => event).increment(1);
}

/// A sender waited for room in a busy room's queue.
pub fn muc_sender_wait() {
    metrics::counter!(MUC_SENDER_WAITS).increment(1);
}

/// A sender's stanza was refused: the room's queue stayed full for the whole wait.
pub fn muc_overload_bounce() {
    metrics::counter!(MUC_OVERLOAD_BOUNCES).increment(1);
}

/// One occurrence of a repeatable event (`ops::log_limit`; `kind` is a fixed name).
pub fn repeated_event(kind: &'static str) {
    metrics::counter!(REPEATED_EVENTS, "kind" => kind).increment(1);
}

/// A repeated event's line was left out of the log (counted in a summary instead).
pub fn log_line_suppressed(kind: &'static str) {
    metrics::counter!(LOG_LINES_SUPPRESSED, "kind" => kind).increment(1);
}

/// A stanza held for an inactive client (`kind`: presence or message).
pub fn csi_held(kind: &'static str) {
    metrics::counter!(CSI_HELD, "kind" => kind).increment(1);
}

/// A held presence was replaced by a newer one from the same sender.
pub fn csi_collapsed() {
    metrics::counter!(CSI_COLLAPSED).increment(1);
}

/// `n` held stanzas written at once for `reason` (a fixed name).
pub fn csi_flush(reason: &'static str, n: usize) {
    metrics::counter!(CSI_FLUSHES, "reason" => reason).increment(1);
    metrics::counter!(CSI_FLUSHED, "reason" => reason).increment(n as u64);
}

/// Records the time to route one stanza when dropped: `let _t = RouteTimer::start(name);`.
pub struct RouteTimer {
    kind: &'static str,
    started: Instant,
}

impl RouteTimer {
    pub fn start(stanza_name: &str) -> RouteTimer {
        RouteTimer {
            kind: kind(stanza_name),
            started: Instant::now(),
        }
    }
}

impl Drop for RouteTimer {
    fn drop(&mut self) {
        ROUTE_BY_KIND
            .get(self.kind, |k| metrics::histogram!(ROUTE_SECONDS, "kind" => k))
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// (stanzas read, stanzas written) since start.
pub fn stanza_totals() -> (u64, u64) {
    (
        IN_TOTAL.load(Ordering::Relaxed),
        OUT_TOTAL.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_latency_is_a_histogram_with_buckets() {
        if install().is_none() {
            return; // another recorder owns this process
        }
        drop(RouteTimer::start("message"));
        module_event("blocking", "inbound_denied");
        let text = render(0);
        assert!(
            text.contains("switchboard_route_duration_seconds_bucket{kind=\"message\",le=\"0.001\"}"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_module_events_total{module=\"blocking\",event=\"inbound_denied\"} 1"),
            "{text}"
        );
    }
}

/// Why held stanzas were written (the metrics label).
#[derive(Debug, Clone, Copy)]
pub enum CsiFlushReason {
    Urgent,
    Active,
    Overflow,
    Closing,
}

impl CsiFlushReason {
    pub const ALL: [CsiFlushReason; 4] = [
        CsiFlushReason::Urgent,
        CsiFlushReason::Active,
        CsiFlushReason::Overflow,
        CsiFlushReason::Closing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CsiFlushReason::Urgent => "urgent",
            CsiFlushReason::Active => "active",
            CsiFlushReason::Overflow => "overflow",
            CsiFlushReason::Closing => "closing",
        }
    }
}
