//! The HT-SHA-256-* mechanisms (draft-schmaus-kitten-sasl-ht) that XEP-0484 FAST logs in
//! with: the client proves it holds a token by `HMAC(token, "Initiator" || cb-data)`, the
//! server answers `HMAC(token, "Responder" || cb-data)`.
//!
//! Tokens are never stored. They are longer than SHA-256's 64-byte block, and HMAC hashes
//! such a key before use (RFC 2104 §2), so `HMAC(token, m) == HMAC(SHA-256(token), m)`: the
//! server keeps only SHA-256(token) ([`key_of`]) and still verifies. (That hash is the HMAC
//! key itself, so it is as secret as the token: the database must be protected as before.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::{Digest, Sha256};

use super::crypto::{ct_eq, hmac};
use super::{HashAlg, SaslFailure};

/// Random bytes in a token: 96 characters of base64url, longer than SHA-256's block.
const TOKEN_BYTES: usize = 72;

/// One HT mechanism: its name and the channel-binding type whose data it mixes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtMechanism {
    pub name: &'static str,
    /// `None` for -NONE.
    pub binding: Option<&'static str>,
}

/// Every HT mechanism we implement, strongest first. -UNIQ (tls-unique) is left out: our
/// TLS layer has no tls-unique (TLS 1.3 has none at all).
pub const HT_MECHANISMS: [HtMechanism; 3] = [
    HtMechanism {
        name: "HT-SHA-256-EXPR",
        binding: Some("tls-exporter"),
    },
    HtMechanism {
        name: "HT-SHA-256-ENDP",
        binding: Some("tls-server-end-point"),
    },
    HtMechanism {
        name: "HT-SHA-256-NONE",
        binding: None,
    },
];

/// The HT mechanism named `name` (exact match).
pub fn from_name(name: &str) -> Option<HtMechanism> {
    HT_MECHANISMS.into_iter().find(|m| m.name == name)
}

/// A fresh token: the text the client gets and the key the server stores.
pub fn new_token() -> (String, [u8; 32]) {
    let bytes: [u8; TOKEN_BYTES] = std::array::from_fn(|_| rand::random());
    let token = B64URL.encode(bytes);
    let key = key_of(&token);
    (token, key)
}

/// What the server stores for `token`: its SHA-256, the HMAC key HT uses for it.
pub fn key_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Splits the initial response `authcid NUL initiator-hashed-token`.
pub fn parse_initial(data: &[u8]) -> Result<(String, &[u8]), SaslFailure> {
    let nul = data
        .iter()
        .position(|&b| b == 0)
        .ok_or(SaslFailure::MalformedRequest)?;
    let authcid = std::str::from_utf8(&data[..nul]).map_err(|_| SaslFailure::MalformedRequest)?;
    let proof = &data[nul + 1..];
    if authcid.is_empty() || proof.len() != 32 {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok((authcid.to_string(), proof))
}

fn tagged(key: &[u8], label: &[u8], cb: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(label.len() + cb.len());
    msg.extend_from_slice(label);
    msg.extend_from_slice(cb);
    hmac(HashAlg::Sha256, key, &msg)
}

/// Whether `proof` is the initiator's HMAC for the token whose stored key is `key`
/// (constant time).
pub fn verify_initiator(key: &[u8], cb: &[u8], proof: &[u8]) -> bool {
    let expected = tagged(key, b"Initiator", cb);
    expected.len() == proof.len() && bool::from(ct_eq(&expected, proof))
}

/// The server's answer, sent as the success's additional data.
pub fn responder(key: &[u8], cb: &[u8]) -> Vec<u8> {
    tagged(key, b"Responder", cb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tokens_verify_against_their_stored_hash() {
        let (token, key) = new_token();
        assert!(token.len() > 64, "longer than the HMAC block: {}", token.len());
        // What a client computes, with the token itself as the key.
        let client = hmac(HashAlg::Sha256, token.as_bytes(), b"Initiator");
        assert!(verify_initiator(&key, b"", &client));
        assert!(!verify_initiator(&key, b"cb", &client));
        assert_eq!(
            responder(&key, b"cb"),
            hmac(HashAlg::Sha256, token.as_bytes(), b"Respondercb")
        );
        let (other, _) = new_token();
        assert_ne!(token, other);
    }

    #[test]
    fn initial_response_is_authcid_nul_32_bytes() {
        let mut data = b"alice\0".to_vec();
        data.extend([7u8; 32]);
        let (authcid, proof) = parse_initial(&data).unwrap();
        assert_eq!(authcid, "alice");
        assert_eq!(proof, &[7u8; 32]);
        assert_eq!(parse_initial(b"alice"), Err(SaslFailure::MalformedRequest));
        assert_eq!(parse_initial(b"alice\0short"), Err(SaslFailure::MalformedRequest));
        assert_eq!(parse_initial(&[0u8; 33]), Err(SaslFailure::MalformedRequest));
        assert_eq!(from_name("HT-SHA-256-NONE").unwrap().binding, None);
        assert!(from_name("HT-SHA-256-UNIQ").is_none());
    }
}
