//! XEP-0363 open upload slots, on every backend.

use super::TestDb;
use crate::storage::upload::StoredSlot;

backend_tests!(upload_slots_survive_and_expire);

fn slot(id: &str, expires: i64) -> StoredSlot {
    StoredSlot {
        id: id.into(),
        owner: "alice%40example.org".into(),
        filename: "a.png".into(),
        size: 12,
        content_type: (id == "a").then(|| "image/png".into()),
        expires,
        file_expires: expires + 100,
    }
}

async fn upload_slots_survive_and_expire(db: &TestDb) {
    let s = db.open().await;
    s.upload_slot_insert(&slot("a", 100)).await.unwrap();
    s.upload_slot_insert(&slot("b", 200)).await.unwrap();
    s.upload_slot_insert(&slot("c", 300)).await.unwrap();
    s.upload_slot_delete("c").await.unwrap();
    if db.persistent() {
        s.close().await;
    }
    let s = db.open().await;
    assert_eq!(
        s.upload_slots_open(50).await.unwrap(),
        vec![slot("a", 100), slot("b", 200)]
    );
    // At 100 "a" has expired, and is gone for good.
    assert_eq!(s.upload_slots_open(100).await.unwrap(), vec![slot("b", 200)]);
    s.upload_slots_expire(250).await.unwrap();
    assert!(s.upload_slots_open(0).await.unwrap().is_empty());
}
