//! Per-session rate limits (`limits.session_rate`, per listener and per user class): token
//! buckets for stanzas and bytes read, and for presence broadcasts. Over the budget the
//! session stops reading until it refills (TCP then slows the client down); still over after
//! `limits.throttle_disconnect_secs`, the stream ends with `policy-violation`.
//!
//! The numbers follow reloads: the pacer compares the server's configuration generation on
//! every charge (one atomic read) and re-reads its limits when it changed.

use std::time::Duration;

use jid::FullJid;
use tokio::time::Instant;

use crate::config::{Config, RateConfig};
use crate::error::{StreamError, StreamErrorCondition};
use crate::limits::TokenBucket;
use crate::ops::log_limit::Repeated;
use crate::server::Server;

pub struct Pacer {
    stanzas: TokenBucket,
    bytes: TokenBucket,
    presence: TokenBucket,
    /// The configuration generation the numbers come from.
    generation: u64,
    /// Index of the listener the session came in on (`listen[n].session_rate`).
    listener: usize,
    admin: bool,
    /// Since when every read has left the session over its budget.
    over_since: Option<Instant>,
    disconnect_after: Duration,
}

/// The rates that apply to a session: admins' own, else the listener's, else the default.
pub fn rate_for(config: &Config, listener: usize, admin: bool) -> &RateConfig {
    if admin && let Some(r) = &config.limits.admin_session_rate {
        return r;
    }
    config
        .listen
        .get(listener)
        .and_then(|l| l.session_rate.as_ref())
        .unwrap_or(&config.limits.session_rate)
}

impl Pacer {
    pub fn new(server: &Server, listener: usize, jid: &FullJid) -> Pacer {
        let admin = server.is_admin(&jid.to_bare());
        let generation = server.config_generation();
        let config = server.config();
        let r = rate_for(&config, listener, admin);
        let l = &config.limits;
        Pacer {
            stanzas: TokenBucket::new(r.stanzas_per_second, r.stanza_burst),
            bytes: TokenBucket::new(r.bytes_per_second, r.bytes_burst),
            presence: TokenBucket::new(l.presence_per_second, l.presence_burst),
            generation,
            listener,
            admin,
            over_since: None,
            disconnect_after: Duration::from_secs(l.throttle_disconnect_secs),
        }
    }

    /// Re-reads the limits after a reload.
    fn refresh(&mut self, server: &Server, jid: &FullJid) {
        let generation = server.config_generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        self.admin = server.is_admin(&jid.to_bare());
        let config = server.config();
        let r = rate_for(&config, self.listener, self.admin);
        let l = &config.limits;
        self.stanzas.set(r.stanzas_per_second, r.stanza_burst);
        self.bytes.set(r.bytes_per_second, r.bytes_burst);
        self.presence.set(l.presence_per_second, l.presence_burst);
        self.disconnect_after = Duration::from_secs(l.throttle_disconnect_secs);
        tracing::debug!(%jid, stanzas = r.stanzas_per_second, bytes = r.bytes_per_second, "session rate limits reloaded");
    }

    /// Charges one stanza and the bytes read for it. `Ok(wait)`: stop reading for that long;
    /// `Err`: over the budget for too long, end the stream.
    pub fn charge(&mut self, server: &Server, jid: &FullJid, bytes: u64) -> Result<Duration, StreamError> {
        self.refresh(server, jid);
        let wait = self.stanzas.take(1).max(self.bytes.take(bytes));
        if wait.is_zero() {
            self.over_since = None;
            return Ok(wait);
        }
        let now = Instant::now();
        let since = *self.over_since.get_or_insert(now);
        if now.duration_since(since) >= self.disconnect_after {
            if server
                .log_limit
                .note(Repeated::RateLimited, jid.to_bare().as_str())
            {
                tracing::info!(%jid, "session over its rate limit for too long (repeats summarized)");
            }
            return Err(StreamError::with_text(
                StreamErrorCondition::PolicyViolation,
                "sending too fast for too long (rate limit)",
            ));
        }
        Ok(wait)
    }

    /// Whether one more presence broadcast is allowed now (spends it if so).
    pub fn allow_presence(&mut self) -> bool {
        if !self.presence.has(1) {
            return false;
        }
        self.presence.take(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_and_listeners_get_their_own_rates() {
        let c = Config::parse(
            "domains = [\"a\"]\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
             session_rate = { stanzas_per_second = 3, stanza_burst = 3 }\n\
             [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:1\"\n\
             [limits]\nadmin_session_rate = { stanzas_per_second = 9, stanza_burst = 9 }\n\
             [limits.session_rate]\nstanzas_per_second = 5\n",
            "t",
        )
        .unwrap();
        assert_eq!(rate_for(&c, 0, false).stanzas_per_second, 3, "listener override");
        assert_eq!(rate_for(&c, 1, false).stanzas_per_second, 5, "default");
        assert_eq!(rate_for(&c, 0, true).stanzas_per_second, 9, "admins");
        let plain = Config::parse("domains = [\"a\"]", "t").unwrap();
        assert_eq!(
            rate_for(&plain, 0, true),
            &plain.limits.session_rate,
            "admins without their own rates are treated as users"
        );
    }
}
