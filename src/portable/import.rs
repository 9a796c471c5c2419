//! `switchboard import`: accounts and their data from a XEP-0227 file.
//!
//! 1. A checking pass reads the whole file (and its includes) and refuses it, with the file,
//!    line and reason, if any user is malformed: then nothing is written. (From standard
//!    input, which cannot be read twice, users before a malformed one are imported.)
//! 2. The import pass streams the file again. Plaintext passwords are turned into SCRAM
//!    credentials on blocking threads, several at a time, while accounts are written one by
//!    one, each in its own transaction ([`Storage::portable_import`]): an account holds
//!    exactly what the file says, or is left as it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;

use super::FileError;
use super::reader::{self, RawUser, ReadLimits};
use super::record::{UserRecord, parse_user};
use crate::config::Config;
use crate::modules::roster::notes::NoteKeys;
use crate::sasl::{HashAlg, ScramCredentials};
use crate::storage::notes::StoredNote;
use crate::storage::portable::{ImportOutcome, NoteCodec, NotesImport};
use crate::storage::{Storage, StorageError};

/// Records in flight between the reading thread and the writer.
const QUEUE: usize = 256;
/// Accounts written at once on PostgreSQL.
const PG_WRITERS: usize = 8;

/// Where the file comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Path(PathBuf),
    Stdin,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] FileError),
    /// Standard input has no checking pass: the users before the malformed one are in.
    #[error("{error} ({done} user(s) before it were imported)")]
    PartialFile { error: FileError, done: usize },
    #[error("{file}:{line}: storing {user} failed ({done} user(s) were imported before): {source}")]
    Storage {
        user: String,
        file: Arc<str>,
        line: u32,
        done: usize,
        source: StorageError,
    },
}

/// Progress, reported every few hundred users and at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    /// `None` when reading standard input (no checking pass).
    pub total: Option<usize>,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub users: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Roster notes in the file that could not be kept: no `[roster_notes]` keys.
    pub notes_dropped: usize,
    /// Accounts created without any credentials (no password in the file): they cannot log
    /// in until `switchboard user passwd`.
    pub no_credentials: Vec<String>,
    /// Accounts with SCRAM-SHA-1 credentials only (Prosody's default): clients that choose
    /// SCRAM-SHA-256 cannot log in to them until the password is set again.
    pub no_sha256: usize,
    /// Data left out, by kind, with how many users had it.
    pub ignored: BTreeMap<String, usize>,
}

/// How often progress is reported.
const PROGRESS_EVERY: usize = 500;

/// Imports `source`; see the module documentation.
pub async fn import(
    storage: &Storage,
    config: &Arc<Config>,
    source: Source,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportSummary, ImportError> {
    let total = match &source {
        Source::Path(path) => Some(check(path.clone(), config.clone()).await?),
        Source::Stdin => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<UserRecord, FileError>>(QUEUE);
    let reader_config = config.clone();
    let reader_source = source.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut seen = Duplicates::default();
        // Set when the callback stops the reader (its error was sent, or nobody listens).
        let mut stopped = false;
        let mut on_user = |raw: RawUser| {
            let rec = parse_user(&raw, &reader_config).and_then(|rec| seen.check(rec));
            let failed = rec.is_err();
            // The receiver is gone only when the import stopped: stop reading too.
            if tx.blocking_send(rec).is_err() || failed {
                stopped = true;
                return Err(FileError::new(&raw.file, 0, "import stopped"));
            }
            Ok(())
        };
        let result = read_source(&reader_source, &mut on_user);
        if let Err(e) = result
            && !stopped
        {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let iterations = config.auth.scram_iterations;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Password hashing runs ahead of the writer, in order.
    let records = futures::stream::poll_fn(|cx| rx.poll_recv(cx))
        .map(|rec| async move {
            let mut rec = rec?;
            if rec.password.is_some() {
                let stored = stored_credentials(storage, &rec).await?;
                rec = tokio::task::spawn_blocking(move || {
                    rec.derive_credentials(iterations, &stored);
                    rec
                })
                .await
                .expect("credential derivation does not panic");
            }
            Ok::<_, ImportError>(rec)
        })
        .buffered(workers);
    let keys = NoteKeys::from_config(&config.roster_notes).map(KeysCodec);
    let keys = &keys;
    // SQLite has one writer, so transactions in parallel would only wait for each other;
    // PostgreSQL writes several accounts at once (they share no rows).
    let writers = if storage.backend_name() == "postgres" {
        PG_WRITERS
    } else {
        1
    };
    let mut writes = records
        .map(|rec| async move {
            let rec = rec?;
            let notes = keys.as_ref().map(|codec| NotesImport {
                codec,
                notes: &rec.notes,
            });
            let outcome = storage
                .portable_import(&rec.account.domain, &rec.account.user, &rec.data, notes)
                .await
                .map_err(|source| ImportError::Storage {
                    user: rec.account.to_string(),
                    file: rec.file.clone(),
                    line: rec.line,
                    done: 0,
                    source,
                })?;
            Ok::<_, ImportError>((rec, outcome))
        })
        .buffer_unordered(writers);
    let mut summary = ImportSummary::default();
    while let Some(written) = writes.next().await {
        let (rec, outcome) = match written {
            Ok(w) => w,
            Err(ImportError::Storage {
                user,
                file,
                line,
                source,
                ..
            }) => {
                return Err(ImportError::Storage {
                    user,
                    file,
                    line,
                    done: summary.users,
                    source,
                });
            }
            Err(ImportError::File(error)) if total.is_none() => {
                return Err(ImportError::PartialFile {
                    error,
                    done: summary.users,
                });
            }
            Err(e) => return Err(e),
        };
        if keys.is_none() {
            summary.notes_dropped += rec.notes.len();
        }
        if !rec.data.credentials.iter().any(|c| c.alg == HashAlg::Sha256) {
            if rec.data.credentials.is_empty() {
                if outcome == ImportOutcome::Created {
                    summary.no_credentials.push(rec.account.to_string());
                }
            } else {
                summary.no_sha256 += 1;
            }
        }
        match outcome {
            ImportOutcome::Created => summary.created += 1,
            ImportOutcome::Updated => summary.updated += 1,
            ImportOutcome::Unchanged => summary.unchanged += 1,
        }
        for what in dedup(&rec.ignored) {
            *summary.ignored.entry(what.clone()).or_default() += 1;
        }
        summary.users += 1;
        if summary.users % PROGRESS_EVERY == 0 {
            progress(Progress {
                done: summary.users,
                total,
            });
        }
    }
    drop(writes);
    let _ = reader.await;
    progress(Progress {
        done: summary.users,
        total,
    });
    Ok(summary)
}

/// The account's current credentials for the hashes `rec` derives from its password.
async fn stored_credentials(
    storage: &Storage,
    rec: &UserRecord,
) -> Result<Vec<ScramCredentials>, ImportError> {
    let mut stored = Vec::new();
    for &alg in &rec.derive {
        let found = storage
            .get_credentials(&rec.account.domain, &rec.account.user, alg)
            .await
            .map_err(|source| ImportError::Storage {
                user: rec.account.to_string(),
                file: rec.file.clone(),
                line: rec.line,
                done: 0,
                source,
            })?;
        stored.extend(found);
    }
    Ok(stored)
}

/// The checking pass: every user parses, none twice. Returns the number of users.
async fn check(path: PathBuf, config: Arc<Config>) -> Result<usize, FileError> {
    tokio::task::spawn_blocking(move || {
        let mut seen = Duplicates::default();
        let mut count = 0;
        reader::read_path(&path, ReadLimits::default(), &mut |raw| {
            seen.check(parse_user(&raw, &config)?)?;
            count += 1;
            Ok(())
        })?;
        Ok(count)
    })
    .await
    .expect("the checking pass does not panic")
}

fn read_source(
    source: &Source,
    on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
) -> Result<(), FileError> {
    match source {
        Source::Path(path) => reader::read_path(path, ReadLimits::default(), on_user),
        Source::Stdin => reader::read_stream(
            "<stdin>",
            &mut std::io::stdin().lock(),
            ReadLimits::default(),
            on_user,
        ),
    }
}

/// A user twice in one file is a mistake: which one should win?
#[derive(Default)]
struct Duplicates {
    /// "user@domain" → (file, line) of its first appearance.
    seen: HashMap<String, (Arc<str>, u32)>,
}

impl Duplicates {
    fn check(&mut self, rec: UserRecord) -> Result<UserRecord, FileError> {
        let key = rec.account.to_string();
        if let Some((file, line)) = self.seen.get(&key) {
            return Err(FileError::new(
                &rec.file,
                rec.line,
                format!("{key} appears twice (first at {file}:{line})"),
            ));
        }
        self.seen.insert(key, (rec.file.clone(), rec.line));
        Ok(rec)
    }
}

fn dedup(items: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = items.iter().collect();
    v.sort();
    v.dedup();
    v
}

/// Notes are sealed with the configured keys.
struct KeysCodec(NoteKeys);

impl NoteCodec for KeysCodec {
    fn open(&self, host: &str, username: &str, note: &StoredNote) -> Option<String> {
        self.0.decrypt(host, username, note).ok()
    }
    fn seal(&self, host: &str, username: &str, contact: &str, text: &str) -> StoredNote {
        self.0.encrypt(host, username, contact, text)
    }
}

/// The command line: `switchboard import FILE` (`-`: standard input).
pub async fn run(config: Config, file: &Path) -> anyhow::Result<()> {
    let storage = Storage::open(&config.storage.url).await?;
    let source = if file == Path::new("-") {
        Source::Stdin
    } else {
        Source::Path(file.to_path_buf())
    };
    let config = Arc::new(config);
    let started = std::time::Instant::now();
    let result = import(&storage, &config, source, &mut |p| match p.total {
        Some(total) => eprintln!("import: {}/{total} users", p.done),
        None => eprintln!("import: {} users", p.done),
    })
    .await;
    storage.close().await;
    let s = result?;
    println!(
        "imported {} user(s) in {:.1} s: {} created, {} updated, {} unchanged",
        s.users,
        started.elapsed().as_secs_f64(),
        s.created,
        s.updated,
        s.unchanged
    );
    if s.notes_dropped > 0 {
        println!(
            "warning: {} roster note(s) not imported: no [roster_notes] keys are configured",
            s.notes_dropped
        );
    }
    if s.no_sha256 > 0 {
        println!(
            "warning: {} user(s) have SCRAM-SHA-1 credentials only: clients that pick SCRAM-SHA-256 \
             cannot log in to them until their password is set again (`switchboard user passwd`)",
            s.no_sha256
        );
    }
    for jid in &s.no_credentials {
        println!("warning: {jid} was created without a password: set one with `switchboard user passwd`");
    }
    for (what, users) in &s.ignored {
        println!("warning: not imported: {what} ({users} user(s))");
    }
    Ok(())
}
