//! XEP-0388 SASL2, XEP-0386 Bind2 and XEP-0484 FAST with a real client library nobody here
//! wrote: @xmpp/client (npm, run by node) logs in with its password and gets a token, then
//! logs in again with the token alone (a wrong password beside it) and keeps its resource.

use conformance::js::NodeScript;
use conformance::{TIMEOUT, TestServer};

#[tokio::test]
async fn xep0484_xmpp_js_logs_in_with_its_fast_token_and_keeps_its_resource() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let service = format!("xmpp://{}", server.c2s_addr());
    let mut js = NodeScript::start_plain("fast.mjs", &[&service, "localhost", "alice", "passw0rd"]);
    let first = js.line(TIMEOUT * 3).await;
    assert!(
        first.starts_with("online1 alice@localhost/fastjs."),
        "Bind2 resource from the tag: {first}\n{}",
        server.logs()
    );
    assert_eq!(js.line(TIMEOUT).await, "token HT-SHA-256-NONE");
    let second = js.line(TIMEOUT * 3).await;
    assert_eq!(
        second.trim_start_matches("online2 "),
        first.trim_start_matches("online1 "),
        "the same user agent keeps its resource\n{}",
        server.logs()
    );
    assert_eq!(js.exit_code(TIMEOUT).await, Some(0));
    assert!(
        server
            .wait_for_log("mechanism=\"HT-SHA-256-NONE\"", 1, TIMEOUT)
            .await,
        "the second login used the token\n{}",
        server.logs()
    );
}
