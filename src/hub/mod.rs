//! Where modules plug in, generic over the context their functions receive: the registry
//! (IQ handlers, disco, services, commands) and the hook points. Nothing here names the
//! server, so the server holds its registry without an import circle; `router::registry`
//! and `router::hooks` are these types for `Server`, which is what modules use.

pub mod hooks;
pub mod registry;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Folders whose files are separate units (their parts do not form one layer): the
    /// router's registry and hooks, each module, ops' fuzz entry points, storage's import.
    const SPLIT: [&str; 4] = ["router", "modules", "ops", "storage"];

    /// The unit a source file belongs to: `server`, `router::registry`, `modules::adhoc`...
    fn unit(rel: &Path) -> String {
        let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let last = parts.pop().unwrap();
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
        if SPLIT.contains(&parts[0].as_str()) && parts.len() > 1 {
            format!("{}::{}", parts[0], parts[1])
        } else {
            parts[0].clone()
        }
    }

    /// `a -> {b}`: unit `a` names `crate::b` outside its tests.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut todo = vec![src.clone()];
        while let Some(path) = todo.pop() {
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if name != "tests" {
                    todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                }
                continue;
            }
            if !name.ends_with(".rs") || name == "tests.rs" || path.parent() == Some(&src) && name == "lib.rs"
            {
                continue;
            }
            let from = unit(path.strip_prefix(&src).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let ident = |s: &str| {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            };
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let top = ident(rest);
                let sub = rest[top.len()..]
                    .strip_prefix("::")
                    .map(ident)
                    .unwrap_or_default();
                let to = if SPLIT.contains(&top.as_str()) && sub.starts_with(|c: char| c.is_lowercase()) {
                    format!("{top}::{sub}")
                } else {
                    top
                };
                if to != from && !to.is_empty() {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        graph
    }

    fn reach(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(u) = todo.pop() {
            for v in graph.get(&u).into_iter().flatten() {
                if seen.insert(v.clone()) {
                    todo.push(v.clone());
                }
            }
        }
        seen
    }

    /// ARCHITECTURE.md's dependency direction: the server holds the registry without
    /// importing the router (the registry and hooks are generic here and never name the
    /// server), config imports nothing of the crate, and none of server, registry, hooks,
    /// c2s, config or the ad-hoc module reaches itself through its imports.
    #[test]
    fn the_dependency_direction_has_no_circles() {
        let graph = imports();
        assert!(
            graph.len() > 40,
            "the sources were not found ({} units)",
            graph.len()
        );
        let hub = reach(&graph, "hub");
        for above in [
            "server",
            "router",
            "router::registry",
            "router::hooks",
            "command",
            "c2s",
        ] {
            assert!(!hub.contains(above), "hub/ reaches {above}: {hub:?}");
        }
        let server = reach(&graph, "server");
        assert!(
            !server
                .iter()
                .any(|u| u.starts_with("router") || u.starts_with("modules") || u == "c2s"),
            "server/ reaches a layer above it: {server:?}"
        );
        assert_eq!(
            reach(&graph, "config"),
            BTreeSet::new(),
            "config/ imports the crate"
        );
        for unit in [
            "server",
            "hub",
            "router::registry",
            "router::hooks",
            "command",
            "c2s",
            "config",
            "modules::adhoc",
        ] {
            assert!(
                !reach(&graph, unit).contains(unit),
                "{unit} reaches itself through its imports"
            );
        }
    }
}
