//! XEP-0363 HTTP file upload at `upload.localhost`: slot requests in raw XML (every error
//! path), then the PUT and GET URLs used over plain HTTP from the test, CORS included.

use std::path::Path;
use std::time::Duration;

use conformance::{Element, RawClient, TestServer, ns, xml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PW: &str = "passw0rd";
const NS: &str = "urn:xmpp:http:upload:0";
const SERVICE: &str = "upload.localhost";

/// A server with the upload service on, files under `files` (the test's own folder), and
/// `extra` lines in `[upload]`.
async fn server(files: &Path, extra: &str) -> TestServer {
    let toml = format!(
        "[upload]\nenabled = true\ndirectory = \"{}\"\n{extra}\n",
        files.display()
    );
    let server = TestServer::start_with(|c| c.extra_toml = toml).await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    server
}

async fn login(server: &TestServer, user: &str) -> RawClient {
    server.raw_login(user, PW, Some("res")).await
}

/// Sends a slot request (`attrs` raw) to `to`; returns the answer.
async fn request_to(c: &mut RawClient, to: &str, attrs: &str) -> Element {
    let id = c.id();
    c.iq(&format!(
        "<iq type='get' id='{id}' to='{to}'><request xmlns='{NS}' {attrs}/></iq>"
    ))
    .await
}

/// A slot for `filename` of `size` bytes, optionally typed: (PUT URL, GET URL).
async fn slot(
    c: &mut RawClient,
    filename: &str,
    size: usize,
    content_type: Option<&str>,
) -> (String, String) {
    let t = content_type
        .map(|t| format!(" content-type='{t}'"))
        .unwrap_or_default();
    let r = request_to(c, SERVICE, &format!("filename='{filename}' size='{size}'{t}")).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let slot = r.get_child("slot", NS).expect("slot");
    let put = slot
        .get_child("put", NS)
        .and_then(|p| p.attr("url"))
        .expect("put url");
    let get = slot
        .get_child("get", NS)
        .and_then(|g| g.attr("url"))
        .expect("get url");
    (put.to_string(), get.to_string())
}

/// (type, defined condition) of an error answer.
fn error(r: &Element) -> (String, String) {
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(r));
    let e = r.get_child("error", ns::CLIENT).expect("error");
    let condition = e
        .children()
        .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    (e.attr("type").unwrap_or_default().to_string(), condition)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http://host:port/path?query` -> (host:port, /path?query).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let slash = rest.find('/').expect("a path");
    (rest[..slash].to_string(), rest[slash..].to_string())
}

/// One HTTP/1.1 request with `headers` and `body`; the whole response.
async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let (host, path) = split_url(url);
    let mut s = tokio::net::TcpStream::connect(&host).await.expect("connect http");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("HTTP response in time")
        .expect("read the response");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

async fn put(url: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let len = body.len().to_string();
    let mut headers = vec![("Content-Length", len.as_str())];
    if let Some(t) = content_type {
        headers.push(("Content-Type", t));
    }
    http("PUT", url, &headers, body).await
}

async fn get(url: &str) -> Response {
    http("GET", url, &[], b"").await
}

/// A URL with query parameter `name` replaced by `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Every stored file under the upload folder (`data` files).
fn stored_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n == "data") {
                out.push(p);
            }
        }
    }
    out
}

// §2-3: the service is listed in the server's disco#items, and its disco#info has the
// store/file identity, the namespace and the max-file-size form.
#[tokio::test]
async fn xep0363_3_discovery_and_max_file_size_form() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "max_file_size = 5000\nquota_per_user = 10000").await;
    let mut c = login(&server, "alice").await;
    let id = c.id();
    let r = c
        .iq(&format!(
            "<iq type='get' id='{id}' to='localhost'><query xmlns='{}'/></iq>",
            ns::DISCO_ITEMS
        ))
        .await;
    let items: Vec<_> = r
        .get_child("query", ns::DISCO_ITEMS)
        .expect("items")
        .children()
        .filter_map(|i| i.attr("jid"))
        .collect();
    assert!(items.contains(&SERVICE), "{}", xml::to_string(&r));
    let id = c.id();
    let r = c
        .iq(&format!(
            "<iq type='get' id='{id}' to='{SERVICE}'><query xmlns='{}'/></iq>",
            ns::DISCO_INFO
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    let q = r.get_child("query", ns::DISCO_INFO).unwrap();
    assert!(q.children().any(|i| i.name() == "identity"
        && i.attr("category") == Some("store")
        && i.attr("type") == Some("file")));
    assert!(
        q.children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some(NS))
    );
    let form = q.get_child("x", ns::DATA_FORMS).expect("form");
    let field = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.children().next())
            .map(|v| v.text())
    };
    assert_eq!(field("FORM_TYPE").as_deref(), Some(NS));
    assert_eq!(field("max-file-size").as_deref(), Some("5000"));
}

// Off by default: not listed, and its domain is nobody's.
#[tokio::test]
async fn xep0363_service_off_by_default_is_not_listed() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut c = login(&server, "alice").await;
    let id = c.id();
    let r = c
        .iq(&format!(
            "<iq type='get' id='{id}' to='localhost'><query xmlns='{}'/></iq>",
            ns::DISCO_ITEMS
        ))
        .await;
    assert!(!xml::to_string(&r).contains(SERVICE), "{}", xml::to_string(&r));
    let r = request_to(&mut c, SERVICE, "filename='a.txt' size='3'").await;
    assert_eq!(error(&r).1, "remote-server-not-found");
}

// §4-5: a slot, the PUT with the slot's type, the GET of the same bytes with that type; CORS
// on both, and the preflight a browser sends first.
#[tokio::test]
async fn xep0363_5_put_then_get_with_cors() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let body: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (put_url, get_url) = slot(&mut c, "my photo é.jpg", body.len(), Some("image/jpeg")).await;
    assert!(
        put_url.starts_with(&format!("http://{}/upload/", server.http_addr())),
        "{put_url}"
    );
    let pre = http(
        "OPTIONS",
        &put_url,
        &[
            ("Origin", "https://web.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert!(
        pre.status == 200 || pre.status == 204,
        "preflight status {}",
        pre.status
    );
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(
        pre.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("PUT"))
    );
    assert!(
        pre.header("access-control-allow-headers")
            .is_some_and(|h| h.to_lowercase().contains("content-type"))
    );
    let r = put(&put_url, Some("image/jpeg"), &body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = get(&get_url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.body, body);
    let head = http("HEAD", &get_url, &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(stored_files(files.path()).len(), 1);
}

// §4: a file over the limit: not-acceptable with <file-too-large><max-file-size/>.
#[tokio::test]
async fn xep0363_4_file_too_large() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "max_file_size = 1000").await;
    let mut c = login(&server, "alice").await;
    let r = request_to(&mut c, SERVICE, "filename='big.bin' size='1001'").await;
    assert_eq!(error(&r), ("modify".into(), "not-acceptable".into()));
    let limit = r
        .get_child("error", ns::CLIENT)
        .and_then(|e| e.get_child("file-too-large", NS))
        .and_then(|f| f.get_child("max-file-size", NS))
        .map(|m| m.text());
    assert_eq!(limit.as_deref(), Some("1000"), "{}", xml::to_string(&r));
    // At the limit: a slot.
    slot(&mut c, "big.bin", 1000, None).await;
}

// §4: past the user's quota (stored files and open slots count): resource-constraint;
// another user's quota is their own.
#[tokio::test]
async fn xep0363_4_over_quota_resource_constraint() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "max_file_size = 600\nquota_per_user = 1000").await;
    let mut alice = login(&server, "alice").await;
    let (put_url, _) = slot(&mut alice, "a.bin", 600, None).await;
    // The open slot counts.
    let r = request_to(&mut alice, SERVICE, "filename='b.bin' size='600'").await;
    assert_eq!(error(&r), ("wait".into(), "resource-constraint".into()));
    assert_eq!(put(&put_url, None, &[1u8; 600]).await.status, 201);
    // The stored file counts.
    let r = request_to(&mut alice, SERVICE, "filename='b.bin' size='401'").await;
    assert_eq!(error(&r), ("wait".into(), "resource-constraint".into()));
    slot(&mut alice, "b.bin", 400, None).await;
    let mut bob = login(&server, "bob").await;
    slot(&mut bob, "c.bin", 600, None).await;
}

// §4: malformed requests, and requests to what is not the upload service.
#[tokio::test]
async fn xep0363_4_bad_requests_and_unknown_service() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    for attrs in [
        "size='10'",
        "filename='a.txt'",
        "filename='a.txt' size='-1'",
        "filename='../etc/passwd' size='10'",
        "filename='' size='10'",
    ] {
        let r = request_to(&mut c, SERVICE, attrs).await;
        assert_eq!(error(&r).1, "bad-request", "{attrs}: {}", xml::to_string(&r));
    }
    // The server itself and a JID at the service are not the service.
    let r = request_to(&mut c, "localhost", "filename='a.txt' size='10'").await;
    assert_eq!(error(&r).1, "service-unavailable");
    let r = request_to(&mut c, "someone@upload.localhost", "filename='a.txt' size='10'").await;
    assert_eq!(error(&r).1, "service-unavailable");
    // Another payload at the service.
    let id = c.id();
    let r = c
        .iq(&format!(
            "<iq type='set' id='{id}' to='{SERVICE}'><request xmlns='{NS}' filename='a' size='1'/></iq>"
        ))
        .await;
    assert_eq!(error(&r).1, "service-unavailable");
}

// §5: an altered URL (signature, expiry or path) is refused, for PUT and GET.
#[tokio::test]
async fn xep0363_5_bad_signature_refused() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "a.txt", 5, Some("text/plain")).await;
    let forged = with_param(&put_url, "sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(put(&forged, Some("text/plain"), b"hello").await.status, 403);
    let later = with_param(&put_url, "expires", "99999999999");
    assert_eq!(put(&later, Some("text/plain"), b"hello").await.status, 403);
    let unsigned = put_url.split('?').next().unwrap().to_string();
    assert_eq!(put(&unsigned, Some("text/plain"), b"hello").await.status, 403);
    // The forgeries did not use the slot up.
    assert_eq!(put(&put_url, Some("text/plain"), b"hello").await.status, 201);
    assert_eq!(get(&get_url).await.status, 200);
    let forged = with_param(&get_url, "sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(get(&forged).await.status, 403);
    let renamed = get_url.replacen("/a.txt?", "/b.txt?", 1);
    assert_eq!(get(&renamed).await.status, 403);
    let later = with_param(&get_url, "expires", "99999999999");
    assert_eq!(get(&later).await.status, 403);
}

// §5: a slot used after its expiry is refused, and nothing is stored.
#[tokio::test]
async fn xep0363_5_expired_slot_refused() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "slot_lifetime_secs = 1").await;
    let mut c = login(&server, "alice").await;
    let (put_url, _) = slot(&mut c, "late.txt", 5, None).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(put(&put_url, None, b"hello").await.status, 410);
    assert!(stored_files(files.path()).is_empty());
}

// §5: the PUT must match the slot's size and type; a refused PUT leaves the slot usable.
#[tokio::test]
async fn xep0363_5_wrong_size_or_type_refused() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "a.txt", 5, Some("text/plain")).await;
    assert_eq!(put(&put_url, Some("text/plain"), b"hello!").await.status, 400);
    assert_eq!(put(&put_url, Some("text/plain"), b"hell").await.status, 400);
    assert_eq!(put(&put_url, Some("image/png"), b"hello").await.status, 400);
    assert_eq!(put(&put_url, None, b"hello").await.status, 400);
    assert!(stored_files(files.path()).is_empty());
    assert_eq!(put(&put_url, Some("text/plain"), b"hello").await.status, 201);
    assert_eq!(get(&get_url).await.body, b"hello");
}

// §5: a slot takes one upload; using its URL again is refused and the file stays.
#[tokio::test]
async fn xep0363_5_reused_slot_refused() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "a.txt", 5, None).await;
    assert_eq!(put(&put_url, None, b"first").await.status, 201);
    assert_eq!(put(&put_url, None, b"again").await.status, 409);
    assert_eq!(get(&get_url).await.body, b"first");
}

// A client that goes away mid-upload leaves no partial file, and the slot can be used again.
#[tokio::test]
async fn xep0363_5_interrupted_upload_frees_the_slot() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let body = vec![9u8; 200_000];
    let (put_url, get_url) = slot(&mut c, "a.bin", body.len(), None).await;
    let (host, path) = split_url(&put_url);
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    s.write_all(format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 200000\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(&body[..100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stored_files(files.path()).is_empty());
    assert_eq!(put(&put_url, None, &body).await.status, 201);
    assert_eq!(get(&get_url).await.body, body);
}

// Files expire: their URL is refused after the lifetime, and the sweep deletes them.
#[tokio::test]
async fn xep0363_files_expire_and_are_deleted() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "file_lifetime_secs = 2\ncleanup_interval_secs = 1").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "a.txt", 5, None).await;
    assert_eq!(put(&put_url, None, b"hello").await.status, 201);
    assert_eq!(get(&get_url).await.status, 200);
    assert_eq!(stored_files(files.path()).len(), 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(get(&get_url).await.status, 410);
    assert!(
        stored_files(files.path()).is_empty(),
        "the expired file is still on disk"
    );
    // Its bytes no longer count against the quota either: a full-size slot again.
    slot(&mut c, "b.txt", 5, None).await;
}

// The base URL may be configured (a TLS reverse proxy in front of the HTTP listener).
#[tokio::test]
async fn xep0363_public_url_from_config() {
    let files = tempfile::tempdir().unwrap();
    let server = server(files.path(), "public_url = \"https://files.example.org/xmpp/\"").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "a.txt", 5, None).await;
    assert!(
        put_url.starts_with("https://files.example.org/xmpp/upload/"),
        "{put_url}"
    );
    assert!(
        get_url.starts_with("https://files.example.org/xmpp/upload/"),
        "{get_url}"
    );
    // The same path works on the listener itself (as the proxy would forward it).
    let local = |u: &str| {
        u.replacen(
            "https://files.example.org/xmpp",
            &format!("http://{}", server.http_addr()),
            1,
        )
    };
    assert_eq!(put(&local(&put_url), None, b"hello").await.status, 201);
    assert_eq!(get(&local(&get_url)).await.body, b"hello");
}

// A slot handed out before a restart can still be used after it (slots are stored).
#[tokio::test]
async fn xep0363_5_slot_survives_a_restart() {
    let files = tempfile::tempdir().unwrap();
    let mut server = server(files.path(), "").await;
    let mut c = login(&server, "alice").await;
    let (put_url, get_url) = slot(&mut c, "kept.txt", 4, None).await;
    let before = server.http_addr().to_string();
    drop(c);
    server.restart().await;
    let after = server.http_addr().to_string();
    let (put_url, get_url) = (put_url.replace(&before, &after), get_url.replace(&before, &after));
    // Logging in gives the server the moment it needs to read its slots back.
    let _c = login(&server, "alice").await;
    assert_eq!(put(&put_url, None, b"kept").await.status, 201);
    assert_eq!(get(&get_url).await.body, b"kept");
    // Used up: not a second time, also after another restart.
    server.restart().await;
    let again = server.http_addr().to_string();
    let _c = login(&server, "alice").await;
    assert_eq!(
        put(&put_url.replace(&after, &again), None, b"more").await.status,
        409
    );
}
