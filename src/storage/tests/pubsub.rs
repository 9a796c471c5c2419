//! The XEP-0060 service's nodes, items, affiliations and subscriptions, on every backend.

use super::TestDb;
use crate::storage::pep::StoredPepItem;
use crate::storage::pubsub::StoredSubscription;

backend_tests!(pubsub_round_trip, pubsub_delete_node_removes_everything);

const SERVICE: &str = "pubsub.example.org";

fn item(id: &str, seq: i64) -> StoredPepItem {
    StoredPepItem {
        id: id.into(),
        publisher: "alice@example.org".into(),
        payload: format!("<entry xmlns='urn:example' n='{id}'/>"),
        seq,
    }
}

fn subscription(state: &str) -> StoredSubscription {
    StoredSubscription {
        jid: "bob@example.org".into(),
        subid: "s1".into(),
        state: state.into(),
        options: "deliver=1".into(),
    }
}

async fn pubsub_round_trip(db: &TestDb) {
    let s = db.open().await;
    assert!(s.pubsub_load(SERVICE).await.unwrap().is_empty());
    assert!(
        s.pubsub_create_node(SERVICE, "news", "max_items=2", "alice@example.org")
            .await
            .unwrap()
    );
    assert!(
        !s.pubsub_create_node(SERVICE, "news", "", "eve@example.org")
            .await
            .unwrap()
    );
    assert!(
        s.pubsub_create_node(SERVICE, "blog", "", "alice@example.org")
            .await
            .unwrap()
    );
    s.pubsub_publish(SERVICE, "news", &item("1", 1), &[])
        .await
        .unwrap();
    s.pubsub_publish(SERVICE, "news", &item("2", 2), &[])
        .await
        .unwrap();
    s.pubsub_publish(SERVICE, "news", &item("3", 3), &["1".into()])
        .await
        .unwrap();
    s.pubsub_set_affiliation(SERVICE, "news", "carol@example.org", Some("publisher"))
        .await
        .unwrap();
    s.pubsub_set_subscription(SERVICE, "news", "bob@example.org", Some(&subscription("pending")))
        .await
        .unwrap();
    s.pubsub_set_subscription(
        SERVICE,
        "news",
        "bob@example.org",
        Some(&subscription("subscribed")),
    )
    .await
    .unwrap();
    s.pubsub_set_config(SERVICE, "blog", "access_model=whitelist")
        .await
        .unwrap();
    // Another service's nodes are apart.
    assert!(
        s.pubsub_create_node("pubsub.other.org", "news", "", "x@other.org")
            .await
            .unwrap()
    );
    if db.persistent() {
        s.close().await;
    }
    let s = db.open().await;
    let nodes = s.pubsub_load(SERVICE).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].node, "blog");
    assert_eq!(nodes[0].config, "access_model=whitelist");
    let news = &nodes[1];
    assert_eq!(news.config, "max_items=2");
    let ids: Vec<_> = news.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["2", "3"]);
    assert_eq!(news.items[1], item("3", 3));
    assert_eq!(
        news.affiliations,
        vec![
            ("alice@example.org".to_string(), "owner".to_string()),
            ("carol@example.org".to_string(), "publisher".to_string())
        ]
    );
    assert_eq!(news.subscriptions, vec![subscription("subscribed")]);
    s.pubsub_retract(SERVICE, "news", &["2".into()]).await.unwrap();
    s.pubsub_set_affiliation(SERVICE, "news", "carol@example.org", None)
        .await
        .unwrap();
    s.pubsub_set_subscription(SERVICE, "news", "bob@example.org", None)
        .await
        .unwrap();
    let news = s.pubsub_load(SERVICE).await.unwrap().remove(1);
    assert_eq!(news.items.len(), 1);
    assert_eq!(news.affiliations.len(), 1);
    assert!(news.subscriptions.is_empty());
    s.pubsub_purge(SERVICE, "news").await.unwrap();
    assert!(s.pubsub_load(SERVICE).await.unwrap()[1].items.is_empty());
}

async fn pubsub_delete_node_removes_everything(db: &TestDb) {
    let s = db.open().await;
    s.pubsub_create_node(SERVICE, "news", "", "alice@example.org")
        .await
        .unwrap();
    s.pubsub_publish(SERVICE, "news", &item("1", 1), &[])
        .await
        .unwrap();
    s.pubsub_set_subscription(
        SERVICE,
        "news",
        "bob@example.org",
        Some(&subscription("subscribed")),
    )
    .await
    .unwrap();
    s.pubsub_delete_node(SERVICE, "news").await.unwrap();
    assert!(s.pubsub_load(SERVICE).await.unwrap().is_empty());
    // The name can be used again, empty.
    assert!(
        s.pubsub_create_node(SERVICE, "news", "", "bob@example.org")
            .await
            .unwrap()
    );
    let nodes = s.pubsub_load(SERVICE).await.unwrap();
    assert!(nodes[0].items.is_empty() && nodes[0].subscriptions.is_empty());
}
