//! RFC 6120 §13.9 (password guessing) and §6.4.5 (retries): how the server slows guessing
//! without locking anyone out. The policy (ARCHITECTURE.md, "Limits"): per account 5 and per
//! IP address 20 wrong passwords a minute are answered at once; past either, every answer
//! for that account or from that address, a success too, waits 250 ms, doubling up to 2 s.
//! Nothing is refused without checking the password, so the owner with the right password
//! gets in within 2 s while an attack goes on, from another address or from the attacker's
//! own (a NAT). Failures that checked no password are neither counted nor delayed.
//!
//! Every 127.x.y.z is a loopback address of its own on Linux: tests play several IPs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use conformance::scram::ScramClient;
use conformance::{ChannelBindingMode, RawClient, SaslFailure, ScramHash, TestServer, ns, xml};

/// The longest answer delay of the policy, and what a test allows on top for a loaded machine.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);
/// The backoff's first step: an answer faster than this was not held back.
const FIRST_STEP: Duration = Duration::from_millis(250);

/// A server with alice. The fewest PBKDF2 iterations RFC 7677 allows keep a PLAIN check
/// (its key derivation, in a debug build) well under the backoff's first step.
async fn with_alice() -> TestServer {
    let server = TestServer::start_with(|c| c.extra_toml = "[auth]\nscram_iterations = 4096\n".into()).await;
    server.add_user("alice", "secret").await;
    server
}

/// One PLAIN attempt on `c`: its result and how long the server took to answer.
async fn timed_plain(c: &mut RawClient, user: &str, password: &str) -> (Result<(), SaslFailure>, Duration) {
    let started = Instant::now();
    let r = c.sasl_plain(user, password).await;
    (r, started.elapsed())
}

/// A stream ready for SASL from `ip` that has not used up its attempts: the server closes a
/// stream after 5 failures, so a new one is opened every 4.
struct Guesser {
    ip: String,
    stream: Option<RawClient>,
    used: usize,
}

impl Guesser {
    fn new(ip: &str) -> Self {
        Guesser {
            ip: ip.to_string(),
            stream: None,
            used: 0,
        }
    }

    async fn guess(
        &mut self,
        server: &TestServer,
        user: &str,
        password: &str,
    ) -> (Result<(), SaslFailure>, Duration) {
        if self.stream.is_none() || self.used == 4 {
            let mut c = server.raw_starttls_from(&self.ip).await;
            c.timeout = Duration::from_secs(20);
            self.stream = Some(c);
            self.used = 0;
        }
        self.used += 1;
        timed_plain(self.stream.as_mut().expect("opened"), user, password).await
    }
}

fn assert_wrong(r: &Result<(), SaslFailure>, what: &str) {
    match r {
        Err(f) => assert_eq!(f.condition, "not-authorized", "{what}: {f:?}"),
        Ok(()) => panic!("{what}: a wrong password was accepted"),
    }
}

// The owner logs in, from another address and from the attacker's own, within the longest
// backoff while wrong guesses keep coming for the account; the guesses themselves are all
// answered (none refused unchecked) and, past the free ones, held back.
#[tokio::test]
async fn rfc6120_13_9_owner_logs_in_during_guessing_attack() {
    let server = Arc::new(with_alice().await);
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for _ in 0..2 {
        let (server, stop, wrong) = (server.clone(), stop.clone(), wrong.clone());
        attackers.push(tokio::spawn(async move {
            let mut g = Guesser::new("127.0.0.1");
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (r, took) = g.guess(&server, "alice", "guess").await;
                assert_wrong(&r, "attacker");
                wrong.fetch_add(1, Ordering::Relaxed);
                latencies.push(took);
            }
            latencies
        }));
    }
    // Far past the account's 5 free failures: answers for alice now wait the longest.
    let started = Instant::now();
    while wrong.load(Ordering::Relaxed) < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the attack did not get going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (ip, mechanism) in [("127.0.0.2", "SCRAM-SHA-256"), ("127.0.0.1", "PLAIN")] {
        let mut c = server.raw_starttls_from(ip).await;
        let started = Instant::now();
        let r = if mechanism == "PLAIN" {
            c.sasl_plain("alice", "secret").await
        } else {
            c.sasl_scram("alice", "secret", ScramHash::Sha256, ChannelBindingMode::None)
                .await
        };
        let took = started.elapsed();
        r.unwrap_or_else(|f| {
            panic!("the owner from {ip} ({mechanism}) was refused during the attack: {f:?}")
        });
        assert!(
            took <= MAX_BACKOFF + SLACK,
            "the owner from {ip} ({mechanism}) waited {took:?}"
        );
        c.restart_stream().await;
        c.bind(None).await.expect("bind");
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for a in attackers {
        latencies.extend(a.await.expect("attacker"));
    }
    let slow = latencies
        .iter()
        .filter(|d| **d >= Duration::from_millis(1900))
        .count();
    assert!(
        slow >= latencies.len().saturating_sub(8),
        "guesses past the free ones were not held back: {latencies:?}"
    );
}

// Per account: 5 wrong passwords a minute are answered at once, then 250 ms, 500 ms, 1 s,
// 2 s, 2 s... whatever address they come from (each guess here from a new one).
#[tokio::test]
async fn rfc6120_13_9_guesses_per_account_are_slowed() {
    let server = with_alice().await;
    let floors_ms: [u64; 10] = [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 2000];
    let mut took = Vec::new();
    for (i, floor) in floors_ms.iter().enumerate() {
        let mut g = Guesser::new(&format!("127.0.1.{}", i + 1));
        let (r, t) = g.guess(&server, "alice", "guess").await;
        assert_wrong(&r, &format!("guess {}", i + 1));
        assert!(
            t >= Duration::from_millis(floor.saturating_sub(20)),
            "guess {} answered after {t:?}, before its backoff of {floor} ms",
            i + 1
        );
        took.push(t);
    }
    let free: Duration = took[..5].iter().sum();
    assert!(
        free < Duration::from_secs(1),
        "the first 5 were held back: {took:?}"
    );
}

// Per IP address: 20 wrong passwords a minute (here each for another account) are answered
// at once, then 250 ms, 500 ms, 1 s, 2 s. The owner of an account behind the same address
// still logs in, within 2 s.
#[tokio::test]
async fn rfc6120_13_9_guesses_per_ip_are_slowed() {
    let server = with_alice().await;
    let mut g = Guesser::new("127.0.0.5");
    let mut took = Vec::new();
    for i in 0..24 {
        let (r, t) = g.guess(&server, &format!("nobody{i}"), "guess").await;
        assert_wrong(&r, &format!("guess {}", i + 1));
        took.push(t);
    }
    let free: Duration = took[..20].iter().sum();
    assert!(
        free < Duration::from_secs(4),
        "the first 20 were held back: {took:?}"
    );
    for (i, floor) in [230, 480, 980, 1980].iter().enumerate() {
        assert!(
            took[20 + i] >= Duration::from_millis(*floor),
            "guess {} answered after {:?}, before its backoff: {took:?}",
            21 + i,
            took[20 + i]
        );
    }
    let mut owner = server.raw_starttls_from("127.0.0.5").await;
    let (r, t) = timed_plain(&mut owner, "alice", "secret").await;
    r.unwrap_or_else(|f| panic!("the owner behind the guessing address was refused: {f:?}"));
    assert!(t <= MAX_BACKOFF + SLACK, "the owner waited {t:?}");
}

// Counting is atomic: 20 simultaneous wrong guesses for one account (each from its own
// address) cannot all pass as early ones. At most the 5 free ones are answered before the
// first backoff step; all 20 get their real verdict. SCRAM, so that the server's own work per
// guess is a few HMACs and the answer times are the backoff alone: each client computes its
// proof first, then all send their final message at once.
#[tokio::test]
async fn rfc6120_13_9_simultaneous_guesses_counted_atomically() {
    let server = with_alice().await;
    let mut ready = Vec::new();
    for i in 0..20 {
        let mut c = server.raw_starttls_from(&format!("127.0.2.{}", i + 1)).await;
        c.timeout = Duration::from_secs(20);
        let mut scram = ScramClient::new(ScramHash::Sha256, "alice", "guess", ChannelBindingMode::None);
        c.send_auth(&scram.mechanism(), Some(scram.client_first().as_bytes()))
            .await;
        let ch = c.expect_element().await;
        assert!(ch.is("challenge", ns::SASL), "{}", xml::to_string(&ch));
        let server_first = String::from_utf8(B64.decode(ch.text().trim()).expect("base64")).expect("utf-8");
        let client_final = scram.client_final(&server_first).expect("client-final");
        ready.push((c, client_final));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(ready.len()));
    let tasks: Vec<_> = ready
        .into_iter()
        .map(|(mut c, client_final)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                c.send(format!(
                    "<response xmlns='{}'>{}</response>",
                    ns::SASL,
                    B64.encode(client_final)
                ))
                .await;
                let e = c.expect_element().await;
                (e, started.elapsed())
            })
        })
        .collect();
    let mut took = Vec::new();
    for t in tasks {
        let (e, d) = t.await.expect("guess task");
        assert!(
            e.is("failure", ns::SASL) && e.has_child("not-authorized", ns::SASL),
            "a simultaneous guess got {}",
            xml::to_string(&e)
        );
        took.push(d);
    }
    took.sort();
    let early = took.iter().filter(|d| **d < FIRST_STEP).count();
    assert!(
        early <= 5,
        "{early} of 20 simultaneous guesses passed as free: {took:?}"
    );
    assert!(
        took[19] >= Duration::from_millis(1980),
        "the last of 20 simultaneous guesses was not held back the longest: {took:?}"
    );
}

/// Sends `<auth/>` with `payload` (raw bytes) for `mechanism` and reads the `<failure/>`
/// condition, with how long it took.
async fn timed_refusal(c: &mut RawClient, mechanism: &str, payload: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    c.send_auth(mechanism, Some(payload)).await;
    let e = c.expect_element().await;
    let took = started.elapsed();
    assert!(e.is("failure", ns::SASL), "{}", xml::to_string(&e));
    let cond = e
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    (cond, took)
}

// RFC 6120 §6.4.5 / RFC 5802 §6: refusals that checked no password (a channel-binding type
// the server lacks, the 'y' downgrade flag while -PLUS is offered, a malformed message, an
// unknown mechanism, an abort) come at once however many there were, and do not count: after
// 40 of them from one address, wrong passwords from it are still answered at once and the
// right one logs in at once.
#[tokio::test]
async fn rfc6120_6_4_5_refusals_without_password_check_not_counted() {
    let server = with_alice().await;
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "SCRAM-SHA-1-PLUS",
            b"p=tls-unique,,n=alice,r=abcdefgh",
            "not-authorized",
        ),
        ("SCRAM-SHA-256", b"y,,n=alice,r=abcdefgh", "not-authorized"),
        ("SCRAM-SHA-256", b"this is not scram", "malformed-request"),
        ("X-UNKNOWN", b"x", "invalid-mechanism"),
    ];
    for round in 0..10 {
        let mut c = server.raw_starttls_from("127.0.0.7").await;
        for (mechanism, payload, expected) in cases {
            let (cond, took) = timed_refusal(&mut c, mechanism, payload).await;
            assert_eq!(cond, expected, "{mechanism} {payload:?}");
            assert!(
                took < FIRST_STEP,
                "round {round}: {mechanism} refused after {took:?}: held back"
            );
        }
        // An abort in the middle of an exchange is no password check either.
        c.send_auth("SCRAM-SHA-256", Some(b"n,,n=alice,r=abcdefgh")).await;
        let ch = c.expect_element().await;
        assert!(ch.is("challenge", ns::SASL), "{}", xml::to_string(&ch));
        let started = Instant::now();
        c.send(format!("<abort xmlns='{}'/>", ns::SASL)).await;
        let e = c.expect_element().await;
        assert!(e.is("failure", ns::SASL) && e.has_child("aborted", ns::SASL));
        assert!(started.elapsed() < FIRST_STEP, "abort held back");
    }
    let mut g = Guesser::new("127.0.0.7");
    for i in 0..4 {
        let (r, t) = g.guess(&server, "alice", "typo").await;
        assert_wrong(&r, "typo");
        assert!(
            t < FIRST_STEP,
            "wrong password {} held back ({t:?}): refusals were counted",
            i + 1
        );
    }
    let mut c = server.raw_starttls_from("127.0.0.7").await;
    let (r, t) = timed_plain(&mut c, "alice", "secret").await;
    r.expect("right password");
    assert!(t < FIRST_STEP, "the right password was held back ({t:?})");
}
