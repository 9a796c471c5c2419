//! Retention: archived messages older than `limits.archive_max_age_secs` are deleted, from
//! every account at once, and rooms' older than `muc.archive_max_age_secs` (one indexed range delete on the id, which is the time). Checked
//! every hour, or every half of the maximum age if that is shorter; the setting is read at
//! every check, so a reload applies.

use std::sync::Weak;
use std::time::Duration;

use crate::server::Server;

/// Runs until the server is gone.
pub async fn run(server: Weak<Server>) {
    loop {
        let Some(s) = server.upgrade() else {
            return;
        };
        let (max_age, room_max_age) = {
            let config = s.config();
            (
                config.limits.archive_max_age_secs,
                config.muc.archive_max_age_secs,
            )
        };
        let storage = s.storage.clone();
        drop(s);
        if max_age > 0 {
            match storage.archive_expire(cutoff(max_age)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "expired archived messages"),
                Err(e) => tracing::warn!(error = %e, "cannot expire archived messages"),
            }
        }
        if room_max_age > 0 {
            match storage.room_archive_expire(cutoff(room_max_age)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "expired archived room messages"),
                Err(e) => tracing::warn!(error = %e, "cannot expire archived room messages"),
            }
        }
        let every = [max_age, room_max_age]
            .into_iter()
            .filter(|a| *a > 0)
            .map(|a| (a / 2).clamp(1, 3600))
            .min()
            .unwrap_or(3600);
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}

/// The id (unix microseconds) before which messages are older than `max_age_secs`.
fn cutoff(max_age_secs: u64) -> i64 {
    let age_us = i64::try_from(max_age_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    chrono::Utc::now().timestamp_micros().saturating_sub(age_us)
}
