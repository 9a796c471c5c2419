//! Rosters, pending requests, versions and last activity, on every backend.

use super::{TestDb, creds};
use crate::sasl::HashAlg::Sha256;
use crate::storage::Storage;
use crate::storage::roster::{ItemWrite, PendingWrite, StoredItem, StoredRoster};

backend_tests!(
    empty_roster,
    upsert_update_remove_bump_version,
    groups_replaced_and_kept_per_item,
    pending_requests_kept_first,
    item_and_pending_in_one_write,
    hosts_and_users_independent,
    versions_and_requests_survive_reopen,
    delete_user_cascades_own_rows,
    delete_user_cancels_contacts_subscriptions,
    last_logout_round_trip,
    concurrent_writes_get_distinct_versions,
);

async fn user(s: &Storage, host: &str, name: &str) {
    s.create_user(host, name, &[creds(Sha256, 1)]).await.unwrap();
}

fn item(contact: &str, subscription: &str, groups: &[&str]) -> StoredItem {
    StoredItem {
        contact: contact.into(),
        name: Some(format!("name of {contact}")),
        subscription: subscription.into(),
        ask: false,
        approved: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

async fn empty_roster(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    assert_eq!(
        s.roster_load("example.org", "juliet").await.unwrap(),
        StoredRoster::default()
    );
    assert_eq!(s.roster_version("example.org", "juliet").await.unwrap(), 0);
    // An unknown user has an empty roster too.
    assert_eq!(
        s.roster_load("example.org", "nobody").await.unwrap(),
        StoredRoster::default()
    );
}

async fn upsert_update_remove_bump_version(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    let mut nurse = item("nurse@example.org", "none", &["Servants"]);
    let v1 = s
        .roster_write("example.org", "juliet", Some(ItemWrite::Upsert(&nurse)), None)
        .await
        .unwrap();
    assert_eq!(v1, Some(1));
    nurse.subscription = "both".into();
    nurse.ask = true;
    nurse.approved = true;
    nurse.name = None;
    let v2 = s
        .roster_write("example.org", "juliet", Some(ItemWrite::Upsert(&nurse)), None)
        .await
        .unwrap();
    assert_eq!(v2, Some(2));
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.items, vec![nurse.clone()]);
    let v3 = s
        .roster_write(
            "example.org",
            "juliet",
            Some(ItemWrite::Remove("nurse@example.org")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(v3, Some(3));
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    assert!(r.items.is_empty());
    assert_eq!(r.version, 3);
    // A pending-only write does not change the version.
    let v = s
        .roster_write(
            "example.org",
            "juliet",
            None,
            Some(PendingWrite::Clear("nurse@example.org")),
        )
        .await
        .unwrap();
    assert_eq!(v, None);
    assert_eq!(s.roster_version("example.org", "juliet").await.unwrap(), 3);
}

async fn groups_replaced_and_kept_per_item(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    for it in [
        item("a@example.org", "none", &["x", "y"]),
        item("b@example.org", "to", &["y", "z", "ünïcode"]),
        item("c@example.org", "from", &[]),
    ] {
        s.roster_write("example.org", "juliet", Some(ItemWrite::Upsert(&it)), None)
            .await
            .unwrap();
    }
    s.roster_write(
        "example.org",
        "juliet",
        Some(ItemWrite::Upsert(&item("a@example.org", "none", &["w"]))),
        None,
    )
    .await
    .unwrap();
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    let groups: Vec<(&str, Vec<&str>)> = r
        .items
        .iter()
        .map(|i| (i.contact.as_str(), i.groups.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("a@example.org", vec!["w"]),
            ("b@example.org", vec!["y", "z", "ünïcode"]),
            ("c@example.org", vec![]),
        ]
    );
}

async fn pending_requests_kept_first(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    let store = |stanza: &'static str| PendingWrite::Store {
        contact: "romeo@example.net",
        stanza,
    };
    s.roster_write("example.org", "juliet", None, Some(store("<first/>")))
        .await
        .unwrap();
    s.roster_write("example.org", "juliet", None, Some(store("<second/>")))
        .await
        .unwrap();
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    assert_eq!(
        r.pending_in,
        vec![("romeo@example.net".to_owned(), "<first/>".to_owned())]
    );
    assert!(
        r.items.is_empty(),
        "a request does not add the requester to the roster"
    );
    s.roster_write(
        "example.org",
        "juliet",
        None,
        Some(PendingWrite::Clear("romeo@example.net")),
    )
    .await
    .unwrap();
    assert!(
        s.roster_load("example.org", "juliet")
            .await
            .unwrap()
            .pending_in
            .is_empty()
    );
}

async fn item_and_pending_in_one_write(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    s.roster_write(
        "example.org",
        "juliet",
        None,
        Some(PendingWrite::Store {
            contact: "romeo@example.net",
            stanza: "<req/>",
        }),
    )
    .await
    .unwrap();
    // Approving: the item gets 'from' and the request goes, together.
    let v = s
        .roster_write(
            "example.org",
            "juliet",
            Some(ItemWrite::Upsert(&item("romeo@example.net", "from", &[]))),
            Some(PendingWrite::Clear("romeo@example.net")),
        )
        .await
        .unwrap();
    assert_eq!(v, Some(1));
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    assert!(r.pending_in.is_empty());
    assert_eq!(r.items[0].subscription, "from");
}

async fn hosts_and_users_independent(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    user(&s, "example.net", "juliet").await;
    user(&s, "example.org", "romeo").await;
    s.roster_write(
        "example.org",
        "juliet",
        Some(ItemWrite::Upsert(&item("a@b", "both", &["g"]))),
        None,
    )
    .await
    .unwrap();
    assert!(
        s.roster_load("example.net", "juliet")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.roster_load("example.org", "romeo")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(s.roster_version("example.net", "juliet").await.unwrap(), 0);
    assert_eq!(s.roster_version("example.org", "juliet").await.unwrap(), 1);
}

async fn versions_and_requests_survive_reopen(db: &TestDb) {
    if !db.persistent() {
        return;
    }
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    for _ in 0..3 {
        s.roster_write(
            "example.org",
            "juliet",
            Some(ItemWrite::Upsert(&item("a@b", "to", &[]))),
            Some(PendingWrite::Store {
                contact: "c@d",
                stanza: "<presence xmlns='jabber:client' type='subscribe'/>",
            }),
        )
        .await
        .unwrap();
    }
    s.close().await;
    let s = db.open().await;
    let r = s.roster_load("example.org", "juliet").await.unwrap();
    assert_eq!(r.version, 3);
    assert_eq!(r.items.len(), 1);
    assert_eq!(r.pending_in.len(), 1);
    let v = s
        .roster_write("example.org", "juliet", Some(ItemWrite::Remove("a@b")), None)
        .await
        .unwrap();
    assert_eq!(v, Some(4), "versions keep counting after a restart");
}

async fn delete_user_cascades_own_rows(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    s.roster_write(
        "example.org",
        "juliet",
        Some(ItemWrite::Upsert(&item("a@b", "both", &["g"]))),
        Some(PendingWrite::Store {
            contact: "c@d",
            stanza: "<x/>",
        }),
    )
    .await
    .unwrap();
    s.last_logout_set("example.org", "juliet", 100, "bye")
        .await
        .unwrap();
    assert!(s.delete_user("example.org", "juliet").await.unwrap());
    // Re-created, the account starts from nothing.
    user(&s, "example.org", "juliet").await;
    assert_eq!(
        s.roster_load("example.org", "juliet").await.unwrap(),
        StoredRoster::default()
    );
    assert_eq!(s.last_logout("example.org", "juliet").await.unwrap(), None);
}

async fn delete_user_cancels_contacts_subscriptions(db: &TestDb) {
    let s = db.open().await;
    for name in ["juliet", "romeo", "nurse"] {
        user(&s, "example.org", name).await;
    }
    // Romeo: both with Juliet, plus a request from her waiting. Nurse: pending out to
    // Juliet and pre-approved. Romeo also has someone else, untouched.
    let mut romeo_juliet = item("juliet@example.org", "both", &["Lovers"]);
    s.roster_write(
        "example.org",
        "romeo",
        Some(ItemWrite::Upsert(&romeo_juliet)),
        Some(PendingWrite::Store {
            contact: "juliet@example.org",
            stanza: "<req/>",
        }),
    )
    .await
    .unwrap();
    s.roster_write(
        "example.org",
        "romeo",
        Some(ItemWrite::Upsert(&item("benvolio@example.org", "both", &[]))),
        None,
    )
    .await
    .unwrap();
    let mut nurse_juliet = item("juliet@example.org", "none", &[]);
    nurse_juliet.ask = true;
    nurse_juliet.approved = true;
    s.roster_write(
        "example.org",
        "nurse",
        Some(ItemWrite::Upsert(&nurse_juliet)),
        None,
    )
    .await
    .unwrap();
    let romeo_v = s.roster_version("example.org", "romeo").await.unwrap();
    let nurse_v = s.roster_version("example.org", "nurse").await.unwrap();

    assert!(s.delete_user("example.org", "juliet").await.unwrap());

    let romeo = s.roster_load("example.org", "romeo").await.unwrap();
    romeo_juliet.subscription = "none".into();
    assert_eq!(romeo.items[1], romeo_juliet, "name and groups are kept");
    assert_eq!(romeo.items[0].subscription, "both", "other contacts untouched");
    assert!(romeo.pending_in.is_empty());
    assert_eq!(romeo.version, romeo_v + 1);
    let nurse = s.roster_load("example.org", "nurse").await.unwrap();
    nurse_juliet.ask = false;
    nurse_juliet.approved = false;
    assert_eq!(nurse.items, vec![nurse_juliet]);
    assert_eq!(nurse.version, nurse_v + 1);
}

async fn last_logout_round_trip(db: &TestDb) {
    let s = db.open().await;
    user(&s, "example.org", "juliet").await;
    assert_eq!(s.last_logout("example.org", "juliet").await.unwrap(), None);
    s.last_logout_set("example.org", "juliet", 1_000, "Heading home")
        .await
        .unwrap();
    s.last_logout_set("example.org", "juliet", 2_000, "")
        .await
        .unwrap();
    assert_eq!(
        s.last_logout("example.org", "juliet").await.unwrap(),
        Some((2_000, String::new()))
    );
    // An account that is gone gets nothing (and no error).
    s.last_logout_set("example.org", "ghost", 3_000, "")
        .await
        .unwrap();
    assert_eq!(s.last_logout("example.org", "ghost").await.unwrap(), None);
}

/// Two writers of one roster (two server processes) never share a version.
async fn concurrent_writes_get_distinct_versions(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    user(&handles[0], "example.org", "juliet").await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = handles[i % 2].clone();
            tokio::spawn(async move {
                let it = item(&format!("c{i}@example.org"), "none", &["g"]);
                s.roster_write("example.org", "juliet", Some(ItemWrite::Upsert(&it)), None)
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<i64>>());
    let r = handles[0].roster_load("example.org", "juliet").await.unwrap();
    assert_eq!(r.items.len(), 10);
    assert_eq!(r.version, 10);
}
