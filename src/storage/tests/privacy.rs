//! The privacy model (XEP-0016 / XEP-0191 / ignore lists), on every backend.

use super::TestDb;
use crate::storage::privacy::{PrivacyWrite, StoredPrivacyItem};

backend_tests!(
    privacy_write_load_and_versions,
    privacy_stale_version_conflicts,
    privacy_default_cleared_with_list,
    privacy_needs_an_account,
    privacy_deleted_with_account,
    privacy_patch_touches_only_the_change,
);

const HOST: &str = "example.org";

fn item(value: &str, order: i64) -> StoredPrivacyItem {
    StoredPrivacyItem {
        kind: "jid".into(),
        value: value.into(),
        action: "deny".into(),
        order,
        selectors: 0,
    }
}

async fn privacy_write_load_and_versions(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.privacy_load(HOST, "alice").await.unwrap().lists, vec![]);
    let items = [item("a@x", 1), item("b@x", 2)];
    let PrivacyWrite::Done(v1) = s
        .privacy_write_list(HOST, "alice", "work", Some(0), Some(&items))
        .await
        .unwrap()
    else {
        panic!("not written")
    };
    let PrivacyWrite::Done(v2) = s
        .privacy_write_list(HOST, "alice", "home", None, Some(&items[..1]))
        .await
        .unwrap()
    else {
        panic!("not written")
    };
    assert!(v2 > v1);
    let loaded = s.privacy_load(HOST, "alice").await.unwrap();
    assert_eq!(loaded.lists.len(), 2);
    assert_eq!(loaded.lists[0].name, "home");
    assert_eq!(loaded.lists[0].version, v2);
    assert_eq!(loaded.lists[1].items, items.to_vec());
    // Deleted and re-created: the version is new, never an old one.
    s.privacy_write_list(HOST, "alice", "work", Some(v1), None)
        .await
        .unwrap();
    let PrivacyWrite::Done(v4) = s
        .privacy_write_list(HOST, "alice", "work", Some(0), Some(&items))
        .await
        .unwrap()
    else {
        panic!("not written")
    };
    assert!(v4 > v2 + 1);
}

async fn privacy_stale_version_conflicts(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let w = s
        .privacy_write_list(HOST, "alice", "work", Some(0), Some(&[item("a@x", 1)]))
        .await
        .unwrap();
    let PrivacyWrite::Done(v) = w else { panic!() };
    assert_eq!(
        s.privacy_write_list(HOST, "alice", "work", Some(v - 1), Some(&[]))
            .await
            .unwrap(),
        PrivacyWrite::Conflict(v)
    );
    assert_eq!(
        s.privacy_write_list(HOST, "alice", "new", Some(3), Some(&[]))
            .await
            .unwrap(),
        PrivacyWrite::Conflict(0)
    );
    let loaded = s.privacy_load(HOST, "alice").await.unwrap();
    assert_eq!(loaded.lists.len(), 1);
    assert_eq!(loaded.lists[0].items.len(), 1);
}

async fn privacy_default_cleared_with_list(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.privacy_write_list(HOST, "alice", "block", None, Some(&[item("a@x", 1)]))
        .await
        .unwrap();
    assert!(s.privacy_set_default(HOST, "alice", Some("block")).await.unwrap());
    assert_eq!(
        s.privacy_load(HOST, "alice")
            .await
            .unwrap()
            .default_list
            .as_deref(),
        Some("block")
    );
    s.privacy_write_list(HOST, "alice", "block", None, None)
        .await
        .unwrap();
    let loaded = s.privacy_load(HOST, "alice").await.unwrap();
    assert_eq!(loaded.default_list, None);
    assert!(loaded.lists.is_empty());
}

async fn privacy_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(
        s.privacy_write_list(HOST, "nobody", "x", None, Some(&[]))
            .await
            .unwrap(),
        PrivacyWrite::NoAccount
    );
    assert!(!s.privacy_set_default(HOST, "nobody", Some("x")).await.unwrap());
}

async fn privacy_deleted_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.privacy_write_list(HOST, "alice", "block", None, Some(&[item("a@x", 1)]))
        .await
        .unwrap();
    s.privacy_set_default(HOST, "alice", Some("block")).await.unwrap();
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.privacy_load(HOST, "alice").await.unwrap(), Default::default());
}

async fn privacy_patch_touches_only_the_change(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let w = s
        .privacy_patch_list(
            HOST,
            "alice",
            "big",
            Some(0),
            &[],
            &[item("a@x", 1), item("b@x", 2)],
        )
        .await
        .unwrap();
    let PrivacyWrite::Done(v) = w else { panic!() };
    // Replace b (order 2) by c at order 2, add d at 3.
    let w = s
        .privacy_patch_list(
            HOST,
            "alice",
            "big",
            Some(v),
            &[2],
            &[item("c@x", 2), item("d@x", 3)],
        )
        .await
        .unwrap();
    assert_eq!(w, PrivacyWrite::Done(v + 1));
    assert_eq!(
        s.privacy_patch_list(HOST, "alice", "big", Some(v), &[], &[])
            .await
            .unwrap(),
        PrivacyWrite::Conflict(v + 1)
    );
    let loaded = s.privacy_load(HOST, "alice").await.unwrap();
    let values: Vec<_> = loaded.lists[0].items.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(values, vec!["a@x", "c@x", "d@x"]);
    assert_eq!(loaded.lists[0].version, v + 1);
    assert_eq!(
        s.privacy_patch_list(HOST, "nobody", "big", None, &[], &[])
            .await
            .unwrap(),
        PrivacyWrite::NoAccount
    );
}
