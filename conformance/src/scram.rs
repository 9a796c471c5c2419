//! Client side of SCRAM (RFC 5802 / RFC 7677), written independently of the
//! server so raw-XML tests can log in exactly like e.g. Pidgin does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = Hmac::<Sha1>::new_from_slice(key).expect("hmac key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// The GS2 channel binding flag the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBindingMode {
    /// `n,,`: client does not support channel binding (what Pidgin sends).
    None,
    /// `y,,`: client supports it but thinks the server does not.
    ClientSupportsServerNot,
    /// `p=NAME,,` with the given binding data (used with a `-PLUS` mechanism).
    Bind { name: String, data: Vec<u8> },
}

impl ChannelBindingMode {
    pub fn gs2_header(&self) -> String {
        match self {
            ChannelBindingMode::None => "n,,".into(),
            ChannelBindingMode::ClientSupportsServerNot => "y,,".into(),
            ChannelBindingMode::Bind { name, .. } => format!("p={name},,"),
        }
    }
    fn data(&self) -> &[u8] {
        match self {
            ChannelBindingMode::Bind { data, .. } => data,
            _ => &[],
        }
    }
}

/// RFC 5802 §5.1 `saslname` escaping.
pub fn escape_username(u: &str) -> String {
    u.replace('=', "=3D").replace(',', "=2C")
}

fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|part| {
        let mut chars = part.chars();
        if chars.next() == Some(key) && chars.next() == Some('=') {
            Some(&part[2..])
        } else {
            None
        }
    })
}

/// One SCRAM authentication exchange.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    binding: ChannelBindingMode,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, password: &str, binding: ChannelBindingMode) -> Self {
        let nonce_bytes: [u8; 18] = rand::random();
        Self::with_nonce(hash, username, password, binding, &B64.encode(nonce_bytes))
    }

    pub fn with_nonce(
        hash: ScramHash,
        username: &str,
        password: &str,
        binding: ChannelBindingMode,
        nonce: &str,
    ) -> Self {
        ScramClient {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            binding,
            client_nonce: nonce.to_owned(),
            client_first_bare: String::new(),
            server_signature: None,
        }
    }

    /// SASL mechanism name for this exchange.
    pub fn mechanism(&self) -> String {
        match self.binding {
            ChannelBindingMode::Bind { .. } => format!("SCRAM-{}-PLUS", self.hash.name()),
            _ => format!("SCRAM-{}", self.hash.name()),
        }
    }

    /// The client-first-message (GS2 header included).
    pub fn client_first(&mut self) -> String {
        self.client_first_bare = format!("n={},r={}", escape_username(&self.username), self.client_nonce);
        format!("{}{}", self.binding.gs2_header(), self.client_first_bare)
    }

    /// Computes the client-final-message from the server-first-message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        if server_first.starts_with("m=") {
            return Err("server sent unsupported mandatory extension".into());
        }
        let nonce = attr(server_first, 'r').ok_or("server-first has no r=")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(format!(
                "server nonce {nonce:?} does not extend client nonce {:?}",
                self.client_nonce
            ));
        }
        let salt = B64
            .decode(attr(server_first, 's').ok_or("server-first has no s=")?)
            .map_err(|e| format!("bad salt: {e}"))?;
        let iterations: u32 = attr(server_first, 'i')
            .ok_or("server-first has no i=")?
            .parse()
            .map_err(|e| format!("bad iteration count: {e}"))?;
        if iterations == 0 {
            return Err("iteration count 0".into());
        }
        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        let mut cbind = self.binding.gs2_header().into_bytes();
        cbind.extend_from_slice(self.binding.data());
        let without_proof = format!("c={},r={}", B64.encode(&cbind), nonce);
        let auth_message = format!("{},{},{}", self.client_first_bare, server_first, without_proof);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{},p={}", without_proof, B64.encode(proof)))
    }

    /// Checks the server-final-message (`v=...`).
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = attr(server_final, 'e') {
            return Err(format!("server-final error e={e}"));
        }
        let v =
            attr(server_final, 'v').ok_or_else(|| format!("server-final without v=: {server_final:?}"))?;
        let v = B64.decode(v).map_err(|e| format!("bad v= base64: {e}"))?;
        match &self.server_signature {
            Some(sig) if *sig == v => Ok(()),
            Some(_) => Err("server signature mismatch: the server does not know the password".into()),
            None => Err("server-final before client-final".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5802 §5 example exchange.
    #[test]
    fn rfc5802_example_vector() {
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha1,
            "user",
            "pencil",
            ChannelBindingMode::None,
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
    }

    // RFC 7677 §3 example exchange.
    #[test]
    fn rfc7677_example_vector() {
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            ChannelBindingMode::None,
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c
            .client_final(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }
}
