//! XEP-0313 with a real client that nobody here wrote: slixmpp's MAM plugin (xep_0313, paging
//! with xep_0059) iterates whole archives forwards and backwards, and the archive ids match
//! the XEP-0359 stanza-ids of the live messages. The client side is `slixmpp_mam.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0313_slixmpp_iterates_whole_archive() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_mam.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(conformance::python())
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), PW, "57"])
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
