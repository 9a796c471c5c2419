//! XEP-0163 PEP nodes, items and affiliations, on every backend.

use super::TestDb;
use crate::storage::pep::StoredPepItem;

backend_tests!(
    pep_nodes_items_and_affiliations_round_trip,
    pep_publish_replaces_and_evicts,
    pep_node_needs_an_account,
    pep_delete_node_and_account_remove_everything,
);

const HOST: &str = "example.org";
const NODE: &str = "urn:xmpp:omemo:2:devices";

fn item(id: &str, seq: i64) -> StoredPepItem {
    StoredPepItem {
        id: id.into(),
        publisher: "alice@example.org".into(),
        payload: format!("<devices xmlns='urn:xmpp:omemo:2'><device id='{id}'/></devices>"),
        seq,
    }
}

async fn pep_nodes_items_and_affiliations_round_trip(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    assert!(s.pep_load(HOST, "alice").await.unwrap().is_empty());
    assert!(
        s.pep_create_node(HOST, "alice", NODE, "access_model=open")
            .await
            .unwrap()
    );
    // A second create of the same node changes nothing.
    assert!(
        !s.pep_create_node(HOST, "alice", NODE, "access_model=presence")
            .await
            .unwrap()
    );
    assert!(s.pep_create_node(HOST, "alice", "b", "").await.unwrap());
    s.pep_publish(HOST, "alice", NODE, &item("1", 1), &[])
        .await
        .unwrap();
    s.pep_publish(HOST, "alice", NODE, &item("2", 2), &[])
        .await
        .unwrap();
    s.pep_set_affiliation(HOST, "alice", "b", "bob@example.org", Some("member"))
        .await
        .unwrap();
    s.pep_set_config(HOST, "alice", "b", "access_model=whitelist")
        .await
        .unwrap();
    if db.persistent() {
        s.close().await;
    }
    let s = db.open().await;
    let nodes = s.pep_load(HOST, "alice").await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].node, "b");
    assert_eq!(nodes[0].config, "access_model=whitelist");
    assert_eq!(
        nodes[0].affiliations,
        vec![("bob@example.org".to_string(), "member".to_string())]
    );
    assert_eq!(nodes[1].config, "access_model=open");
    assert_eq!(nodes[1].items, vec![item("1", 1), item("2", 2)]);
    s.pep_set_affiliation(HOST, "alice", "b", "bob@example.org", None)
        .await
        .unwrap();
    assert!(
        s.pep_load(HOST, "alice").await.unwrap()[0]
            .affiliations
            .is_empty()
    );
}

async fn pep_publish_replaces_and_evicts(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.pep_create_node(HOST, "alice", NODE, "").await.unwrap();
    s.pep_publish(HOST, "alice", NODE, &item("1", 1), &[])
        .await
        .unwrap();
    s.pep_publish(HOST, "alice", NODE, &item("2", 2), &[])
        .await
        .unwrap();
    // Republishing "1" makes it the newest; "2" is evicted in the same write.
    let mut again = item("1", 3);
    again.payload = "<x xmlns='y'/>".into();
    s.pep_publish(HOST, "alice", NODE, &again, &["2".to_string()])
        .await
        .unwrap();
    let nodes = s.pep_load(HOST, "alice").await.unwrap();
    assert_eq!(nodes[0].items, vec![again]);
    s.pep_publish(HOST, "alice", NODE, &item("3", 4), &[])
        .await
        .unwrap();
    s.pep_retract(HOST, "alice", NODE, &["1".to_string()])
        .await
        .unwrap();
    assert_eq!(
        s.pep_load(HOST, "alice").await.unwrap()[0].items,
        vec![item("3", 4)]
    );
    s.pep_purge(HOST, "alice", NODE).await.unwrap();
    assert!(s.pep_load(HOST, "alice").await.unwrap()[0].items.is_empty());
}

async fn pep_node_needs_an_account(db: &TestDb) {
    let s = db.open().await;
    assert!(!s.pep_create_node(HOST, "ghost", NODE, "").await.unwrap());
    assert!(s.pep_load(HOST, "ghost").await.unwrap().is_empty());
}

async fn pep_delete_node_and_account_remove_everything(db: &TestDb) {
    let s = db.open().await;
    s.create_user(HOST, "alice", &[]).await.unwrap();
    s.create_user(HOST, "bob", &[]).await.unwrap();
    for user in ["alice", "bob"] {
        s.pep_create_node(HOST, user, NODE, "").await.unwrap();
        s.pep_publish(HOST, user, NODE, &item("1", 1), &[]).await.unwrap();
        s.pep_set_affiliation(HOST, user, NODE, "carol@example.org", Some("member"))
            .await
            .unwrap();
    }
    s.pep_delete_node(HOST, "alice", NODE).await.unwrap();
    assert!(s.pep_load(HOST, "alice").await.unwrap().is_empty());
    // Recreated, the node starts empty.
    s.pep_create_node(HOST, "alice", NODE, "").await.unwrap();
    assert!(s.pep_load(HOST, "alice").await.unwrap()[0].items.is_empty());
    assert!(s.delete_user(HOST, "bob").await.unwrap());
    assert!(s.pep_load(HOST, "bob").await.unwrap().is_empty());
    s.create_user(HOST, "bob", &[]).await.unwrap();
    assert!(s.pep_load(HOST, "bob").await.unwrap().is_empty());
}
