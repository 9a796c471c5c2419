//! An archive query (XEP-0313 §4) read into storage terms, and its answers built: the
//! parsing and building use xmpp-parsers' `mam`, `rsm`, `data_forms` and `delay` types; the
//! forwarded message stays the element that was archived.
//!
//! Ids are the archive's stanza-ids: decimal unix microseconds (made unique). Paging
//! (XEP-0059): `<after/>` pages forwards, `<before/>` backwards (empty: the last page),
//! `<index/>` from a position; `<max/>` above `limits.max_archive_page` is lowered to it (the
//! page then ends before the set does and `<fin/>` is not `complete`). `<flip-page/>`
//! reverses the order in which a page's messages are sent; `<first/>` and `<last/>` keep
//! naming the page's oldest and newest message.

use std::str::FromStr;

use jid::Jid;
use minidom::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::date::DateTime;
use xmpp_parsers::delay::Delay;
use xmpp_parsers::mam::{Fin, Query};
use xmpp_parsers::rsm::{First, SetResult};

use crate::error::StanzaError;
use crate::storage::archive::{ArchiveFilter, ArchivePage, PageFrom};
use crate::xml::{self, ns};

use super::NS;

/// A query's page size when it names none (lowered to the server's limit if that is lower).
pub const DEFAULT_PAGE: usize = 50;
const NS_FORWARD: &str = "urn:xmpp:forward:0";

/// A query, read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub queryid: Option<String>,
    pub filter: ArchiveFilter,
    pub from: Option<PageFrom>,
    pub max: usize,
    pub flip: bool,
    /// Ids the query names as positions (`after-id`, `before-id`, RSM `after`/`before`):
    /// each must be in the archive, else `item-not-found`.
    pub positions: Vec<i64>,
}

/// Reads `<query xmlns='urn:xmpp:mam:2'/>`; `limit` is the server's largest page.
pub fn parse(query: &Element, limit: usize) -> Result<Request, StanzaError> {
    let query = Query::try_from(query.clone())
        .map_err(|e| StanzaError::bad_request().text(format!("malformed archive query: {e}")))?;
    if query.node.is_some() {
        return Err(StanzaError::feature_not_implemented().text("this archive has no nodes"));
    }
    let mut req = Request {
        queryid: query.queryid.map(|q| q.0),
        flip: query.flip_page,
        ..Default::default()
    };
    if let Some(form) = &query.form {
        read_form(form, &mut req)?;
    }
    // One placeholder per id: bounded like a page.
    if req
        .filter
        .ids
        .as_ref()
        .is_some_and(|ids| ids.len() > limit.max(1))
    {
        return Err(StanzaError::policy_violation().text(format!("at most {limit} ids per query")));
    }
    let set = query.set.unwrap_or(xmpp_parsers::rsm::SetQuery {
        max: None,
        after: None,
        before: None,
        index: None,
    });
    req.max = set.max.unwrap_or(DEFAULT_PAGE).min(limit);
    let after = set
        .after
        .filter(|a| !a.is_empty())
        .map(|a| parse_id(&a))
        .transpose()?;
    req.positions.extend(after);
    req.from = Some(match (set.before, after) {
        (Some(before), after) => {
            if let Some(after) = after {
                // Both: a window between them, paged from its end.
                req.filter.after_id = Some(req.filter.after_id.map_or(after, |a| a.max(after)));
            }
            if before.is_empty() {
                PageFrom::Last
            } else {
                let id = parse_id(&before)?;
                req.positions.push(id);
                PageFrom::Before(id)
            }
        }
        (None, Some(after)) => PageFrom::After(after),
        (None, None) => match set.index {
            // Past the end is an empty page; clamped so the SQL offset stays a valid number.
            Some(i) => PageFrom::Index((i as u64).min(i64::MAX as u64)),
            None => PageFrom::Start,
        },
    });
    Ok(req)
}

fn read_form(form: &DataForm, req: &mut Request) -> Result<(), StanzaError> {
    if form.type_ != DataFormType::Submit {
        return Err(StanzaError::bad_request().text("the query form must be of type submit"));
    }
    if form.form_type().is_some_and(|t| t != NS) {
        return Err(StanzaError::bad_request().text("the query form's FORM_TYPE is not urn:xmpp:mam:2"));
    }
    for field in &form.fields {
        if field.is_form_type(&form.type_) {
            continue;
        }
        let var = field.var.as_deref().unwrap_or_default();
        let value = field.values.first().map(String::as_str).filter(|v| !v.is_empty());
        let f = &mut req.filter;
        match (var, value) {
            ("ids", _) => {
                // Ids that are not ours cannot be in the archive: simply not found.
                f.ids = Some(field.values.iter().filter_map(|v| v.parse().ok()).collect());
            }
            (super::fulltext::FIELD, Some(v)) => {
                let ft = super::fulltext::parse(v)
                    .ok_or_else(|| StanzaError::bad_request().text("the full-text query has no word"))?;
                f.fulltext = Some(ft);
            }
            ("with" | "start" | "end" | "after-id" | "before-id" | super::fulltext::FIELD, None) => {}
            ("with", Some(v)) => {
                let jid =
                    Jid::new(v).map_err(|_| StanzaError::jid_malformed().text("'with' is not a JID"))?;
                let resource = jid.resource().map(|r| r.to_string());
                f.peer = Some((jid.to_bare().to_string(), resource));
            }
            ("start", Some(v)) => f.start = Some(micros(v)?),
            ("end", Some(v)) => f.end = Some(micros(v)?),
            ("after-id", Some(v)) => {
                let id = parse_id(v)?;
                req.positions.push(id);
                f.after_id = Some(id);
            }
            ("before-id", Some(v)) => {
                let id = parse_id(v)?;
                req.positions.push(id);
                f.before_id = Some(id);
            }
            (other, _) => {
                return Err(StanzaError::bad_request().text(format!("unknown field '{other}'")));
            }
        }
    }
    Ok(())
}

/// An archive id from a client: ours are positive decimal numbers; anything else is not in
/// the archive.
fn parse_id(s: &str) -> Result<i64, StanzaError> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| StanzaError::item_not_found().text("no message with this id in the archive"))
}

/// A XEP-0082 date-time as unix microseconds.
fn micros(v: &str) -> Result<i64, StanzaError> {
    DateTime::from_str(v)
        .map(|d| d.0.timestamp_micros())
        .map_err(|_| StanzaError::bad_request().text("not a XEP-0082 date-time"))
}

/// The stamp of an archived message: its id's time.
pub fn stamp(id: i64) -> DateTime {
    let utc = chrono::DateTime::from_timestamp_micros(id).unwrap_or_default();
    DateTime(utc.fixed_offset())
}

/// `<message to=requester from=archive><result queryid id><forwarded><delay/>original`.
pub fn result_message(to: &str, archive: &str, queryid: Option<&str>, id: i64, original: Element) -> Element {
    let delay: Element = Delay {
        from: None,
        stamp: stamp(id),
        data: None,
    }
    .into();
    let forwarded = Element::builder("forwarded", NS_FORWARD)
        .append(delay)
        .append(original)
        .build();
    let mut result = Element::builder("result", NS).append(forwarded).build();
    if let Some(q) = queryid {
        xml::set_attr(&mut result, "queryid", q);
    }
    xml::set_attr(&mut result, "id", &id.to_string());
    let mut msg = Element::builder("message", ns::CLIENT).append(result).build();
    xml::set_attr(&mut msg, "to", to);
    xml::set_attr(&mut msg, "from", archive);
    msg
}

/// `<fin complete?><set><first index/><last/><count/></set></fin>` for a page.
pub fn fin(page: &ArchivePage) -> Element {
    let first = page.messages.first().map(|m| First {
        index: page.first_index.map(|i| i as usize),
        item: m.id.to_string(),
    });
    Fin {
        complete: page.complete,
        set: SetResult {
            first,
            last: page.messages.last().map(|m| m.id.to_string()),
            count: Some(page.count as usize),
        },
    }
    .into()
}

/// The query form a client may fill (XEP-0313 §4.1.1, answering an IQ get).
pub fn form() -> Element {
    let fields = vec![
        Field::new("with", FieldType::JidSingle),
        Field::new("start", FieldType::TextSingle),
        Field::new("end", FieldType::TextSingle),
        Field::new("after-id", FieldType::TextSingle),
        Field::new("before-id", FieldType::TextSingle),
        Field::new("ids", FieldType::TextMulti),
        Field::new(super::fulltext::FIELD, FieldType::TextSingle),
    ];
    let form: Element = DataForm::new(DataFormType::Form, NS, fields).into();
    Element::builder("query", NS).append(form).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(inner: &str) -> Result<Request, StanzaError> {
        let el: Element = format!("<query xmlns='urn:xmpp:mam:2' queryid='q1'>{inner}</query>")
            .parse()
            .unwrap();
        parse(&el, 100)
    }

    fn form(fields: &str) -> String {
        format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>urn:xmpp:mam:2</value></field>{fields}</x>"
        )
    }

    fn set(inner: &str) -> String {
        format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>")
    }

    #[test]
    fn xep0313_4_1_filters_read() {
        let r = q(&form(
            "<field var='with'><value>bob@example.org/phone</value></field>\
             <field var='start'><value>2010-06-07T00:00:00Z</value></field>\
             <field var='end'><value>2010-07-07T13:23:54.5Z</value></field>\
             <field var='after-id'><value>10</value></field>\
             <field var='before-id'><value>20</value></field>\
             <field var='ids'><value>11</value><value>x</value><value>12</value></field>",
        ))
        .unwrap();
        assert_eq!(r.queryid.as_deref(), Some("q1"));
        assert_eq!(
            r.filter.peer,
            Some(("bob@example.org".into(), Some("phone".into())))
        );
        assert_eq!(r.filter.start, Some(1_275_868_800_000_000));
        assert_eq!(r.filter.end, Some(1_278_509_034_500_000));
        assert_eq!((r.filter.after_id, r.filter.before_id), (Some(10), Some(20)));
        assert_eq!(r.filter.ids, Some(vec![11, 12]));
        assert_eq!(r.positions, [10, 20]);
        assert_eq!((r.from, r.max), (Some(PageFrom::Start), DEFAULT_PAGE));
    }

    #[test]
    fn xep0059_paging_read() {
        assert_eq!(q(&set("<max>10</max>")).unwrap().max, 10);
        assert_eq!(q(&set("<max>1000</max>")).unwrap().max, 100, "capped");
        assert_eq!(q(&set("<before/>")).unwrap().from, Some(PageFrom::Last));
        let r = q(&set("<before>7</before>")).unwrap();
        assert_eq!((r.from, r.positions), (Some(PageFrom::Before(7)), vec![7]));
        let r = q(&set("<after>7</after>")).unwrap();
        assert_eq!((r.from, r.positions), (Some(PageFrom::After(7)), vec![7]));
        assert_eq!(
            q(&set("<index>3</index>")).unwrap().from,
            Some(PageFrom::Index(3))
        );
        assert!(q("<flip-page/>").unwrap().flip);
    }

    #[test]
    fn xep0313_bad_queries() {
        let cond = |r: Result<Request, StanzaError>| {
            r.unwrap_err()
                .to_element()
                .children()
                .next()
                .unwrap()
                .name()
                .to_string()
        };
        assert_eq!(cond(q(&set("<after>abc</after>"))), "item-not-found");
        assert_eq!(
            cond(q(&form("<field var='before-id'><value>-1</value></field>"))),
            "item-not-found"
        );
        assert_eq!(
            cond(q(&form("<field var='colour'><value>red</value></field>"))),
            "bad-request"
        );
        assert_eq!(
            cond(q(&form("<field var='start'><value>yesterday</value></field>"))),
            "bad-request"
        );
        assert_eq!(
            cond(q(&form("<field var='with'><value>@@</value></field>"))),
            "jid-malformed"
        );
        assert_eq!(cond(q(&set("<max>many</max>"))), "bad-request");
        let many: String = (1..=101).map(|i| format!("<value>{i}</value>")).collect();
        assert_eq!(
            cond(q(&form(&format!("<field var='ids'>{many}</field>")))),
            "policy-violation"
        );
        assert_eq!(
            q(&set("<index>18446744073709551615</index>")).unwrap().from,
            Some(PageFrom::Index(i64::MAX as u64))
        );
    }
}
