//! XEP-0054 vCards, on every backend.

use super::TestDb;

backend_tests!(
    vcard_absent_then_set_and_replaced,
    vcard_stored_byte_for_byte,
    vcard_needs_an_account,
    vcard_per_account,
    vcard_deleted_with_account,
    vcard_concurrent_sets,
);

const HOST: &str = "example.org";

async fn vcard_absent_then_set_and_replaced(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap(), None);
    let first = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>";
    assert!(s.set_vcard(HOST, "alice", first).await.unwrap());
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap().as_deref(), Some(first));
    // A set replaces the whole vCard: nothing of the first one survives.
    let second = "<vCard xmlns='vcard-temp'><NICKNAME>al</NICKNAME></vCard>";
    assert!(s.set_vcard(HOST, "alice", second).await.unwrap());
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap().as_deref(), Some(second));
    if db.persistent() {
        s.close().await;
        let s = db.open().await;
        assert_eq!(s.get_vcard(HOST, "alice").await.unwrap().as_deref(), Some(second));
    }
}

/// Whitespace, non-ASCII text and a large PHOTO come back exactly.
async fn vcard_stored_byte_for_byte(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let photo = "QUJD".repeat(16_000);
    let vcard = format!(
        "<vCard xmlns=\"vcard-temp\" version=\"3.0\">\n  <FN>Ålice “Ω” &amp; 𝄞</FN>\n  \
         <PHOTO><TYPE>image/png</TYPE><BINVAL>{photo}</BINVAL></PHOTO>\n</vCard>"
    );
    assert!(s.set_vcard(HOST, "alice", &vcard).await.unwrap());
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap(), Some(vcard));
}

async fn vcard_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    let vcard = "<vCard xmlns='vcard-temp'/>";
    assert!(!s.set_vcard(HOST, "nobody", vcard).await.unwrap());
    assert_eq!(s.get_vcard(HOST, "nobody").await.unwrap(), None);
    // Creating the account later does not reveal a stray row.
    s.create_user(HOST, "nobody", &[]).await.unwrap();
    assert_eq!(s.get_vcard(HOST, "nobody").await.unwrap(), None);
}

async fn vcard_per_account(db: &TestDb) {
    let s = db.open().await;
    for (host, user) in [(HOST, "alice"), (HOST, "bob"), ("other.example", "alice")] {
        s.create_user(host, user, &[]).await.unwrap();
    }
    let a = "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>";
    let b = "<vCard xmlns='vcard-temp'><FN>B</FN></vCard>";
    assert!(s.set_vcard(HOST, "alice", a).await.unwrap());
    assert!(s.set_vcard("other.example", "alice", b).await.unwrap());
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap().as_deref(), Some(a));
    assert_eq!(
        s.get_vcard("other.example", "alice").await.unwrap().as_deref(),
        Some(b)
    );
    assert_eq!(s.get_vcard(HOST, "bob").await.unwrap(), None);
}

/// ON DELETE CASCADE: a re-created account starts without the old vCard.
async fn vcard_deleted_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.create_user(HOST, "bob", &[]).await.unwrap();
    let vcard = "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>";
    assert!(s.set_vcard(HOST, "alice", vcard).await.unwrap());
    assert!(s.set_vcard(HOST, "bob", vcard).await.unwrap());
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap(), None);
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.get_vcard(HOST, "alice").await.unwrap(), None);
    assert_eq!(s.get_vcard(HOST, "bob").await.unwrap().as_deref(), Some(vcard));
}

/// Two clients saving at once: both succeed and one of the two vCards wins whole.
async fn vcard_concurrent_sets(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    handles[0].create_user(HOST, "alice", &[]).await.unwrap();
    for round in 0..5 {
        let candidates = [
            format!("<vCard xmlns='vcard-temp'><FN>a{round}</FN></vCard>"),
            format!("<vCard xmlns='vcard-temp'><FN>b{round}</FN></vCard>"),
        ];
        let tasks: Vec<_> = handles
            .iter()
            .zip(candidates.clone())
            .map(|(s, v)| {
                let s = s.clone();
                tokio::spawn(async move { s.set_vcard(HOST, "alice", &v).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        let stored = handles[1].get_vcard(HOST, "alice").await.unwrap().unwrap();
        assert!(candidates.contains(&stored), "round {round}: {stored}");
    }
}
