//! XEP-0060 service at `pubsub.localhost` with a real client nobody here wrote: slixmpp's
//! xep_0060 plugin (create with a form, configuration, subscribe, publish, items, options,
//! affiliations, retract, purge, delete and their notifications). The client side is
//! `slixmpp_pubsub.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0060_slixmpp_service_create_subscribe_publish_retract_purge_delete() {
    let server = TestServer::start_with(|c| c.extra_toml = "[pubsub]\nenabled = true\n".into()).await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_pubsub.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(conformance::python())
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), PW])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "ok"),
        "stdout: {stdout}\nstderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
}
