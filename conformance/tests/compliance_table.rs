//! xep/README.md is the compliance table. This file keeps it honest:
//! - every RFC/XEP in xep/doap.xml has a row, and every spec row is in doap.xml;
//! - a row's status and version agree with doap.xml's `<xmpp:status>` and `<xmpp:version>`;
//! - every name a "Proven by" column cites, in every table (specs, our extensions, "also
//!   tested"), is a `#[test]` / `#[tokio::test]` function in conformance/tests that is not
//!   `#[ignore]`d. A helper, an ignored or a commented-out test does not count, and a cited
//!   name that is not a test (whatever its characters) fails rather than being skipped.
//!
//! (A stale table fails here, not in review.)

use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One spec doap.xml says we implement: `xep-0030` / `rfc6120`, with the status and version
/// it gives (RFCs carry neither).
#[derive(Debug, PartialEq)]
struct DoapSpec {
    id: String,
    status: Option<String>,
    version: Option<String>,
}

/// The text of the first `<tag>...</tag>` in `s`.
fn element_text<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))?;
    Some(s[start..start + end].trim())
}

/// The spec identifier at the end of a resource URL (`.../xep-0030.html` -> `xep-0030`).
fn spec_id(url: &str) -> Option<String> {
    let name = url.rsplit('/').next()?.trim_end_matches(".html");
    (name.starts_with("xep-") || name.starts_with("rfc")).then(|| name.to_owned())
}

fn doap_specs(doap: &str) -> Vec<DoapSpec> {
    let mut specs = Vec::new();
    // Each `<implements>` is either a bare resource (RFCs) or wraps one SupportedXep.
    for part in doap.split("<implements").skip(1) {
        let end = part.find("</implements>").unwrap_or(part.len());
        let block = &part[..end];
        let Some(url) = block
            .split("rdf:resource=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let Some(id) = spec_id(url) else { continue };
        specs.push(DoapSpec {
            id,
            status: element_text(block, "xmpp:status").map(str::to_owned),
            version: element_text(block, "xmpp:version").map(str::to_owned),
        });
    }
    specs
}

/// A Markdown table: its header cells and its rows' cells.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

fn tables(markdown: &str) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut lines = markdown.lines().peekable();
    while let Some(line) = lines.next() {
        let is_header = line.trim_start().starts_with('|')
            && lines.peek().is_some_and(|next| {
                next.trim_start().starts_with("|---") || next.trim_start().starts_with("| ---")
            });
        if !is_header {
            continue;
        }
        lines.next();
        let mut table = Table {
            header: cells(line),
            rows: Vec::new(),
        };
        while let Some(row) = lines.next_if(|l| l.trim_start().starts_with('|')) {
            table.rows.push(cells(row));
        }
        out.push(table);
    }
    out
}

/// The `code spans` of a cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Test functions of `source` by name, with whether they are ignored. Only a function
/// under `#[test]` / `#[tokio::test...]` counts; comments are skipped.
fn test_functions(source: &str) -> BTreeMap<String, bool> {
    let mut tests = BTreeMap::new();
    let mut attrs: Vec<String> = Vec::new();
    let mut in_block_comment = false;
    let mut pending_attr = String::new();
    for raw in source.lines() {
        let mut line = raw.trim();
        if in_block_comment {
            match line.find("*/") {
                Some(i) => {
                    in_block_comment = false;
                    line = line[i + 2..].trim();
                }
                None => continue,
            }
        }
        if let Some(i) = line.find("/*")
            && !line[..i].contains('"')
        {
            in_block_comment = !line[i..].contains("*/");
            line = line[..i].trim();
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        // Attributes, possibly over several lines.
        if !pending_attr.is_empty() || line.starts_with("#[") {
            pending_attr.push_str(line);
            if pending_attr.matches('[').count() <= pending_attr.matches(']').count() {
                attrs.push(std::mem::take(&mut pending_attr));
            }
            continue;
        }
        let signature = line.strip_prefix("pub ").unwrap_or(line);
        let signature = signature.strip_prefix("async ").unwrap_or(signature);
        if let Some(rest) = signature.strip_prefix("fn ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let is_test = attrs
                .iter()
                .any(|a| a == "#[test]" || a.starts_with("#[tokio::test"));
            if is_test {
                let ignored = attrs.iter().any(|a| a.starts_with("#[ignore"));
                tests.insert(name, ignored);
            }
        }
        attrs.clear();
    }
    tests
}

fn suite_tests() -> BTreeMap<String, bool> {
    let mut all = BTreeMap::new();
    let dir = root().join("conformance/tests");
    for entry in std::fs::read_dir(&dir).expect("tests dir") {
        let path = entry.expect("entry").path();
        // This file's own fixtures look like tests but are strings.
        let this_file = path.file_name().is_some_and(|n| n == "compliance_table.rs");
        if path.extension().is_some_and(|e| e == "rs") && !this_file {
            let source = std::fs::read_to_string(&path).expect("read test file");
            for (name, ignored) in test_functions(&source) {
                assert!(
                    all.insert(name.clone(), ignored).is_none(),
                    "two tests named {name}: the table could not tell them apart"
                );
            }
        }
    }
    all
}

/// Problems with the names cited in every "Proven by" column of `readme`.
fn citation_problems(readme: &str, tests: &BTreeMap<String, bool>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut proving_tables = 0;
    for table in tables(readme) {
        let Some(col) = table.header.iter().position(|h| h == "Proven by") else {
            continue;
        };
        proving_tables += 1;
        for row in &table.rows {
            let what = row.first().map(String::as_str).unwrap_or("?");
            let cited = row.get(col).map(|c| code_spans(c)).unwrap_or_default();
            if cited.is_empty() {
                problems.push(format!("{what}: names no test"));
            }
            for name in cited {
                match tests.get(name) {
                    None => problems.push(format!(
                        "{what}: `{name}` is not a test function in conformance/tests"
                    )),
                    Some(true) => problems.push(format!("{what}: `{name}` is #[ignore]d")),
                    Some(false) => {}
                }
            }
        }
    }
    if proving_tables == 0 {
        problems.push("no table with a \"Proven by\" column".into());
    }
    problems
}

/// Problems between doap.xml and the spec table (the one with a "Status" column).
fn doap_problems(readme: &str, doap: &[DoapSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    let tables = tables(readme);
    let Some(table) = tables.iter().find(|t| t.header.iter().any(|h| h == "Status")) else {
        return vec!["no spec table (with a \"Status\" column)".into()];
    };
    let col = |name: &str| table.header.iter().position(|h| h == name);
    let (Some(spec_col), Some(status_col), Some(version_col)) = (col("Spec"), col("Status"), col("Version"))
    else {
        return vec!["the spec table needs Spec, Version and Status columns".into()];
    };
    // `[XEP-0030] Service Discovery` -> `xep-0030`.
    let row_id = |row: &Vec<String>| -> Option<String> {
        let cell = row.get(spec_col)?;
        let label = cell.strip_prefix('[')?.split(']').next()?;
        Some(label.to_lowercase())
    };
    for row in &table.rows {
        let Some(id) = row_id(row) else {
            problems.push(format!("row without a [SPEC] label: {row:?}"));
            continue;
        };
        if !doap.iter().any(|d| d.id == id) {
            problems.push(format!("{id}: has a row but is not in doap.xml"));
        }
    }
    for spec in doap {
        let Some(row) = table
            .rows
            .iter()
            .find(|r| row_id(r).as_deref() == Some(spec.id.as_str()))
        else {
            problems.push(format!("{}: in doap.xml but has no row", spec.id));
            continue;
        };
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let status = cell(status_col);
        if let Some(want) = &spec.status {
            // The row may explain ("partial: no data forms"); its first word is the status.
            let first = status.split([':', ' ', ',', '(']).next().unwrap_or("");
            if first != want {
                problems.push(format!(
                    "{}: status is `{want}` in doap.xml but `{status}` in README.md",
                    spec.id
                ));
            }
        }
        if let Some(want) = &spec.version
            && cell(version_col) != want
        {
            problems.push(format!(
                "{}: version is {want} in doap.xml but {} in README.md",
                spec.id,
                cell(version_col)
            ));
        }
    }
    problems
}

#[test]
fn xep0453_doap_and_table_agree() {
    let doap = doap_specs(&read("xep/doap.xml"));
    assert!(doap.len() > 10, "doap.xml parsed to {doap:?}");
    let problems = doap_problems(&read("xep/README.md"), &doap);
    assert!(
        problems.is_empty(),
        "xep/README.md vs doap.xml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn xep0453_every_cited_test_exists_and_runs() {
    let tests = suite_tests();
    let problems = citation_problems(&read("xep/README.md"), &tests);
    assert!(problems.is_empty(), "xep/README.md:\n{}", problems.join("\n"));
}

// The checker itself: what it must refuse.
#[test]
fn checker_counts_only_tests_that_run() {
    let source = r#"
#[tokio::test]
async fn real() {}

#[tokio::test]
#[ignore = "slow"]
async fn ignored() {}

async fn helper() {}

// #[tokio::test]
// async fn commented_out() {}

/*
#[test]
fn in_block_comment() {}
*/

#[tokio::test(
    flavor = "multi_thread"
)]
async fn multi_line_attribute() {}

#[test]
pub fn sync_test() {}
"#;
    let tests = test_functions(source);
    let names: Vec<(&str, bool)> = tests.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    assert_eq!(
        names,
        [
            ("ignored", true),
            ("multi_line_attribute", false),
            ("real", false),
            ("sync_test", false)
        ]
    );
    let readme = "\
| Spec | Proven by |
|---|---|
| [A] | `real`, `helper` |
| [B] | `ignored` |
| [C] | `cli_*`, `with-dash` |
| [D] | none |

| Also tested | Proven by |
|---|---|
| thing | `commented_out` |
";
    let problems = citation_problems(readme, &tests);
    assert_eq!(problems.len(), 6, "{problems:#?}");
    for needle in [
        "`helper`",
        "`ignored` is #[ignore]d",
        "`cli_*`",
        "`with-dash`",
        "[D]: names no test",
        "`commented_out`",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} not refused: {problems:#?}"
        );
    }
}

#[test]
fn checker_compares_status_and_version() {
    let doap = doap_specs(
        r#"<implements rdf:resource="https://xmpp.org/rfcs/rfc6120.html"/>
<implements><xmpp:SupportedXep>
  <xmpp:xep rdf:resource="https://xmpp.org/extensions/xep-0030.html"/>
  <xmpp:status>complete</xmpp:status><xmpp:version>2.5rc3</xmpp:version>
</xmpp:SupportedXep></implements>
<implements><xmpp:SupportedXep>
  <xmpp:xep rdf:resource="https://xmpp.org/extensions/xep-0077.html"/>
  <xmpp:status>partial</xmpp:status><xmpp:version>2.4</xmpp:version>
</xmpp:SupportedXep></implements>"#,
    );
    assert_eq!(doap.len(), 3, "{doap:?}");
    let readme = "\
| Spec | Version | Status | Proven by |
|---|---|---|---|
| [RFC6120] Core | — | partial: c2s only | `a` |
| [XEP-0030] Disco | 2.5rc3 | partial: no items | `b` |
| [XEP-0077] IBR | 2.3 | partial: no forms | `c` |
| [XEP-0999] Extra | 1.0 | complete | `d` |
";
    let problems = doap_problems(readme, &doap);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    for needle in ["xep-0030: status", "xep-0077: version", "xep-0999: has a row"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} not refused: {problems:#?}"
        );
    }
}
