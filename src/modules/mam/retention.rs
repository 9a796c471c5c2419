//! Retention: archived messages older than `limits.archive_max_age_secs` are deleted, from
//! every account at once (one indexed range delete on the id, which is the time). Checked
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
        let max_age = s.config().limits.archive_max_age_secs;
        let storage = s.storage.clone();
        drop(s);
        if max_age > 0 {
            let age_us = i64::try_from(max_age.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
            let cutoff = chrono::Utc::now().timestamp_micros().saturating_sub(age_us);
            match storage.archive_expire(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "expired archived messages"),
                Err(e) => tracing::warn!(error = %e, "cannot expire archived messages"),
            }
        }
        let every = if max_age == 0 {
            3600
        } else {
            (max_age / 2).clamp(1, 3600)
        };
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}
