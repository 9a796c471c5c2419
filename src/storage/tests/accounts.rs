//! Accounts and credentials, on every backend.

use super::{TestDb, creds};
use crate::sasl::HashAlg::{Sha1, Sha256};
use crate::storage::StorageError;

backend_tests!(
    backend_name,
    create_exists_list_count,
    list_order_is_bytewise,
    duplicate_user,
    set_credentials_missing_user,
    set_credentials_replaces,
    delete_cascades_credentials,
    get_credentials_by_alg,
    hosts_are_independent,
    concurrent_create_race,
    reopen_keeps_data,
    most_common_iterations,
);

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(h, u)| (h.to_string(), u.to_string())).collect()
}

async fn backend_name(db: &TestDb) {
    let s = db.open().await;
    let expected = if db.url().starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(s.backend_name(), expected);
}

async fn create_exists_list_count(db: &TestDb) {
    let s = db.open().await;
    assert!(s.list_users(None).await.unwrap().is_empty());
    s.create_user("b.example", "carol", &[creds(Sha256, 1)])
        .await
        .unwrap();
    s.create_user("a.example", "bob", &[creds(Sha1, 2), creds(Sha256, 2)])
        .await
        .unwrap();
    // An account needs no credential rows.
    s.create_user("a.example", "alice", &[]).await.unwrap();

    assert!(s.user_exists("a.example", "alice").await.unwrap());
    assert!(s.user_exists("b.example", "carol").await.unwrap());
    assert!(!s.user_exists("a.example", "carol").await.unwrap());
    assert!(!s.user_exists("c.example", "alice").await.unwrap());

    assert_eq!(
        s.list_users(None).await.unwrap(),
        pairs(&[
            ("a.example", "alice"),
            ("a.example", "bob"),
            ("b.example", "carol")
        ])
    );
    assert_eq!(
        s.list_users(Some("a.example")).await.unwrap(),
        pairs(&[("a.example", "alice"), ("a.example", "bob")])
    );
    assert!(s.list_users(Some("c.example")).await.unwrap().is_empty());

    assert_eq!(s.count_users("a.example").await.unwrap(), 2);
    assert_eq!(s.count_users("b.example").await.unwrap(), 1);
    assert_eq!(s.count_users("c.example").await.unwrap(), 0);
    assert_eq!(
        s.get_credentials("a.example", "alice", Sha256).await.unwrap(),
        None
    );
}

/// A locale collation would sort "a-b", "a_b" and "ab" together; we promise bytes.
async fn list_order_is_bytewise(db: &TestDb) {
    let s = db.open().await;
    for user in ["b", "ab", "a_b", "a-b", "B", "é"] {
        s.create_user("example.org", user, &[]).await.unwrap();
    }
    let users: Vec<String> = s
        .list_users(Some("example.org"))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    assert_eq!(users, ["B", "a-b", "a_b", "ab", "b", "é"]);
}

async fn duplicate_user(db: &TestDb) {
    let s = db.open().await;
    s.create_user("example.org", "alice", &[creds(Sha256, 1)])
        .await
        .unwrap();
    let err = s
        .create_user("example.org", "alice", &[creds(Sha256, 2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::UserExists), "{err:?}");
    // The failed attempt left the first account untouched.
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha256).await.unwrap(),
        Some(creds(Sha256, 1))
    );
    assert_eq!(s.count_users("example.org").await.unwrap(), 1);
}

async fn set_credentials_missing_user(db: &TestDb) {
    let s = db.open().await;
    assert!(
        !s.set_credentials("example.org", "nobody", &[creds(Sha256, 1)])
            .await
            .unwrap()
    );
    assert!(!s.user_exists("example.org", "nobody").await.unwrap());
    assert_eq!(
        s.get_credentials("example.org", "nobody", Sha256).await.unwrap(),
        None
    );
}

async fn set_credentials_replaces(db: &TestDb) {
    let s = db.open().await;
    s.create_user("example.org", "alice", &[creds(Sha1, 1), creds(Sha256, 1)])
        .await
        .unwrap();
    assert!(
        s.set_credentials("example.org", "alice", &[creds(Sha256, 9)])
            .await
            .unwrap()
    );
    // All rows replaced: the SHA-1 one is gone, not left stale.
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha1).await.unwrap(),
        None
    );
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha256).await.unwrap(),
        Some(creds(Sha256, 9))
    );
    // Clearing every credential keeps the account.
    assert!(s.set_credentials("example.org", "alice", &[]).await.unwrap());
    assert!(s.user_exists("example.org", "alice").await.unwrap());
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha256).await.unwrap(),
        None
    );
}

async fn delete_cascades_credentials(db: &TestDb) {
    let s = db.open().await;
    s.create_user("example.org", "alice", &[creds(Sha1, 1), creds(Sha256, 1)])
        .await
        .unwrap();
    assert!(s.delete_user("example.org", "alice").await.unwrap());
    assert!(!s.user_exists("example.org", "alice").await.unwrap());
    assert!(!s.delete_user("example.org", "alice").await.unwrap());
    // Re-create without credentials: the old rows must really be gone.
    s.create_user("example.org", "alice", &[]).await.unwrap();
    for alg in [Sha1, Sha256] {
        assert_eq!(
            s.get_credentials("example.org", "alice", alg).await.unwrap(),
            None
        );
    }
}

async fn get_credentials_by_alg(db: &TestDb) {
    let s = db.open().await;
    let mut sha1 = creds(Sha1, 3);
    sha1.iterations = u32::MAX; // the full u32 range survives the round trip
    let sha256 = creds(Sha256, 4);
    s.create_user("example.org", "alice", &[sha1.clone(), sha256.clone()])
        .await
        .unwrap();
    s.create_user("example.org", "bob", &[creds(Sha256, 5)])
        .await
        .unwrap();
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha1).await.unwrap(),
        Some(sha1)
    );
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha256).await.unwrap(),
        Some(sha256)
    );
    assert_eq!(s.get_credentials("example.org", "bob", Sha1).await.unwrap(), None);
    assert_eq!(
        s.get_credentials("example.org", "carol", Sha256).await.unwrap(),
        None
    );
}

async fn hosts_are_independent(db: &TestDb) {
    let s = db.open().await;
    s.create_user("a.example", "alice", &[creds(Sha256, 1)])
        .await
        .unwrap();
    s.create_user("b.example", "alice", &[creds(Sha256, 2)])
        .await
        .unwrap();
    assert!(s.delete_user("a.example", "alice").await.unwrap());
    assert!(s.user_exists("b.example", "alice").await.unwrap());
    assert_eq!(
        s.get_credentials("b.example", "alice", Sha256).await.unwrap(),
        Some(creds(Sha256, 2))
    );
    assert_eq!(
        s.list_users(None).await.unwrap(),
        pairs(&[("b.example", "alice")])
    );
}

/// Two handles (like the server and `switchboard user add`) create the same user at once.
async fn concurrent_create_race(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    for round in 0..10u8 {
        let username = format!("racer{round}");
        // Each contender writes its own credentials, so we can tell who won.
        let seeds = [2 * round, 2 * round + 1];
        let tasks = seeds.map(|seed| {
            let s = handles[usize::from(seed % 2)].clone();
            let username = username.clone();
            tokio::spawn(async move {
                s.create_user("example.org", &username, &[creds(Sha256, seed)])
                    .await
            })
        });
        let mut winners = Vec::new();
        for (seed, task) in seeds.into_iter().zip(tasks) {
            match task.await.unwrap() {
                Ok(()) => winners.push(seed),
                Err(StorageError::UserExists) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one creator must win");
        // The loser's transaction left nothing behind.
        assert_eq!(
            handles[0]
                .get_credentials("example.org", &username, Sha256)
                .await
                .unwrap(),
            Some(creds(Sha256, winners[0]))
        );
    }
    assert_eq!(handles[1].count_users("example.org").await.unwrap(), 10);
}

async fn reopen_keeps_data(db: &TestDb) {
    if !db.persistent() {
        return;
    }
    let s = db.open().await;
    s.create_user("example.org", "alice", &[creds(Sha256, 7)])
        .await
        .unwrap();
    s.close().await;
    // Re-running the (already applied) migrations must be a no-op.
    let s = db.open().await;
    assert!(s.user_exists("example.org", "alice").await.unwrap());
    assert_eq!(
        s.get_credentials("example.org", "alice", Sha256).await.unwrap(),
        Some(creds(Sha256, 7))
    );
}

async fn most_common_iterations(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(
        s.most_common_iterations().await.unwrap(),
        None,
        "no credentials yet"
    );
    // creds(_, seed) has 4096 + seed iterations: two accounts with seed 1 (four rows), one
    // with seed 9 (two rows).
    for user in ["alice", "bob"] {
        s.create_user("a.example", user, &[creds(Sha1, 1), creds(Sha256, 1)])
            .await
            .unwrap();
    }
    s.create_user("a.example", "carol", &[creds(Sha1, 9), creds(Sha256, 9)])
        .await
        .unwrap();
    assert_eq!(s.most_common_iterations().await.unwrap(), Some(4097));
    // A tie goes to the higher count.
    s.set_credentials("a.example", "alice", &[creds(Sha1, 9), creds(Sha256, 9)])
        .await
        .unwrap();
    assert_eq!(s.most_common_iterations().await.unwrap(), Some(4105));
}
