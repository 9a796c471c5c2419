//! Counting limiters: failures per window (auth, registration) and connections per IP.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Allows `max` events per key in a fixed window; the window restarts after `period`.
pub struct WindowLimiter {
    max: u32,
    period: Duration,
    counts: DashMap<String, (Instant, u32)>,
}

impl WindowLimiter {
    pub fn new(max: u32, period: Duration) -> Self {
        WindowLimiter {
            max,
            period,
            counts: DashMap::new(),
        }
    }

    /// Whether another event is still allowed for `key`.
    pub fn allowed(&self, key: &str) -> bool {
        match self.counts.get(key) {
            Some(entry) => {
                let (start, n) = *entry;
                start.elapsed() >= self.period || n < self.max
            }
            None => true,
        }
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut entry = self.counts.entry(key.to_string()).or_insert((now, 0));
        if entry.0.elapsed() >= self.period {
            *entry = (now, 0);
        }
        entry.1 += 1;
        drop(entry);
        // Keep the map small without a background task: sweep expired keys now and then.
        if self.counts.len() > 10_000 {
            self.counts.retain(|_, (start, _)| start.elapsed() < self.period);
        }
    }

    /// Forgets `key` (a successful login clears the account's failures).
    pub fn clear(&self, key: &str) {
        self.counts.remove(key);
    }
}

/// Counts open connections per IP address and in all.
pub struct ConnectionLimiter {
    per_ip: usize,
    total: usize,
    open: Arc<DashMap<IpAddr, usize>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

/// Held for the life of a connection; releases its slot when dropped.
pub struct ConnectionSlot {
    ip: IpAddr,
    open: Arc<DashMap<IpAddr, usize>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.open.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl ConnectionLimiter {
    pub fn new(per_ip: usize, total: usize) -> Self {
        ConnectionLimiter {
            per_ip,
            total,
            open: Arc::new(DashMap::new()),
            count: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// Takes a slot for `ip`, or `None` when it or the server is at its limit.
    pub fn acquire(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        use std::sync::atomic::Ordering;
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.total {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            drop(n);
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            ip,
            open: self.open.clone(),
            count: self.count.clone(),
        })
    }

    pub fn open_connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_then_recovers() {
        let l = WindowLimiter::new(2, Duration::from_millis(50));
        assert!(l.allowed("k"));
        l.record("k");
        l.record("k");
        assert!(!l.allowed("k"));
        assert!(l.allowed("other"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.allowed("k"));
        l.record("k");
        l.clear("k");
        assert!(l.allowed("k"));
    }

    #[test]
    fn connection_slots_are_released_on_drop() {
        let l = ConnectionLimiter::new(2, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.acquire(ip).unwrap();
        let _b = l.acquire(ip).unwrap();
        assert!(l.acquire(ip).is_none());
        let _c = l.acquire("127.0.0.2".parse().unwrap()).unwrap();
        assert!(l.acquire("127.0.0.3".parse().unwrap()).is_none());
        drop(a);
        let _d = l.acquire(ip).expect("a released slot is free again");
        assert_eq!(l.open_connections(), 3);
    }
}
