//! xep/README.md is the compliance table: every RFC/XEP in xep/doap.xml has a row, and every
//! test a row names exists in this suite. (A stale table fails here, not in review.)

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

/// `xep-0030` / `rfc6120` identifiers named by doap.xml.
fn doap_specs() -> Vec<String> {
    let doap = std::fs::read_to_string(root().join("xep/doap.xml")).expect("xep/doap.xml");
    let mut specs = Vec::new();
    for part in doap.split("rdf:resource=\"").skip(1) {
        let url = &part[..part.find('"').expect("closing quote")];
        let name = url.rsplit('/').next().unwrap_or("").trim_end_matches(".html");
        if name.starts_with("xep-") || name.starts_with("rfc") {
            specs.push(name.to_string());
        }
    }
    specs
}

fn all_test_sources() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(root().join("conformance/tests")).expect("tests dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(&path).expect("read test file"));
        }
    }
    all
}

#[test]
fn xep0453_every_doap_entry_has_a_row_with_existing_tests() {
    let readme = std::fs::read_to_string(root().join("xep/README.md")).expect("xep/README.md");
    let sources = all_test_sources();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| [")).collect();
    for spec in doap_specs() {
        let label = spec.to_uppercase();
        let row = rows
            .iter()
            .find(|r| r.to_uppercase().contains(&format!("[{label}]")))
            .unwrap_or_else(|| panic!("xep/README.md has no row for {spec}"));
        // The last column ("Proven by") names the tests.
        let proven_by = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        let tests: Vec<&str> = proven_by
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        assert!(!tests.is_empty(), "the row for {spec} names no test");
        for t in tests {
            assert!(
                sources.contains(&format!("fn {t}(")),
                "{spec}: test `{t}` does not exist in conformance/tests"
            );
        }
    }
}
