//! XEP-0431 full-text search: the `{urn:xmpp:fulltext:0}fulltext` field of a query, read
//! once into terms and written in both backends' syntax, so SQLite (FTS5) and PostgreSQL
//! (tsvector, 'simple') answer the same query the same way:
//!
//! - terms are separated by spaces and must all match (AND), in the message's body;
//! - `"two words"` is a phrase: the words adjacent, in that order;
//! - `word*` matches the words starting with `word` (on a phrase, its last word);
//! - words are letters and digits, matched without regard to case and without stemming;
//!   anything else separates words (`don't` is the phrase `don t`).
//!
//! Only letters and digits reach either query language, so nothing a user types is syntax.

use crate::storage::archive::FullText;

pub const NS: &str = "urn:xmpp:fulltext:0";
/// The query form field (XEP-0431 §2).
pub const FIELD: &str = "{urn:xmpp:fulltext:0}fulltext";

struct Term {
    words: Vec<String>,
    prefix: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn terms(q: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let (raw, phrase, tail) = if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"').unwrap_or(after.len());
            (&after[..end], true, after.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        let (tail, prefix) = match tail.strip_prefix('*') {
            Some(t) if phrase => (t, true),
            _ => (tail, !phrase && raw.ends_with('*')),
        };
        let words = words(raw);
        if !words.is_empty() {
            out.push(Term { words, prefix });
        }
        rest = tail.trim_start();
    }
    out
}

/// The query in both syntaxes; `None` when it holds no word.
pub fn parse(q: &str) -> Option<FullText> {
    let terms = terms(q);
    if terms.is_empty() {
        return None;
    }
    let fts5 = terms
        .iter()
        .map(|t| format!("\"{}\"{}", t.words.join(" "), if t.prefix { "*" } else { "" }))
        .collect::<Vec<_>>()
        .join(" AND ");
    let tsquery = terms
        .iter()
        .map(|t| {
            let mut parts: Vec<String> = t.words.clone();
            if t.prefix
                && let Some(last) = parts.last_mut()
            {
                last.push_str(":*");
            }
            if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!("({})", parts.join(" <-> "))
            }
        })
        .collect::<Vec<_>>()
        .join(" & ");
    Some(FullText { fts5, tsquery })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(q: &str) -> (String, String) {
        let f = parse(q).unwrap();
        (f.fts5, f.tsquery)
    }

    #[test]
    fn xep0431_terms_in_both_syntaxes() {
        assert_eq!(both("Hello"), ("\"hello\"".into(), "hello".into()));
        assert_eq!(
            both("  hello   World "),
            ("\"hello\" AND \"world\"".into(), "hello & world".into())
        );
        assert_eq!(
            both("\"big red\" dog*"),
            ("\"big red\" AND \"dog\"*".into(), "(big <-> red) & dog:*".into())
        );
        assert_eq!(
            both("\"big re\"*"),
            ("\"big re\"*".into(), "(big <-> re:*)".into())
        );
        assert_eq!(both("don't"), ("\"don t\"".into(), "(don <-> t)".into()));
        // Syntax of either language is only separators here.
        assert_eq!(
            both("a&b|c:*(d) NEAR/2 \"e"),
            (
                "\"a b c d\" AND \"near 2\" AND \"e\"".into(),
                "(a <-> b <-> c <-> d) & (near <-> 2) & e".into()
            )
        );
        assert_eq!(
            both("Überraschung"),
            ("\"überraschung\"".into(), "überraschung".into())
        );
        assert_eq!(parse("  \"\" * ' "), None);
    }
}
