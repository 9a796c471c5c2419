//! converse.js (npm, a third-party web client) in Debian's chromium (headless, driven by
//! puppeteer-core): logs in over RFC 7395 WebSocket and over XEP-0206 BOSH, chats with a
//! tokio-xmpp user on TCP and joins a room. Screenshots go to target/test-artifacts/.
//! chromium comes from apt (.ci/run), the npm packages from scripts/test.sh: a missing one
//! fails the test, it is never skipped.

use std::path::PathBuf;
use std::time::Duration;

use conformance::js::NodeScript;
use conformance::muc::{self, room};
use conformance::{TestServer, ns};

const PW: &str = "passw0rd";
const STEP: Duration = Duration::from_secs(60);

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

async fn converse_chats_and_joins_a_room(transport: &str, path: &str) {
    let chromium = std::env::var("SWITCHBOARD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (.ci/run does)"
    );
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut bob = server.client_jid("bob@localhost/desk", PW).await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    let room_jid = room(&format!("web-{transport}"));

    let service = format!("http://{}{path}", server.http_addr());
    let service = if transport == "websocket" {
        service.replacen("http", "ws", 1)
    } else {
        service
    };
    let png = artifacts().join(format!("converse-{transport}"));
    let mut page = NodeScript::start_plain(
        "converse.mjs",
        &[
            transport,
            &service,
            "alice@localhost",
            PW,
            "bob@localhost",
            &room_jid,
            png.to_str().unwrap(),
        ],
    );
    let expect = async |page: &mut NodeScript, want: &str| {
        let line = page.line(STEP).await;
        assert_eq!(
            line,
            want,
            "converse.js in chromium over {transport}\n{}",
            server.logs()
        );
    };
    expect(&mut page, "online").await;
    expect(&mut page, "sent").await;
    // converse.js also sends chat states (XEP-0085) without a body.
    let hello = bob
        .wait_for(|e| e.is("message", ns::CLIENT) && e.get_child("body", ns::CLIENT).is_some())
        .await;
    assert_eq!(
        hello.get_child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("hello from converse.js")
    );
    let from = hello.attr("from").expect("from").to_string();
    assert!(from.starts_with("alice@localhost/"), "{from}");
    bob.send_message(&from, "hi converse").await;
    expect(&mut page, "shown hi converse").await;
    expect(&mut page, &format!("screenshot {}-chat.png", png.display())).await;

    expect(&mut page, "joined").await;
    let joined = muc::join(&mut bob, &room_jid, "bob").await;
    assert!(muc::joined(&joined), "{joined:?}");
    // converse.js's occupant is in the room bob joined.
    assert!(
        joined.iter().any(|p| p.name() == "presence"
            && p.attr("from")
                .is_some_and(|f| f.starts_with(&room_jid) && !f.ends_with("/bob"))),
        "{joined:?}"
    );
    bob.send_xml(&format!(
        "<message to='{room_jid}' type='groupchat'><body>welcome to the room</body></message>"
    ))
    .await;
    expect(&mut page, "shown welcome to the room").await;
    expect(&mut page, &format!("screenshot {}-room.png", png.display())).await;
    assert_eq!(page.exit_code(STEP).await, Some(0));
    let logs = server.logs();
    assert!(
        logs.contains(&format!("c2s{{transport=\"{transport}\"")),
        "{logs}"
    );
}

#[tokio::test]
async fn rfc7395_converse_js_in_chromium_chats_and_joins_a_room() {
    converse_chats_and_joins_a_room("websocket", "/xmpp-websocket").await;
}

#[tokio::test]
async fn xep0206_converse_js_in_chromium_chats_and_joins_a_room() {
    converse_chats_and_joins_a_room("bosh", "/http-bind").await;
}
