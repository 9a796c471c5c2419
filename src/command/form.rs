//! XEP-0004 data forms: the fields a command stage asks for, rendering, parsing a submitted
//! form, and validating it against the fields.

use std::collections::HashMap;

use minidom::Element;
use xmpp_parsers::data_forms::{self, DataForm, DataFormType, FieldType};

pub const NS_DATA: &str = "jabber:x:data";

/// Field types used by our commands (XEP-0004 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Boolean,
    Fixed,
    Hidden,
    JidMulti,
    JidSingle,
    ListSingle,
    TextMulti,
    TextPrivate,
    TextSingle,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "boolean",
            Kind::Fixed => "fixed",
            Kind::Hidden => "hidden",
            Kind::JidMulti => "jid-multi",
            Kind::JidSingle => "jid-single",
            Kind::ListSingle => "list-single",
            Kind::TextMulti => "text-multi",
            Kind::TextPrivate => "text-private",
            Kind::TextSingle => "text-single",
        }
    }

    fn typed(self) -> FieldType {
        match self {
            Kind::Boolean => FieldType::Boolean,
            Kind::Fixed => FieldType::Fixed,
            Kind::Hidden => FieldType::Hidden,
            Kind::JidMulti => FieldType::JidMulti,
            Kind::JidSingle => FieldType::JidSingle,
            Kind::ListSingle => FieldType::ListSingle,
            Kind::TextMulti => FieldType::TextMulti,
            Kind::TextPrivate => FieldType::TextPrivate,
            Kind::TextSingle => FieldType::TextSingle,
        }
    }

    fn multi(self) -> bool {
        matches!(self, Kind::JidMulti | Kind::TextMulti)
    }
}

/// One field of a form or result.
#[derive(Debug, Clone)]
pub struct Field {
    pub var: String,
    pub kind: Kind,
    pub label: String,
    pub required: bool,
    /// (label, value) for list fields.
    pub options: Vec<(String, String)>,
    pub values: Vec<String>,
}

impl Field {
    pub fn new(var: &str, kind: Kind, label: &str) -> Field {
        Field {
            var: var.into(),
            kind,
            label: label.into(),
            required: false,
            options: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub fn value(mut self, v: impl Into<String>) -> Field {
        self.values.push(v.into());
        self
    }

    pub fn values(mut self, v: impl IntoIterator<Item = String>) -> Field {
        self.values.extend(v);
        self
    }

    pub fn option(mut self, label: &str, value: &str) -> Field {
        self.options.push((label.into(), value.into()));
        self
    }

    /// The typed field (xmpp-parsers), for rendering.
    fn to_typed(&self) -> data_forms::Field {
        data_forms::Field {
            var: (!self.var.is_empty()).then(|| self.var.clone()),
            type_: self.kind.typed(),
            label: (!self.label.is_empty()).then(|| self.label.clone()),
            required: self.required,
            desc: None,
            options: self
                .options
                .iter()
                .map(|(label, value)| data_forms::Option_ {
                    label: Some(label.clone()),
                    value: value.clone(),
                })
                .collect(),
            values: self.values.clone(),
            media: Vec::new(),
            validate: None,
        }
    }
}

/// A form (`type='form'`) or a result (`type='result'`).
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub title: String,
    pub instructions: String,
    /// The hidden FORM_TYPE field, if any.
    pub form_type: Option<&'static str>,
    pub fields: Vec<Field>,
}

impl Form {
    /// The `<x/>` of a form (`kind` "form") or a result ("result"), built with xmpp-parsers'
    /// data forms. An unknown `kind` is a result.
    pub fn to_element(&self, kind: &str) -> Element {
        let type_ = match kind {
            "form" => DataFormType::Form,
            _ => DataFormType::Result_,
        };
        let fields = self.fields.iter().map(Field::to_typed).collect();
        let mut form = match self.form_type {
            Some(form_type) => DataForm::new(type_, form_type, fields),
            None => DataForm {
                type_,
                title: None,
                instructions: None,
                fields,
            },
        };
        form.title = (!self.title.is_empty()).then(|| self.title.clone());
        form.instructions = (!self.instructions.is_empty()).then(|| self.instructions.clone());
        form.into()
    }

    /// Fills the fields with earlier answers (going back with `prev`).
    pub fn prefill(&mut self, values: &Values) {
        for f in &mut self.fields {
            if let Some(v) = values.get(&f.var)
                && f.kind != Kind::Fixed
            {
                f.values = v.clone();
            }
        }
    }

    /// Checks a submission against the fields; the message names every problem.
    pub fn validate(&self, submitted: &Values) -> Result<Values, String> {
        let mut problems = Vec::new();
        let mut out = Values::new();
        for f in &self.fields {
            if matches!(f.kind, Kind::Fixed) {
                continue;
            }
            let values: Vec<String> = submitted
                .get(&f.var)
                .map(|v| {
                    v.iter()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let label = if f.label.is_empty() { &f.var } else { &f.label };
            if values.is_empty() {
                if f.required {
                    problems.push(format!("'{label}' is required"));
                }
                continue;
            }
            if !f.kind.multi() && values.len() > 1 {
                problems.push(format!("'{label}' takes a single value"));
                continue;
            }
            for v in &values {
                match f.kind {
                    Kind::JidSingle | Kind::JidMulti if jid::Jid::new(v).is_err() => {
                        problems.push(format!("'{label}': '{v}' is not a valid JID"));
                    }
                    Kind::Boolean if !matches!(v.as_str(), "0" | "1" | "true" | "false") => {
                        problems.push(format!("'{label}': '{v}' is not a boolean"));
                    }
                    Kind::ListSingle if !f.options.iter().any(|(_, o)| o == v) => {
                        problems.push(format!("'{label}': '{v}' is not one of the options"));
                    }
                    _ => {}
                }
            }
            out.insert(f.var.clone(), values);
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Submitted values by field name.
pub type Values = HashMap<String, Vec<String>>;

/// The values of a submitted form (`<x type='submit'/>`), if the element holds one. Text
/// fields keep their values as sent; validation trims them.
pub fn parse_submit(command: &Element) -> Option<Values> {
    let x = command.get_child("x", NS_DATA)?;
    if x.attr("type") != Some("submit") {
        return None;
    }
    let mut values = Values::new();
    for f in x.children().filter(|c| c.is("field", NS_DATA)) {
        let Some(var) = f.attr("var") else { continue };
        let v: Vec<String> = f
            .children()
            .filter(|c| c.is("value", NS_DATA))
            .map(|c| c.text())
            .collect();
        values.entry(var.to_string()).or_default().extend(v);
    }
    Some(values)
}

/// One value of a validated field.
pub fn one<'a>(values: &'a Values, var: &str) -> Option<&'a str> {
    values.get(var).and_then(|v| v.first()).map(String::as_str)
}

/// A validated boolean field (absent = false).
pub fn flag(values: &Values, var: &str) -> bool {
    matches!(one(values, var), Some("1" | "true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form {
            fields: vec![
                Field::new("accountjid", Kind::JidSingle, "JID").required(),
                Field::new("n", Kind::ListSingle, "N")
                    .option("one", "1")
                    .option("two", "2"),
                Field::new("b", Kind::Boolean, "B"),
            ],
            ..Form::default()
        }
    }

    fn vals(list: &[(&str, &[&str])]) -> Values {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn validation_reports_each_problem() {
        let err = form()
            .validate(&vals(&[("n", &["3"]), ("b", &["maybe"])]))
            .unwrap_err();
        assert!(err.contains("'JID' is required"), "{err}");
        assert!(err.contains("not one of the options"), "{err}");
        assert!(err.contains("not a boolean"), "{err}");
        let err = form()
            .validate(&vals(&[("accountjid", &["a@b", "c@d"])]))
            .unwrap_err();
        assert!(err.contains("single value"), "{err}");
        let err = form().validate(&vals(&[("accountjid", &["@@"])])).unwrap_err();
        assert!(err.contains("not a valid JID"), "{err}");
        let ok = form()
            .validate(&vals(&[
                ("accountjid", &[" a@b "]),
                ("b", &["1"]),
                ("x", &["ignored"]),
            ]))
            .unwrap();
        assert_eq!(one(&ok, "accountjid"), Some("a@b"));
        assert!(flag(&ok, "b"));
        assert!(!ok.contains_key("x"));
    }

    #[test]
    fn submitted_forms_parse_and_render() {
        let el: Element = "<command xmlns='http://jabber.org/protocol/commands'><x xmlns='jabber:x:data' type='submit'><field var='a'><value>1</value><value>2</value></field><field var='b'/></x></command>"
            .parse()
            .unwrap();
        let v = parse_submit(&el).unwrap();
        assert_eq!(v["a"], vec!["1", "2"]);
        assert!(v["b"].is_empty());
        let x = form().to_element("form");
        assert_eq!(x.children().filter(|c| c.is("field", NS_DATA)).count(), 3);
    }
}
