//! XEP-0049 private XML storage, on every backend.

use super::TestDb;

backend_tests!(
    private_per_namespace,
    private_set_is_atomic_across_namespaces,
    private_needs_an_account,
    private_per_account,
    private_deleted_with_account,
);

const HOST: &str = "example.org";
const PREFS: &str = "exodus:prefs";
const BOOKMARKS: &str = "storage:bookmarks";

fn items(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect()
}

async fn private_per_namespace(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.get_private(HOST, "alice", PREFS).await.unwrap(), None);
    let prefs = "<exodus xmlns=\"exodus:prefs\"><defaultnick>Hamlet</defaultnick></exodus>";
    let marks = "<storage xmlns=\"storage:bookmarks\"><url name=\"ö\" url=\"https://a/\"/></storage>";
    assert!(
        s.set_private(HOST, "alice", &items(&[(PREFS, prefs)]))
            .await
            .unwrap()
    );
    assert!(
        s.set_private(HOST, "alice", &items(&[(BOOKMARKS, marks)]))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_private(HOST, "alice", PREFS).await.unwrap().as_deref(),
        Some(prefs)
    );
    assert_eq!(
        s.get_private(HOST, "alice", BOOKMARKS).await.unwrap().as_deref(),
        Some(marks)
    );
    // Replacing one namespace leaves the other alone.
    let prefs2 = "<exodus xmlns=\"exodus:prefs\"/>";
    assert!(
        s.set_private(HOST, "alice", &items(&[(PREFS, prefs2)]))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_private(HOST, "alice", PREFS).await.unwrap().as_deref(),
        Some(prefs2)
    );
    assert_eq!(
        s.get_private(HOST, "alice", BOOKMARKS).await.unwrap().as_deref(),
        Some(marks)
    );
    // Namespaces are compared exactly.
    assert_eq!(s.get_private(HOST, "alice", "Exodus:prefs").await.unwrap(), None);
    if db.persistent() {
        s.close().await;
        let s = db.open().await;
        assert_eq!(
            s.get_private(HOST, "alice", PREFS).await.unwrap().as_deref(),
            Some(prefs2)
        );
    }
}

async fn private_set_is_atomic_across_namespaces(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let both = items(&[
        (PREFS, "<exodus xmlns='exodus:prefs'/>"),
        (BOOKMARKS, "<storage xmlns='storage:bookmarks'/>"),
    ]);
    assert!(s.set_private(HOST, "alice", &both).await.unwrap());
    for (ns, data) in &both {
        assert_eq!(
            s.get_private(HOST, "alice", ns).await.unwrap().as_ref(),
            Some(data)
        );
    }
}

async fn private_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    let both = items(&[
        (PREFS, "<exodus xmlns='exodus:prefs'/>"),
        (BOOKMARKS, "<storage xmlns='storage:bookmarks'/>"),
    ]);
    assert!(!s.set_private(HOST, "nobody", &both).await.unwrap());
    s.create_user(HOST, "nobody", &[]).await.unwrap();
    assert_eq!(s.get_private(HOST, "nobody", PREFS).await.unwrap(), None);
    assert_eq!(s.get_private(HOST, "nobody", BOOKMARKS).await.unwrap(), None);
}

async fn private_per_account(db: &TestDb) {
    let s = db.open().await;
    for (host, user) in [(HOST, "alice"), (HOST, "bob"), ("other.example", "alice")] {
        s.create_user(host, user, &[]).await.unwrap();
    }
    let a = "<exodus xmlns='exodus:prefs'>a</exodus>";
    let b = "<exodus xmlns='exodus:prefs'>b</exodus>";
    assert!(s.set_private(HOST, "alice", &items(&[(PREFS, a)])).await.unwrap());
    assert!(
        s.set_private("other.example", "alice", &items(&[(PREFS, b)]))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_private(HOST, "alice", PREFS).await.unwrap().as_deref(),
        Some(a)
    );
    assert_eq!(
        s.get_private("other.example", "alice", PREFS)
            .await
            .unwrap()
            .as_deref(),
        Some(b)
    );
    assert_eq!(s.get_private(HOST, "bob", PREFS).await.unwrap(), None);
}

/// ON DELETE CASCADE: a re-created account starts with nothing stored.
async fn private_deleted_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    let both = items(&[
        (PREFS, "<exodus xmlns='exodus:prefs'/>"),
        (BOOKMARKS, "<storage xmlns='storage:bookmarks'/>"),
    ]);
    assert!(s.set_private(HOST, "alice", &both).await.unwrap());
    assert!(s.delete_user(HOST, "alice").await.unwrap());
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert_eq!(s.get_private(HOST, "alice", PREFS).await.unwrap(), None);
    assert_eq!(s.get_private(HOST, "alice", BOOKMARKS).await.unwrap(), None);
}
