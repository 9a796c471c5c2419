//! XEP-0352 client state indication with a real client nobody here wrote: slixmpp's
//! xep_0352 plugin (it finds the stream feature, sends `<inactive/>` and `<active/>`). The
//! client side is `slixmpp_csi.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0352_slixmpp_inactive_holds_chat_states_until_a_message() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_csi.py");
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
