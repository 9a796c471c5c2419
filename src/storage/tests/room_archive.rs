//! XEP-0313 archives of rooms, on every backend: batched appends, pages, the nick filter,
//! full text kept per room, bounds, tombstones, purge and expiry.

use super::TestDb;
use crate::storage::archive::{ArchiveFilter, FullText, PageFrom};
use crate::storage::room_archive::RoomArchiveRow;

backend_tests!(
    room_archive_pages_and_nick_filter,
    room_archive_fulltext_per_room,
    room_archive_bounds_tombstone_purge_expire,
);

const HOST: &str = "conference.example.org";

fn row(room: &str, id: i64, nick: &str, body: &str) -> RoomArchiveRow {
    RoomArchiveRow {
        host: HOST.into(),
        room: room.into(),
        id,
        nick: nick.into(),
        real_jid: format!("{}@example.org", nick.to_lowercase()),
        origin_id: format!("o{id}"),
        body: body.into(),
        stanza: format!("<message xmlns='jabber:client' id='m{id}'><body>{body}</body></message>"),
    }
}

async fn room_archive_pages_and_nick_filter(db: &TestDb) {
    let s = db.open().await;
    let rows: Vec<_> = (1..=7)
        .map(|id| row("lounge", id, if id % 2 == 0 { "Bob" } else { "Al" }, "hi"))
        .chain([row("other", 8, "Al", "hi")])
        .collect();
    assert_eq!(s.room_archive_append(&rows).await.unwrap(), 8);
    assert_eq!(
        s.room_archive_append(&rows[..1]).await.unwrap(),
        0,
        "an id already there is skipped"
    );
    let all = ArchiveFilter::default();
    let page = s
        .room_archive_query(HOST, "lounge", &all, PageFrom::Start, 3)
        .await
        .unwrap();
    assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!((page.count, page.first_index, page.complete), (7, Some(0), false));
    assert_eq!(
        (page.messages[1].nick.as_str(), page.messages[1].real_jid.as_str()),
        ("Bob", "bob@example.org")
    );
    let page = s
        .room_archive_query(HOST, "lounge", &all, PageFrom::Last, 3)
        .await
        .unwrap();
    assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [5, 6, 7]);
    assert_eq!((page.first_index, page.complete), (Some(4), false));
    let bob = ArchiveFilter {
        peer: Some(("ignored".into(), Some("Bob".into()))),
        ..Default::default()
    };
    let page = s
        .room_archive_query(HOST, "lounge", &bob, PageFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 4, 6]);
    assert!(page.complete);
}

async fn room_archive_fulltext_per_room(db: &TestDb) {
    let s = db.open().await;
    s.room_archive_append(&[
        row("lounge", 1, "Al", "The quick brown fox"),
        row("lounge", 2, "Al", "lazy dog"),
        row("other", 3, "Al", "quick quick"),
    ])
    .await
    .unwrap();
    let quick = ArchiveFilter {
        fulltext: Some(FullText {
            fts5: "\"qui\"*".into(),
            tsquery: "qui:*".into(),
        }),
        ..Default::default()
    };
    let page = s
        .room_archive_query(HOST, "lounge", &quick, PageFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
    // A tombstone empties the body: no longer found.
    assert!(
        s.room_archive_tombstone(HOST, "lounge", 1, "<message xmlns='jabber:client'/>")
            .await
            .unwrap()
    );
    let page = s
        .room_archive_query(HOST, "lounge", &quick, PageFrom::Start, 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
}

async fn room_archive_bounds_tombstone_purge_expire(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.room_archive_bounds(HOST, "lounge").await.unwrap(), None);
    assert_eq!(s.room_archive_max_id().await.unwrap(), None);
    s.room_archive_append(&[
        row("lounge", 10, "Al", "a"),
        row("lounge", 20, "Al", "b"),
        row("other", 30, "Al", "c"),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.room_archive_bounds(HOST, "lounge").await.unwrap(),
        Some((10, 20))
    );
    assert_eq!(s.room_archive_max_id().await.unwrap(), Some(30));
    assert!(s.room_archive_has_id(HOST, "lounge", 20).await.unwrap());
    assert!(!s.room_archive_has_id(HOST, "other", 20).await.unwrap());
    assert!(!s.room_archive_tombstone(HOST, "other", 20, "x").await.unwrap());
    assert!(
        s.room_archive_tombstone(HOST, "lounge", 20, "<tomb/>")
            .await
            .unwrap()
    );
    assert_eq!(
        s.room_archive_get(HOST, "lounge", 20)
            .await
            .unwrap()
            .unwrap()
            .stanza,
        "<tomb/>"
    );
    assert_eq!(s.room_archive_expire(15).await.unwrap(), 1);
    assert_eq!(
        s.room_archive_bounds(HOST, "lounge").await.unwrap(),
        Some((20, 20))
    );
    assert_eq!(s.room_archive_purge(HOST, "lounge").await.unwrap(), 1);
    assert_eq!(s.room_archive_bounds(HOST, "lounge").await.unwrap(), None);
    assert_eq!(
        s.room_archive_bounds(HOST, "other").await.unwrap(),
        Some((30, 30))
    );
}
