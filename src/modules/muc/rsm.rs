//! XEP-0059 Result Set Management for lists the service pages (disco#items of rooms, §6.3).
//!
//! Items are identified by a unique, sorted key (the room JID); a request picks a page by
//! `<after/>`, `<before/>` (empty: the last page) or `<index/>`, at most `<max/>` items, and
//! the answer says `<first index=.../>`, `<last/>` and `<count/>`.

use std::ops::Range;

use minidom::Element;

use crate::error::StanzaError;
use crate::xml;

pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// A client's `<set/>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub max: Option<usize>,
    pub after: Option<String>,
    /// `Some(None)`: an empty `<before/>`, the last page.
    pub before: Option<Option<String>>,
    pub index: Option<usize>,
}

impl Request {
    /// The `<set/>` in `query`, if any; malformed numbers are `bad-request`.
    pub fn from_query(query: &Element) -> Result<Option<Request>, StanzaError> {
        let Some(set) = query.get_child("set", NS_RSM) else {
            return Ok(None);
        };
        let number = |name: &str| -> Result<Option<usize>, StanzaError> {
            match set.get_child(name, NS_RSM) {
                None => Ok(None),
                Some(e) => e
                    .text()
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| StanzaError::bad_request().text(format!("<{name}/> must be a number"))),
            }
        };
        let text = |name: &str| set.get_child(name, NS_RSM).map(|e| e.text());
        Ok(Some(Request {
            max: number("max")?,
            after: text("after"),
            before: text("before").map(|t| Some(t).filter(|t| !t.is_empty())),
            index: number("index")?,
        }))
    }
}

/// The page of `ids` (sorted, unique) that `request` asks for, never more than `cap` items,
/// and the `<set/>` to answer with: present when the client sent one or the list was cut.
/// An `after`/`before` naming no item is `item-not-found` (XEP-0059 §2.5).
pub fn page(
    ids: &[String],
    request: Option<&Request>,
    cap: usize,
) -> Result<(Range<usize>, Option<Element>), StanzaError> {
    let n = ids.len();
    let max = request.and_then(|r| r.max).unwrap_or(cap).min(cap);
    let find = |id: &str| {
        ids.binary_search_by(|probe| probe.as_str().cmp(id))
            .map_err(|_| StanzaError::item_not_found().text("no such item in the result set"))
    };
    let range = match request {
        Some(Request {
            before: Some(before), ..
        }) => {
            let end = match before {
                Some(id) => find(id)?,
                None => n,
            };
            end.saturating_sub(max)..end
        }
        Some(Request { after: Some(id), .. }) => {
            let start = find(id)? + 1;
            start..(start + max).min(n)
        }
        Some(Request { index: Some(i), .. }) => {
            let start = (*i).min(n);
            start..(start + max).min(n)
        }
        _ => 0..max.min(n),
    };
    if request.is_none() && range.len() == n {
        return Ok((range, None));
    }
    let mut set = Element::bare("set", NS_RSM);
    if !range.is_empty() {
        let mut first = xml::text_element("first", NS_RSM, &ids[range.start]);
        xml::set_attr(&mut first, "index", &range.start.to_string());
        set.append_child(first);
        set.append_child(xml::text_element("last", NS_RSM, &ids[range.end - 1]));
    }
    set.append_child(xml::text_element("count", NS_RSM, &n.to_string()));
    Ok((range, Some(set)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i:02}")).collect()
    }

    fn req(xml_set: &str) -> Request {
        let q: Element = format!("<query xmlns='q'><set xmlns='{NS_RSM}'>{xml_set}</set></query>")
            .parse()
            .unwrap();
        Request::from_query(&q).unwrap().unwrap()
    }

    #[test]
    fn pages_forward_backward_and_by_index() {
        let all = ids(10);
        assert_eq!(page(&all, Some(&req("<max>3</max>")), 100).unwrap().0, 0..3);
        assert_eq!(
            page(&all, Some(&req("<max>3</max><after>r02</after>")), 100)
                .unwrap()
                .0,
            3..6
        );
        assert_eq!(
            page(&all, Some(&req("<max>3</max><after>r08</after>")), 100)
                .unwrap()
                .0,
            9..10
        );
        assert_eq!(
            page(&all, Some(&req("<max>3</max><before/>")), 100).unwrap().0,
            7..10
        );
        assert_eq!(
            page(&all, Some(&req("<max>3</max><before>r02</before>")), 100)
                .unwrap()
                .0,
            0..2
        );
        assert_eq!(
            page(&all, Some(&req("<max>3</max><index>8</index>")), 100)
                .unwrap()
                .0,
            8..10
        );
        // The cap wins over a larger max; no set without a request when nothing was cut.
        assert_eq!(page(&all, Some(&req("<max>50</max>")), 4).unwrap().0, 0..4);
        let (r, set) = page(&all, None, 100).unwrap();
        assert_eq!((r, set), (0..10, None));
        let (r, set) = page(&all, None, 4).unwrap();
        assert_eq!(r, 0..4);
        let set = set.unwrap();
        assert_eq!(set.get_child("count", NS_RSM).unwrap().text(), "10");
        assert_eq!(set.get_child("first", NS_RSM).unwrap().attr("index"), Some("0"));
        assert_eq!(set.get_child("last", NS_RSM).unwrap().text(), "r03");
        // max 0: the count only.
        let (r, set) = page(&all, Some(&req("<max>0</max>")), 100).unwrap();
        assert!(r.is_empty());
        assert!(set.unwrap().get_child("first", NS_RSM).is_none());
        assert!(page(&all, Some(&req("<after>nope</after>")), 100).is_err());
        let bad: Element = format!("<query xmlns='q'><set xmlns='{NS_RSM}'><max>-1</max></set></query>")
            .parse()
            .unwrap();
        assert!(Request::from_query(&bad).is_err());
    }
}
