//! XEP-0363 with a real client nobody here wrote: slixmpp's xep_0363 plugin finds the
//! service by disco, reads the max-file-size form, requests a slot and PUTs the file with
//! aiohttp; the test then fetches the GET URL over HTTP and compares the bytes. The client
//! side is `slixmpp_upload.py`.

use std::time::Duration;

use conformance::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PW: &str = "passw0rd";

#[tokio::test]
async fn xep0363_slixmpp_uploads_a_file() {
    let files = tempfile::tempdir().unwrap();
    let toml = format!(
        "[upload]\nenabled = true\ndirectory = \"{}\"\nmax_file_size = 3000000\n",
        files.path().display()
    );
    let server = TestServer::start_with(|c| c.extra_toml = toml).await;
    server.add_user("alice", PW).await;
    let content: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let file = files.path().join("report 2026.pdf");
    std::fs::write(&file, &content).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slixmpp_upload.py");
    let addr = server.c2s_addr();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(conformance::python())
            .arg(script)
            .args([
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "alice@localhost/slix",
                PW,
                &file.display().to_string(),
            ])
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
    assert!(stdout.lines().any(|l| l == "ok"), "{context}");
    assert!(stdout.lines().any(|l| l == "max 3000000"), "{context}");
    assert!(
        stdout.lines().any(|l| l == "too-large not-acceptable"),
        "{context}"
    );
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("url "))
        .unwrap_or_else(|| panic!("no URL: {context}"));
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    assert!(path.contains("/report%202026.pdf?"), "{url}");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/pdf"), "{head}");
    assert!(buf[end + 4..] == content[..], "the downloaded file differs");
}
