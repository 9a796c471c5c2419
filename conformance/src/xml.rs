//! XML helpers: serialisation, parsing of test literals, error conditions,
//! and the XEP-0115 verification string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;
use sha1::{Digest, Sha1};

use crate::ns;

/// Serialises an element (for messages and for sending).
pub fn to_string(el: &Element) -> String {
    let mut out = Vec::new();
    el.write_to(&mut out).expect("serialise element");
    String::from_utf8(out).expect("utf-8")
}

/// Escapes text for use in XML character data or attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// Parses a test literal; when the root has no `xmlns`, `jabber:client` is assumed.
pub fn parse_client(s: &str) -> Element {
    let s = s.trim();
    let head_end = s.find('>').expect("an element");
    let head = &s[..head_end];
    let src = if head.contains(" xmlns=") {
        s.to_owned()
    } else {
        let name_end = s[1..]
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .map(|i| i + 1)
            .expect("tag name");
        format!("{} xmlns='{}'{}", &s[..name_end], ns::CLIENT, &s[name_end..])
    };
    src.parse()
        .unwrap_or_else(|e| panic!("test literal is not XML ({e}): {src}"))
}

/// Defined condition of a `<stream:error/>`.
pub fn stream_error_condition(el: &Element) -> Option<String> {
    el.children()
        .find(|c| c.ns() == ns::STREAMS_ERR && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// `(type, condition)` of a stanza of type `error`.
pub fn stanza_error(el: &Element) -> Option<(String, String)> {
    if el.attr("type") != Some("error") {
        return None;
    }
    let err = el.children().find(|c| c.name() == "error")?;
    let cond = err
        .children()
        .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())?;
    Some((err.attr("type").unwrap_or("").to_owned(), cond))
}

/// Asserts that `el` is an error stanza with one of the given conditions.
pub fn assert_stanza_error(el: &Element, conditions: &[&str]) {
    match stanza_error(el) {
        Some((_, c)) if conditions.contains(&c.as_str()) => {}
        other => panic!(
            "expected a stanza error {conditions:?}, got {other:?}: {}",
            to_string(el)
        ),
    }
}

/// Whether `features` lists the SASL mechanism.
pub fn has_mechanism(features: &Element, mech: &str) -> bool {
    mechanisms(features).iter().any(|m| m == mech)
}

/// SASL mechanisms listed in stream features.
pub fn mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", ns::SASL)
        .map(|m| {
            m.children()
                .filter(|c| c.is("mechanism", ns::SASL))
                .map(|c| c.text().trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn xml_lang(el: &Element) -> String {
    el.attrs()
        .iter()
        .find(|((nsv, name), _)| name.as_str() == "lang" && **nsv == *rxml::Namespace::xml())
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// XEP-0115 §5.1 verification string of a disco#info `<query/>`, and its
/// SHA-1/base64 hash (the `ver` attribute).
pub fn caps_verification_string(query: &Element) -> String {
    let mut s = String::new();
    let mut idents: Vec<(String, String, String, String)> = query
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|c| {
            (
                c.attr("category").unwrap_or("").to_owned(),
                c.attr("type").unwrap_or("").to_owned(),
                xml_lang(c),
                c.attr("name").unwrap_or("").to_owned(),
            )
        })
        .collect();
    idents.sort();
    for (cat, ty, lang, name) in idents {
        s.push_str(&format!("{cat}/{ty}/{lang}/{name}<"));
    }
    let mut features: Vec<String> = query
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .map(|c| c.attr("var").unwrap_or("").to_owned())
        .collect();
    features.sort();
    for f in features {
        s.push_str(&f);
        s.push('<');
    }
    // Extended information (XEP-0128 forms), sorted by FORM_TYPE.
    type Field = (String, Vec<String>);
    let mut forms: Vec<(String, Vec<Field>)> = Vec::new();
    for form in query.children().filter(|c| c.is("x", ns::DATA_FORMS)) {
        let mut form_type = String::new();
        let mut fields = Vec::new();
        for field in form.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let var = field.attr("var").unwrap_or("").to_owned();
            let mut values: Vec<String> = field
                .children()
                .filter(|c| c.is("value", ns::DATA_FORMS))
                .map(|v| v.text())
                .collect();
            if var == "FORM_TYPE" {
                form_type = values.first().cloned().unwrap_or_default();
            } else {
                values.sort();
                fields.push((var, values));
            }
        }
        fields.sort();
        forms.push((form_type, fields));
    }
    forms.sort();
    for (form_type, fields) in forms {
        s.push_str(&form_type);
        s.push('<');
        for (var, values) in fields {
            s.push_str(&var);
            s.push('<');
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    s
}

/// XEP-0115 `ver` (sha-1) for a disco#info `<query/>`.
pub fn caps_ver_sha1(query: &Element) -> String {
    B64.encode(Sha1::digest(caps_verification_string(query).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // XEP-0115 §5.2 simple example.
    #[test]
    fn xep0115_simple_example() {
        let q: Element = "<query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity category='client' name='Exodus 0.9.1' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/></query>"
            .parse()
            .unwrap();
        assert_eq!(caps_ver_sha1(&q), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    // XEP-0115 §5.3 complex example (identities with xml:lang, extended form).
    #[test]
    fn xep0115_complex_example() {
        let q: Element = "<query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
            <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/>\
            <x xmlns='jabber:x:data' type='result'>\
              <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
              <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
              <field var='os'><value>Mac</value></field>\
              <field var='os_version'><value>10.5.1</value></field>\
              <field var='software'><value>Psi</value></field>\
              <field var='software_version'><value>0.11</value></field>\
            </x></query>"
            .parse()
            .unwrap();
        assert_eq!(caps_ver_sha1(&q), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }

    #[test]
    fn parse_client_adds_namespace() {
        let e = parse_client("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert!(e.is("iq", ns::CLIENT));
        let e = parse_client("<message/>");
        assert!(e.is("message", ns::CLIENT));
    }
}
