//! The SOCKS5 handshake a XEP-0065 proxy accepts (§5.3, RFC 1928): no authentication, a
//! CONNECT to a domain-name address (the hex SHA-1 naming the stream), port 0.

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The destination address both parties ask for: hex SHA-1 of sid, initiator and target
/// (§5.3.2).
pub fn destination(sid: &str, initiator: &str, target: &str) -> String {
    let mut h = Sha1::new();
    h.update(sid.as_bytes());
    h.update(initiator.as_bytes());
    h.update(target.as_bytes());
    hex::encode(h.finalize())
}

/// Reads the greeting and the CONNECT request and answers them; returns the requested
/// address. Anything else is answered with a failure and `None`.
pub async fn handshake(s: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    if head[0] != 5 || head[1] == 0 {
        return Ok(None);
    }
    let mut methods = vec![0u8; head[1] as usize];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        // No acceptable method (RFC 1928 §3).
        s.write_all(&[5, 0xff]).await?;
        return Ok(None);
    }
    s.write_all(&[5, 0]).await?;
    let mut req = [0u8; 5];
    s.read_exact(&mut req).await?;
    // VER, CMD=CONNECT, RSV, ATYP=DOMAINNAME, length.
    if req[0] != 5 || req[1] != 1 || req[3] != 3 {
        let reply = if req[1] != 1 { 7 } else { 8 };
        s.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(None);
    }
    let mut address = vec![0u8; req[4] as usize];
    s.read_exact(&mut address).await?;
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    let Ok(address) = String::from_utf8(address) else {
        s.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(None);
    };
    // Succeeded, echoing the address (§5.3.3).
    let mut reply = vec![5, 0, 0, 3, address.len() as u8];
    reply.extend_from_slice(address.as_bytes());
    reply.extend_from_slice(&[0, 0]);
    s.write_all(&reply).await?;
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0065 §5.3.2 example 22's inputs.
    #[test]
    fn destination_is_sha1_of_sid_initiator_target() {
        let d = destination(
            "vxf9n471bn46",
            "requester@example.com/foo",
            "target@example.org/bar",
        );
        assert_eq!(d.len(), 40);
        let mut h = Sha1::new();
        h.update(b"vxf9n471bn46requester@example.com/footarget@example.org/bar");
        assert_eq!(d, hex::encode(h.finalize()));
    }
}
