//! Discussion history (XEP-0045 §7.2.13-15): the last messages, replayed on join with a
//! XEP-0203 delay from the room's JID.

use std::collections::VecDeque;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use minidom::Element;

use super::{NS_DELAY, NS_MUC};
use crate::xml;

struct Entry {
    /// The broadcast stanza without `to`, its delay already added.
    stanza: Element,
    at: SystemTime,
}

#[derive(Default)]
pub struct History {
    entries: VecDeque<Entry>,
}

/// What the joiner asked for (`<history/>` in the join presence).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub max_stanzas: Option<usize>,
    pub max_chars: Option<usize>,
    pub seconds: Option<u64>,
    pub since: Option<SystemTime>,
}

impl Request {
    /// Reads `<x xmlns='muc'><history .../></x>`; unparsable attributes are ignored.
    pub fn from_join(presence: &Element) -> Request {
        let Some(h) = presence
            .get_child("x", NS_MUC)
            .and_then(|x| x.get_child("history", NS_MUC))
        else {
            return Request::default();
        };
        Request {
            max_stanzas: h.attr("maxstanzas").and_then(|v| v.parse().ok()),
            max_chars: h.attr("maxchars").and_then(|v| v.parse().ok()),
            seconds: h.attr("seconds").and_then(|v| v.parse().ok()),
            since: h
                .attr("since")
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| SystemTime::from(t.with_timezone(&Utc))),
        }
    }
}

impl History {
    /// Records a broadcast message (`stanza` has no `to`), keeping at most `limit`.
    pub fn push(&mut self, mut stanza: Element, room: &str, limit: usize) {
        if limit == 0 {
            self.entries.clear();
            return;
        }
        let at = SystemTime::now();
        stanza = delayed(stanza, room, at);
        self.entries.push_back(Entry { stanza, at });
        self.truncate(limit);
    }

    /// The last message recorded, with its time (to store it).
    pub fn last(&self) -> Option<(&Element, SystemTime)> {
        self.entries.back().map(|e| (&e.stanza, e.at))
    }

    /// Every message kept, oldest first, with its time.
    pub fn iter(&self) -> impl Iterator<Item = (&Element, SystemTime)> {
        self.entries.iter().map(|e| (&e.stanza, e.at))
    }

    /// Adds a stored message back (its delay is already in it), keeping at most `limit`.
    pub fn restore(&mut self, stanza: Element, at: SystemTime, limit: usize) {
        self.entries.push_back(Entry { stanza, at });
        self.truncate(limit);
    }

    pub fn truncate(&mut self, limit: usize) {
        while self.entries.len() > limit {
            self.entries.pop_front();
        }
    }

    /// The messages to replay, oldest first, within every limit of `req`.
    pub fn select(&self, req: &Request) -> Vec<&Element> {
        select(self.entries.iter().map(|e| (&e.stanza, e.at)), req)
    }
}

/// A history message with its XEP-0203 delay from the room, stamped `at`.
pub fn delayed(mut stanza: Element, room: &str, at: SystemTime) -> Element {
    let stamp = DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut delay = Element::bare("delay", NS_DELAY);
    xml::set_attr(&mut delay, "from", room);
    xml::set_attr(&mut delay, "stamp", &stamp);
    stanza.append_child(delay);
    stanza
}

/// Of `entries` (oldest first, with their times), the last ones within every limit of
/// `req`, oldest first.
pub fn select<'a>(
    entries: impl DoubleEndedIterator<Item = (&'a Element, SystemTime)>,
    req: &Request,
) -> Vec<&'a Element> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    let mut chars = 0usize;
    for (stanza, at) in entries.rev() {
        if req.max_stanzas.is_some_and(|m| out.len() >= m) {
            break;
        }
        if let Some(s) = req.seconds
            && now.duration_since(at).map(|d| d.as_secs() > s).unwrap_or(false)
        {
            break;
        }
        if req.since.is_some_and(|since| at < since) {
            break;
        }
        if let Some(max) = req.max_chars {
            chars += xml::to_string(stanza).chars().count();
            if chars > max {
                break;
            }
        }
        out.push(stanza);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Element {
        let mut m = Element::bare("message", "jabber:client");
        m.append_child(xml::text_element("body", "jabber:client", body));
        m
    }

    #[test]
    fn limits_apply() {
        let mut h = History::default();
        for i in 0..5 {
            h.push(msg(&i.to_string()), "room@muc", 3);
        }
        let all = h.select(&Request::default());
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].get_child("body", "jabber:client").unwrap().text(), "2");
        let two = h.select(&Request {
            max_stanzas: Some(2),
            ..Default::default()
        });
        assert_eq!(two[1].get_child("body", "jabber:client").unwrap().text(), "4");
        assert!(
            h.select(&Request {
                max_chars: Some(0),
                ..Default::default()
            })
            .is_empty()
        );
        let future = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(
            h.select(&Request {
                since: Some(future),
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(
            h.select(&Request {
                seconds: Some(100),
                ..Default::default()
            })
            .len(),
            3
        );
    }
}
