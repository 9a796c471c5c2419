//! XEP-0357 push registrations, on every backend.

use super::TestDb;
use crate::storage::push::PushRegistration;

backend_tests!(
    push_enable_list_disable,
    push_needs_an_account,
    push_deleted_with_account,
);

const HOST: &str = "example.org";

fn reg(service: &str, node: &str, options: Option<&str>) -> PushRegistration {
    PushRegistration {
        service: service.into(),
        node: node.into(),
        options: options.map(str::to_owned),
        include_body: options.is_some(),
    }
}

async fn push_enable_list_disable(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert!(s.push_registrations(HOST, "alice").await.unwrap().is_empty());
    assert!(
        s.push_enable(HOST, "alice", &reg("push.a", "n1", None))
            .await
            .unwrap()
    );
    assert!(
        s.push_enable(HOST, "alice", &reg("push.a", "n2", None))
            .await
            .unwrap()
    );
    assert!(
        s.push_enable(HOST, "alice", &reg("push.b", "n1", None))
            .await
            .unwrap()
    );
    // Enabling again replaces the options, not adds a row.
    let with_options = reg("push.a", "n1", Some("<x xmlns='jabber:x:data'/>"));
    assert!(s.push_enable(HOST, "alice", &with_options).await.unwrap());
    let all = s.push_registrations(HOST, "alice").await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&with_options));
    assert_eq!(
        s.push_disable(HOST, "alice", "push.a", Some("n2")).await.unwrap(),
        1
    );
    assert_eq!(
        s.push_disable(HOST, "alice", "push.a", Some("n2")).await.unwrap(),
        0
    );
    assert_eq!(s.push_disable(HOST, "alice", "push.b", None).await.unwrap(), 1);
    assert_eq!(
        s.push_registrations(HOST, "alice").await.unwrap(),
        vec![with_options]
    );
}

async fn push_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    assert!(
        !s.push_enable(HOST, "nobody", &reg("push.a", "n", None))
            .await
            .unwrap()
    );
}

async fn push_deleted_with_account(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert!(
        s.push_enable(HOST, "alice", &reg("push.a", "n", None))
            .await
            .unwrap()
    );
    s.delete_user(HOST, "alice").await.unwrap();
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert!(s.push_registrations(HOST, "alice").await.unwrap().is_empty());
}
