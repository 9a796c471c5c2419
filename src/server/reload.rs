//! Configuration reload (SIGHUP, or the `reload-config` admin command): read the file again,
//! keep the running value of every key that needs a restart (`config::reload`), and apply the
//! rest to the live server without dropping a connection. An invalid file, or a certificate
//! that does not load, changes nothing.

use std::sync::Arc;

use super::Server;
use crate::config::Config;
use crate::config::reload::{Outcome, changed_keys, keep_restart_keys};

/// Reloads the file the server was started with. `Err` says why nothing changed.
pub fn reload(server: &Server) -> Result<Outcome, String> {
    let result = reload_inner(server);
    match &result {
        Ok(outcome) => {
            tracing::info!(
                applied = %outcome.applied.join(","),
                needs_restart = %outcome.needs_restart.join(","),
                "configuration reloaded"
            );
            for key in &outcome.needs_restart {
                tracing::warn!(key = %key, "configuration key changed but needs a restart; the running value stays");
            }
        }
        Err(e) => tracing::error!(error = %e, "configuration reload failed; the running configuration stays"),
    }
    result
}

fn reload_inner(server: &Server) -> Result<Outcome, String> {
    let path = server
        .config_path()
        .ok_or("the server was not started from a configuration file")?;
    let new = Config::load(path).map_err(|e| e.to_string())?;
    let old = server.config();
    let (merged, needs_restart) = keep_restart_keys(&old, new)?;
    // Certificates are read again even when the paths did not change (renewed files).
    let tls = crate::tls::load(&merged.tls, &server.domains).map_err(|e| format!("tls: {e:#}"))?;
    let applied = changed_keys(&old, &merged);
    let level_changed = old.log.level != merged.log.level;
    let admins_changed = old.admins != merged.admins;
    drop(old);
    if level_changed {
        server.set_log_level(&merged.log.level)?;
    }
    if admins_changed {
        // The file's new list replaces one edited at runtime (XEP-0133 edit-admin).
        let list = merged
            .admins
            .iter()
            .filter_map(|a| jid::BareJid::new(a).ok())
            .collect();
        server.admins.replace(list);
    }
    server.tls.store(Arc::new(tls));
    server.replace_config(merged);
    Ok(Outcome {
        applied,
        needs_restart,
    })
}

/// Reloads on every SIGHUP until the process ends.
pub async fn reload_on_sighup(server: Arc<Server>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with the ad-hoc command");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        let _ = reload(&server);
    }
}
