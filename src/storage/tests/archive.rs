//! XEP-0313 archives of accounts, on every backend: batched appends, filters, XEP-0059 pages.

use super::TestDb;
use crate::storage::Storage;
use crate::storage::archive::{ArchiveFilter, ArchiveRow, FullText, PageFrom, Retraction, StoredPrefs};

backend_tests!(
    archive_pages_forward,
    archive_pages_backward,
    archive_exact_page_boundary_is_complete,
    archive_filters,
    archive_empty_and_max_zero,
    archive_skips_unknown_owner_and_goes_with_account,
    archive_bounds_has_id_purge,
    archive_prefs_stored_replaced_and_gone_with_account,
    archive_retraction_replaces_only_the_senders_message,
    archive_fulltext_same_semantics,
);

const HOST: &str = "example.org";

fn row(user: &str, id: i64, peer: &str, resource: &str) -> ArchiveRow {
    ArchiveRow {
        host: HOST.into(),
        username: user.into(),
        id,
        peer: peer.into(),
        peer_resource: resource.into(),
        outgoing: id % 2 == 0,
        origin_id: format!("o{id}"),
        body: format!("Ålice “{id}” &"),
        stanza: format!(
            "<message xmlns='jabber:client' id='m{id}'><body>Ålice “{id}” &amp;</body></message>"
        ),
    }
}

/// alice with messages 1..=n (from bob@example.org/phone).
async fn filled(db: &TestDb, n: i64) -> Storage {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let rows: Vec<ArchiveRow> = (1..=n)
        .map(|id| row("alice", id, "bob@example.org", "phone"))
        .collect();
    assert_eq!(s.archive_append(&rows).await.unwrap(), u64::try_from(n).unwrap());
    s
}

async fn ids(
    s: &Storage,
    filter: &ArchiveFilter,
    from: PageFrom,
    max: usize,
) -> (Vec<i64>, u64, Option<u64>, bool) {
    let page = s.archive_query(HOST, "alice", filter, from, max).await.unwrap();
    let ids = page.messages.iter().map(|m| m.id).collect();
    (ids, page.count, page.first_index, page.complete)
}

async fn archive_pages_forward(db: &TestDb) {
    let s = filled(db, 5).await;
    let all = ArchiveFilter::default();
    assert_eq!(
        ids(&s, &all, PageFrom::Start, 2).await,
        (vec![1, 2], 5, Some(0), false)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::After(2), 2).await,
        (vec![3, 4], 5, Some(2), false)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::After(4), 2).await,
        (vec![5], 5, Some(4), true)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::After(5), 2).await,
        (vec![], 5, None, true)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::Index(3), 10).await,
        (vec![4, 5], 5, Some(3), true)
    );
    let page = s
        .archive_query(HOST, "alice", &all, PageFrom::Start, 1)
        .await
        .unwrap();
    let m = &page.messages[0];
    assert_eq!(
        (m.peer.as_str(), m.peer_resource.as_str(), m.outgoing),
        ("bob@example.org", "phone", false)
    );
    assert_eq!(m.stanza, row("alice", 1, "", "").stanza, "stored byte for byte");
}

async fn archive_pages_backward(db: &TestDb) {
    let s = filled(db, 5).await;
    let all = ArchiveFilter::default();
    assert_eq!(
        ids(&s, &all, PageFrom::Last, 2).await,
        (vec![4, 5], 5, Some(3), false)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::Before(4), 2).await,
        (vec![2, 3], 5, Some(1), false)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::Before(2), 2).await,
        (vec![1], 5, Some(0), true)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::Last, 50).await,
        (vec![1, 2, 3, 4, 5], 5, Some(0), true)
    );
}

async fn archive_exact_page_boundary_is_complete(db: &TestDb) {
    let s = filled(db, 4).await;
    let all = ArchiveFilter::default();
    assert_eq!(
        ids(&s, &all, PageFrom::Start, 4).await,
        (vec![1, 2, 3, 4], 4, Some(0), true)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::After(2), 2).await,
        (vec![3, 4], 4, Some(2), true)
    );
    assert_eq!(
        ids(&s, &all, PageFrom::Before(3), 2).await,
        (vec![1, 2], 4, Some(0), true)
    );
}

async fn archive_filters(db: &TestDb) {
    let s = filled(db, 6).await;
    s.archive_append(&[
        row("alice", 7, "carol@example.org", ""),
        row("alice", 8, "bob@example.org", "laptop"),
    ])
    .await
    .unwrap();
    let f = |peer: Option<(&str, Option<&str>)>| ArchiveFilter {
        peer: peer.map(|(p, r)| (p.to_string(), r.map(str::to_string))),
        ..Default::default()
    };
    let bob = f(Some(("bob@example.org", None)));
    assert_eq!(ids(&s, &bob, PageFrom::Start, 50).await.0, [1, 2, 3, 4, 5, 6, 8]);
    let laptop = f(Some(("bob@example.org", Some("laptop"))));
    assert_eq!(ids(&s, &laptop, PageFrom::Start, 50).await.0, [8]);
    assert_eq!(
        ids(&s, &f(Some(("carol@example.org", None))), PageFrom::Start, 50)
            .await
            .0,
        [7]
    );
    let range = ArchiveFilter {
        start: Some(2),
        end: Some(5),
        ..Default::default()
    };
    assert_eq!(ids(&s, &range, PageFrom::Start, 50).await.0, [2, 3, 4, 5]);
    let exclusive = ArchiveFilter {
        after_id: Some(2),
        before_id: Some(5),
        ..Default::default()
    };
    assert_eq!(ids(&s, &exclusive, PageFrom::Start, 50).await.0, [3, 4]);
    let some = ArchiveFilter {
        ids: Some(vec![8, 3, 99]),
        ..bob.clone()
    };
    assert_eq!(
        ids(&s, &some, PageFrom::Start, 50).await,
        (vec![3, 8], 2, Some(0), true)
    );
    let none = ArchiveFilter {
        ids: Some(vec![]),
        ..Default::default()
    };
    assert_eq!(ids(&s, &none, PageFrom::Start, 50).await.1, 0);
    // Paging inside a filter: indexes count only the filtered set.
    assert_eq!(
        ids(&s, &bob, PageFrom::Last, 2).await,
        (vec![6, 8], 7, Some(5), false)
    );
    assert_eq!(
        ids(&s, &bob, PageFrom::Before(6), 2).await,
        (vec![4, 5], 7, Some(3), false)
    );
}

async fn archive_empty_and_max_zero(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let all = ArchiveFilter::default();
    assert_eq!(ids(&s, &all, PageFrom::Start, 10).await, (vec![], 0, None, true));
    assert_eq!(ids(&s, &all, PageFrom::Last, 10).await, (vec![], 0, None, true));
    assert_eq!(s.archive_bounds(HOST, "alice").await.unwrap(), None);
    let rows: Vec<ArchiveRow> = (1..=3)
        .map(|id| row("alice", id, "bob@example.org", ""))
        .collect();
    s.archive_append(&rows).await.unwrap();
    assert_eq!(ids(&s, &all, PageFrom::Start, 0).await, (vec![], 3, None, false));
}

async fn archive_skips_unknown_owner_and_goes_with_account(db: &TestDb) {
    let s = filled(db, 2).await;
    // One batch mixing a known and an unknown owner: the known one is stored.
    let stored = s
        .archive_append(&[
            row("nobody", 10, "bob@example.org", ""),
            row("alice", 11, "bob@example.org", ""),
        ])
        .await
        .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(
        ids(&s, &ArchiveFilter::default(), PageFrom::Start, 50).await.0,
        [1, 2, 11]
    );
    // A duplicate id is ignored, not an error that would lose the batch.
    assert_eq!(
        s.archive_append(&[row("alice", 11, "x@example.org", "")])
            .await
            .unwrap(),
        0
    );
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(ids(&s, &ArchiveFilter::default(), PageFrom::Start, 50).await.1, 0);
}

async fn archive_bounds_has_id_purge(db: &TestDb) {
    let s = filled(db, 3).await;
    assert_eq!(s.archive_bounds(HOST, "alice").await.unwrap(), Some((1, 3)));
    assert!(s.archive_has_id(HOST, "alice", 2).await.unwrap());
    assert!(!s.archive_has_id(HOST, "alice", 4).await.unwrap());
    assert!(!s.archive_has_id(HOST, "bob", 2).await.unwrap());
    s.create_user(HOST, "bob", &[]).await.unwrap();
    s.archive_append(&[
        row("bob", 1, "alice@example.org", ""),
        row("bob", 5, "alice@example.org", ""),
    ])
    .await
    .unwrap();
    // Retention: older than id 2, every account.
    assert_eq!(s.archive_expire(2).await.unwrap(), 2);
    assert_eq!(s.archive_bounds(HOST, "alice").await.unwrap(), Some((2, 3)));
    assert_eq!(s.archive_bounds(HOST, "bob").await.unwrap(), Some((5, 5)));
    assert_eq!(s.archive_purge(HOST, "alice").await.unwrap(), 2);
    assert_eq!(s.archive_bounds(HOST, "bob").await.unwrap(), Some((5, 5)));
    assert_eq!(s.archive_bounds(HOST, "alice").await.unwrap(), None);
}

async fn archive_prefs_stored_replaced_and_gone_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.archive_prefs(HOST, "alice").await.unwrap(), None);
    let prefs = StoredPrefs {
        default_mode: "roster".into(),
        always: vec!["bob@example.org".into(), "carol@example.org/phone".into()],
        never: vec![],
    };
    assert!(s.archive_prefs_set(HOST, "alice", &prefs).await.unwrap());
    assert_eq!(s.archive_prefs(HOST, "alice").await.unwrap(), Some(prefs));
    let replaced = StoredPrefs {
        default_mode: "never".into(),
        always: vec![],
        never: vec!["mallory@example.org".into()],
    };
    assert!(s.archive_prefs_set(HOST, "alice", &replaced).await.unwrap());
    assert_eq!(
        s.archive_prefs(HOST, "alice").await.unwrap(),
        Some(replaced.clone())
    );
    assert!(!s.archive_prefs_set(HOST, "nobody", &replaced).await.unwrap());
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.archive_prefs(HOST, "alice").await.unwrap(), None);
}

async fn archive_retraction_replaces_only_the_senders_message(db: &TestDb) {
    // Odd ids are incoming from bob (outgoing = id % 2 == 0).
    let s = filled(db, 4).await;
    let retraction = |origin: &str, outgoing: bool| Retraction {
        host: HOST.into(),
        username: "alice".into(),
        peer: "bob@example.org".into(),
        outgoing,
        origin_id: origin.into(),
    };
    let tomb = |_: &str| Some("<message xmlns='jabber:client'/>".to_string());
    // Wrong direction, unknown id, wrong peer: nothing.
    assert_eq!(s.archive_retract(&retraction("o3", true), tomb).await.unwrap(), 0);
    assert_eq!(
        s.archive_retract(&retraction("o9", false), tomb).await.unwrap(),
        0
    );
    let other = Retraction {
        peer: "carol@example.org".into(),
        ..retraction("o3", false)
    };
    assert_eq!(s.archive_retract(&other, tomb).await.unwrap(), 0);
    assert_eq!(
        s.archive_retract(&retraction("o3", false), tomb).await.unwrap(),
        1
    );
    let page = s
        .archive_query(HOST, "alice", &ArchiveFilter::default(), PageFrom::Start, 10)
        .await
        .unwrap();
    let texts: Vec<&str> = page.messages.iter().map(|m| m.stanza.as_str()).collect();
    assert_eq!(texts[2], "<message xmlns='jabber:client'/>");
    assert_eq!(texts[1], row("alice", 2, "", "").stanza);
    assert_eq!(page.messages.len(), 4, "the tombstone keeps its place");
}

/// The same queries on both backends (terms as `modules::mam::fulltext` writes them).
async fn archive_fulltext_same_semantics(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.create_user(HOST, "bob", &[]).await.unwrap();
    let bodies = [
        "The quick brown fox",
        "lazy dog jumps",
        "Quick thinking, QUICK action",
        "don't panic",
        "überraschung party",
        "",
    ];
    let rows: Vec<ArchiveRow> = bodies
        .iter()
        .zip(1..)
        .map(|(b, id)| ArchiveRow {
            body: b.to_string(),
            ..row("alice", id, "bob@example.org", "")
        })
        .collect();
    s.archive_append(&rows).await.unwrap();
    s.archive_append(&[ArchiveRow {
        body: "quick quick".into(),
        ..row("bob", 100, "alice@example.org", "")
    }])
    .await
    .unwrap();
    let search = |fts5: &str, tsquery: &str| ArchiveFilter {
        fulltext: Some(FullText {
            fts5: fts5.into(),
            tsquery: tsquery.into(),
        }),
        ..Default::default()
    };
    let cases: &[(&str, &str, &[i64])] = &[
        ("\"quick\"", "quick", &[1, 3]),
        ("\"quick\" AND \"brown\"", "quick & brown", &[1]),
        ("\"brown fox\"", "(brown <-> fox)", &[1]),
        ("\"fox brown\"", "(fox <-> brown)", &[]),
        ("\"qui\"*", "qui:*", &[1, 3]),
        ("\"jump\"*", "jump:*", &[2]),
        ("\"don t\"", "(don <-> t)", &[4]),
        ("\"überraschung\"", "überraschung", &[5]),
        ("\"nothing\"", "nothing", &[]),
    ];
    for (fts5, tsquery, expected) in cases {
        assert_eq!(
            ids(&s, &search(fts5, tsquery), PageFrom::Start, 50).await.0,
            expected.to_vec(),
            "{fts5} / {tsquery}"
        );
    }
    // Paging and other filters combine with it.
    let quick = ArchiveFilter {
        before_id: Some(3),
        ..search("\"quick\"", "quick")
    };
    assert_eq!(ids(&s, &quick, PageFrom::Start, 50).await.0, [1]);
    // A retracted message is no longer found.
    let retraction = Retraction {
        host: HOST.into(),
        username: "alice".into(),
        peer: "bob@example.org".into(),
        outgoing: false,
        origin_id: "o1".into(),
    };
    let tomb = |_: &str| Some("<message xmlns='jabber:client'/>".to_string());
    assert_eq!(s.archive_retract(&retraction, tomb).await.unwrap(), 1);
    assert_eq!(
        ids(&s, &search("\"quick\"", "quick"), PageFrom::Start, 50)
            .await
            .0,
        [3]
    );
    // Purged messages neither.
    s.archive_purge(HOST, "alice").await.unwrap();
    assert!(
        ids(&s, &search("\"quick\"", "quick"), PageFrom::Start, 50)
            .await
            .0
            .is_empty()
    );
}
