//! Keeping an idle client honest: a server ping (XEP-0199) after `idle` without reading,
//! and the end of the stream when it goes unanswered for `timeout`.

use jid::FullJid;
use minidom::Element;
use tokio::time::Instant;

use crate::xml::{self, ns};

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

/// A XEP-0199 ping from the server to the client `to`.
pub fn server_ping(to: &FullJid, id: &str) -> Element {
    let mut iq = Element::builder("iq", ns::CLIENT)
        .append(Element::bare("ping", "urn:xmpp:ping"))
        .build();
    xml::set_attr(&mut iq, "type", "get");
    xml::set_attr(&mut iq, "id", id);
    xml::set_attr(&mut iq, "from", to.domain().as_str());
    xml::set_attr(&mut iq, "to", &to.to_string());
    iq
}
