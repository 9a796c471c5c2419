//! A minimal raw-XML XMPP client: stream setup, SASL (SCRAM-SHA-1 / PLAIN),
//! resource binding, session, presence, and XEP-0077 registration.

use crate::scram::{self, SaltCache, ScramClient};
use crate::xml::{Element, Frame, Splitter, escape, parse_element};
use anyhow::{Context, Result, anyhow, bail};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    #[value(name = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "PLAIN")]
    Plain,
}

/// Everything needed to reach and log in to the server under test.
pub struct Target {
    pub host: String,
    pub port: u16,
    pub domain: String,
    pub user_pattern: String,
    pub password: String,
    pub mech: Mech,
    pub resource: String,
    pub timeout: Duration,
    pub salts: SaltCache,
    /// RFC 7395 WebSocket path, when connecting over WebSocket (`crate::ws`).
    pub websocket: Option<String>,
}

impl Target {
    pub fn username(&self, n: u64) -> String {
        self.user_pattern.replace("{n}", &n.to_string())
    }

    fn header(&self) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' xmlns:stream='{}'>",
            escape(&self.domain),
            NS_STREAM
        )
    }
}

/// The writing side of a connection: a TCP socket's half, or the scenario's end of an
/// in-memory pipe to a WebSocket bridge (`crate::ws`).
pub type Conn = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
/// The reading side.
pub type ConnReader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// `SBB_TRACE=1` prints every frame received (debugging servers).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("SBB_TRACE").is_some_and(|v| v != "0"))
}

/// Reading side of a connection: socket half plus stanza splitter.
pub struct StanzaReader {
    pub rd: ConnReader,
    pub sp: Splitter,
    /// The connection's local TCP port, for traces (0 over WebSocket).
    pub local_port: u16,
}

impl StanzaReader {
    /// Next frame from the stream. Returned ranges index `self.sp.buf`.
    pub async fn next(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = self.sp.next_frame()? {
                if trace() {
                    let (a, b) = match f {
                        Frame::StreamOpen(a, b) | Frame::Stanza(a, b) => (a, b),
                        Frame::StreamClose => (0, 0),
                    };
                    let local = self.local_port;
                    eprintln!("RX[{local}] {}", String::from_utf8_lossy(&self.sp.buf[a..b]));
                }
                return Ok(f);
            }
            self.sp.prepare_read(2048);
            let n = self.rd.read_buf(&mut self.sp.buf).await?;
            if n == 0 {
                bail!("connection closed by server");
            }
        }
    }

    /// Next top-level element, parsed into a tree. Stream open/close are
    /// reported as errors (except that a stream open is skipped).
    pub async fn next_element(&mut self) -> Result<Element> {
        loop {
            match self.next().await? {
                Frame::StreamOpen(..) => continue,
                Frame::StreamClose => bail!("server closed the stream"),
                Frame::Stanza(a, b) => return parse_element(&self.sp.buf[a..b], "jabber:client"),
            }
        }
    }

    async fn expect_stream_open(&mut self) -> Result<()> {
        match self.next().await? {
            Frame::StreamOpen(..) => Ok(()),
            Frame::StreamClose => bail!("server closed the stream"),
            Frame::Stanza(a, b) => {
                let e = parse_element(&self.sp.buf[a..b], "jabber:client")?;
                bail!("expected stream header, got {}", e.describe())
            }
        }
    }
}

/// An established, logged-in session.
pub struct Session {
    pub reader: StanzaReader,
    pub wr: Conn,
    pub full_jid: String,
}

fn stream_error(e: &Element) -> Option<String> {
    if e.name == "error" && e.ns == NS_STREAM {
        let cond = e.children.first().map(|c| c.name.clone()).unwrap_or_default();
        return Some(format!("stream error: {cond}"));
    }
    None
}

async fn next_nonstream_error(r: &mut StanzaReader) -> Result<Element> {
    let e = r.next_element().await?;
    if let Some(err) = stream_error(&e) {
        bail!(err);
    }
    Ok(e)
}

async fn connect(t: &Target) -> Result<(StanzaReader, Conn)> {
    let (rd, wr, local_port): (ConnReader, Conn, u16) = match &t.websocket {
        Some(path) => {
            let pipe = crate::ws::connect(&t.host, t.port, path, &t.domain).await?;
            let (rd, wr) = tokio::io::split(pipe);
            (Box::new(rd), Box::new(wr), 0)
        }
        None => {
            let s = TcpStream::connect((t.host.as_str(), t.port))
                .await
                .with_context(|| format!("connect {}:{}", t.host, t.port))?;
            s.set_nodelay(true)?;
            let local_port = s.local_addr().map(|a| a.port()).unwrap_or(0);
            let (rd, wr) = s.into_split();
            (Box::new(rd), Box::new(wr), local_port)
        }
    };
    Ok((
        StanzaReader {
            rd,
            sp: Splitter::new(4096),
            local_port,
        },
        wr,
    ))
}

/// Open (or restart) the stream and return the stream features.
async fn open_stream(t: &Target, r: &mut StanzaReader, w: &mut Conn) -> Result<Element> {
    w.write_all(t.header().as_bytes()).await?;
    r.expect_stream_open().await?;
    let f = next_nonstream_error(r).await?;
    if f.name != "features" {
        bail!("expected stream features, got {}", f.describe());
    }
    Ok(f)
}

fn sasl_failure(e: &Element) -> anyhow::Error {
    let cond = e
        .children
        .iter()
        .find(|c| c.name != "text")
        .map(|c| c.name.as_str())
        .unwrap_or("?");
    let text = e.child("text").map(|c| c.text.as_str()).unwrap_or("");
    anyhow!("SASL failure: {cond} {text}")
}

fn offered_mechs(features: &Element) -> Vec<String> {
    features
        .child_ns("mechanisms", NS_SASL)
        .map(|m| m.children.iter().map(|c| c.text.trim().to_string()).collect())
        .unwrap_or_default()
}

async fn sasl_expect(r: &mut StanzaReader) -> Result<Element> {
    let e = next_nonstream_error(r).await?;
    if e.ns != NS_SASL {
        bail!("unexpected element during SASL: {}", e.describe());
    }
    if e.name == "failure" {
        return Err(sasl_failure(&e));
    }
    Ok(e)
}

async fn authenticate(
    t: &Target,
    user: &str,
    features: &Element,
    r: &mut StanzaReader,
    w: &mut Conn,
) -> Result<()> {
    let mechs = offered_mechs(features);
    match t.mech {
        Mech::Plain => {
            if !mechs.iter().any(|m| m == "PLAIN") {
                bail!("server does not offer PLAIN (offers {mechs:?})");
            }
            let mut raw = Vec::with_capacity(user.len() + t.password.len() + 2);
            raw.push(0);
            raw.extend_from_slice(user.as_bytes());
            raw.push(0);
            raw.extend_from_slice(t.password.as_bytes());
            let msg = format!(
                "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
                scram::b64_encode(&raw)
            );
            w.write_all(msg.as_bytes()).await?;
            let e = sasl_expect(r).await?;
            if e.name != "success" {
                bail!("unexpected SASL reply {}", e.describe());
            }
            Ok(())
        }
        Mech::ScramSha1 => {
            if !mechs.iter().any(|m| m == "SCRAM-SHA-1") {
                bail!("server does not offer SCRAM-SHA-1 (offers {mechs:?})");
            }
            let mut sc = ScramClient::new(user);
            let msg = format!(
                "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{}</auth>",
                sc.client_first()
            );
            w.write_all(msg.as_bytes()).await?;
            let e = sasl_expect(r).await?;
            if e.name != "challenge" {
                bail!("expected SASL challenge, got {}", e.describe());
            }
            let sf = scram::parse_server_first(&scram::b64_decode(&e.text)?, &sc.nonce)?;
            let fin = sc.client_final(&sf, &t.password, &t.salts);
            let msg = format!("<response xmlns='{NS_SASL}'>{fin}</response>");
            w.write_all(msg.as_bytes()).await?;
            let mut e = sasl_expect(r).await?;
            if e.name == "challenge" {
                // Server-final sent as a challenge; acknowledge with an
                // empty response and expect a bare success.
                sc.verify_server_final(&scram::b64_decode(&e.text)?)?;
                let msg = format!("<response xmlns='{NS_SASL}'/>");
                w.write_all(msg.as_bytes()).await?;
                e = sasl_expect(r).await?;
                if e.name != "success" {
                    bail!("unexpected SASL reply {}", e.describe());
                }
                return Ok(());
            }
            if e.name != "success" {
                bail!("unexpected SASL reply {}", e.describe());
            }
            sc.verify_server_final(&scram::b64_decode(&e.text)?)?;
            Ok(())
        }
    }
}

/// Only fetch the SCRAM salt for `user` (start SCRAM, then abort) so that the
/// salted password can be computed before a measured login phase.
pub async fn prefetch_salt(t: &Target, n: u64) -> Result<()> {
    tokio::time::timeout(t.timeout, async {
        let user = t.username(n);
        let (mut r, mut w) = connect(t).await?;
        let features = open_stream(t, &mut r, &mut w).await?;
        if !offered_mechs(&features).iter().any(|m| m == "SCRAM-SHA-1") {
            bail!("server does not offer SCRAM-SHA-1");
        }
        let sc = ScramClient::new(&user);
        let msg = format!(
            "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{}</auth>",
            sc.client_first()
        );
        w.write_all(msg.as_bytes()).await?;
        let e = sasl_expect(&mut r).await?;
        if e.name != "challenge" {
            bail!("expected SASL challenge, got {}", e.describe());
        }
        let sf = scram::parse_server_first(&scram::b64_decode(&e.text)?, &sc.nonce)?;
        let salts = &t.salts;
        let (pw, salt, it) = (t.password.clone(), sf.salt.clone(), sf.iterations);
        // Compute now (outside any measured phase).
        let _ = salts.salted_password(&pw, &salt, it);
        w.write_all(format!("<abort xmlns='{NS_SASL}'/></stream:stream>").as_bytes())
            .await?;
        let _ = w.shutdown().await;
        Ok(())
    })
    .await
    .map_err(|_| anyhow!("timeout"))?
}

async fn iq_roundtrip(r: &mut StanzaReader, w: &mut Conn, id: &str, payload: &str) -> Result<Element> {
    w.write_all(format!("<iq type='set' id='{id}'>{payload}</iq>").as_bytes())
        .await?;
    loop {
        let e = next_nonstream_error(r).await?;
        if e.name == "iq" && e.attr("id") == Some(id) {
            match e.attr("type") {
                Some("result") => return Ok(e),
                _ => bail!("iq {id} failed: {}", e.describe()),
            }
        }
    }
}

/// Full login: connect, authenticate, bind, (session), initial presence.
pub async fn login(t: &Arc<Target>, n: u64, resource: &str, presence: bool) -> Result<Session> {
    tokio::time::timeout(t.timeout, login_inner(t, n, resource, presence))
        .await
        .map_err(|_| anyhow!("login timed out after {:?}", t.timeout))?
}

async fn login_inner(t: &Target, n: u64, resource: &str, presence: bool) -> Result<Session> {
    let user = t.username(n);
    let (mut r, mut w) = connect(t).await?;
    let features = open_stream(t, &mut r, &mut w).await?;
    authenticate(t, &user, &features, &mut r, &mut w).await?;
    r.sp.reset_stream();
    let features = open_stream(t, &mut r, &mut w).await?;
    if features.child_ns("bind", NS_BIND).is_none() {
        bail!("server offers no resource binding");
    }
    let res = iq_roundtrip(
        &mut r,
        &mut w,
        "b1",
        &format!(
            "<bind xmlns='{NS_BIND}'><resource>{}</resource></bind>",
            escape(resource)
        ),
    )
    .await?;
    let full_jid = res
        .child_ns("bind", NS_BIND)
        .and_then(|b| b.child("jid"))
        .map(|j| j.text.trim().to_string())
        .ok_or_else(|| anyhow!("bind result without jid"))?;
    if let Some(s) = features.child_ns("session", NS_SESSION)
        && s.child("optional").is_none()
    {
        iq_roundtrip(&mut r, &mut w, "s1", &format!("<session xmlns='{NS_SESSION}'/>")).await?;
    }
    if presence {
        w.write_all(b"<presence/>").await?;
    }
    Ok(Session {
        reader: r,
        wr: w,
        full_jid,
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    Created,
    Exists,
}

/// In-band registration (XEP-0077) of user `n` on a fresh stream.
pub async fn register(t: &Target, n: u64) -> Result<RegisterOutcome> {
    tokio::time::timeout(t.timeout, async {
        let user = t.username(n);
        let (mut r, mut w) = connect(t).await?;
        open_stream(t, &mut r, &mut w).await?;
        let q = format!(
            "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>{}</username><password>{}</password></query></iq>",
            escape(&user),
            escape(&t.password)
        );
        w.write_all(q.as_bytes()).await?;
        let outcome = loop {
            let e = next_nonstream_error(&mut r).await?;
            if e.name == "iq" && e.attr("id") == Some("reg1") {
                match e.attr("type") {
                    Some("result") => break RegisterOutcome::Created,
                    _ => {
                        let conflict = e
                            .child("error")
                            .is_some_and(|er| er.child("conflict").is_some());
                        if conflict {
                            break RegisterOutcome::Exists;
                        }
                        bail!("registration of {user} failed: {}", e.describe());
                    }
                }
            }
        };
        let _ = w.write_all(b"</stream:stream>").await;
        let _ = w.shutdown().await;
        Ok(outcome)
    })
    .await
    .map_err(|_| anyhow!("registration timed out"))?
}
