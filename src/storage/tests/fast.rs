//! XEP-0484 FAST tokens on every backend: issue and prune, counts against replays, rotation,
//! revocation by the user and by a password change, removal with the account.

use super::{TestDb, creds};
use crate::sasl::HashAlg::Sha256;
use crate::storage::fast::FastToken;

backend_tests!(
    fast_issue_prunes_other_tokens_of_the_agent,
    fast_count_must_grow,
    fast_use_retires_older_tokens,
    fast_expired_tokens_do_not_log_in,
    fast_password_change_revokes_all,
    fast_revoke_by_key_and_agent,
);

const HOST: &str = "example.org";

fn token(key: u8, agent: &str, issued_at: i64) -> FastToken {
    FastToken {
        key: vec![key; 32],
        user_agent: agent.into(),
        software: "app".into(),
        device: "phone".into(),
        mechanism: "HT-SHA-256-NONE".into(),
        issued_at,
        expires_at: i64::MAX / 2,
        last_count: -1,
    }
}

async fn with_alice(db: &TestDb) -> crate::storage::Storage {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[creds(Sha256, 1)]).await.unwrap();
    s
}

async fn keys(s: &crate::storage::Storage) -> Vec<u8> {
    let mut k: Vec<u8> = s
        .fast_tokens(HOST, "alice")
        .await
        .unwrap()
        .iter()
        .map(|t| t.key[0])
        .collect();
    k.sort();
    k
}

async fn fast_issue_prunes_other_tokens_of_the_agent(db: &TestDb) {
    let s = with_alice(db).await;
    assert!(
        s.fast_token_issue(HOST, "alice", &token(1, "ua", 10), None)
            .await
            .unwrap()
    );
    assert!(
        s.fast_token_issue(HOST, "alice", &token(2, "other", 10), None)
            .await
            .unwrap()
    );
    // A new token after a FAST login with 1 keeps 1; one after a password login keeps none.
    s.fast_token_issue(HOST, "alice", &token(3, "ua", 20), Some(&[1; 32]))
        .await
        .unwrap();
    assert_eq!(keys(&s).await, vec![1, 2, 3]);
    s.fast_token_issue(HOST, "alice", &token(4, "ua", 30), None)
        .await
        .unwrap();
    assert_eq!(keys(&s).await, vec![2, 4]);
    assert!(
        !s.fast_token_issue(HOST, "nobody", &token(5, "ua", 30), None)
            .await
            .unwrap()
    );
}

async fn fast_count_must_grow(db: &TestDb) {
    let s = with_alice(db).await;
    s.fast_token_issue(HOST, "alice", &token(1, "ua", 10), None)
        .await
        .unwrap();
    assert!(s.fast_token_use(HOST, "alice", &[1; 32], Some(5)).await.unwrap());
    assert!(
        !s.fast_token_use(HOST, "alice", &[1; 32], Some(5)).await.unwrap(),
        "replay"
    );
    assert!(!s.fast_token_use(HOST, "alice", &[1; 32], Some(4)).await.unwrap());
    assert!(s.fast_token_use(HOST, "alice", &[1; 32], Some(6)).await.unwrap());
    assert!(s.fast_token_use(HOST, "alice", &[1; 32], None).await.unwrap());
    assert!(
        !s.fast_token_use(HOST, "alice", &[9; 32], None).await.unwrap(),
        "unknown"
    );
}

async fn fast_use_retires_older_tokens(db: &TestDb) {
    let s = with_alice(db).await;
    s.fast_token_issue(HOST, "alice", &token(1, "ua", 10), None)
        .await
        .unwrap();
    s.fast_token_issue(HOST, "alice", &token(2, "ua", 20), Some(&[1; 32]))
        .await
        .unwrap();
    // The old one still works until the new one is used.
    assert!(s.fast_token_use(HOST, "alice", &[1; 32], None).await.unwrap());
    assert_eq!(keys(&s).await, vec![1, 2]);
    assert!(s.fast_token_use(HOST, "alice", &[2; 32], None).await.unwrap());
    assert_eq!(keys(&s).await, vec![2]);
    // Issued in the same second, the newer one still counts as newer.
    s.fast_token_issue(HOST, "alice", &token(3, "ua", 20), Some(&[2; 32]))
        .await
        .unwrap();
    assert!(s.fast_token_use(HOST, "alice", &[2; 32], None).await.unwrap());
    assert_eq!(keys(&s).await, vec![2, 3]);
    assert!(s.fast_token_use(HOST, "alice", &[3; 32], None).await.unwrap());
    assert_eq!(keys(&s).await, vec![3]);
}

async fn fast_expired_tokens_do_not_log_in(db: &TestDb) {
    let s = with_alice(db).await;
    let mut t = token(1, "ua", 10);
    t.expires_at = 100;
    s.fast_token_issue(HOST, "alice", &t, None).await.unwrap();
    assert_eq!(
        s.fast_tokens_of_agent(HOST, "alice", "ua").await.unwrap().len(),
        1
    );
    assert!(!s.fast_token_use(HOST, "alice", &[1; 32], None).await.unwrap());
    assert!(!s.fast_token_use(HOST, "alice", &[1; 32], Some(1)).await.unwrap());
    // The user's list leaves it out (and deletes it).
    assert_eq!(keys(&s).await, Vec::<u8>::new());
}

async fn fast_password_change_revokes_all(db: &TestDb) {
    let s = with_alice(db).await;
    s.fast_token_issue(HOST, "alice", &token(1, "ua", 10), None)
        .await
        .unwrap();
    s.fast_token_issue(HOST, "alice", &token(2, "ua2", 10), None)
        .await
        .unwrap();
    assert!(
        s.set_credentials(HOST, "alice", &[creds(Sha256, 2)])
            .await
            .unwrap()
    );
    assert_eq!(keys(&s).await, Vec::<u8>::new());
    s.fast_token_issue(HOST, "alice", &token(3, "ua", 10), None)
        .await
        .unwrap();
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    assert!(
        s.fast_tokens_of_agent(HOST, "alice", "ua")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn fast_revoke_by_key_and_agent(db: &TestDb) {
    let s = with_alice(db).await;
    s.fast_token_issue(HOST, "alice", &token(1, "ua", 10), None)
        .await
        .unwrap();
    s.fast_token_issue(HOST, "alice", &token(2, "ua", 20), Some(&[1; 32]))
        .await
        .unwrap();
    s.fast_token_issue(HOST, "alice", &token(3, "ua2", 10), None)
        .await
        .unwrap();
    assert!(s.fast_token_revoke(HOST, "alice", &[3; 32]).await.unwrap());
    assert!(!s.fast_token_revoke(HOST, "alice", &[3; 32]).await.unwrap());
    assert_eq!(s.fast_tokens_revoke_agent(HOST, "alice", "ua").await.unwrap(), 2);
    assert_eq!(keys(&s).await, Vec::<u8>::new());
    s.fast_token_issue(HOST, "alice", &token(4, "ua", 30), None)
        .await
        .unwrap();
    s.fast_token_issue(HOST, "alice", &token(5, "ua3", 30), None)
        .await
        .unwrap();
    assert_eq!(s.fast_tokens_revoke_all(HOST, "alice").await.unwrap(), 2);
    assert_eq!(keys(&s).await, Vec::<u8>::new());
}
