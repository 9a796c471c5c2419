//! A raw XEP-0124/XEP-0206 client: each request its own HTTP/1.1 POST (so requests can be
//! held concurrently), bodies built and read as XML.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use rustls::ClientConfig;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::Io;
use crate::{DOMAIN, ns};

pub const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
pub const XBOSH: &str = "urn:xmpp:xbosh";
pub const PATH: &str = "/http-bind";

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as a `<body/>` element.
    pub fn element(&self) -> Element {
        self.body
            .parse()
            .unwrap_or_else(|e| panic!("not XML ({e}): {}", self.body))
    }
}

/// Sends one HTTP request and reads the whole response.
pub async fn http(addr: SocketAddr, method: &str, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    exchange(Box::new(s), addr, method, body, headers).await
}

/// The same over TLS to an HTTPS listener, checking its certificate against `tls`'s roots.
pub async fn https(
    addr: SocketAddr,
    tls: &ClientConfig,
    method: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let s = crate::tls::connect_https(addr, tls).await;
    exchange(Box::new(s), addr, method, body, headers).await
}

async fn exchange(
    mut s: Box<dyn Io>,
    addr: SocketAddr,
    method: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut req = format!(
        "{method} {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), s.read_to_end(&mut buf))
        .await
        .expect("HTTP response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A BOSH session's client side.
pub struct BoshClient {
    pub addr: SocketAddr,
    pub sid: String,
    /// The next rid to use.
    pub rid: u64,
    /// The session creation response.
    pub created: Element,
    /// Requests go over TLS with this configuration (an HTTPS listener).
    pub tls: Option<Arc<ClientConfig>>,
}

/// A `<body/>` with `attrs` (raw attribute text) and `payload`.
pub fn body(attrs: &str, payload: &str) -> String {
    format!("<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' {attrs}>{payload}</body>")
}

impl BoshClient {
    /// Creates a session (XEP-0124 §7.1) with `wait` and `hold`.
    pub async fn create(addr: SocketAddr, wait: u64, hold: u64) -> BoshClient {
        Self::create_over(addr, None, wait, hold).await
    }

    /// The same over TLS to an HTTPS listener.
    pub async fn create_tls(addr: SocketAddr, tls: Arc<ClientConfig>, wait: u64, hold: u64) -> BoshClient {
        Self::create_over(addr, Some(tls), wait, hold).await
    }

    async fn post(addr: SocketAddr, tls: Option<&ClientConfig>, body: &str) -> HttpResponse {
        match tls {
            Some(tls) => https(addr, tls, "POST", body, &[]).await,
            None => http(addr, "POST", body, &[]).await,
        }
    }

    async fn create_over(
        addr: SocketAddr,
        tls: Option<Arc<ClientConfig>>,
        wait: u64,
        hold: u64,
    ) -> BoshClient {
        let rid = 1_000 + u64::from(rand::random::<u16>());
        let r = Self::post(
            addr,
            tls.as_deref(),
            &body(
                &format!(
                    "rid='{rid}' to='{DOMAIN}' xml:lang='en' wait='{wait}' hold='{hold}' ver='1.6' xmpp:version='1.0' content='text/xml; charset=utf-8'"
                ),
                "",
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        let created = r.element();
        let sid = created
            .attr("sid")
            .unwrap_or_else(|| panic!("no sid: {}", r.body))
            .to_string();
        BoshClient {
            addr,
            sid,
            rid: rid + 1,
            created,
            tls,
        }
    }

    /// Sends `payload` with the given rid and extra attributes; the answer.
    pub async fn send_rid(&self, rid: u64, attrs: &str, payload: &str) -> Element {
        let r = Self::post(
            self.addr,
            self.tls.as_deref(),
            &body(&format!("rid='{rid}' sid='{}' {attrs}", self.sid), payload),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.element()
    }

    /// Sends `payload` with the next rid.
    pub async fn send(&mut self, payload: &str) -> Element {
        let rid = self.rid;
        self.rid += 1;
        self.send_rid(rid, "", payload).await
    }

    /// Polls (empty bodies) until an answer holds a child matching `pred`.
    pub async fn until(&mut self, mut pred: impl FnMut(&Element) -> bool) -> Element {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "nothing matched in time");
            let answer = self.send("").await;
            assert_ne!(
                answer.attr("type"),
                Some("terminate"),
                "{}",
                String::from(&answer)
            );
            if let Some(found) = answer.children().find(|c| pred(c)) {
                return found.clone();
            }
        }
    }

    /// SASL PLAIN, restart, bind `resource`: returns the bound JID.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) -> String {
        let features = self.created.get_child("features", ns::STREAM).cloned();
        let features = match features {
            Some(f) => f,
            None => self.until(|c| c.is("features", ns::STREAM)).await,
        };
        assert!(
            features.has_child("mechanisms", ns::SASL),
            "{}",
            String::from(&features)
        );
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let answer = self
            .send(&format!(
                "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
                ns::SASL
            ))
            .await;
        let success = match answer.children().find(|c| c.ns() == ns::SASL) {
            Some(s) => s.clone(),
            None => self.until(|c| c.ns() == ns::SASL).await,
        };
        assert!(success.is("success", ns::SASL), "{}", String::from(&success));
        // XEP-0206 §5: the restart.
        let rid = self.rid;
        self.rid += 1;
        let answer = self.send_rid(rid, "xmpp:restart='true'", "").await;
        let features = match answer.get_child("features", ns::STREAM) {
            Some(f) => f.clone(),
            None => self.until(|c| c.is("features", ns::STREAM)).await,
        };
        assert!(
            features.has_child("bind", ns::BIND),
            "{}",
            String::from(&features)
        );
        let answer = self
            .send(&format!(
                "<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='{}'><resource>{resource}</resource></bind></iq>",
                ns::BIND
            ))
            .await;
        let iq = match answer.children().find(|c| c.attr("id") == Some("bind1")) {
            Some(iq) => iq.clone(),
            None => self.until(|c| c.attr("id") == Some("bind1")).await,
        };
        assert_eq!(iq.attr("type"), Some("result"), "{}", String::from(&iq));
        iq.get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(|j| j.text())
            .expect("bound JID")
    }
}
