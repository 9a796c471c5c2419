//! One AFL++ fuzz target per entry point of `switchboard::ops::fuzz`, chosen by name:
//! `fuzz-target stream_preauth` (see README.md). The same entry points replay the committed
//! corpus in `cargo test` (`tests/hostile_corpus.rs`).

use switchboard::ops::fuzz::TARGETS;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(&(_, entry)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: fuzz-target <{}>", names.join("|"));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        let _ = entry(data);
    });
}
