//! The SCRAM primitives of RFC 5802 §2.2, dispatched on [`HashAlg`].

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::HashAlg;

/// Output size of H and HMAC, in bytes.
pub(crate) fn output_len(alg: HashAlg) -> usize {
    match alg {
        HashAlg::Sha1 => 20,
        HashAlg::Sha256 => 32,
    }
}

pub(crate) fn hash(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => Sha1::digest(data).to_vec(),
        HashAlg::Sha256 => Sha256::digest(data).to_vec(),
    }
}

pub(crate) fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => mac::<Hmac<Sha1>>(key, data),
        HashAlg::Sha256 => mac::<Hmac<Sha256>>(key, data),
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <M as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Hi() of RFC 5802, i.e. PBKDF2 with HMAC-H and dkLen = output size.
/// Zero iterations is undefined there; treat it as one.
pub(crate) fn hi(alg: HashAlg, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0; output_len(alg)];
    let rounds = iterations.max(1);
    match alg {
        HashAlg::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, rounds, &mut out),
        HashAlg::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut out),
    }
    out
}

pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Constant-time equality for equal lengths (a length mismatch is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> Choice {
    a.ct_eq(b)
}
