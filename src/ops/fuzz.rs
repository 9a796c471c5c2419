//! Entry points of the fuzz targets (`fuzz/`) and of the hostile-corpus test
//! (`tests/hostile_corpus.rs`): each takes raw bytes as a client (or an import file) would
//! supply them and drives one parser the way the server does. Every one must return for any
//! input, without panicking, in time and memory bounded by the limits it is given; what it
//! returns is only whether the input was accepted.

use minidom::Element;

use crate::xml::{ParserLimits, StreamEvent, StreamParser};

/// The stream parser under the limits of an unauthenticated stream (small stanzas), fed in
/// chunks whose sizes come from the input's first byte, so split tokens are exercised.
pub fn stream_preauth(data: &[u8]) -> bool {
    stream(
        data,
        ParserLimits {
            max_stanza_bytes: 10_000,
            max_depth: 48,
        },
    )
}

/// The stream parser under the limits of an authenticated stream.
pub fn stream_postauth(data: &[u8]) -> bool {
    stream(data, ParserLimits::default())
}

fn stream(data: &[u8], limits: ParserLimits) -> bool {
    let Some((&chunk, rest)) = data.split_first() else {
        return true;
    };
    let chunk = usize::from(chunk).max(1);
    let mut parser = StreamParser::new(limits);
    let mut events = Vec::new();
    for piece in rest.chunks(chunk) {
        if parser.feed(piece, &mut events).is_err() {
            return false;
        }
        // What a session does with an element: serialize it (trace, routing, storage).
        for event in events.drain(..) {
            if let StreamEvent::Element(el) = event {
                let _ = crate::xml::to_string(&el);
            }
        }
    }
    true
}

/// SASL PLAIN (RFC 4616) message parsing.
pub fn sasl_plain(data: &[u8]) -> bool {
    crate::sasl::plain::parse_plain(data).is_ok()
}

/// A SCRAM exchange (RFC 5802, -PLUS over fake channel bindings): the input is the
/// client-first message, a 0xFF byte, then the client-final message. The server answers with
/// stand-in credentials (the path of an unknown user), one PBKDF2 iteration.
pub fn sasl_scram(data: &[u8]) -> bool {
    use crate::sasl::{ChannelBindings, Mechanism, ScramServer};
    let mut parts = data.splitn(2, |&b| b == 0xFF);
    let first = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    let mech = match first.first().map(|b| b % 4) {
        Some(0) => Mechanism::ScramSha1,
        Some(1) => Mechanism::ScramSha1Plus,
        Some(2) => Mechanism::ScramSha256Plus,
        _ => Mechanism::ScramSha256,
    };
    let cb = ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    };
    let mut server = ScramServer::new(mech, cb, true);
    if server
        .handle_client_first(first.get(1..).unwrap_or_default())
        .is_err()
    {
        return false;
    }
    let _ = server.server_first(None, b"fuzz-secret", 1);
    server.handle_client_final(last).is_ok()
}

/// Parses `data` as one element the way the stream parser hands it to a handler.
fn element(data: &[u8]) -> Option<Element> {
    let mut parser = StreamParser::new(ParserLimits::default());
    let mut events = Vec::new();
    parser
        .feed(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            &mut events,
        )
        .ok()?;
    parser.feed(data, &mut events).ok()?;
    events.into_iter().find_map(|e| match e {
        StreamEvent::Element(el) => Some(el),
        _ => None,
    })
}

/// Data forms (XEP-0004) as ad-hoc commands (XEP-0050) receive them: the submitted values of
/// a `<command/>`, validated against a form with every kind of field.
pub fn data_form(data: &[u8]) -> bool {
    use crate::command::form::{Field, Form, Kind, parse_submit};
    let Some(el) = element(data) else {
        return false;
    };
    let command = if el.name() == "command" {
        el
    } else {
        Element::builder("command", "http://jabber.org/protocol/commands")
            .append(el)
            .build()
    };
    let Some(values) = parse_submit(&command) else {
        return false;
    };
    let form = Form {
        title: "fuzz".into(),
        instructions: String::new(),
        form_type: None,
        fields: vec![
            Field::new("accountjid", Kind::JidSingle, "JID").required(),
            Field::new("accountjids", Kind::JidMulti, "JIDs"),
            Field::new("password", Kind::TextPrivate, "Password"),
            Field::new("enable", Kind::Boolean, "Flag"),
            Field::new("max_items", Kind::ListSingle, "Max")
                .option("25", "25")
                .option("50", "50"),
            Field::new("announcement", Kind::TextMulti, "Text"),
        ],
    };
    form.validate(&values).is_ok()
}

/// A MUC room configuration form (XEP-0045 §10.2, the owner's submit).
pub fn muc_owner_form(data: &[u8]) -> bool {
    use crate::config::MucConfig;
    use crate::modules::muc::config::RoomConfig;
    let Some(el) = element(data) else {
        return false;
    };
    let muc = MucConfig::default();
    let current = RoomConfig::defaults(&muc);
    let form = if el.name() == "x" {
        el
    } else {
        match el.get_child("x", "jabber:x:data") {
            Some(x) => x.clone(),
            None => return false,
        }
    };
    match current.apply(&form, &muc) {
        Ok(new) => new.check_limits(&current, &muc).is_ok(),
        Err(_) => false,
    }
}

/// Privacy list (XEP-0016) and ignore list items: every `<item/>` child of the input (or the
/// input itself), in both namespaces.
pub fn privacy_items(data: &[u8]) -> bool {
    use crate::modules::blocking::ignore::{self, parse_item};
    let Some(el) = element(data) else {
        return false;
    };
    let mut ok = true;
    for ns in ["jabber:iq:privacy", ignore::NS] {
        let items: Vec<&Element> = if el.name() == "item" {
            vec![&el]
        } else {
            el.children()
                .flat_map(|l| std::iter::once(l).chain(l.children()))
                .collect()
        };
        for item in items.into_iter().filter(|i| i.name() == "item") {
            ok &= parse_item(item, ns).is_ok();
        }
    }
    ok
}

/// A roster set (RFC 6121 §2.3) with a roster note (`xep/xep-roster-notes.md`).
pub fn roster_set(data: &[u8]) -> bool {
    let Some(el) = element(data) else {
        return false;
    };
    let query = if el.name() == "query" {
        el
    } else {
        match el.get_child("query", "jabber:iq:roster") {
            Some(q) => q.clone(),
            None => return false,
        }
    };
    let user = jid::BareJid::new("alice@localhost").expect("a valid JID");
    crate::modules::roster::item::parse_set(&query, &user).is_ok()
}

/// The XEP-0227 reader and record parser (`switchboard import`), includes forbidden (a
/// fuzzer must not open files).
pub fn xep0227(data: &[u8]) -> bool {
    use crate::portable::reader::{ReadLimits, read_stream};
    use crate::portable::record::parse_user;
    let config = match crate::config::Config::parse("domains = [\"localhost\"]\n", "fuzz.toml") {
        Ok(c) => c,
        Err(_) => return false,
    };
    let limits = ReadLimits {
        max_user_bytes: 100_000,
        max_depth: 32,
        max_include_depth: 0,
    };
    let mut input = data;
    read_stream("fuzz.xml", &mut input, limits, &mut |raw| {
        parse_user(&raw, &config).map(|_| ())
    })
    .is_ok()
}

/// An entry point: `true` when the input was accepted.
pub type Entry = fn(&[u8]) -> bool;

/// Every entry point, by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, Entry)] = &[
    ("stream_preauth", stream_preauth),
    ("stream_postauth", stream_postauth),
    ("sasl_plain", sasl_plain),
    ("sasl_scram", sasl_scram),
    ("data_form", data_form),
    ("muc_owner_form", muc_owner_form),
    ("privacy_items", privacy_items),
    ("roster_set", roster_set),
    ("xep0227", xep0227),
];
