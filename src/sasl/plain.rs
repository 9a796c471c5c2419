//! PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`. Only offer it over TLS.

use super::{MAX_MESSAGE_LEN, SaslFailure, prepare_password};

/// Longest authzid, authcid or password accepted, in bytes (RFC 4616 requires 255).
pub const MAX_FIELD_LEN: usize = 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct PlainMessage {
    /// As sent (not prepared), None when empty; usually a bare JID.
    pub authzid: Option<String>,
    /// SASLprepped.
    pub authcid: String,
    /// SASLprepped; [`verify_password`](super::verify_password) preps again, which is a no-op.
    pub password: String,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

/// Parse a PLAIN message. Anything not UTF-8, without exactly two NULs, with an empty
/// authcid or password, a field over [`MAX_FIELD_LEN`], or failing SASLprep: `MalformedRequest`.
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage, SaslFailure> {
    const MALFORMED: SaslFailure = SaslFailure::MalformedRequest;
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(MALFORMED);
    }
    let s = std::str::from_utf8(msg).map_err(|_| MALFORMED)?;
    let mut parts = s.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MALFORMED);
    };
    if [authzid, authcid, password]
        .iter()
        .any(|f| f.len() > MAX_FIELD_LEN)
    {
        return Err(MALFORMED);
    }
    let authcid = match stringprep::saslprep(authcid) {
        Ok(a) if !a.is_empty() => a.into_owned(),
        _ => return Err(MALFORMED),
    };
    Ok(PlainMessage {
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        authcid,
        password: prepare_password(password)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(msg: &[u8]) -> PlainMessage {
        parse_plain(msg).unwrap_or_else(|e| panic!("{msg:?}: {e}"))
    }

    #[test]
    fn basic() {
        let m = ok(b"\0user\0pencil");
        assert_eq!(m.authzid, None);
        assert_eq!(m.authcid, "user");
        assert_eq!(m.password, "pencil");
        let m = ok(b"admin@example.org\0user\0pen cil");
        assert_eq!(m.authzid.as_deref(), Some("admin@example.org"));
        assert_eq!(m.password, "pen cil");
    }

    #[test]
    fn saslprep_applies() {
        let m = ok("\0us\u{AD}er\0pen\u{A0}cil\u{2168}".as_bytes());
        assert_eq!(m.authcid, "user");
        assert_eq!(m.password, "pen cilIX");
        // Non-ASCII that survives preparation.
        let m = ok("\0jürgen\0pässwörd".as_bytes());
        assert_eq!(m.authcid, "jürgen");
        assert_eq!(m.password, "pässwörd");
    }

    #[test]
    fn password_may_hold_anything_but_nul() {
        assert_eq!(ok(b"\0u\0=,:@\\'\"").password, "=,:@\\'\"");
    }

    #[test]
    fn max_field_len_is_inclusive() {
        let long = "a".repeat(MAX_FIELD_LEN);
        assert_eq!(ok(format!("\0{long}\0{long}").as_bytes()).authcid, long);
    }

    #[test]
    fn malformed() {
        let long = "a".repeat(MAX_FIELD_LEN + 1);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"user".to_vec(),
            b"user\0pencil".to_vec(),
            b"\0\0pencil".to_vec(),
            b"\0user\0".to_vec(),
            b"\0user\0pen\0cil".to_vec(),
            b"\0\0".to_vec(),
            b"\0\0\0".to_vec(),
            b"\0us\xffer\0pencil".to_vec(),
            b"\0user\0\xc3".to_vec(),
            "\0user\0bell\u{7}".as_bytes().to_vec(),
            "\0us\u{7}er\0pencil".as_bytes().to_vec(),
            "\0\u{AD}\0pencil".as_bytes().to_vec(),
            "\0user\0\u{AD}".as_bytes().to_vec(),
            "\0user\0\u{E000}".as_bytes().to_vec(), // private use
            format!("\0{long}\0p").into_bytes(),
            format!("\0u\0{long}").into_bytes(),
            format!("{long}\0u\0p").into_bytes(),
            vec![b'a'; MAX_MESSAGE_LEN + 1],
        ];
        for c in cases {
            assert_eq!(
                parse_plain(&c).map(|_| ()),
                Err(SaslFailure::MalformedRequest),
                "{c:?}"
            );
        }
    }
}
