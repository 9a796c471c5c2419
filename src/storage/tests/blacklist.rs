//! The XEP-0133 blacklist and the recent-login query, on every backend.

use super::TestDb;
use crate::storage::muc::StoredRoom;

backend_tests!(
    blacklist_replace_whole_list,
    logged_out_since_window,
    muc_room_names_of_a_service
);

const HOST: &str = "example.org";

async fn blacklist_replace_whole_list(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.blacklist().await.unwrap(), Vec::<String>::new());
    let list = vec!["spam.example".to_string(), "bad@example.net".to_string()];
    s.set_blacklist(&list).await.unwrap();
    assert_eq!(
        s.blacklist().await.unwrap(),
        vec!["bad@example.net", "spam.example"]
    );
    // Duplicates in one submission are stored once; the list is replaced, not merged.
    let list = vec!["x.example".to_string(), "x.example".to_string()];
    s.set_blacklist(&list).await.unwrap();
    assert_eq!(s.blacklist().await.unwrap(), vec!["x.example"]);
    s.set_blacklist(&[]).await.unwrap();
    assert_eq!(s.blacklist().await.unwrap(), Vec::<String>::new());
}

async fn logged_out_since_window(db: &TestDb) {
    let s = db.open().await;
    for u in ["alice", "bob", "carol"] {
        s.create_user(HOST, u, &[]).await.unwrap();
    }
    s.last_logout_set(HOST, "alice", 1_000, "").await.unwrap();
    s.last_logout_set(HOST, "bob", 2_000, "bye").await.unwrap();
    assert_eq!(s.logged_out_since(HOST, 1_500).await.unwrap(), vec!["bob"]);
    assert_eq!(
        s.logged_out_since(HOST, 1_000).await.unwrap(),
        vec!["alice", "bob"]
    );
    assert_eq!(
        s.logged_out_since("other.org", 0).await.unwrap(),
        Vec::<String>::new()
    );
}

async fn muc_room_names_of_a_service(db: &TestDb) {
    let s = db.open().await;
    let room = StoredRoom {
        config: "<x/>".into(),
        ..StoredRoom::default()
    };
    for (service, name) in [
        ("conf.example.org", "b"),
        ("conf.example.org", "a"),
        ("other.example.org", "c"),
    ] {
        s.muc_save_room(service, name, &room).await.unwrap();
    }
    assert_eq!(
        s.muc_room_names("conf.example.org").await.unwrap(),
        vec!["a", "b"]
    );
    s.muc_delete_room("conf.example.org", "a").await.unwrap();
    assert_eq!(s.muc_room_names("conf.example.org").await.unwrap(), vec!["b"]);
    assert_eq!(
        s.muc_room_names("none.example.org").await.unwrap(),
        Vec::<String>::new()
    );
}
