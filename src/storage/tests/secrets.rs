//! Server secrets, on every backend.

use super::TestDb;

backend_tests!(secret_is_stable, secret_race);

async fn secret_is_stable(db: &TestDb) {
    let s = db.open().await;
    let a = s.secret("dialback").await.unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(s.secret("dialback").await.unwrap(), a);
    let b = s.secret("sm-token").await.unwrap();
    assert_eq!(b.len(), 32);
    assert_ne!(a, b, "each name gets its own random value");
    if db.persistent() {
        s.close().await;
        let s = db.open().await;
        assert_eq!(s.secret("dialback").await.unwrap(), a, "survives re-open");
    }
}

/// Two processes asking for a new secret at once must agree on one value.
async fn secret_race(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    for round in 0..10 {
        let name = format!("raced-{round}");
        let tasks = handles.clone().map(|s| {
            let name = name.clone();
            tokio::spawn(async move { s.secret(&name).await.unwrap() })
        });
        let [a, b] = tasks;
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a, b, "round {round}");
    }
}
