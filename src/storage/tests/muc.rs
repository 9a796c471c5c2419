//! XEP-0045 persistent rooms, on every backend.

use super::TestDb;
use crate::storage::Storage;
use crate::storage::muc::{StoredMessage, StoredRoom};

backend_tests!(
    muc_room_round_trip,
    muc_save_replaces_affiliations,
    muc_delete_room,
    xep0045_7_10_registrations_round_trip,
    xep0045_7_2_13_history_bounded_and_ordered,
);

const SERVICE: &str = "conference.example.org";

fn room() -> StoredRoom {
    StoredRoom {
        config: "<x xmlns='jabber:x:data' type='submit'/>".into(),
        subject: Some("Tea ☕".into()),
        subject_nick: Some("Alice".into()),
        affiliations: vec![
            ("alice@example.org".into(), "owner".into(), None),
            ("troll@example.org".into(), "outcast".into(), Some("spam".into())),
        ],
    }
}

async fn muc_room_round_trip(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.muc_load_room(SERVICE, "lounge").await.unwrap(), None);
    s.muc_save_room(SERVICE, "lounge", &room()).await.unwrap();
    assert_eq!(s.muc_load_room(SERVICE, "lounge").await.unwrap(), Some(room()));
    // Keyed by service and room.
    assert_eq!(s.muc_load_room("muc.other.org", "lounge").await.unwrap(), None);
    assert_eq!(s.muc_load_room(SERVICE, "other").await.unwrap(), None);
    // Survives reopening.
    let s2 = db.open().await;
    assert_eq!(s2.muc_load_room(SERVICE, "lounge").await.unwrap(), Some(room()));
}

async fn muc_save_replaces_affiliations(db: &TestDb) {
    let s = db.open().await;
    s.muc_save_room(SERVICE, "lounge", &room()).await.unwrap();
    let mut changed = room();
    changed.subject = None;
    changed.subject_nick = None;
    changed.affiliations = vec![("bob@example.org".into(), "member".into(), None)];
    s.muc_save_room(SERVICE, "lounge", &changed).await.unwrap();
    assert_eq!(s.muc_load_room(SERVICE, "lounge").await.unwrap(), Some(changed));
}

async fn muc_delete_room(db: &TestDb) {
    let s = db.open().await;
    s.muc_save_room(SERVICE, "lounge", &room()).await.unwrap();
    assert!(s.muc_delete_room(SERVICE, "lounge").await.unwrap());
    assert!(!s.muc_delete_room(SERVICE, "lounge").await.unwrap());
    assert_eq!(s.muc_load_room(SERVICE, "lounge").await.unwrap(), None);
    // Affiliations went with it: saving again starts clean.
    let mut fresh = room();
    fresh.affiliations.clear();
    s.muc_save_room(SERVICE, "lounge", &fresh).await.unwrap();
    assert_eq!(s.muc_load_room(SERVICE, "lounge").await.unwrap(), Some(fresh));
}

async fn stored_room(s: &Storage) {
    let room = StoredRoom {
        config: "<x xmlns='jabber:x:data' type='submit'/>".into(),
        ..Default::default()
    };
    s.muc_save_room(SERVICE, "lounge", &room).await.unwrap();
}

fn msg(seq: i64) -> StoredMessage {
    StoredMessage {
        seq,
        at_ms: 1_000 + seq,
        stanza: format!("<message xmlns='jabber:client'><body>{seq}</body></message>"),
    }
}

async fn xep0045_7_10_registrations_round_trip(db: &TestDb) {
    let s = db.open().await;
    stored_room(&s).await;
    s.muc_set_registration(SERVICE, "lounge", "bob@example.org", Some("Bob"))
        .await
        .unwrap();
    s.muc_set_registration(SERVICE, "lounge", "alice@example.org", Some("Al"))
        .await
        .unwrap();
    // A new nick replaces the old one.
    s.muc_set_registration(SERVICE, "lounge", "alice@example.org", Some("Alice"))
        .await
        .unwrap();
    let want = vec![
        ("alice@example.org".to_string(), "Alice".to_string()),
        ("bob@example.org".to_string(), "Bob".to_string()),
    ];
    assert_eq!(s.muc_registrations(SERVICE, "lounge").await.unwrap(), want);
    // One user per nick.
    assert!(
        s.muc_set_registration(SERVICE, "lounge", "carol@example.org", Some("Bob"))
            .await
            .is_err()
    );
    s.muc_set_registration(SERVICE, "lounge", "bob@example.org", None)
        .await
        .unwrap();
    assert_eq!(
        s.muc_registrations(SERVICE, "lounge").await.unwrap(),
        want[..1].to_vec()
    );
    // They go with the room.
    assert!(s.muc_delete_room(SERVICE, "lounge").await.unwrap());
    assert!(s.muc_registrations(SERVICE, "lounge").await.unwrap().is_empty());
}

async fn xep0045_7_2_13_history_bounded_and_ordered(db: &TestDb) {
    let s = db.open().await;
    stored_room(&s).await;
    for seq in 1..=5 {
        s.muc_history_push(SERVICE, "lounge", &msg(seq), 3).await.unwrap();
    }
    let all = s.muc_history(SERVICE, "lounge", 10).await.unwrap();
    assert_eq!(all, vec![msg(3), msg(4), msg(5)]);
    assert_eq!(
        s.muc_history(SERVICE, "lounge", 2).await.unwrap(),
        vec![msg(4), msg(5)]
    );
    // Survives reopening; a history length of 0 keeps nothing.
    let s = db.open().await;
    assert_eq!(s.muc_history(SERVICE, "lounge", 10).await.unwrap().len(), 3);
    s.muc_history_push(SERVICE, "lounge", &msg(6), 0).await.unwrap();
    assert!(s.muc_history(SERVICE, "lounge", 10).await.unwrap().is_empty());
    s.muc_history_push(SERVICE, "lounge", &msg(7), 3).await.unwrap();
    assert!(s.muc_delete_room(SERVICE, "lounge").await.unwrap());
    assert!(s.muc_history(SERVICE, "lounge", 10).await.unwrap().is_empty());
}
