//! TLS: the rustls server configuration (ring as the one crypto provider), the self-signed
//! certificate made on first start, and the channel-binding data SCRAM-PLUS needs.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::config::TlsConfig;

/// What every TLS listener shares.
pub struct TlsContext {
    pub server_config: Arc<ServerConfig>,
    /// The same certificate for the HTTPS listeners, offering HTTP/1.1 by ALPN (a client
    /// that offers only other protocols would be refused by `xmpp-client`).
    pub http_config: Arc<ServerConfig>,
    /// RFC 5929 tls-server-end-point: the hash of our leaf certificate.
    pub server_end_point: Vec<u8>,
}

/// Loads the configured certificate, generating a self-signed one first when allowed and
/// both files are missing.
pub fn load(cfg: &TlsConfig, domains: &[String]) -> anyhow::Result<TlsContext> {
    if cfg.generate_self_signed && !cfg.cert.exists() && !cfg.key.exists() {
        generate_self_signed(&cfg.cert, &cfg.key, domains)?;
        tracing::info!(cert = %cfg.cert.display(), key = %cfg.key.display(), "generated a self-signed certificate for {}", domains.join(", "));
    } else {
        tracing::info!(cert = %cfg.cert.display(), "using TLS certificate");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.cert.display()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", cfg.cert.display()))?;
    let server_end_point = end_point_hash(leaf.as_ref());
    let key =
        PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| anyhow::anyhow!("{}: {e}", cfg.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let mut http_config = server_config.clone();
    http_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    server_config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Ok(TlsContext {
        server_config: Arc::new(server_config),
        http_config: Arc::new(http_config),
        server_end_point,
    })
}

fn generate_self_signed(cert: &Path, key: &Path, domains: &[String]) -> anyhow::Result<()> {
    let mut names: Vec<String> = domains.to_vec();
    if !names.iter().any(|d| d == "localhost") {
        names.push("localhost".into());
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    for path in [cert, key] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, certified.cert.pem())?;
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash, SHA-256 for MD5/SHA-1.
fn end_point_hash(der: &[u8]) -> Vec<u8> {
    // DER encodings of the signature algorithm OIDs that use SHA-384 / SHA-512.
    const SHA384_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
    ];
    const SHA512_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
    ];
    // The signatureAlgorithm sits after the TBSCertificate, near the end of the DER.
    let tail = &der[der.len().saturating_sub(160)..];
    let contains = |oid: &[u8]| tail.windows(oid.len()).any(|w| w == oid);
    if SHA512_OIDS.iter().any(|o| contains(o)) {
        Sha512::digest(der).to_vec()
    } else if SHA384_OIDS.iter().any(|o| contains(o)) {
        Sha384::digest(der).to_vec()
    } else {
        Sha256::digest(der).to_vec()
    }
}

/// RFC 9266 tls-exporter channel binding; only defined for TLS 1.3 (and 1.2 with EMS, which
/// we do not rely on), so `None` elsewhere.
pub fn exporter_binding(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut out = vec![0u8; 32];
    conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_cert_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TlsConfig {
            cert: dir.path().join("tls/cert.pem"),
            key: dir.path().join("tls/key.pem"),
            generate_self_signed: true,
        };
        let first = load(&cfg, &["example.org".into()]).unwrap();
        let pem = std::fs::read(&cfg.cert).unwrap();
        let second = load(&cfg, &["example.org".into()]).unwrap();
        assert_eq!(pem, std::fs::read(&cfg.cert).unwrap());
        assert_eq!(first.server_end_point, second.server_end_point);
        assert_eq!(first.server_end_point.len(), 32);
    }

    #[test]
    fn missing_files_without_generation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TlsConfig {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
            generate_self_signed: false,
        };
        assert!(load(&cfg, &["a".into()]).is_err());
    }
}
