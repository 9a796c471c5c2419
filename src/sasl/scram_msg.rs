//! Parsing of the client's SCRAM messages (RFC 5802 §7). Syntax only: every error is
//! `MalformedRequest`; what the values mean is checked in `scram.rs`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{MAX_MESSAGE_LEN, SaslFailure};

const MALFORMED: SaslFailure = SaslFailure::MalformedRequest;

/// The gs2-cbind-flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CbFlag {
    /// "n": client does not support channel binding.
    None,
    /// "y": client supports it but thinks the server does not.
    ClientOnly,
    /// "p=name": client requires binding of this type.
    Binding(String),
}

#[derive(Debug)]
pub(crate) struct ClientFirstMsg {
    pub cb_flag: CbFlag,
    /// Including both trailing commas: exactly what must come back in `c=`.
    pub gs2_header: String,
    pub authzid: Option<String>,
    /// Decoded from saslname, not yet SASLprepped.
    pub username: String,
    pub nonce: String,
    pub bare: String,
}

#[derive(Debug)]
pub(crate) struct ClientFinalMsg {
    pub cb_data: Vec<u8>,
    pub nonce: String,
    pub without_proof: String,
    pub proof: Vec<u8>,
}

/// Common gate: size, UTF-8, no NUL (no SCRAM value may contain one).
fn as_text(msg: &[u8]) -> Result<&str, SaslFailure> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(MALFORMED);
    }
    let s = std::str::from_utf8(msg).map_err(|_| MALFORMED)?;
    if s.contains('\0') {
        return Err(MALFORMED);
    }
    Ok(s)
}

pub(crate) fn parse_client_first(msg: &[u8]) -> Result<ClientFirstMsg, SaslFailure> {
    let s = as_text(msg)?;
    let (flag, rest) = s.split_once(',').ok_or(MALFORMED)?;
    let (authz, bare) = rest.split_once(',').ok_or(MALFORMED)?;
    let cb_flag = match flag {
        "n" => CbFlag::None,
        "y" => CbFlag::ClientOnly,
        _ => {
            let name = flag.strip_prefix("p=").ok_or(MALFORMED)?;
            let valid = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
            if name.is_empty() || !name.chars().all(valid) {
                return Err(MALFORMED);
            }
            CbFlag::Binding(name.to_owned())
        }
    };
    let authzid = match authz {
        "" => None,
        _ => Some(decode_saslname(authz.strip_prefix("a=").ok_or(MALFORMED)?)?),
    };
    let gs2_header = s[..s.len() - bare.len()].to_owned();

    // A leading "m=" (mandatory extension) lands here too and is refused: we know none.
    let mut attrs = bare.split(',');
    let username = decode_saslname(attr(attrs.next(), b'n')?)?;
    let nonce = nonce(attr(attrs.next(), b'r')?)?;
    attrs.try_for_each(extension)?;
    Ok(ClientFirstMsg {
        cb_flag,
        gs2_header,
        authzid,
        username,
        nonce,
        bare: bare.to_owned(),
    })
}

pub(crate) fn parse_client_final(msg: &[u8]) -> Result<ClientFinalMsg, SaslFailure> {
    let s = as_text(msg)?;
    // The proof is always last, and base64 has no commas.
    let (without_proof, proof) = s.rsplit_once(',').ok_or(MALFORMED)?;
    let proof = base64(attr(Some(proof), b'p')?)?;
    let mut attrs = without_proof.split(',');
    let cb_data = base64(attr(attrs.next(), b'c')?)?;
    let nonce = nonce(attr(attrs.next(), b'r')?)?;
    attrs.try_for_each(extension)?;
    Ok(ClientFinalMsg {
        cb_data,
        nonce,
        without_proof: without_proof.to_owned(),
        proof,
    })
}

/// The non-empty value of `name=value`, if `a` is that attribute.
fn attr(a: Option<&str>, name: u8) -> Result<&str, SaslFailure> {
    match a {
        Some(a) if a.len() > 2 && a.as_bytes()[0] == name && a.as_bytes()[1] == b'=' => Ok(&a[2..]),
        _ => Err(MALFORMED),
    }
}

/// An optional extension (`attr-val`). Names of RFC 5802's own attributes, in particular
/// "m" (which demands understanding), are refused here.
fn extension(a: &str) -> Result<(), SaslFailure> {
    let b = a.as_bytes();
    let ok = b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b'=' && !b"amnrcsipev".contains(&b[0]);
    if ok { Ok(()) } else { Err(MALFORMED) }
}

/// printable = %x21-2B / %x2D-7E (commas are already split off).
fn nonce(v: &str) -> Result<String, SaslFailure> {
    if v.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Ok(v.to_owned())
    } else {
        Err(MALFORMED)
    }
}

fn base64(v: &str) -> Result<Vec<u8>, SaslFailure> {
    B64.decode(v).map_err(|_| MALFORMED)
}

/// saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
pub(crate) fn decode_saslname(s: &str) -> Result<String, SaslFailure> {
    if s.is_empty() {
        return Err(MALFORMED);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(MALFORMED);
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_decoding() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
        assert_eq!(decode_saslname("=3D=3D").as_deref(), Ok("=="));
        for bad in ["", "=", "a=", "a=2", "a=2c", "=41", "a=3d"] {
            assert_eq!(decode_saslname(bad), Err(MALFORMED), "{bad:?}");
        }
    }

    #[test]
    fn client_first_fields() {
        let m = parse_client_first(b"p=tls-exporter,a=admin=2Cx,n=us=3Der,r=abc,x=ext").unwrap();
        assert_eq!(m.cb_flag, CbFlag::Binding("tls-exporter".into()));
        assert_eq!(m.gs2_header, "p=tls-exporter,a=admin=2Cx,");
        assert_eq!(m.authzid.as_deref(), Some("admin,x"));
        assert_eq!(m.username, "us=er");
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.bare, "n=us=3Der,r=abc,x=ext");
    }

    #[test]
    fn client_final_fields() {
        let m = parse_client_final(b"c=biws,r=abc,y=1,p=AAEC").unwrap();
        assert_eq!(m.cb_data, b"n,,");
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.without_proof, "c=biws,r=abc,y=1");
        assert_eq!(m.proof, [0, 1, 2]);
    }
}
