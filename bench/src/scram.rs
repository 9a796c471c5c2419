//! Client side of SCRAM-SHA-1 (RFC 5802) without channel binding.

use anyhow::{Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha1 = Hmac<Sha1>;
/// (password, salt, iterations)
type SaltKey = (String, Vec<u8>, u32);

fn hmac(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut m = HmacSha1::new_from_slice(key).expect("hmac accepts any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Escape a SCRAM username (`=` -> `=3D`, `,` -> `=2C`).
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// Salted-password cache keyed by (password, salt, iterations). Real clients
/// cache the salted password too; this keeps PBKDF2 (client-side work) out of
/// the measured login phase when a warm-up pass has filled it.
#[derive(Default)]
pub struct SaltCache {
    map: Mutex<HashMap<SaltKey, [u8; 20]>>,
}

impl SaltCache {
    pub fn salted_password(&self, password: &str, salt: &[u8], iterations: u32) -> [u8; 20] {
        let key = (password.to_string(), salt.to_vec(), iterations);
        if let Some(v) = self.map.lock().unwrap().get(&key) {
            return *v;
        }
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut out);
        self.map.lock().unwrap().insert(key, out);
        out
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

/// Parsed server-first-message.
pub struct ServerFirst {
    pub raw: String,
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

pub fn parse_server_first(raw: &[u8], client_nonce: &str) -> Result<ServerFirst> {
    let raw = std::str::from_utf8(raw)?.to_string();
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for part in raw.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            nonce = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = Some(B64.decode(v)?);
        } else if let Some(v) = part.strip_prefix("i=") {
            iterations = Some(v.parse::<u32>()?);
        } else if part.starts_with("m=") {
            bail!("server requires unsupported SCRAM extension");
        }
    }
    let nonce = nonce.ok_or_else(|| anyhow!("server-first without nonce"))?;
    if !nonce.starts_with(client_nonce) {
        bail!("server nonce does not extend client nonce");
    }
    let iterations = iterations.ok_or_else(|| anyhow!("server-first without iterations"))?;
    if iterations == 0 {
        bail!("zero iteration count");
    }
    Ok(ServerFirst {
        raw,
        nonce,
        salt: salt.ok_or_else(|| anyhow!("server-first without salt"))?,
        iterations,
    })
}

pub struct ScramClient {
    client_first_bare: String,
    pub nonce: String,
    expected_server_sig: Option<[u8; 20]>,
}

impl ScramClient {
    pub fn new(user: &str) -> Self {
        let nonce: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            let bytes: [u8; 18] = rng.random();
            B64.encode(bytes)
        };
        ScramClient {
            client_first_bare: format!("n={},r={}", saslname(user), nonce),
            nonce,
            expected_server_sig: None,
        }
    }

    /// The initial response (base64-encoded).
    pub fn client_first(&self) -> String {
        B64.encode(format!("n,,{}", self.client_first_bare))
    }

    /// Given the decoded server-first message, produce the base64-encoded
    /// client-final message.
    pub fn client_final(&mut self, sf: &ServerFirst, password: &str, cache: &SaltCache) -> String {
        let salted = cache.salted_password(password, &sf.salt, sf.iterations);
        let without_proof = format!("c=biws,r={}", sf.nonce);
        let auth_message = format!("{},{},{}", self.client_first_bare, sf.raw, without_proof);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 20] = Sha1::digest(client_key).into();
        let client_sig = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_sig.iter()) {
            *p ^= s;
        }
        let server_key = hmac(&salted, b"Server Key");
        self.expected_server_sig = Some(hmac(&server_key, auth_message.as_bytes()));
        B64.encode(format!("{},p={}", without_proof, B64.encode(proof)))
    }

    /// Verify the server-final message (decoded `v=...`).
    pub fn verify_server_final(&self, data: &[u8]) -> Result<()> {
        let s = std::str::from_utf8(data)?;
        if let Some(e) = s.strip_prefix("e=") {
            bail!("SCRAM error from server: {e}");
        }
        let v = s
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or_else(|| anyhow!("server-final without verifier"))?;
        let v = B64.decode(v)?;
        match self.expected_server_sig {
            Some(exp) if exp[..] == v[..] => Ok(()),
            _ => bail!("server signature mismatch"),
        }
    }
}

pub fn b64_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if s == "=" {
        return Ok(Vec::new());
    }
    Ok(B64.decode(s)?)
}

pub fn b64_encode(b: &[u8]) -> String {
    B64.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vector from RFC 5802 section 5.
    #[test]
    fn rfc5802_vector() {
        let mut c = ScramClient {
            client_first_bare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL".into(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
            expected_server_sig: None,
        };
        let sf = parse_server_first(
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            &c.nonce,
        )
        .unwrap();
        let cache = SaltCache::default();
        let cf = c.client_final(&sf, "pencil", &cache);
        let cf = String::from_utf8(B64.decode(cf).unwrap()).unwrap();
        assert_eq!(
            cf,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert_eq!(cache.len(), 1);
    }
}
