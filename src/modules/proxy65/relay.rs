//! Connections that completed the SOCKS5 handshake wait here, by requested address, for
//! their peer and for the initiator's activation; an activated pair is relayed both ways
//! under the per-transfer size cap and rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::socks5;
use crate::error::StanzaError;
use crate::server::Server;

const BUFFER: usize = 64 * 1024;

/// The proxy's shared state.
#[derive(Default)]
pub struct Relay {
    /// (host, port) clients are told to connect to; set once the listener is bound.
    streamhost: OnceLock<(String, u16)>,
    /// Connections waiting, by requested address: the first, then its peer. Never locked
    /// across an await.
    waiting: Mutex<HashMap<String, Vec<Parked>>>,
    next_id: AtomicU64,
    /// Open connections (waiting or relaying) by client address.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// A waiting connection: its id, the stream, and its place in the per-address count.
type Parked = (u64, TcpStream, IpSlot);

/// One connection counted against its address; uncounted when dropped (with the stream).
pub struct IpSlot {
    relay: Arc<Relay>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.relay.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Relay {
    pub fn set_streamhost(&self, host: String, port: u16) {
        let _ = self.streamhost.set((host, port));
    }

    pub fn streamhost(&self) -> Option<(String, u16)> {
        self.streamhost.get().cloned()
    }

    /// Counts a new connection from `ip`; `None` when that address has `max` open already.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<IpSlot> {
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            relay: self.clone(),
            ip,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Parked>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a connection; `false` (and it is dropped) when two already wait there.
    fn park(&self, address: &str, id: u64, stream: TcpStream, slot: IpSlot) -> bool {
        let mut waiting = self.lock();
        let pair = waiting.entry(address.to_string()).or_default();
        if pair.len() >= 2 {
            return false;
        }
        pair.push((id, stream, slot));
        true
    }

    /// Drops connection `id` if it still waits (its activation timed out).
    fn expire(&self, address: &str, id: u64) {
        let mut waiting = self.lock();
        if let Some(pair) = waiting.get_mut(address) {
            pair.retain(|(i, _, _)| *i != id);
            if pair.is_empty() {
                waiting.remove(address);
            }
        }
    }

    /// §6.3.2: relays the two connections waiting at `address`.
    pub fn activate(&self, server: &Server, address: &str) -> Result<(), StanzaError> {
        let pair = {
            let mut waiting = self.lock();
            match waiting.get(address) {
                Some(pair) if pair.len() == 2 => waiting.remove(address),
                _ => None,
            }
        };
        let Some(mut pair) = pair else {
            return Err(StanzaError::item_not_found().text("both parties must be connected to the proxy"));
        };
        let (_, b, b_slot) = pair.pop().expect("two connections");
        let (_, a, a_slot) = pair.pop().expect("two connections");
        let config = &server.config().proxy65;
        let limits = Limits {
            max: config.max_transfer_size,
            rate: config.bytes_per_second,
        };
        tokio::spawn(async move {
            relay(a, b, limits).await;
            // Both addresses count these connections until the relay ends.
            drop((a_slot, b_slot));
        });
        Ok(())
    }
}

/// Accepts SOCKS5 connections until `stop`.
pub async fn accept(
    relay: Arc<Relay>,
    server: Arc<Server>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let max = server.config().proxy65.max_connections_per_ip;
                    match relay.admit(peer.ip(), max) {
                        Some(slot) => {
                            tokio::spawn(connection(relay.clone(), server.clone(), stream, slot));
                        }
                        // Dropped: closed at once.
                        None => tracing::debug!(ip = %peer.ip(), "proxy65: too many connections from one address"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "proxy65: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// One connection: the handshake, then waiting (bounded) for activation.
async fn connection(relay: Arc<Relay>, server: Arc<Server>, mut stream: TcpStream, slot: IpSlot) {
    let wait = Duration::from_secs(server.config().proxy65.activation_timeout_secs);
    let address = match tokio::time::timeout(wait, socks5::handshake(&mut stream)).await {
        Ok(Ok(Some(address))) => address,
        _ => return,
    };
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    if !relay.park(&address, id, stream, slot) {
        return;
    }
    tokio::time::sleep(wait).await;
    relay.expire(&address, id);
}

#[derive(Clone, Copy)]
struct Limits {
    /// Bytes both directions may carry together.
    max: u64,
    /// Bytes per second per direction; 0: no limit.
    rate: u64,
}

/// Relays until both sides are done, or the cap is reached (then both are closed).
async fn relay(a: TcpStream, b: TcpStream, limits: Limits) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let total = Arc::new(AtomicU64::new(0));
    let one = copy(ar, bw, total.clone(), limits);
    let two = copy(br, aw, total.clone(), limits);
    tokio::pin!(one, two);
    let (mut one_done, mut two_done) = (false, false);
    while !(one_done && two_done) {
        let ended = tokio::select! {
            e = &mut one, if !one_done => { one_done = true; e }
            e = &mut two, if !two_done => { two_done = true; e }
        };
        if ended == Ended::Cut {
            tracing::info!(
                bytes = total.load(Ordering::Relaxed),
                "proxy65: transfer cut at the size cap"
            );
            return;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Ended {
    /// End of stream or a failed socket: the other direction may go on.
    Done,
    /// The cap was reached: the whole transfer ends.
    Cut,
}

async fn copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    total: Arc<AtomicU64>,
    limits: Limits,
) -> Ended {
    let mut buf = vec![0u8; BUFFER];
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Ended::Done;
            }
            Ok(n) => n as u64,
        };
        let before = total.fetch_add(n, Ordering::Relaxed);
        let allowed = limits.max.saturating_sub(before).min(n);
        if allowed > 0 && to.write_all(&buf[..allowed as usize]).await.is_err() {
            return Ended::Done;
        }
        if allowed < n {
            let _ = to.shutdown().await;
            return Ended::Cut;
        }
        sent += n;
        if limits.rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(sent as f64 / limits.rate as f64)).await;
        }
    }
}
