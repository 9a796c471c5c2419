//! Prometheus metrics, served at `/metrics` on the HTTP listener. Every metric name is here;
//! the call sites use the functions below.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const SESSIONS: &str = "switchboard_sessions";
pub const LOGINS: &str = "switchboard_logins_total";
pub const AUTH_FAILURES: &str = "switchboard_auth_failures_total";
pub const STANZAS_IN: &str = "switchboard_stanzas_in_total";
pub const STANZAS_OUT: &str = "switchboard_stanzas_out_total";
pub const OFFLINE_DELIVERED: &str = "switchboard_offline_delivered_total";
pub const QUEUE_OVERFLOW_DISCONNECTS: &str = "switchboard_queue_overflow_disconnects_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// Totals kept beside the recorder, for the server statistics command (rates).
static IN_TOTAL: AtomicU64 = AtomicU64::new(0);
static OUT_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Installs the process-wide recorder once. `None` if another recorder was installed first
/// (the metrics are then not exported).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed: /metrics stays empty");
                return None;
            }
            metrics::describe_gauge!(SESSIONS, "Bound client sessions");
            metrics::describe_counter!(LOGINS, "Successful SASL authentications by mechanism");
            metrics::describe_counter!(AUTH_FAILURES, "Failed SASL authentications by mechanism");
            metrics::describe_counter!(STANZAS_IN, "Stanzas read from clients by kind");
            metrics::describe_counter!(STANZAS_OUT, "Stanzas written to clients by kind");
            metrics::describe_counter!(OFFLINE_DELIVERED, "Stored offline messages written to a client");
            metrics::describe_counter!(
                QUEUE_OVERFLOW_DISCONNECTS,
                "Sessions disconnected because their outgoing queue was full"
            );
            Some(handle)
        })
        .as_ref()
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

/// A label value from a closed set, so clients cannot grow the label space.
fn kind(name: &str) -> &'static str {
    match name {
        "message" => "message",
        "presence" => "presence",
        "iq" => "iq",
        _ => "other",
    }
}

fn mechanism(name: &str) -> &'static str {
    crate::sasl::Mechanism::from_name(name).map_or("unknown", |m| m.name())
}

pub fn login(mech: &str) {
    metrics::counter!(LOGINS, "mechanism" => mechanism(mech)).increment(1);
}

pub fn auth_failure(mech: &str) {
    metrics::counter!(AUTH_FAILURES, "mechanism" => mechanism(mech)).increment(1);
}

pub fn stanza_in(name: &str) {
    IN_TOTAL.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(STANZAS_IN, "kind" => kind(name)).increment(1);
}

pub fn stanza_out(name: &str) {
    OUT_TOTAL.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(STANZAS_OUT, "kind" => kind(name)).increment(1);
}

pub fn offline_delivered() {
    metrics::counter!(OFFLINE_DELIVERED).increment(1);
}

pub fn queue_overflow_disconnect() {
    metrics::counter!(QUEUE_OVERFLOW_DISCONNECTS).increment(1);
}

/// (stanzas read, stanzas written) since start.
pub fn stanza_totals() -> (u64, u64) {
    (
        IN_TOTAL.load(Ordering::Relaxed),
        OUT_TOTAL.load(Ordering::Relaxed),
    )
}
