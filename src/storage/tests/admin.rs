//! Administration: disabled accounts and the message of the day, on every backend.

use super::TestDb;

backend_tests!(admin_disable_and_enable, admin_motd_set_replace_delete);

const HOST: &str = "example.org";

async fn admin_disable_and_enable(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert!(!s.is_disabled(HOST, "alice").await.unwrap());
    s.create_user(HOST, "bob", &[]).await.unwrap();
    assert_eq!(s.list_disabled(HOST).await.unwrap(), Vec::<String>::new());
    assert!(s.set_disabled(HOST, "alice", true).await.unwrap());
    assert!(s.is_disabled(HOST, "alice").await.unwrap());
    assert_eq!(s.list_disabled(HOST).await.unwrap(), vec!["alice"]);
    assert_eq!(s.list_disabled("other.org").await.unwrap(), Vec::<String>::new());
    assert!(s.set_disabled(HOST, "alice", false).await.unwrap());
    assert!(!s.is_disabled(HOST, "alice").await.unwrap());
    assert!(!s.set_disabled(HOST, "nobody", true).await.unwrap());
    assert!(!s.is_disabled(HOST, "nobody").await.unwrap());
}

async fn admin_motd_set_replace_delete(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.motd(HOST).await.unwrap(), None);
    s.set_motd(HOST, Some("hello")).await.unwrap();
    s.set_motd(HOST, Some("hello again")).await.unwrap();
    assert_eq!(s.motd(HOST).await.unwrap().as_deref(), Some("hello again"));
    assert_eq!(s.motd("other.org").await.unwrap(), None);
    s.set_motd(HOST, None).await.unwrap();
    assert_eq!(s.motd(HOST).await.unwrap(), None);
}
