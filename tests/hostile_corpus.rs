//! Replays the committed corpus of hostile inputs (`fuzz/corpus/<target>/`, written by
//! `fuzz/make_corpus.py`, plus what fuzzing found) through the same entry points the fuzz
//! targets call (`switchboard::ops::fuzz`): none may panic or take long, a `reject-*` input
//! must be refused and an `accept-*` one accepted.

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard::ops::fuzz::TARGETS;

/// Generous for a debug build on a busy machine; a quadratic blow-up takes far longer.
const MAX_TIME: Duration = Duration::from_secs(5);

#[test]
fn hostile_corpus_replays_through_every_fuzz_entry_point() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{target}: only {} corpus files", files.len());
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&path).expect("read");
            let started = Instant::now();
            let accepted = std::panic::catch_unwind(|| run(&data));
            let took = started.elapsed();
            match accepted {
                Err(_) => failures.push(format!("{target}/{name}: panicked")),
                Ok(a) if name.starts_with("reject-") && a => {
                    failures.push(format!("{target}/{name}: accepted"))
                }
                Ok(a) if name.starts_with("accept-") && !a => {
                    failures.push(format!("{target}/{name}: refused"))
                }
                Ok(_) => {}
            }
            if took > MAX_TIME {
                failures.push(format!("{target}/{name}: took {took:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
