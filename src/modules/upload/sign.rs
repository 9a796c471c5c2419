//! URL signatures: HMAC-SHA256 over what a URL allows, so the HTTP side needs no lookup to
//! refuse a forged or altered URL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a signature covers. The path is the decoded `<user key>/<slot id>/<filename>`.
pub enum Grant<'a> {
    Put {
        path: &'a str,
        expires: u64,
        size: u64,
        content_type: Option<&'a str>,
    },
    Get {
        path: &'a str,
        expires: u64,
    },
}

impl Grant<'_> {
    fn mac(&self, key: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        // Fields separated by a byte no field may contain (filenames and types have no
        // control characters), so two grants never serialize alike.
        match self {
            Grant::Put {
                path,
                expires,
                size,
                content_type,
            } => {
                let t = content_type.unwrap_or("");
                mac.update(format!("PUT\n{path}\n{expires}\n{size}\n{t}").as_bytes())
            }
            Grant::Get { path, expires } => mac.update(format!("GET\n{path}\n{expires}").as_bytes()),
        }
        mac
    }

    /// The signature, URL-safe base64.
    pub fn sign(&self, key: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(key).finalize().into_bytes())
    }

    /// Checks `signature` in constant time.
    pub fn verify(&self, key: &[u8], signature: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(signature) {
            Ok(bytes) => self.mac(key).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters kept).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_field() {
        let key = b"0123456789abcdef";
        let put = |size, t| Grant::Put {
            path: "u/s/a.png",
            expires: 100,
            size,
            content_type: t,
        };
        let sig = put(10, Some("image/png")).sign(key);
        assert!(put(10, Some("image/png")).verify(key, &sig));
        assert!(!put(11, Some("image/png")).verify(key, &sig));
        assert!(!put(10, Some("image/jpeg")).verify(key, &sig));
        assert!(!put(10, Some("image/png")).verify(b"another key.....", &sig));
        let get = Grant::Get {
            path: "u/s/a.png",
            expires: 100,
        };
        assert!(!get.verify(key, &sig));
        assert!(!get.verify(key, "not base64!"));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("my photo (1).jpg"), "my%20photo%20%281%29.jpg");
        assert_eq!(encode_segment("é/"), "%C3%A9%2F");
    }
}
