//! XEP-0215 external service discovery: STUN and TURN servers from `[external_services]`,
//! TURN credentials computed from the shared secret the way coturn checks them (TURN REST:
//! username = expiry:user, password = base64(HMAC-SHA1(secret, username))). Raw XML.

use base64::Engine;
use conformance::{Element, RawClient, TestServer, ns, xml};
use hmac::{Hmac, Mac};

const PW: &str = "passw0rd";
const NS: &str = "urn:xmpp:extdisco:2";
const SECRET: &str = "coturn-static-auth-secret";

async fn server_with_services() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.extra_toml = format!(
            "[external_services]\nsecret = \"{SECRET}\"\ncredential_lifetime_secs = 600\nservices = [\n\
             {{ type = \"stun\", host = \"stun.example.org\", port = 3478, transport = \"udp\" }},\n\
             {{ type = \"turn\", host = \"turn.example.org\", port = 3478, transport = \"udp\", name = \"Relay\" }},\n\
             {{ type = \"turns\", host = \"turn.example.org\", port = 5349, transport = \"tcp\" }},\n]\n"
        )
    })
    .await;
    server.add_user("alice", PW).await;
    server
}

async fn ask(c: &mut RawClient, inner: &str) -> Element {
    let id = c.id();
    c.iq(&format!("<iq type='get' id='{id}' to='localhost'>{inner}</iq>"))
        .await
}

fn condition(r: &Element) -> String {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    r.get_child("error", ns::CLIENT)
        .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

fn services<'a>(r: &'a Element, wrapper: &str) -> Vec<&'a Element> {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
    r.get_child(wrapper, NS)
        .unwrap_or_else(|| panic!("no <{wrapper}/>: {}", xml::to_string(r)))
        .children()
        .collect()
}

/// Checks a TURN service's credentials as coturn would: the username's expiry is in the
/// future and the password is the HMAC of the username.
fn assert_turn_credentials(s: &Element) {
    let username = s.attr("username").expect("username");
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    assert_eq!(user, "alice@localhost");
    let expiry: i64 = expiry.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expiry {expiry}, now {now}"
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(s.attr("password"), Some(expected.as_str()));
    let expires = chrono::DateTime::parse_from_rfc3339(s.attr("expires").expect("expires")).unwrap();
    assert_eq!(expires.timestamp(), expiry);
}

// §3.1: every configured server; TURN ones with time-limited credentials, STUN without.
#[tokio::test]
async fn xep0215_3_1_services_with_turn_credentials() {
    let server = server_with_services().await;
    let mut c = server.raw_login("alice", PW, Some("res")).await;
    let info = ask(&mut c, &format!("<query xmlns='{}'/>", ns::DISCO_INFO)).await;
    assert!(
        info.get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some(NS)),
        "{}",
        xml::to_string(&info)
    );
    let r = ask(&mut c, &format!("<services xmlns='{NS}'/>")).await;
    let list = services(&r, "services");
    let kinds: Vec<_> = list.iter().map(|s| s.attr("type").unwrap()).collect();
    assert_eq!(kinds, ["stun", "turn", "turns"]);
    let stun = list[0];
    assert_eq!(stun.attr("host"), Some("stun.example.org"));
    assert_eq!(stun.attr("port"), Some("3478"));
    assert_eq!(stun.attr("transport"), Some("udp"));
    assert_eq!(stun.attr("username"), None);
    assert_eq!(list[1].attr("name"), Some("Relay"));
    assert_turn_credentials(list[1]);
    assert_turn_credentials(list[2]);
}

// §3.1: a type filter.
#[tokio::test]
async fn xep0215_3_1_services_of_one_type() {
    let server = server_with_services().await;
    let mut c = server.raw_login("alice", PW, Some("res")).await;
    let r = ask(&mut c, &format!("<services xmlns='{NS}' type='stun'/>")).await;
    let list = services(&r, "services");
    assert_eq!(list.len(), 1, "{}", xml::to_string(&r));
    assert_eq!(list[0].attr("host"), Some("stun.example.org"));
    let r = ask(&mut c, &format!("<services xmlns='{NS}' type='turns'/>")).await;
    let list = services(&r, "services");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attr("port"), Some("5349"));
}

// §3.3: fresh credentials for one TURN server; errors for what has none.
#[tokio::test]
async fn xep0215_3_3_credentials_request() {
    let server = server_with_services().await;
    let mut c = server.raw_login("alice", PW, Some("res")).await;
    let r = ask(
        &mut c,
        &format!("<credentials xmlns='{NS}'><service type='turn' host='turn.example.org'/></credentials>"),
    )
    .await;
    let list = services(&r, "credentials");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attr("type"), Some("turn"));
    assert_turn_credentials(list[0]);
    for asked in [
        "<service type='turn' host='other.example.org'/>",
        "<service type='stun' host='stun.example.org'/>",
        "<service type='turns' host='turn.example.org' port='1'/>",
    ] {
        let r = ask(
            &mut c,
            &format!("<credentials xmlns='{NS}'>{asked}</credentials>"),
        )
        .await;
        assert_eq!(condition(&r), "item-not-found", "{asked}");
    }
    let r = ask(&mut c, &format!("<credentials xmlns='{NS}'/>")).await;
    assert_eq!(condition(&r), "bad-request");
}

// Nothing configured: not advertised, and not answered.
#[tokio::test]
async fn xep0215_not_configured_not_advertised() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut c = server.raw_login("alice", PW, Some("res")).await;
    let info = ask(&mut c, &format!("<query xmlns='{}'/>", ns::DISCO_INFO)).await;
    assert!(!xml::to_string(&info).contains(NS), "{}", xml::to_string(&info));
    let r = ask(&mut c, &format!("<services xmlns='{NS}'/>")).await;
    assert_eq!(condition(&r), "service-unavailable");
}
