//! XEP-0065 SOCKS5 bytestreams proxy at `proxy.localhost`: streamhost discovery, two raw
//! clients meeting at the proxy over SOCKS5 and the initiator activating the stream, the size
//! cap, the rate limit, the timeout of connections never activated, and the error paths in
//! raw XML.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conformance::{Element, RawClient, TestServer, ns, xml};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PW: &str = "passw0rd";
const NS: &str = "http://jabber.org/protocol/bytestreams";
const PROXY: &str = "proxy.localhost";

async fn server(extra: &str) -> TestServer {
    let toml = format!("[proxy65]\nenabled = true\naddress = \"127.0.0.1:0\"\n{extra}\n");
    let server = TestServer::start_with(|c| c.extra_toml = toml).await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    server
}

async fn iq(c: &mut RawClient, kind: &str, to: &str, inner: &str) -> Element {
    let id = c.id();
    c.iq(&format!("<iq type='{kind}' id='{id}' to='{to}'>{inner}</iq>"))
        .await
}

fn condition(r: &Element) -> String {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    r.get_child("error", ns::CLIENT)
        .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
        .map(|c| c.name().to_string())
        .unwrap_or_default()
}

/// §6.3.1: the proxy's streamhost address.
async fn streamhost(c: &mut RawClient) -> SocketAddr {
    let r = iq(c, "get", PROXY, &format!("<query xmlns='{NS}'/>")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let sh = r
        .get_child("query", NS)
        .and_then(|q| q.get_child("streamhost", NS))
        .unwrap_or_else(|| panic!("no streamhost: {}", xml::to_string(&r)));
    assert_eq!(sh.attr("jid"), Some(PROXY));
    format!("{}:{}", sh.attr("host").unwrap(), sh.attr("port").unwrap())
        .parse()
        .unwrap()
}

fn destination(sid: &str, initiator: &str, target: &str) -> String {
    let mut h = Sha1::new();
    h.update(format!("{sid}{initiator}{target}").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 1928 as XEP-0065 §5.3 uses it: no authentication, CONNECT to `address`, port 0;
/// asserts success.
async fn socks5(proxy: SocketAddr, address: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.expect("connect to the proxy");
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0]);
    let mut req = vec![5, 1, 0, 3, address.len() as u8];
    req.extend_from_slice(address.as_bytes());
    req.extend_from_slice(&[0, 0]);
    s.write_all(&req).await.unwrap();
    let mut reply = vec![0u8; 5 + address.len() + 2];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[..2], &[5, 0], "SOCKS5 CONNECT refused");
    assert_eq!(&reply[5..5 + address.len()], address.as_bytes());
    s
}

fn activate_xml(sid: &str, target: &str) -> String {
    format!("<query xmlns='{NS}' sid='{sid}'><activate>{target}</activate></query>")
}

/// Reads until end of stream (or `limit` seconds pass).
async fn read_all(s: &mut TcpStream, limit: u64) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(limit), s.read_to_end(&mut got)).await;
    got
}

struct Transfer {
    initiator: TcpStream,
    target: TcpStream,
}

/// Alice (initiator) and Bob (target) meet at the proxy under `sid`, and Alice activates.
async fn connected(server: &TestServer, sid: &str) -> (RawClient, Transfer) {
    let mut alice = server.raw_login("alice", PW, Some("a")).await;
    let proxy = streamhost(&mut alice).await;
    let address = destination(sid, "alice@localhost/a", "bob@localhost/b");
    // The target connects first (§5.3.2), then the initiator (§6.3.1).
    let target = socks5(proxy, &address).await;
    let initiator = socks5(proxy, &address).await;
    let r = iq(&mut alice, "set", PROXY, &activate_xml(sid, "bob@localhost/b")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    (alice, Transfer { initiator, target })
}

// §6.1-6.3.1: listed in the server's disco#items, proxy/bytestreams identity, a streamhost.
#[tokio::test]
async fn xep0065_6_1_proxy_discovery_and_streamhost() {
    let server = server("").await;
    let mut c = server.raw_login("alice", PW, Some("a")).await;
    let r = iq(
        &mut c,
        "get",
        "localhost",
        &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS),
    )
    .await;
    assert!(
        xml::to_string(&r).contains(&format!("jid='{PROXY}'")),
        "{}",
        xml::to_string(&r)
    );
    let r = iq(
        &mut c,
        "get",
        PROXY,
        &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
    )
    .await;
    let q = r.get_child("query", ns::DISCO_INFO).expect("info");
    assert!(q.children().any(|i| i.name() == "identity"
        && i.attr("category") == Some("proxy")
        && i.attr("type") == Some("bytestreams")));
    assert!(q.children().any(|f| f.attr("var") == Some(NS)));
    let addr = streamhost(&mut c).await;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
}

// §6.3.2: after activation the proxy relays both ways, byte for byte.
#[tokio::test]
async fn xep0065_6_3_transfer_through_the_proxy() {
    let server = server("bytes_per_second = 0").await;
    let (_alice, mut t) = connected(&server, "sid-1").await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let sender = {
        let data = data.clone();
        let mut initiator = t.initiator;
        tokio::spawn(async move {
            initiator.write_all(&data).await.unwrap();
            initiator.shutdown().await.unwrap();
            let mut back = Vec::new();
            initiator.read_to_end(&mut back).await.unwrap();
            back
        })
    };
    let got = read_all(&mut t.target, 20).await;
    assert!(
        got == data,
        "received {} bytes, expected {}",
        got.len(),
        data.len()
    );
    t.target.write_all(b"thanks").await.unwrap();
    t.target.shutdown().await.unwrap();
    assert_eq!(sender.await.unwrap(), b"thanks");
}

// §6.3.2 errors: activation needs both parties connected under the initiator's address,
// a sid and a target.
#[tokio::test]
async fn xep0065_6_3_2_activation_errors() {
    let server = server("").await;
    let mut alice = server.raw_login("alice", PW, Some("a")).await;
    let mut bob = server.raw_login("bob", PW, Some("b")).await;
    let proxy = streamhost(&mut alice).await;
    // Nobody connected.
    let r = iq(&mut alice, "set", PROXY, &activate_xml("s1", "bob@localhost/b")).await;
    assert_eq!(condition(&r), "item-not-found");
    // Only the target connected.
    let address = destination("s1", "alice@localhost/a", "bob@localhost/b");
    let _target = socks5(proxy, &address).await;
    let r = iq(&mut alice, "set", PROXY, &activate_xml("s1", "bob@localhost/b")).await;
    assert_eq!(condition(&r), "item-not-found");
    let _initiator = socks5(proxy, &address).await;
    // Bob is not the initiator: his activation names another address.
    let r = iq(&mut bob, "set", PROXY, &activate_xml("s1", "bob@localhost/b")).await;
    assert_eq!(condition(&r), "item-not-found");
    // Malformed requests.
    let r = iq(
        &mut alice,
        "set",
        PROXY,
        &format!("<query xmlns='{NS}'><activate>bob@localhost/b</activate></query>"),
    )
    .await;
    assert_eq!(condition(&r), "bad-request");
    let r = iq(
        &mut alice,
        "set",
        PROXY,
        &format!("<query xmlns='{NS}' sid='s1'/>"),
    )
    .await;
    assert_eq!(condition(&r), "bad-request");
    // A JID at the service is not the service.
    let r = iq(
        &mut alice,
        "get",
        "x@proxy.localhost",
        &format!("<query xmlns='{NS}'/>"),
    )
    .await;
    assert_eq!(condition(&r), "service-unavailable");
    // The right initiator still can.
    let r = iq(&mut alice, "set", PROXY, &activate_xml("s1", "bob@localhost/b")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    // Once only.
    let r = iq(&mut alice, "set", PROXY, &activate_xml("s1", "bob@localhost/b")).await;
    assert_eq!(condition(&r), "item-not-found");
}

// A transfer stops at the size cap: the target gets exactly the cap, then end of stream.
#[tokio::test]
async fn xep0065_transfer_cut_at_the_size_cap() {
    let server = server("max_transfer_size = 100000\nbytes_per_second = 0").await;
    let (_alice, mut t) = connected(&server, "sid-cap").await;
    let mut initiator = t.initiator;
    tokio::spawn(async move {
        let _ = initiator.write_all(&vec![7u8; 300_000]).await;
        // Keep the socket open: the proxy must end the transfer, not us.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let got = read_all(&mut t.target, 5).await;
    assert_eq!(got.len(), 100_000);
}

// A transfer is paced at bytes_per_second.
#[tokio::test]
async fn xep0065_transfer_rate_limited() {
    let server = server("bytes_per_second = 200000").await;
    let (_alice, mut t) = connected(&server, "sid-rate").await;
    let mut initiator = t.initiator;
    let started = Instant::now();
    tokio::spawn(async move {
        initiator.write_all(&vec![1u8; 500_000]).await.unwrap();
        initiator.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let got = read_all(&mut t.target, 10).await;
    let took = started.elapsed();
    assert_eq!(got.len(), 500_000);
    // 500 kB at 200 kB/s: 2.5 s (the first 64 KiB chunk goes at once).
    assert!(took >= Duration::from_millis(2000), "took {took:?}");
}

// A connection nobody activates is closed after activation_timeout_secs; a late activation
// finds nothing.
#[tokio::test]
async fn xep0065_unactivated_connections_time_out() {
    let server = server("activation_timeout_secs = 1").await;
    let mut alice = server.raw_login("alice", PW, Some("a")).await;
    let proxy = streamhost(&mut alice).await;
    let address = destination("late", "alice@localhost/a", "bob@localhost/b");
    let mut target = socks5(proxy, &address).await;
    let _initiator = socks5(proxy, &address).await;
    let started = Instant::now();
    let got = read_all(&mut target, 5).await;
    assert!(got.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    let r = iq(&mut alice, "set", PROXY, &activate_xml("late", "bob@localhost/b")).await;
    assert_eq!(condition(&r), "item-not-found");
}

// RFC 1928 §3: a client offering no acceptable method is told so and closed.
#[tokio::test]
async fn xep0065_5_3_socks5_without_no_auth_refused() {
    let server = server("").await;
    let mut alice = server.raw_login("alice", PW, Some("a")).await;
    let proxy = streamhost(&mut alice).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    let got = read_all(&mut s, 5).await;
    assert_eq!(got, [5, 0xff]);
}

// One client address may hold `max_connections_per_ip` SOCKS5 connections (waiting or
// relaying); the next is closed at once, and a freed place can be used again.
#[tokio::test]
async fn xep0065_connections_per_address_limited() {
    let server = server("max_connections_per_ip = 2\nactivation_timeout_secs = 2").await;
    let mut alice = server.raw_login("alice", PW, Some("a")).await;
    let proxy = streamhost(&mut alice).await;
    let first = socks5(proxy, &destination("one", "alice@localhost/a", "bob@localhost/b")).await;
    let _second = socks5(proxy, &destination("two", "alice@localhost/a", "bob@localhost/b")).await;
    let mut third = TcpStream::connect(proxy).await.expect("connect");
    let _ = third.write_all(&[5, 1, 0]).await;
    let got = read_all(&mut third, 3).await;
    assert!(got.is_empty(), "the third connection was served: {got:?}");
    drop(first);
    // A waiting connection is let go when its activation times out: then there is room.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let mut s = TcpStream::connect(proxy).await.expect("connect");
        s.write_all(&[5, 1, 0]).await.unwrap();
        let mut choice = [0u8; 2];
        if tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut choice))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            assert_eq!(choice, [5, 0]);
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was never given back");
    }
}
