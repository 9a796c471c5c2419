//! XEP-0065 with a real client nobody here wrote: slixmpp's xep_0065 plugin discovers our
//! proxy, negotiates a bytestream between two of its clients through it (the target
//! connects, the initiator connects and activates) and sends data that must arrive intact.
//! The client side is `slixmpp_socks5.py`.

use std::time::Duration;

use conformance::TestServer;

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0065_slixmpp_transfer_through_the_proxy() {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[proxy65]\nenabled = true\naddress = \"127.0.0.1:0\"\nbytes_per_second = 0\n".into()
    })
    .await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_socks5.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(conformance::python())
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), PW, "300000"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("slixmpp finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "stdout: {stdout}\nstderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    assert!(
        stdout.lines().any(|l| l == "proxies proxy.localhost"),
        "{context}"
    );
    assert!(stdout.lines().any(|l| l == "received 300000 match"), "{context}");
    assert!(stdout.lines().any(|l| l == "ok"), "{context}");
}
