//! Storage tests, written once and run against every backend.
//!
//! `backend_tests!(case, ...)` turns each `async fn case(db: &TestDb)` into one
//! test per backend: `<file>::sqlite_file::case`, `<file>::sqlite_memory::case`
//! and `<file>::postgres::case`. The PostgreSQL ones need a server URL in
//! `SWITCHBOARD_TEST_PG_URL` (see scripts/pg-test.sh) and pass as skipped
//! without it; each test gets its own schema so they run in parallel.

use std::io::Write;
use std::sync::Once;

use sqlx::postgres::{PgPool, PgPoolOptions};
use tempfile::TempDir;

use super::Storage;
use crate::sasl::{HashAlg, ScramCredentials};

macro_rules! backend_tests {
    ($($case:ident),* $(,)?) => {
        backend_tests!(@backend sqlite_file, $($case),*);
        backend_tests!(@backend sqlite_memory, $($case),*);
        backend_tests!(@backend postgres, $($case),*);
    };
    (@backend $backend:ident, $($case:ident),*) => {
        mod $backend {
            $(
                // Two workers so spawned tasks really race.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = $crate::storage::tests::TestDb::$backend().await else {
                        return;
                    };
                    super::$case(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

mod accounts;
mod admin;
mod archive;
mod blacklist;
mod fast;
mod muc;
mod notes;
mod offline;
mod open;
mod pep;
mod privacy;
mod private;
mod pubsub;
mod push;
mod room_archive;
mod roster;
mod secrets;
mod upload;
mod vcard;

const PG_URL_VAR: &str = "SWITCHBOARD_TEST_PG_URL";

/// One test database: a URL that can be opened (again), and what keeps it alive.
pub(super) struct TestDb {
    url: String,
    /// The in-memory database lives in its pool, so every `open` shares it.
    memory: Option<Storage>,
    _dir: Option<TempDir>,
    /// Admin pool and the per-test schema it drops at cleanup.
    pg: Option<(PgPool, String)>,
}

impl TestDb {
    pub(super) async fn sqlite_file() -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("tempdir");
        // Missing parent directories: open must create them.
        let path = dir.path().join("nested/data/switchboard.db");
        Some(TestDb {
            url: format!("sqlite://{}", path.display()),
            memory: None,
            _dir: Some(dir),
            pg: None,
        })
    }

    pub(super) async fn sqlite_memory() -> Option<TestDb> {
        let url = "sqlite::memory:".to_owned();
        let storage = Storage::open(&url).await.expect("open in-memory sqlite");
        Some(TestDb {
            url,
            memory: Some(storage),
            _dir: None,
            pg: None,
        })
    }

    /// None (after one "skipped" line) when SWITCHBOARD_TEST_PG_URL is unset.
    pub(super) async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var(PG_URL_VAR) else {
            static NOTE: Once = Once::new();
            // Straight to stderr: libtest captures only print!/eprint!.
            NOTE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "storage postgres tests skipped: {PG_URL_VAR} unset (run under scripts/pg-test.sh)"
                );
            });
            return None;
        };
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("connect to {PG_URL_VAR}: {e}"));
        let schema = format!("switchboard_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create test schema");
        // Every connection of the Storage pool sees only this schema
        // (migrations and the _sqlx_migrations table included).
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{base}{sep}options[search_path]={schema}"),
            memory: None,
            _dir: None,
            pg: Some((admin, schema)),
        })
    }

    /// A new Storage on this database (the same one again for in-memory SQLite).
    pub(super) async fn open(&self) -> Storage {
        match &self.memory {
            Some(storage) => storage.clone(),
            None => Storage::open(&self.url).await.expect("open storage"),
        }
    }

    /// False for in-memory SQLite, where closing the pool loses the data.
    pub(super) fn persistent(&self) -> bool {
        self.memory.is_none()
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Drops the PostgreSQL schema; the temp dir goes with `self`.
    async fn cleanup(self) {
        if let Some((admin, schema)) = self.pg {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .expect("drop test schema");
            admin.close().await;
        }
    }
}

/// Distinct, recognisable credentials for `alg`; `seed` tells versions apart.
pub(super) fn creds(alg: HashAlg, seed: u8) -> ScramCredentials {
    let len = match alg {
        HashAlg::Sha1 => 20,
        HashAlg::Sha256 => 32,
    };
    ScramCredentials {
        alg,
        salt: vec![seed; 16],
        iterations: 4096 + u32::from(seed),
        stored_key: vec![seed.wrapping_add(1); len],
        server_key: vec![seed.wrapping_add(2); len],
    }
}
