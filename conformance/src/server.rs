//! Starting the real server binary and running its CLI.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::process::{Child, Command};
use tokio_xmpp::jid::{BareJid, Jid};

use crate::DOMAIN;
use crate::client::XmppClient;
use crate::raw::RawClient;
use crate::tls::{self, DirectTlsConnector, StartTlsConnector};

/// How long to wait for the server to write its ports file.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Server configuration knobs the tests may change. Rendered to the TOML
/// format of the server contract (only documented keys are written).
#[derive(Debug, Clone)]
pub struct Config {
    pub domains: Vec<String>,
    /// `[[listen]] kind = "c2s"` `require_encryption`.
    pub require_encryption: bool,
    /// `[registration] enabled`.
    pub registration: bool,
    /// `[limits] max_stanza_size` (bytes, after authentication).
    pub max_stanza_size: usize,
    /// `[log] level`.
    pub log_level: String,
    /// Raw TOML appended at the end of the file (for keys not modelled here).
    pub extra_toml: String,
    /// `admins` (written only when not empty).
    pub admins: Vec<String>,
    /// Raw TOML lines placed inside the `[limits]` table (e.g. `throttle_disconnect_secs = 2`).
    pub limits_toml: String,
    /// Raw TOML lines placed inside the `[registration]` table (e.g. `per_ip_per_hour = 2`).
    pub registration_toml: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domains: vec![DOMAIN.to_string()],
            require_encryption: true,
            registration: false,
            max_stanza_size: 262_144,
            log_level: std::env::var("SWITCHBOARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            extra_toml: String::new(),
            admins: Vec::new(),
            limits_toml: String::new(),
            registration_toml: String::new(),
        }
    }
}

impl Config {
    fn render(&self, dir: &Path) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let domains: Vec<String> = self.domains.iter().map(|d| q(d)).collect();
        let db = dir.join("sb.db");
        let admins = if self.admins.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.admins.iter().map(|a| q(a)).collect();
            format!("admins = [{}]\n", list.join(", "))
        };
        format!(
            r#"{admins}domains = [{domains}]

[storage]
url = {url}

[tls]
cert = {cert}
key = {key}
generate_self_signed = true

[[listen]]
kind = "c2s"
address = "127.0.0.1:0"
require_encryption = {req}

[[listen]]
kind = "c2s_direct_tls"
address = "127.0.0.1:0"

[[listen]]
kind = "http"
address = "127.0.0.1:0"

[registration]
enabled = {reg}
{registration}

[limits]
max_stanza_size = {max}
{limits}

[log]
level = {level}
{extra}
"#,
            domains = domains.join(", "),
            url = q(&format!("sqlite://{}", db.display())),
            cert = q(&dir.join("cert.pem").display().to_string()),
            key = q(&dir.join("key.pem").display().to_string()),
            req = self.require_encryption,
            reg = self.registration,
            max = self.max_stanza_size,
            limits = self.limits_toml,
            registration = self.registration_toml,
            level = q(&self.log_level),
            extra = self.extra_toml,
        )
    }
}

/// Output of one CLI invocation.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A running server process with its own temporary directory.
pub struct TestServer {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Child,
    c2s: SocketAddr,
    tls: SocketAddr,
    http: SocketAddr,
    cert: CertificateDer<'static>,
    tls_config: Arc<ClientConfig>,
    pub config: Config,
}

/// Path of the server binary; builds it once per process unless told not to.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SWITCHBOARD_BIN") {
            let p = PathBuf::from(p);
            return if p.exists() {
                Ok(p)
            } else {
                Err(format!("SWITCHBOARD_BIN={} does not exist", p.display()))
            };
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("switchboard");
        if std::env::var_os("SWITCHBOARD_NO_BUILD").is_none() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            // Variables cargo sets for the test process must not leak into the
            // nested build: build scripts (ring's) watch CARGO_MANIFEST_DIR, and
            // a different value would make every build rebuild the TLS stack.
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy();
                if k.starts_with("CARGO_PKG_")
                    || k.starts_with("CARGO_MANIFEST_")
                    || k.starts_with("CARGO_BIN_")
                    || [
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "OUT_DIR",
                    ]
                    .contains(&k.as_ref())
                {
                    cmd.env_remove(k.as_ref());
                }
            }
            let out = cmd
                .args(["build", "--bin", "switchboard"])
                .current_dir(&root)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run cargo build: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "`cargo build --bin switchboard` failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        if bin.exists() {
            Ok(bin)
        } else {
            Err(format!("server binary {} not found", bin.display()))
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

fn parse_ports(text: &str) -> Result<(SocketAddr, SocketAddr, SocketAddr), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let get = |k: &str| -> Result<SocketAddr, String> {
        v.get(k)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("ports file has no string key {k:?}: {text}"))?
            .parse()
            .map_err(|e| format!("bad address for {k}: {e}"))
    };
    Ok((get("c2s")?, get("c2s_direct_tls")?, get("http")?))
}

impl TestServer {
    /// Start a server with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Start a server after letting `f` tweak the configuration.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        f(&mut config);
        let bin = server_binary();
        let dir = tempfile::Builder::new()
            .prefix("sb-conformance-")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("switchboard.toml");
        std::fs::write(&config_path, config.render(dir.path())).expect("write config");
        let ports_path = dir.path().join("ports.json");
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .arg("--ports-file")
            .arg(&ports_path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = TestServer {
            config_path,
            log_path,
            child,
            c2s: "0.0.0.0:0".parse().unwrap(),
            tls: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            cert: CertificateDer::from(Vec::new()),
            tls_config: tls::client_config(None, &[]),
            config,
            dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_path)
                && !text.trim().is_empty()
            {
                match parse_ports(&text) {
                    Ok((c2s, tls, http)) => {
                        server.c2s = c2s;
                        server.tls = tls;
                        server.http = http;
                        break;
                    }
                    Err(e) => {
                        // The file must be written atomically: a partial file is a bug.
                        panic!("malformed ports file: {e}\nserver log:\n{}", server.logs())
                    }
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "server exited with {status} before writing its ports file\nconfig:\n{}\nserver log:\n{}",
                    server.config.render(server.dir.path()),
                    server.logs()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "server did not write its ports file within {START_TIMEOUT:?}\nserver log:\n{}",
                    server.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let cert_path = server.dir.path().join("cert.pem");
        let cert = CertificateDer::from_pem_file(&cert_path).unwrap_or_else(|e| {
            panic!(
                "cannot read the generated certificate {}: {e}\nserver log:\n{}",
                cert_path.display(),
                server.logs()
            )
        });
        server.tls_config = tls::client_config(Some(&cert), &[]);
        server.cert = cert;
        server
    }

    pub fn c2s_addr(&self) -> SocketAddr {
        self.c2s
    }
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
    }
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }
    /// The first listener of `kind` in the ports file (for listeners a test adds in
    /// `extra_toml`, such as `https`).
    pub fn listener_addr(&self, kind: &str) -> SocketAddr {
        let text = std::fs::read_to_string(self.dir.path().join("ports.json")).expect("ports file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("ports file is JSON");
        v.get(kind)
            .and_then(|a| a.as_str())
            .unwrap_or_else(|| panic!("no {kind} listener in {text}"))
            .parse()
            .expect("an address")
    }

    /// The whole HTTP/1.1 response (status line, headers, body) to a GET of `path` on the
    /// HTTP listener.
    pub async fn http_get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.http)
            .await
            .expect("connect http");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write the HTTP request");
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("HTTP response within 10s")
            .expect("read the HTTP response");
        String::from_utf8_lossy(&buf).into_owned()
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    /// The server's certificate (DER), the only one the clients trust.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }
    /// rustls client configuration trusting exactly the server certificate.
    pub fn tls_config(&self) -> Arc<ClientConfig> {
        self.tls_config.clone()
    }
    /// Same, advertising the given ALPN protocols.
    pub fn tls_config_alpn(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        tls::client_config(Some(&self.cert), alpn)
    }

    /// Everything the server wrote to stdout/stderr so far.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Run `switchboard --config FILE <args>`.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        let out = Command::new(server_binary())
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run CLI");
        CliOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `user add NAME@localhost --password PW`; panics unless it succeeds.
    pub async fn add_user(&self, name: &str, password: &str) -> BareJid {
        let jid = format!("{name}@{DOMAIN}");
        let out = self.cli(&["user", "add", &jid, "--password", password]).await;
        assert!(
            out.success(),
            "`user add {jid}` failed: {out:?}\nserver log:\n{}",
            self.logs()
        );
        jid.parse().expect("valid JID")
    }

    /// `user list [DOMAIN]` as a sorted list of JIDs.
    pub async fn list_users(&self, domain: Option<&str>) -> Vec<String> {
        let mut args = vec!["user", "list"];
        if let Some(d) = domain {
            args.push(d);
        }
        let out = self.cli(&args).await;
        assert!(out.success(), "`user list` failed: {out:?}");
        let mut v: Vec<String> = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    /// A StartTLS connector (no channel binding: SCRAM-SHA-256 is then chosen).
    pub fn starttls_connector(&self) -> StartTlsConnector {
        StartTlsConnector::new(self.c2s, self.tls_config(), DOMAIN)
    }

    /// A direct TLS (XEP-0368) connector.
    pub fn direct_tls_connector(&self) -> DirectTlsConnector {
        DirectTlsConnector::new(self.tls, self.tls_config_alpn(&[b"xmpp-client"]), DOMAIN)
    }

    /// tokio-xmpp client for `user@localhost` over STARTTLS, logged in and bound
    /// (waits for the Online event). Panics if that fails.
    pub async fn client(&self, user: &str, password: &str) -> XmppClient {
        self.client_jid(&format!("{user}@{DOMAIN}"), password).await
    }

    /// Same with an explicit (bare or full) JID.
    pub async fn client_jid(&self, jid: &str, password: &str) -> XmppClient {
        let jid: Jid = jid.parse().expect("JID");
        match XmppClient::connect(self.starttls_connector(), jid.clone(), password).await {
            Ok(c) => c,
            Err(e) => panic!(
                "tokio-xmpp login as {jid} failed: {e}\nserver log:\n{}",
                self.logs()
            ),
        }
    }

    /// Raw socket to the STARTTLS (c2s) port.
    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.c2s, self.tls_config(), DOMAIN).await
    }

    /// Raw socket to the direct TLS port (TLS handshake done, ALPN xmpp-client).
    pub async fn raw_direct_tls(&self) -> RawClient {
        RawClient::connect_direct_tls(self.tls, self.tls_config_alpn(&[b"xmpp-client"]), DOMAIN).await
    }

    /// Raw client on the c2s port after the stream header and STARTTLS
    /// (features after TLS in `.features`), not authenticated.
    pub async fn raw_starttls(&self) -> RawClient {
        let mut c = self.raw().await;
        c.open_stream().await;
        c.starttls().await;
        c
    }

    /// Raw socket to the c2s port from the local address `ip` (e.g. `127.0.0.2`).
    pub async fn raw_from(&self, ip: &str) -> RawClient {
        let ip = ip.parse().expect("an IP address");
        RawClient::connect_from(self.c2s, ip, self.tls_config(), DOMAIN).await
    }

    /// [`Self::raw_starttls`] from the local address `ip`.
    pub async fn raw_starttls_from(&self, ip: &str) -> RawClient {
        let mut c = self.raw_from(ip).await;
        c.open_stream().await;
        c.starttls().await;
        c
    }

    /// Raw client on the c2s port after STARTTLS, SCRAM-SHA-1 login and bind.
    pub async fn raw_login(&self, user: &str, password: &str, resource: Option<&str>) -> RawClient {
        let mut c = self.raw().await;
        c.open_stream().await;
        c.starttls().await;
        c.sasl_scram(
            user,
            password,
            crate::ScramHash::Sha1,
            crate::ChannelBindingMode::None,
        )
        .await
        .unwrap_or_else(|f| panic!("raw SCRAM-SHA-1 login as {user} failed: {f:?}"));
        c.restart_stream().await;
        c.bind(resource)
            .await
            .unwrap_or_else(|e| panic!("bind failed: {e}"));
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "---- server log (last {} lines, {}) ----\n{}\n----",
                tail.len(),
                self.log_path.display(),
                tail.join("\n")
            );
        }
        let _ = self.child.start_kill();
    }
}

impl TestServer {
    /// Changes the configuration and rewrites the file (the running server reads it on
    /// [`TestServer::sighup`] or the reload-config ad-hoc command).
    pub fn rewrite_config(&mut self, f: impl FnOnce(&mut Config)) {
        f(&mut self.config);
        std::fs::write(&self.config_path, self.config.render(self.dir.path())).expect("write config");
    }

    /// Replaces the configuration file with `text` as it is (e.g. an invalid file).
    pub fn write_config_text(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// The configuration file as the harness would write it now.
    pub fn rendered_config(&self) -> String {
        self.config.render(self.dir.path())
    }

    /// The server process's id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server is running")
    }

    /// Sends SIGHUP (configuration reload) to the server process.
    pub async fn sighup(&self) {
        let pid = self.child.id().expect("server is running");
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -HUP {pid} failed");
    }

    /// Waits until the server log contains `needle` (at least `count` times).
    pub async fn wait_for_log(&self, needle: &str, count: usize, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.logs().matches(needle).count() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Stops the server process gracefully (SIGTERM, as a service manager does) and waits up
    /// to 30 s for it to exit; [`TestServer::restart`] then starts it again.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("server is running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server stops within 30 s of SIGTERM")
            .expect("wait for the server");
    }

    /// Stops the server process (SIGKILL: nothing is flushed on the way out, so whatever
    /// survives was durably stored) and starts it again on the same directory, database,
    /// certificate and configuration. The ports change; clients must reconnect.
    pub async fn restart(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let ports_path = self.dir.path().join("ports.json");
        let _ = std::fs::remove_file(&ports_path);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        self.child = Command::new(server_binary())
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .arg("--ports-file")
            .arg(&ports_path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot restart the server: {e}"));
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_path)
                && !text.trim().is_empty()
            {
                let (c2s, tls, http) =
                    parse_ports(&text).unwrap_or_else(|e| panic!("malformed ports file: {e}"));
                self.c2s = c2s;
                self.tls = tls;
                self.http = http;
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "restarted server exited with {status}\nserver log:\n{}",
                    self.logs()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "restarted server did not write its ports file within {START_TIMEOUT:?}\nserver log:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
}
