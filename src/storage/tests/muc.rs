//! XEP-0045 persistent rooms, on every backend.

use super::TestDb;
use crate::storage::muc::StoredRoom;

backend_tests!(
    muc_room_round_trip,
    muc_save_replaces_affiliations,
    muc_delete_room,
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
