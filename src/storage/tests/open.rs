//! `Storage::open` itself: URL handling and SQLite file setup.

use super::TestDb;
use crate::storage::{Pool, Storage, StorageError};

#[tokio::test]
async fn unsupported_urls() {
    for url in [
        "",
        "mysql://user:hunter2@db/switchboard",
        "sqlitex://data.db",
        "postgres:/missing-slash",
        "data/switchboard.db",
    ] {
        match Storage::open(url).await {
            Err(StorageError::UnsupportedUrl(shown)) => {
                assert!(!shown.contains("hunter2"), "password leaked: {shown}");
            }
            Err(e) => panic!("{url:?}: expected UnsupportedUrl, got {e:?}"),
            Ok(_) => panic!("{url:?}: expected UnsupportedUrl, got a Storage"),
        }
    }
}

/// The file and its directories appear on first open, set up for a second writer.
#[tokio::test]
async fn sqlite_file_setup() {
    let db = TestDb::sqlite_file().await.unwrap();
    let path = db.url().strip_prefix("sqlite://").unwrap().to_owned();
    let s = db.open().await;
    assert!(std::path::Path::new(&path).is_file());
    let Pool::Sqlite(pool) = &s.pool else {
        panic!("not sqlite")
    };
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal_mode, "wal");
    let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(busy_timeout_ms, 5000);
    let foreign_keys: bool = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(foreign_keys);
}

/// Server and CLI starting together on a fresh file: neither may fail migrating.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_open() {
    let db = TestDb::sqlite_file().await.unwrap();
    let url = db.url().to_owned();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Storage::open(&url).await })
        })
        .collect();
    for task in tasks {
        let s = task.await.unwrap().expect("concurrent open");
        assert_eq!(s.count_users("example.org").await.unwrap(), 0);
    }
}
