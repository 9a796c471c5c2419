//! XEP-0045 with a real client that nobody here wrote: slixmpp and its MUC plugin create a
//! persistent room, chat, kick and ban, and the room (ban and history included) survives a
//! restart of the server. The client side is `slixmpp_muc.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";
const ROOM: &str = "slix@conference.localhost";

/// Runs one phase of the script against `server`; returns its output when it printed
/// `ok <phase>`, panics with everything it said otherwise.
async fn run_phase(server: &TestServer, phase: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_muc.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(conformance::python())
            .arg(script)
            .args([phase, &addr.ip().to_string(), &addr.port().to_string(), ROOM, PW])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ok {phase}")),
        "phase {phase}\nstdout: {stdout}\nstderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
}

#[tokio::test]
async fn xep0045_slixmpp_room_kick_ban_survive_restart() {
    let mut server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    run_phase(&server, "before").await;
    server.restart().await;
    run_phase(&server, "after").await;
}
