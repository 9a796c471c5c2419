//! XEP-0160 offline messages, on every backend.

use super::TestDb;
use crate::storage::offline::{OfflineHeader, OfflineStored};

backend_tests!(
    offline_store_load_in_order,
    offline_needs_an_account,
    offline_cap_refuses_past_max,
    offline_sequence_never_reused,
    offline_get_delete_purge,
    offline_per_account,
    offline_deleted_with_account,
    offline_concurrent_stores,
    offline_survives_reopen,
);

const HOST: &str = "example.org";

fn stanza(n: u32) -> String {
    format!(
        "<message xmlns='jabber:client' from='bob@example.org/phone' to='alice@example.org' \
         type='chat' id='m{n}'><body>Ålice “{n}” &amp; 𝄞</body></message>"
    )
}

async fn store(s: &crate::storage::Storage, user: &str, n: u32, max: usize) -> OfflineStored {
    s.offline_store(
        HOST,
        user,
        "bob@example.org/phone",
        &stanza(n),
        1_000 + i64::from(n),
        max,
    )
    .await
    .unwrap()
}

fn seq(outcome: OfflineStored) -> i64 {
    match outcome {
        OfflineStored::Stored(seq) => seq,
        other => panic!("not stored: {other:?}"),
    }
}

async fn offline_store_load_in_order(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 0);
    assert!(s.offline_load(HOST, "alice", 0, 10).await.unwrap().is_empty());
    let seqs: Vec<i64> = {
        let mut v = Vec::new();
        for n in 1..=5 {
            v.push(seq(store(&s, "alice", n, 10).await));
        }
        v
    };
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 5);
    let all = s.offline_load(HOST, "alice", 0, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    for (i, m) in all.iter().enumerate() {
        let n = u32::try_from(i).unwrap() + 1;
        assert_eq!(m.seq, i64::from(n));
        assert_eq!(m.stamp_ms, 1_000 + i64::from(n));
        assert_eq!(m.sender, "bob@example.org/phone");
        assert_eq!(m.stanza, stanza(n), "stored byte for byte");
    }
    // Paging: after a number, with a limit.
    let page = s.offline_load(HOST, "alice", 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    let headers = s.offline_headers(HOST, "alice").await.unwrap();
    assert_eq!(
        headers[0],
        OfflineHeader {
            seq: 1,
            stamp_ms: 1_001,
            sender: "bob@example.org/phone".into()
        }
    );
    assert_eq!(headers.len(), 5);
}

async fn offline_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(store(&s, "nobody", 1, 10).await, OfflineStored::NoAccount);
    assert_eq!(s.offline_count(HOST, "nobody").await.unwrap(), 0);
}

async fn offline_cap_refuses_past_max(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    for n in 1..=3 {
        seq(store(&s, "alice", n, 3).await);
    }
    assert_eq!(store(&s, "alice", 4, 3).await, OfflineStored::Full);
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 3);
    // Room again once one is gone.
    assert_eq!(s.offline_delete(HOST, "alice", &[1]).await.unwrap(), 1);
    assert_eq!(seq(store(&s, "alice", 5, 3).await), 4);
    // A cap of zero stores nothing.
    s.create_user(HOST, "bob", &[]).await.unwrap();
    assert_eq!(store(&s, "bob", 1, 0).await, OfflineStored::Full);
}

/// Numbers keep growing after deletions: an XEP-0013 node names one message forever.
async fn offline_sequence_never_reused(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    seq(store(&s, "alice", 1, 10).await);
    seq(store(&s, "alice", 2, 10).await);
    assert_eq!(s.offline_purge(HOST, "alice").await.unwrap(), 2);
    assert_eq!(seq(store(&s, "alice", 3, 10).await), 3);
    // A refused store does not consume a number.
    assert_eq!(store(&s, "alice", 4, 1).await, OfflineStored::Full);
    assert_eq!(seq(store(&s, "alice", 5, 10).await), 4);
}

async fn offline_get_delete_purge(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    for n in 1..=4 {
        seq(store(&s, "alice", n, 10).await);
    }
    // Only existing numbers come back, in order, once each.
    let got = s.offline_get(HOST, "alice", &[3, 1, 9, 3]).await.unwrap();
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(got[1].stanza, stanza(3));
    assert_eq!(s.offline_delete(HOST, "alice", &[2, 9]).await.unwrap(), 1);
    assert_eq!(s.offline_delete(HOST, "alice", &[]).await.unwrap(), 0);
    let left: Vec<i64> = s
        .offline_load(HOST, "alice", 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(left, [1, 3, 4]);
    assert_eq!(s.offline_purge(HOST, "alice").await.unwrap(), 3);
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 0);
    assert_eq!(s.offline_purge(HOST, "alice").await.unwrap(), 0);
}

async fn offline_per_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.create_user(HOST, "bob", &[]).await.unwrap();
    s.create_user("other.example", "alice", &[]).await.unwrap();
    seq(store(&s, "alice", 1, 10).await);
    seq(store(&s, "alice", 2, 10).await);
    // Each account has its own sequence and queue; the host is part of the key.
    assert_eq!(seq(store(&s, "bob", 3, 10).await), 1);
    assert_eq!(s.offline_count("other.example", "alice").await.unwrap(), 0);
    assert_eq!(s.offline_delete(HOST, "bob", &[1, 2]).await.unwrap(), 1);
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 2);
    assert_eq!(s.offline_purge("other.example", "alice").await.unwrap(), 0);
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 2);
}

async fn offline_deleted_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    seq(store(&s, "alice", 1, 10).await);
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    assert_eq!(s.offline_count(HOST, "alice").await.unwrap(), 0);
    // A new account of the same name starts from scratch, counter included.
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(seq(store(&s, "alice", 2, 10).await), 1);
}

/// Concurrent stores (two pools, as two server processes would have) get distinct numbers
/// and never exceed the cap together.
async fn offline_concurrent_stores(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    handles[0].create_user(HOST, "alice", &[]).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20u32 {
        let s = handles[(n % 2) as usize].clone();
        tasks.push(tokio::spawn(async move { store(&s, "alice", n, 15).await }));
    }
    let mut stored = Vec::new();
    let mut full = 0;
    for t in tasks {
        match t.await.unwrap() {
            OfflineStored::Stored(seq) => stored.push(seq),
            OfflineStored::Full => full += 1,
            OfflineStored::NoAccount => panic!("account vanished"),
        }
    }
    stored.sort_unstable();
    assert_eq!(stored, (1..=15).collect::<Vec<i64>>());
    assert_eq!(full, 5);
    assert_eq!(handles[0].offline_count(HOST, "alice").await.unwrap(), 15);
}

async fn offline_survives_reopen(db: &TestDb) {
    if !db.persistent() {
        return;
    }
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    seq(store(&s, "alice", 1, 10).await);
    s.close().await;
    let s = db.open().await;
    let all = s.offline_load(HOST, "alice", 0, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].stanza, stanza(1));
    assert_eq!(seq(store(&s, "alice", 2, 10).await), 2);
}
