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

    /// Counts one event for `key`; returns the count including it. Atomic: concurrent
    /// callers each get their own position, so none can slip under a limit together.
    pub fn record(&self, key: &str) -> u32 {
        self.update(key, |_| true)
    }

    /// Counts one event for `key` if it is still allowed; `false` when over the limit.
    /// The check and the count are one step (under the key's lock).
    pub fn try_record(&self, key: &str) -> bool {
        let max = self.max();
        let mut allowed = false;
        self.update(key, |n| {
            allowed = n < max;
            allowed
        });
        allowed
    }

    /// Increments `key`'s count when `add` (given the current count) says so; the new count.
    fn update(&self, key: &str, add: impl FnOnce(u32) -> bool) -> u32 {
        let now = Instant::now();
        let mut entry = self.counts.entry(key.to_string()).or_insert((now, 0));
        if entry.0.elapsed() >= self.period {
            *entry = (now, 0);
        }
        if add(entry.1) {
            entry.1 = entry.1.saturating_add(1);
        }
        let n = entry.1;
        drop(entry);
        // Keep the map small without a background task: sweep expired keys now and then.
        if self.counts.len() > 10_000 {
            self.counts.retain(|_, (start, _)| start.elapsed() < self.period);
        }
        n
    }

    /// Forgets `key` (a successful login clears the account's failures).
    pub fn clear(&self, key: &str) {
        self.counts.remove(key);
    }
}

/// Why a connection was refused (its stream error says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address has as many connections of that kind as it may.
    PerIp,
    /// The server has as many connections as it may.
    Total,
}

/// Connections of one address: still negotiating, and authenticated.
#[derive(Debug, Default, Clone, Copy)]
struct PerIp {
    pending: usize,
    authenticated: usize,
}

/// Counts open connections: in all, and per IP address separately for those still
/// negotiating and those authenticated, so slow unauthenticated connections from an address
/// cannot take the places of its logged-in users (nor the reverse).
pub struct ConnectionLimiter {
    /// Authenticated connections per address.
    per_ip: AtomicUsize,
    /// Unauthenticated (negotiating) connections per address.
    pending_per_ip: AtomicUsize,
    total: AtomicUsize,
    open: Arc<DashMap<IpAddr, PerIp>>,
    count: Arc<AtomicUsize>,
}

/// Held for the life of a connection; releases its place when dropped.
pub struct ConnectionSlot {
    ip: IpAddr,
    authenticated: bool,
    open: Arc<DashMap<IpAddr, PerIp>>,
    count: Arc<AtomicUsize>,
}

impl ConnectionSlot {
    /// Moves the connection from its address's negotiating ones to its authenticated ones,
    /// or refuses when the address already has as many authenticated connections as allowed
    /// (the connection then stays counted as negotiating until it closes).
    pub fn authenticate(&mut self, limiter: &ConnectionLimiter) -> Result<(), Refusal> {
        if self.authenticated {
            return Ok(());
        }
        let max = limiter.per_ip.load(Ordering::Relaxed);
        let mut n = self.open.entry(self.ip).or_default();
        if n.authenticated >= max {
            return Err(Refusal::PerIp);
        }
        n.pending = n.pending.saturating_sub(1);
        n.authenticated += 1;
        self.authenticated = true;
        Ok(())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        let authenticated = self.authenticated;
        self.open.remove_if_mut(&self.ip, |_, n| {
            if authenticated {
                n.authenticated = n.authenticated.saturating_sub(1);
            } else {
                n.pending = n.pending.saturating_sub(1);
            }
            n.pending == 0 && n.authenticated == 0
        });
    }
}

impl ConnectionLimiter {
    pub fn new(per_ip: usize, pending_per_ip: usize, total: usize) -> Self {
        ConnectionLimiter {
            per_ip: AtomicUsize::new(per_ip),
            pending_per_ip: AtomicUsize::new(pending_per_ip),
            total: AtomicUsize::new(total),
            open: Arc::new(DashMap::new()),
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Changes the limits. Connections already open stay, even when now over a limit.
    pub fn set_limits(&self, per_ip: usize, pending_per_ip: usize, total: usize) {
        self.per_ip.store(per_ip, Ordering::Relaxed);
        self.pending_per_ip.store(pending_per_ip, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Takes a place for a new (unauthenticated) connection from `ip`.
    pub fn acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.total.load(Ordering::Relaxed) {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        let mut n = self.open.entry(ip).or_default();
        if n.pending >= self.pending_per_ip.load(Ordering::Relaxed) {
            drop(n);
            self.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::PerIp);
        }
        n.pending += 1;
        Ok(ConnectionSlot {
            ip,
            authenticated: false,
            open: self.open.clone(),
            count: self.count.clone(),
        })
    }

    pub fn open_connections(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// Key derivation (PBKDF2: a PLAIN login's password check) off the async runtime, a bounded
/// number at a time: in a reconnect storm the derivations queue here instead of occupying
/// the runtime's threads, so sessions already connected keep being served.
pub struct HashPool {
    permits: tokio::sync::Semaphore,
}

impl HashPool {
    /// At most `workers` derivations at once (at least one).
    pub fn new(workers: usize) -> Self {
        HashPool {
            permits: tokio::sync::Semaphore::new(workers.max(1)),
        }
    }

    /// One per core: derivation is all CPU.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Runs `work` on a blocking thread once a permit is free.
    pub async fn run<R: Send + 'static>(&self, work: impl FnOnce() -> R + Send + 'static) -> R {
        // Never closed: acquiring only waits.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
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
    fn window_counts_are_atomic_under_contention() {
        let l = Arc::new(WindowLimiter::new(5, Duration::from_secs(60)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let counts: Vec<u32> = (0..500).map(|_| l.record("k")).collect();
                    let allowed = (0..50).filter(|_| l.try_record("t")).count();
                    (counts, allowed)
                })
            })
            .collect();
        let mut seen = Vec::new();
        let mut allowed = 0;
        for t in threads {
            let (counts, a) = t.join().unwrap();
            seen.extend(counts);
            allowed += a;
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (1..=4000).collect::<Vec<u32>>(),
            "every caller got its own position"
        );
        assert_eq!(allowed, 5, "try_record let exactly the limit through");
    }

    #[test]
    fn connection_slots_are_released_on_drop() {
        let l = ConnectionLimiter::new(10, 2, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.acquire(ip).unwrap();
        let _b = l.acquire(ip).unwrap();
        assert_eq!(l.acquire(ip).err(), Some(Refusal::PerIp));
        let _c = l.acquire("127.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(
            l.acquire("127.0.0.3".parse().unwrap()).err(),
            Some(Refusal::Total)
        );
        drop(a);
        let _d = l.acquire(ip).expect("a released slot is free again");
        assert_eq!(l.open_connections(), 3);
    }

    #[test]
    fn authenticated_connections_leave_the_negotiating_count() {
        let l = ConnectionLimiter::new(2, 1, 100);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut a = l.acquire(ip).unwrap();
        assert_eq!(
            l.acquire(ip).err(),
            Some(Refusal::PerIp),
            "one negotiating at a time"
        );
        a.authenticate(&l).unwrap();
        let mut b = l
            .acquire(ip)
            .expect("the authenticated one no longer counts as negotiating");
        b.authenticate(&l).unwrap();
        let mut c = l.acquire(ip).unwrap();
        assert_eq!(
            c.authenticate(&l),
            Err(Refusal::PerIp),
            "two authenticated at most"
        );
        drop(c);
        drop(a);
        let mut d = l.acquire(ip).unwrap();
        d.authenticate(&l)
            .expect("a released authenticated place is free again");
        drop((b, d));
        assert_eq!(l.open_connections(), 0);
        assert!(
            l.open.is_empty(),
            "no entry left for an address without connections"
        );
    }

    #[test]
    fn connection_limits_change_live() {
        let l = ConnectionLimiter::new(10, 1, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _a = l.acquire(ip).unwrap();
        assert!(l.acquire(ip).is_err());
        l.set_limits(10, 2, 10);
        let _b = l.acquire(ip).expect("raised per-IP limit");
        l.set_limits(10, 2, 2);
        assert_eq!(
            l.acquire("127.0.0.2".parse().unwrap()).err(),
            Some(Refusal::Total),
            "total lowered"
        );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_pool_runs_at_most_its_workers_at_once() {
        let pool = Arc::new(HashPool::new(2));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (pool, active, peak) = (pool.clone(), active.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        active.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .await
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 2, "bounded, and the bound is used");
    }
}
