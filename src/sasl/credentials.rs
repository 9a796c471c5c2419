//! What the server keeps per account and SCRAM hash: never the password itself.

use std::borrow::Cow;

use super::{SaslFailure, crypto};

/// The hash function behind a SCRAM family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

impl HashAlg {
    /// The name stored in the `mechanism` column: "SCRAM-SHA-1" or "SCRAM-SHA-256".
    pub fn mechanism_name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SCRAM-SHA-1",
            HashAlg::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-1" => Some(HashAlg::Sha1),
            "SCRAM-SHA-256" => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// Every hash we keep credentials for, in the order rows are written.
    pub const ALL: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];
}

/// RFC 5802 server-side credentials for one hash: salt, iteration count, StoredKey, ServerKey.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub alg: HashAlg,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredentials {
    // Keys are password-equivalent for a replay of the exchange: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("alg", &self.alg)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Length of the salts we generate (and fake).
pub const SALT_LEN: usize = 16;

/// RFC 4013 SASLprep of a password, for code that sets passwords: reject what can't be
/// prepared (prohibited or unassigned characters, bad bidi) or prepares to nothing.
pub fn prepare_password(password: &str) -> Result<String, SaslFailure> {
    match stringprep::saslprep(password) {
        Ok(p) if !p.is_empty() => Ok(p.into_owned()),
        _ => Err(SaslFailure::MalformedRequest),
    }
}

/// SaltedPassword = Hi(SASLprep(password), salt, i); ClientKey, StoredKey = H(ClientKey), ServerKey.
///
/// A password SASLprep rejects is used as its raw UTF-8 (what non-preparing clients send);
/// validate new passwords with [`prepare_password`] to avoid that. Zero iterations count as one.
pub fn derive_credentials(alg: HashAlg, password: &str, salt: &[u8], iterations: u32) -> ScramCredentials {
    let prepared = stringprep::saslprep(password).unwrap_or(Cow::Borrowed(password));
    let iterations = iterations.max(1);
    let salted = crypto::hi(alg, prepared.as_bytes(), salt, iterations);
    let client_key = crypto::hmac(alg, &salted, b"Client Key");
    ScramCredentials {
        alg,
        salt: salt.to_vec(),
        iterations,
        stored_key: crypto::hash(alg, &client_key),
        server_key: crypto::hmac(alg, &salted, b"Server Key"),
    }
}

/// [`derive_credentials`] with a fresh random salt of [`SALT_LEN`] bytes.
pub fn new_credentials(alg: HashAlg, password: &str, iterations: u32) -> ScramCredentials {
    let salt: [u8; SALT_LEN] = rand::random();
    derive_credentials(alg, password, &salt, iterations)
}

/// Whether `password` matches `creds` (for PLAIN). Re-derives, so it costs `iterations` HMACs.
pub fn verify_password(creds: &ScramCredentials, password: &str) -> bool {
    let d = derive_credentials(creds.alg, password, &creds.salt, creds.iterations);
    // Both compared without short-circuit so timing doesn't tell which key differed.
    let ok =
        crypto::ct_eq(&d.stored_key, &creds.stored_key) & crypto::ct_eq(&d.server_key, &creds.server_key);
    ok.into()
}

/// Stand-in credentials for an unknown user, so the server-first-message doesn't reveal
/// that the account is missing: the salt is stable per (secret, alg, username), like a real
/// account's, and the keys are random so no proof can match them.
pub fn fake_credentials(alg: HashAlg, secret: &[u8], username: &str, iterations: u32) -> ScramCredentials {
    let mut input = alg.mechanism_name().as_bytes().to_vec();
    input.extend_from_slice(username.as_bytes());
    let mut salt = crypto::hmac(HashAlg::Sha256, secret, &input);
    salt.truncate(SALT_LEN);
    let len = crypto::output_len(alg);
    let mut stored_key = vec![0; len];
    let mut server_key = vec![0; len];
    rand::fill(&mut stored_key[..]);
    rand::fill(&mut server_key[..]);
    ScramCredentials {
        alg,
        salt,
        iterations: iterations.max(1),
        stored_key,
        server_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_password_true_false() {
        for alg in HashAlg::ALL {
            let creds = new_credentials(alg, "pencil", 64);
            assert_eq!(creds.salt.len(), SALT_LEN);
            assert_eq!(creds.stored_key.len(), crypto::output_len(alg));
            assert!(verify_password(&creds, "pencil"));
            assert!(!verify_password(&creds, "pencil2"));
            assert!(!verify_password(&creds, "Pencil"));
            assert!(!verify_password(&creds, ""));
        }
    }

    #[test]
    fn salts_are_random() {
        let a = new_credentials(HashAlg::Sha256, "x", 1);
        let b = new_credentials(HashAlg::Sha256, "x", 1);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
    }

    #[test]
    fn password_is_saslprepped() {
        // U+00A0 (no-break space) maps to space; U+00AD (soft hyphen) maps to nothing.
        let creds = derive_credentials(HashAlg::Sha1, "pen\u{AD}cil one", b"salt", 16);
        assert!(verify_password(&creds, "pencil\u{A0}one"));
        assert!(verify_password(&creds, "pencil one"));
        // NFKC: U+2168 (roman numeral nine) becomes "IX".
        let creds = derive_credentials(HashAlg::Sha256, "\u{2168}", b"salt", 16);
        assert!(verify_password(&creds, "IX"));
    }

    #[test]
    fn unpreparable_password_still_round_trips() {
        let creds = derive_credentials(HashAlg::Sha256, "bell\u{7}", b"salt", 16);
        assert!(verify_password(&creds, "bell\u{7}"));
        assert!(!verify_password(&creds, "bell"));
        assert_eq!(prepare_password("bell\u{7}"), Err(SaslFailure::MalformedRequest));
        assert_eq!(prepare_password("\u{AD}"), Err(SaslFailure::MalformedRequest));
        assert_eq!(prepare_password("a\u{A0}b").as_deref(), Ok("a b"));
    }

    #[test]
    fn zero_iterations_count_as_one() {
        let a = derive_credentials(HashAlg::Sha1, "p", b"s", 0);
        let b = derive_credentials(HashAlg::Sha1, "p", b"s", 1);
        assert_eq!(a, b);
    }

    #[test]
    fn fake_credentials_are_stable_and_never_verify() {
        for alg in HashAlg::ALL {
            let a = fake_credentials(alg, b"secret", "nobody", 4096);
            let b = fake_credentials(alg, b"secret", "nobody", 4096);
            assert_eq!(a.salt, b.salt);
            assert_eq!(a.salt.len(), SALT_LEN);
            assert_eq!(a.iterations, 4096);
            assert_eq!(a.stored_key.len(), crypto::output_len(alg));
            assert_ne!(a.salt, fake_credentials(alg, b"secret", "nobody2", 1).salt);
            assert_ne!(a.salt, fake_credentials(alg, b"other", "nobody", 1).salt);
            assert!(!verify_password(&a, ""));
        }
        assert_ne!(
            fake_credentials(HashAlg::Sha1, b"s", "u", 1).salt,
            fake_credentials(HashAlg::Sha256, b"s", "u", 1).salt
        );
    }
}
