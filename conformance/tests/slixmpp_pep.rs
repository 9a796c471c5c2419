//! XEP-0163 PEP with a real client nobody here wrote: slixmpp's xep_0115, xep_0163,
//! xep_0118 (tune), xep_0172 (nickname), xep_0084 (avatar), xep_0223 (private storage) and
//! xep_0048/xep_0402 (bookmarks, kept in step) plugins. The client side is `slixmpp_pep.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0163_slixmpp_tune_nick_avatar_private_storage_and_bookmarks() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_pep.py");
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
