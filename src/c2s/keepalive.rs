//! Keeping an idle client honest: a server ping (XEP-0199) after `idle` without reading,
//! and the end of the stream when it goes unanswered for `timeout`.

use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::time::Instant;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::ping::Ping;

use crate::xml::ns;

/// What the idle timer should do when it fires.
pub enum Due {
    /// Nothing yet: sleep until then.
    Later(Instant),
    /// Send a ping now.
    Ping,
    /// The ping went unanswered.
    TimedOut,
}

pub struct Keepalive {
    idle: std::time::Duration,
    timeout: std::time::Duration,
    /// The id of the ping awaiting its answer.
    ping_id: Option<String>,
    last_read: Instant,
    ping_sent: Instant,
}

impl Keepalive {
    pub fn new(idle: std::time::Duration, timeout: std::time::Duration) -> Keepalive {
        let now = Instant::now();
        Keepalive {
            idle,
            timeout,
            ping_id: None,
            last_read: now,
            ping_sent: now,
        }
    }

    /// When the idle timer should first fire.
    pub fn first_due(&self) -> Instant {
        self.last_read + self.idle
    }

    /// The client sent something at `now`.
    pub fn read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// Whether `el` answers our ping (then it is consumed, not routed).
    pub fn is_answer(&mut self, el: &Element) -> bool {
        let answer = self.ping_id.is_some()
            && el.is("iq", ns::CLIENT)
            && el.attr("id") == self.ping_id.as_deref()
            && matches!(el.attr("type"), Some("result") | Some("error"));
        if answer {
            self.ping_id = None;
        }
        answer
    }

    /// The transport's own probe was answered (a WebSocket pong).
    pub fn answered(&mut self) {
        self.ping_id = None;
    }

    /// Idle `idle` after the last read: ping. Ping unanswered: `timeout` after sending it,
    /// unless the client sent something since (then `idle` after that).
    pub fn due(&self, now: Instant) -> Due {
        let due = match self.ping_id {
            Some(_) if self.last_read > self.ping_sent => self.last_read + self.idle,
            Some(_) => self.ping_sent + self.timeout,
            None => self.last_read + self.idle,
        };
        if now < due {
            Due::Later(due)
        } else if self.ping_id.is_some() {
            Due::TimedOut
        } else {
            Due::Ping
        }
    }

    /// The ping with this `id` went out: returns when its answer is due.
    pub fn sent(&mut self, id: String) -> Instant {
        self.ping_id = Some(id);
        self.ping_sent = Instant::now();
        self.ping_sent + self.timeout
    }
}

/// A XEP-0199 ping from the server to the client `to` (once per idle period: typed).
pub fn server_ping(to: &FullJid, id: &str) -> Element {
    let server = BareJid::from_parts(None, to.domain());
    Iq::from_get(id, Ping)
        .with_from(server.into())
        .with_to(to.clone().into())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0199_server_ping_is_a_get_from_the_domain_to_the_session() {
        let to: FullJid = "alice@example.org/phone".parse().unwrap();
        let ping = server_ping(&to, "p1");
        assert!(ping.is("iq", ns::CLIENT));
        assert_eq!(ping.attr("type"), Some("get"));
        assert_eq!(ping.attr("id"), Some("p1"));
        assert_eq!(ping.attr("from"), Some("example.org"));
        assert_eq!(ping.attr("to"), Some("alice@example.org/phone"));
        assert!(ping.has_child("ping", "urn:xmpp:ping"));
        assert_eq!(ping.children().count(), 1);
    }
}
