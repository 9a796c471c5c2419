//! Counting limiters: failures per window (auth, registration), connections per IP, and the
//! token buckets that pace one session's reads. Every limit can be changed on a live server
//! (a configuration reload): the numbers are atomics, read on each check.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Allows `max` events per key in a fixed window; the window restarts after `period`.
pub struct WindowLimiter {
    max: AtomicU32,
    period: Duration,
    counts: DashMap<String, (Instant, u32)>,
}

impl WindowLimiter {
    pub fn new(max: u32, period: Duration) -> Self {
        WindowLimiter {
            max: AtomicU32::new(max),
            period,
            counts: DashMap::new(),
        }
    }

    /// Changes the limit; counts already made stay.
    pub fn set_max(&self, max: u32) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// Whether another event is still allowed for `key`.
    pub fn allowed(&self, key: &str) -> bool {
        self.count(key) < self.max()
    }

    /// Events counted for `key` in its current window.
    pub fn count(&self, key: &str) -> u32 {
        match self.counts.get(key) {
            Some(entry) if entry.0.elapsed() < self.period => entry.1,
            _ => 0,
        }
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut entry = self.counts.entry(key.to_string()).or_insert((now, 0));
        if entry.0.elapsed() >= self.period {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        drop(entry);
        // Keep the map small without a background task: sweep expired keys now and then.
        if self.counts.len() > 10_000 {
            self.counts.retain(|_, (start, _)| start.elapsed() < self.period);
        }
    }

    /// Counts one event for `key` if it is still allowed; `false` when over the limit.
    pub fn try_record(&self, key: &str) -> bool {
        if !self.allowed(key) {
            return false;
        }
        self.record(key);
        true
    }

    /// Forgets `key` (a successful login clears the account's failures).
    pub fn clear(&self, key: &str) {
        self.counts.remove(key);
    }
}

/// Counts open connections per IP address and in all.
pub struct ConnectionLimiter {
    per_ip: AtomicUsize,
    total: AtomicUsize,
    open: Arc<DashMap<IpAddr, usize>>,
    count: Arc<AtomicUsize>,
}

/// Held for the life of a connection; releases its slot when dropped.
pub struct ConnectionSlot {
    ip: IpAddr,
    open: Arc<DashMap<IpAddr, usize>>,
    count: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.open.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl ConnectionLimiter {
    pub fn new(per_ip: usize, total: usize) -> Self {
        ConnectionLimiter {
            per_ip: AtomicUsize::new(per_ip),
            total: AtomicUsize::new(total),
            open: Arc::new(DashMap::new()),
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Changes both limits. Connections already open stay, even when now over a limit.
    pub fn set_limits(&self, per_ip: usize, total: usize) {
        self.per_ip.store(per_ip, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Takes a slot for `ip`, or `None` when it or the server is at its limit.
    pub fn acquire(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.total.load(Ordering::Relaxed) {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= self.per_ip.load(Ordering::Relaxed) {
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
        self.count.load(Ordering::Acquire)
    }
}

/// A token bucket that may go into debt: `take` always succeeds and returns how long the
/// caller must now wait before the balance is back to zero. Taking what a stanza costs and
/// then waiting (instead of refusing it) means any stanza passes, however large, only slower.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens added per second; 0 = unlimited.
    rate: f64,
    /// Most tokens the bucket holds (the burst allowed after a quiet period).
    burst: f64,
    balance: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` 0 never limits.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self::new_at(rate, burst, Instant::now())
    }

    fn new_at(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            balance: burst,
            updated: now,
        }
    }

    /// Changes rate and burst, keeping the balance (capped at the new burst).
    pub fn set(&mut self, rate: u32, burst: u32) {
        self.set_at(rate, burst, Instant::now());
    }

    fn set_at(&mut self, rate: u32, burst: u32, now: Instant) {
        self.refill(now);
        self.rate = f64::from(rate);
        self.burst = f64::from(burst.max(1));
        self.balance = self.balance.min(self.burst);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = self.updated.max(now);
        self.balance = (self.balance + elapsed * self.rate).min(self.burst);
    }

    /// Spends `n` tokens; the wait until the balance is no longer negative (zero when none).
    pub fn take(&mut self, n: u64) -> Duration {
        self.take_at(n, Instant::now())
    }

    fn take_at(&mut self, n: u64, now: Instant) -> Duration {
        if self.rate == 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        self.balance -= n as f64;
        if self.balance >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.balance / self.rate)
    }

    /// Whether `n` tokens are available now (without spending them).
    pub fn has(&mut self, n: u64) -> bool {
        self.has_at(n, Instant::now())
    }

    fn has_at(&mut self, n: u64, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        self.refill(now);
        self.balance >= n as f64
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
        assert_eq!(l.count("k"), 2);
        assert!(l.allowed("other"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.allowed("k"));
        assert_eq!(l.count("k"), 0);
        l.record("k");
        l.clear("k");
        assert!(l.allowed("k"));
    }

    #[test]
    fn window_limit_changes_take_effect_at_once() {
        let l = WindowLimiter::new(5, Duration::from_secs(60));
        assert!(l.try_record("k"));
        assert!(l.try_record("k"));
        l.set_max(2);
        assert!(!l.try_record("k"), "already at the lowered limit");
        l.set_max(3);
        assert!(l.try_record("k"));
        assert!(!l.try_record("k"));
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

    #[test]
    fn connection_limits_change_live() {
        let l = ConnectionLimiter::new(1, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _a = l.acquire(ip).unwrap();
        assert!(l.acquire(ip).is_none());
        l.set_limits(2, 10);
        let _b = l.acquire(ip).expect("raised per-IP limit");
        l.set_limits(2, 2);
        assert!(l.acquire("127.0.0.2".parse().unwrap()).is_none(), "total lowered");
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn token_bucket_allows_burst_then_paces() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut b = TokenBucket::new_at(10, 5, t);
        for _ in 0..5 {
            assert_eq!(b.take_at(1, t), Duration::ZERO, "within the burst");
        }
        // One over: a tenth of a second of debt at 10 per second.
        assert!(close(b.take_at(1, t), ms(100)));
        assert!(!b.has_at(1, t + ms(100)), "debt paid back, nothing more yet");
        // Refills to the burst at most.
        let later = t + Duration::from_secs(10);
        assert!(b.has_at(5, later));
        assert_eq!(b.take_at(5, later), Duration::ZERO);
        assert!(!b.has_at(1, later));
    }

    #[test]
    fn token_bucket_large_cost_is_debt_not_refusal() {
        let t = Instant::now();
        let mut b = TokenBucket::new_at(1000, 100, t);
        assert!(close(b.take_at(2100, t), Duration::from_secs(2)));
    }

    #[test]
    fn token_bucket_zero_rate_is_unlimited_and_changes_live() {
        let t = Instant::now();
        let mut b = TokenBucket::new_at(0, 1, t);
        assert_eq!(b.take_at(1_000_000, t), Duration::ZERO);
        let mut b = TokenBucket::new_at(100, 100, t);
        assert_eq!(b.take_at(100, t), Duration::ZERO);
        b.set_at(10, 10, t);
        assert!(
            close(b.take_at(1, t), Duration::from_millis(100)),
            "the lowered rate applies"
        );
    }
}
