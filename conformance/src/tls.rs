//! TLS client configuration trusting exactly the test server's certificate,
//! and tokio-xmpp `ServerConnector`s for STARTTLS and direct TLS.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use sasl::common::ChannelBinding;
use sha2::{Digest, Sha256};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{Error, ProtocolError};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement, initiate_stream,
};

/// A rustls client configuration whose root store holds only `cert`
/// (or nothing at all when `None`), with the given ALPN protocols.
pub fn client_config(cert: Option<&CertificateDer<'static>>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if let Some(cert) = cert {
        roots
            .add(cert.clone())
            .expect("server certificate usable as trust anchor");
    }
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Any byte stream a test client runs over: plain TCP, or TLS to the HTTPS listener.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A TLS connection to `addr` (an HTTPS listener) that checks the certificate against
/// `config`'s roots for the name `localhost`, offering HTTP/1.1 by ALPN.
pub async fn connect_https(addr: SocketAddr, config: &ClientConfig) -> TlsStream<TcpStream> {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect https");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with the HTTPS listener, certificate checked");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the HTTPS listener selects http/1.1"
    );
    tls
}

/// RFC 9266 tls-exporter channel binding data (TLS 1.3 only).
pub fn tls_exporter<S>(tls: &TlsStream<S>) -> Option<Vec<u8>> {
    let (_, conn) = tls.get_ref();
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
        .ok()
}

/// RFC 5929 tls-server-end-point channel binding data: hash of the server's
/// certificate. SHA-256 is correct for certificates signed with SHA-256 (and,
/// per RFC 5929, for MD5/SHA-1 ones); the generated certificates use it.
pub fn tls_server_end_point<S>(tls: &TlsStream<S>) -> Option<Vec<u8>> {
    let (_, conn) = tls.get_ref();
    let cert = conn.peer_certificates()?.first()?;
    Some(Sha256::digest(cert.as_ref()).to_vec())
}

/// Which channel binding a connector reports to tokio-xmpp. With
/// `TlsExporter`, tokio-xmpp only uses `-PLUS` SCRAM mechanisms (or PLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorBinding {
    None,
    TlsExporter,
}

async fn tls_handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    domain: &str,
) -> Result<TlsStream<TcpStream>, Error> {
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(Error::Io)
}

fn binding_for(mode: ConnectorBinding, tls: &TlsStream<TcpStream>) -> ChannelBinding {
    match mode {
        ConnectorBinding::None => ChannelBinding::None,
        ConnectorBinding::TlsExporter => match tls_exporter(tls) {
            Some(d) => ChannelBinding::TlsExporter(d),
            None => ChannelBinding::None,
        },
    }
}

/// Connects TCP to the c2s port, negotiates STARTTLS trusting only the test
/// certificate, and opens the encrypted stream.
#[derive(Debug, Clone)]
pub struct StartTlsConnector {
    pub addr: SocketAddr,
    pub config: Arc<ClientConfig>,
    pub domain: String,
    pub binding: ConnectorBinding,
}

impl StartTlsConnector {
    pub fn new(addr: SocketAddr, config: Arc<ClientConfig>, domain: &str) -> Self {
        StartTlsConnector {
            addr,
            config,
            domain: domain.to_owned(),
            binding: ConnectorBinding::None,
        }
    }
    pub fn with_binding(mut self, binding: ConnectorBinding) -> Self {
        self.binding = binding;
        self
    }
}

impl ServerConnector for StartTlsConnector {
    type Stream = BufStream<TlsStream<TcpStream>>;

    async fn connect(
        &self,
        _jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        let header = || StreamHeader {
            to: Some(Cow::Owned(self.domain.clone())),
            from: None,
            id: None,
        };
        let pending = initiate_stream(BufStream::new(tcp), ns, header(), timeouts).await?;
        let (features, mut stream): (_, XmppStream<BufStream<TcpStream>>) = pending.recv_features().await?;
        if !features.can_starttls() {
            return Err(Error::Protocol(ProtocolError::NoTls));
        }
        stream
            .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                starttls::Request,
            )))
            .await?;
        loop {
            match stream.next().await.map(|v| v.and_then(|v| v.into_read_error())) {
                Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => (),
                Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                Some(Err(ReadError::ParseError(e))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
                }
                None | Some(Err(ReadError::StreamFooterReceived)) => {
                    return Err(Error::Disconnected);
                }
            }
        }
        let tcp = stream.into_inner().into_inner();
        let tls = tls_handshake(tcp, self.config.clone(), &self.domain).await?;
        let binding = binding_for(self.binding, &tls);
        let pending = initiate_stream(BufStream::new(tls), ns, header(), timeouts).await?;
        Ok((pending, binding))
    }
}

/// XEP-0368 direct TLS: TLS handshake (ALPN from the config) right after TCP connect.
#[derive(Debug, Clone)]
pub struct DirectTlsConnector {
    pub addr: SocketAddr,
    pub config: Arc<ClientConfig>,
    pub domain: String,
    pub binding: ConnectorBinding,
}

impl DirectTlsConnector {
    pub fn new(addr: SocketAddr, config: Arc<ClientConfig>, domain: &str) -> Self {
        DirectTlsConnector {
            addr,
            config,
            domain: domain.to_owned(),
            binding: ConnectorBinding::None,
        }
    }
    pub fn with_binding(mut self, binding: ConnectorBinding) -> Self {
        self.binding = binding;
        self
    }
}

impl ServerConnector for DirectTlsConnector {
    type Stream = BufStream<TlsStream<TcpStream>>;

    async fn connect(
        &self,
        _jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        let tls = tls_handshake(tcp, self.config.clone(), &self.domain).await?;
        let binding = binding_for(self.binding, &tls);
        let header = StreamHeader {
            to: Some(Cow::Owned(self.domain.clone())),
            from: None,
            id: None,
        };
        let pending = initiate_stream(BufStream::new(tls), ns, header, timeouts).await?;
        Ok((pending, binding))
    }
}
