//! Encrypted roster notes (migration 0007), on every backend.

use super::{TestDb, creds};
use crate::modules::roster::notes::{NoteKeys, load, rotate_storage};
use crate::sasl::HashAlg::Sha256;
use crate::storage::Storage;
use crate::storage::roster::{ItemWrite, StoredItem};

backend_tests!(
    note_set_load_delete_bump_version,
    note_needs_an_item_and_goes_with_it,
    database_never_holds_plaintext,
    rotation_reencrypts_under_active_key,
    moved_ciphertext_does_not_decrypt,
);

const HOST: &str = "example.org";
const SECRET: &str = "plays only ranked, secret-marker-7f3a";

fn keys(active: &str) -> NoteKeys {
    NoteKeys::new(vec![("1".into(), [11; 32]), ("2".into(), [22; 32])], active).unwrap()
}

async fn user_with_contacts(s: &Storage, name: &str, contacts: &[&str]) {
    s.create_user(HOST, name, &[creds(Sha256, 1)]).await.unwrap();
    for c in contacts {
        let it = StoredItem {
            contact: (*c).into(),
            name: None,
            subscription: "none".into(),
            ask: false,
            approved: false,
            groups: vec![],
        };
        s.roster_write(HOST, name, Some(ItemWrite::Upsert(&it)), None)
            .await
            .unwrap();
    }
}

async fn note_set_load_delete_bump_version(db: &TestDb) {
    let s = db.open().await;
    user_with_contacts(&s, "juliet", &["nurse@example.org"]).await;
    let k = keys("1");
    let v0 = s.roster_version(HOST, "juliet").await.unwrap();
    let n = k.encrypt(HOST, "juliet", "nurse@example.org", SECRET);
    let v1 = s
        .note_write(HOST, "juliet", "nurse@example.org", Some(&n))
        .await
        .unwrap();
    assert_eq!(v1, Some(v0 + 1));
    assert_eq!(s.notes_load(HOST, "juliet").await.unwrap(), vec![n]);
    let notes = load(&s, &k, HOST, "juliet").await.unwrap();
    assert_eq!(notes, vec![("nurse@example.org".to_owned(), SECRET.to_owned())]);
    assert_eq!(s.notes_key_usage().await.unwrap(), vec![("1".to_owned(), 1)]);
    let v2 = s
        .note_write(HOST, "juliet", "nurse@example.org", None)
        .await
        .unwrap();
    assert_eq!(v2, Some(v0 + 2));
    assert!(s.notes_load(HOST, "juliet").await.unwrap().is_empty());
    assert!(s.notes_key_usage().await.unwrap().is_empty());
}

async fn note_needs_an_item_and_goes_with_it(db: &TestDb) {
    let s = db.open().await;
    user_with_contacts(&s, "juliet", &["nurse@example.org"]).await;
    let k = keys("1");
    let stray = k.encrypt(HOST, "juliet", "romeo@example.org", "x");
    assert_eq!(
        s.note_write(HOST, "juliet", "romeo@example.org", Some(&stray))
            .await
            .unwrap(),
        None,
        "no item, no note"
    );
    let n = k.encrypt(HOST, "juliet", "nurse@example.org", "y");
    s.note_write(HOST, "juliet", "nurse@example.org", Some(&n))
        .await
        .unwrap();
    // An item update (a rename, a subscription change) keeps the note.
    let renamed = StoredItem {
        contact: "nurse@example.org".into(),
        name: Some("Nurse".into()),
        subscription: "both".into(),
        ask: false,
        approved: false,
        groups: vec![],
    };
    s.roster_write(HOST, "juliet", Some(ItemWrite::Upsert(&renamed)), None)
        .await
        .unwrap();
    assert_eq!(s.notes_load(HOST, "juliet").await.unwrap().len(), 1);
    // Removing the item removes its note.
    s.roster_write(HOST, "juliet", Some(ItemWrite::Remove("nurse@example.org")), None)
        .await
        .unwrap();
    assert!(s.notes_load(HOST, "juliet").await.unwrap().is_empty());
}

/// The note's plaintext appears in no column of any row, nor (SQLite file) anywhere in the
/// database files.
async fn database_never_holds_plaintext(db: &TestDb) {
    let s = db.open().await;
    user_with_contacts(&s, "juliet", &["nurse@example.org", "romeo@example.org"]).await;
    let k = keys("1");
    for c in ["nurse@example.org", "romeo@example.org"] {
        let n = k.encrypt(HOST, "juliet", c, SECRET);
        s.note_write(HOST, "juliet", c, Some(&n)).await.unwrap();
    }
    // Rotation rewrites rows: still no plaintext.
    rotate_storage(&s, &keys("2"), |_| {}).await.unwrap();
    let needle = b"secret-marker-7f3a";
    const SQL: &str = "SELECT host, username, contact, key_id, nonce, ciphertext FROM roster_notes";
    type Raw = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    type Typed = (String, String, String, String, Vec<u8>, Vec<u8>);
    let rows: Vec<Raw> = with_pool!(s, pool => {
        let rows: Vec<Typed> = sqlx::query_as(SQL).fetch_all(pool).await.unwrap();
        rows.into_iter()
            .map(|(a, b, c, d, e, f)| (a.into_bytes(), b.into_bytes(), c.into_bytes(), d.into_bytes(), e, f))
            .collect()
    });
    assert_eq!(rows.len(), 2);
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (a, b, c, d, e, f) in &rows {
        for col in [a, b, c, d, e, f] {
            assert!(!contains(col), "a column holds the note's plaintext");
        }
    }
    // No other table holds it either (say, the roster item's name): every row as text.
    if let crate::storage::Pool::Postgres(pool) = &s.pool {
        let dump: Vec<String> = sqlx::query_scalar(
            "SELECT t::text FROM roster_notes t UNION ALL SELECT t::text FROM roster_items t",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(!dump.iter().any(|r| contains(r.as_bytes())));
    }
    if db.persistent() && db.url().starts_with("sqlite:") {
        let path = db.url().trim_start_matches("sqlite://").to_owned();
        s.close().await;
        for file in [path.clone(), format!("{path}-wal"), format!("{path}-journal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(!contains(&bytes), "{file} holds the note's plaintext");
            }
        }
    }
}

async fn rotation_reencrypts_under_active_key(db: &TestDb) {
    let s = db.open().await;
    let contacts: Vec<String> = (0..250).map(|i| format!("c{i:03}@example.org")).collect();
    let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
    user_with_contacts(&s, "juliet", &refs).await;
    let k1 = keys("1");
    for c in &contacts {
        let n = k1.encrypt(HOST, "juliet", c, &format!("note for {c}"));
        s.note_write(HOST, "juliet", c, Some(&n)).await.unwrap();
    }
    let k2 = keys("2");
    let mut seen = Vec::new();
    let done = rotate_storage(&s, &k2, |p| seen.push(p)).await.unwrap();
    assert_eq!((done.total, done.done, done.skipped), (250, 250, 0));
    assert!(seen.len() >= 3, "progress per batch: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(s.notes_key_usage().await.unwrap(), vec![("2".to_owned(), 250)]);
    // Readable with key 2 alone now.
    let only2 = NoteKeys::new(vec![("2".into(), [22; 32])], "2").unwrap();
    let notes = load(&s, &only2, HOST, "juliet").await.unwrap();
    assert_eq!(notes.len(), 250);
    assert_eq!(
        notes[0],
        (
            "c000@example.org".to_owned(),
            "note for c000@example.org".to_owned()
        )
    );
    // Nothing left: a second run does nothing.
    let again = rotate_storage(&s, &k2, |_| {}).await.unwrap();
    assert_eq!((again.total, again.done), (0, 0));
    // The version is unchanged by rotation (the notes are the same).
    let v = s.roster_version(HOST, "juliet").await.unwrap();
    rotate_storage(&s, &k1, |_| {}).await.unwrap();
    assert_eq!(s.roster_version(HOST, "juliet").await.unwrap(), v);
}

async fn moved_ciphertext_does_not_decrypt(db: &TestDb) {
    let s = db.open().await;
    user_with_contacts(&s, "juliet", &["nurse@example.org", "romeo@example.org"]).await;
    let k = keys("1");
    let n = k.encrypt(HOST, "juliet", "nurse@example.org", SECRET);
    // Copy nurse's ciphertext onto romeo's row, as an attacker with database access might.
    let mut moved = n.clone();
    moved.contact = "romeo@example.org".into();
    s.note_write(HOST, "juliet", "romeo@example.org", Some(&moved))
        .await
        .unwrap();
    s.note_write(HOST, "juliet", "nurse@example.org", Some(&n))
        .await
        .unwrap();
    let notes = load(&s, &k, HOST, "juliet").await.unwrap();
    assert_eq!(notes, vec![("nurse@example.org".to_owned(), SECRET.to_owned())]);
    // Rotation refuses a row it cannot authenticate rather than re-encrypting garbage.
    assert!(rotate_storage(&s, &keys("2"), |_| {}).await.is_err());
}
