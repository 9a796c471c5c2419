//! Exchange-level tests for `scram.rs`: RFC example exchanges, channel binding, failures, fuzz.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const SECRET: &[u8] = b"fake-user-secret";
const ITER: u32 = 16;

/// A minimal SCRAM client: builds client-final-message from server-first-message.
fn client_final(alg: HashAlg, password: &str, bare: &str, sf: &str, cbind: &[u8]) -> String {
    let mut attrs = sf.split(',');
    let nonce = &attrs.next().unwrap()[2..];
    let salt = B64.decode(&attrs.next().unwrap()[2..]).unwrap();
    let iters: u32 = attrs.next().unwrap()[2..].parse().unwrap();
    let salted = crypto::hi(alg, password.as_bytes(), &salt, iters);
    let client_key = crypto::hmac(alg, &salted, b"Client Key");
    let stored_key = crypto::hash(alg, &client_key);
    let without_proof = format!("c={},r={nonce}", B64.encode(cbind));
    let auth = format!("{bare},{sf},{without_proof}");
    let proof = crypto::xor(&client_key, &crypto::hmac(alg, &stored_key, auth.as_bytes()));
    format!("{without_proof},p={}", B64.encode(proof))
}

/// Client's view of one exchange.
struct Attempt<'a> {
    mech: Mechanism,
    gs2: &'a str,
    /// Binding data the client sees (appended to gs2 in c=).
    client_cb: &'a [u8],
    password: &'a str,
}

impl Attempt<'_> {
    fn new(mech: Mechanism) -> Self {
        Attempt {
            mech,
            gs2: "n,,",
            client_cb: &[],
            password: "pencil",
        }
    }

    /// Runs all three steps against a server whose account "user" has password "pencil".
    fn run(&self, cb: ChannelBindings, plus_offered: bool) -> Result<Vec<u8>, SaslFailure> {
        let alg = self.mech.hash().unwrap();
        let creds = derive_credentials(alg, "pencil", b"salt", ITER);
        let mut server = ScramServer::new(self.mech, cb, plus_offered);
        let bare = "n=user,r=clientnonce";
        let first = server.handle_client_first(format!("{}{bare}", self.gs2).as_bytes())?;
        assert_eq!(first.username, "user");
        let sf = String::from_utf8(server.server_first(Some(creds), SECRET, ITER)).unwrap();
        let mut cbind = self.gs2.as_bytes().to_vec();
        cbind.extend_from_slice(self.client_cb);
        let cf = client_final(alg, self.password, bare, &sf, &cbind);
        let out = server.handle_client_final(cf.as_bytes());
        assert_eq!(server.is_success(), out.is_ok());
        out
    }
}

fn both_bindings() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![0xe1; 32]),
        tls_server_end_point: Some(vec![0x5e; 32]),
    }
}

fn rfc_exchange(
    mech: Mechanism,
    cfirst: &str,
    snonce: &str,
    salt: &str,
    sfirst: &str,
    cfinal: &str,
    sfinal: &str,
) {
    let alg = mech.hash().unwrap();
    let creds = derive_credentials(alg, "pencil", &B64.decode(salt).unwrap(), 4096);
    let mut server = ScramServer::new(mech, ChannelBindings::default(), false);
    server.force_server_nonce(snonce);
    let first = server.handle_client_first(cfirst.as_bytes()).unwrap();
    assert_eq!(
        first,
        ClientFirst {
            username: "user".into(),
            authzid: None
        }
    );
    assert_eq!(server.server_first(Some(creds), SECRET, 1), sfirst.as_bytes());
    assert_eq!(
        server.handle_client_final(cfinal.as_bytes()).unwrap(),
        sfinal.as_bytes()
    );
    assert!(server.is_success());
}

#[test]
fn rfc5802_scram_sha1_example() {
    rfc_exchange(
        Mechanism::ScramSha1,
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    );
}

#[test]
fn rfc7677_scram_sha256_example() {
    rfc_exchange(
        Mechanism::ScramSha256,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    );
}

#[test]
fn random_server_nonce_is_appended() {
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
    server.handle_client_first(b"n,,n=user,r=abc").unwrap();
    let sf = String::from_utf8(server.server_first(None, SECRET, ITER)).unwrap();
    let nonce = &sf.split(',').next().unwrap()[2..];
    assert!(nonce.starts_with("abc") && nonce.len() == 3 + 24, "{sf}");
    assert!(nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','));
}

#[test]
fn both_hashes_succeed_and_wrong_password_fails() {
    for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        assert!(Attempt::new(mech).run(ChannelBindings::default(), false).is_ok());
        let wrong = Attempt {
            password: "pencil2",
            ..Attempt::new(mech)
        };
        assert_eq!(
            wrong.run(ChannelBindings::default(), false),
            Err(SaslFailure::NotAuthorized)
        );
    }
}

#[test]
fn unknown_user_gets_stable_fake_salt_then_fails() {
    let server_first = |user: &str| {
        let mut s = ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
        s.handle_client_first(format!("n,,n={user},r=abc").as_bytes())
            .unwrap();
        (String::from_utf8(s.server_first(None, SECRET, 4096)).unwrap(), s)
    };
    let (a, _) = server_first("ghost");
    let (b, mut server) = server_first("ghost");
    let (c, _) = server_first("ghost2");
    let salt = |sf: &str| sf.split(',').nth(1).unwrap().to_owned();
    assert_eq!(salt(&a), salt(&b));
    assert_ne!(salt(&a), salt(&c));
    let fake = fake_credentials(HashAlg::Sha256, SECRET, "ghost", 4096);
    assert_eq!(salt(&a), format!("s={}", B64.encode(&fake.salt)));
    assert!(a.ends_with(",i=4096"));
    // Even a client that guesses any password can't get in.
    let cf = client_final(HashAlg::Sha256, "", "n=ghost,r=abc", &b, b"n,,");
    assert_eq!(
        server.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn credentials_of_other_hash_are_treated_as_unknown() {
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
    server.handle_client_first(b"n,,n=user,r=abc").unwrap();
    let creds = derive_credentials(HashAlg::Sha1, "pencil", b"salt", ITER);
    let sf = String::from_utf8(server.server_first(Some(creds), SECRET, ITER)).unwrap();
    let cf = client_final(HashAlg::Sha256, "pencil", "n=user,r=abc", &sf, b"n,,");
    assert_eq!(
        server.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn channel_binding_success_and_mismatch() {
    for mech in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
        for (gs2, data) in [
            ("p=tls-exporter,,", vec![0xe1; 32]),
            ("p=tls-server-end-point,,", vec![0x5e; 32]),
        ] {
            let ok = Attempt {
                gs2,
                client_cb: &data,
                ..Attempt::new(mech)
            };
            assert!(ok.run(both_bindings(), true).is_ok(), "{mech:?} {gs2}");
            // A man in the middle sees other TLS data.
            let mitm = Attempt {
                gs2,
                client_cb: &[0; 32],
                ..Attempt::new(mech)
            };
            assert_eq!(mitm.run(both_bindings(), true), Err(SaslFailure::NotAuthorized));
            let none = Attempt {
                gs2,
                client_cb: &[],
                ..Attempt::new(mech)
            };
            assert_eq!(none.run(both_bindings(), true), Err(SaslFailure::NotAuthorized));
        }
    }
}

#[test]
fn channel_binding_type_without_data_fails() {
    let only_exporter = ChannelBindings {
        tls_exporter: Some(vec![1; 32]),
        ..Default::default()
    };
    for gs2 in ["p=tls-server-end-point,,", "p=tls-unique,,", "p=x.y-z,,"] {
        let a = Attempt {
            gs2,
            ..Attempt::new(Mechanism::ScramSha256Plus)
        };
        assert_eq!(
            a.run(only_exporter.clone(), true),
            Err(SaslFailure::NotAuthorized),
            "{gs2}"
        );
    }
    let a = Attempt {
        gs2: "p=tls-exporter,,",
        ..Attempt::new(Mechanism::ScramSha1Plus)
    };
    assert_eq!(
        a.run(ChannelBindings::default(), false),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn gs2_flag_must_fit_mechanism() {
    let cases = [
        (Mechanism::ScramSha256, "p=tls-exporter,,"),
        (Mechanism::ScramSha1, "p=tls-server-end-point,,"),
        (Mechanism::ScramSha256Plus, "n,,"),
        (Mechanism::ScramSha256Plus, "y,,"),
        (Mechanism::ScramSha1Plus, "n,,"),
    ];
    for (mech, gs2) in cases {
        let a = Attempt {
            gs2,
            client_cb: &[0xe1; 32],
            ..Attempt::new(mech)
        };
        assert_eq!(
            a.run(both_bindings(), true),
            Err(SaslFailure::MalformedRequest),
            "{mech:?} {gs2}"
        );
    }
}

#[test]
fn y_flag_is_a_downgrade_only_when_plus_offered() {
    let a = Attempt {
        gs2: "y,,",
        ..Attempt::new(Mechanism::ScramSha256)
    };
    assert_eq!(a.run(both_bindings(), true), Err(SaslFailure::NotAuthorized));
    assert!(a.run(ChannelBindings::default(), false).is_ok());
}

#[test]
fn c_attribute_must_echo_gs2_header() {
    // Client says "n" up front but "y" in c=: the header was tampered with.
    let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindings::default(), false);
    server.handle_client_first(b"n,,n=user,r=abc").unwrap();
    let creds = derive_credentials(HashAlg::Sha1, "pencil", b"salt", ITER);
    let sf = String::from_utf8(server.server_first(Some(creds), SECRET, ITER)).unwrap();
    let cf = client_final(HashAlg::Sha1, "pencil", "n=user,r=abc", &sf, b"y,,");
    assert_eq!(
        server.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn authzid_and_escaped_username() {
    let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
    let gs2 = "n,a=admin@example.org,";
    let bare = "n=us=2Cer=3D\u{AD}x,r=abc";
    let first = server
        .handle_client_first(format!("{gs2}{bare}").as_bytes())
        .unwrap();
    assert_eq!(first.username, "us,er=x");
    assert_eq!(first.authzid.as_deref(), Some("admin@example.org"));
    let creds = derive_credentials(HashAlg::Sha256, "pencil", b"salt", ITER);
    let sf = String::from_utf8(server.server_first(Some(creds), SECRET, ITER)).unwrap();
    let cf = client_final(HashAlg::Sha256, "pencil", bare, &sf, gs2.as_bytes());
    assert!(server.handle_client_final(cf.as_bytes()).is_ok());
}

#[test]
fn nonce_must_match() {
    let mut server = ScramServer::new(Mechanism::ScramSha1, ChannelBindings::default(), false);
    server.handle_client_first(b"n,,n=user,r=abc").unwrap();
    let creds = derive_credentials(HashAlg::Sha1, "pencil", b"salt", ITER);
    let sf = String::from_utf8(server.server_first(Some(creds), SECRET, ITER)).unwrap();
    // Replace our half of the nonce with the client's own.
    let sf = format!("r=abcXYZ,{}", sf.split_once(',').unwrap().1);
    let cf = client_final(HashAlg::Sha1, "pencil", "n=user,r=abc", &sf, b"n,,");
    assert_eq!(
        server.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn malformed_client_first() {
    let long = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE_LEN));
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=user,r=abc",
        b"p,,n=user,r=abc",
        b"p=,,n=user,r=abc",
        b"p=tls_exporter,,n=user,r=abc",
        b"n,x=admin,n=user,r=abc",
        b"n,a=,n=user,r=abc",
        b"n,a=bad=name,n=user,r=abc",
        b"n,,m=ext,n=user,r=abc",
        b"n,,r=abc,n=user",
        b"n,,n=user",
        b"n,,n=,r=abc",
        b"n,,n=user,r=",
        b"n,,n=us=er,r=abc",
        b"n,,n=us=2cer,r=abc",
        b"n,,n=user,r=ab c",
        b"n,,n=user,r=ab\xc3\xa9",
        b"n,,n=user,r=abc,",
        b"n,,n=user,r=abc,m=x",
        b"n,,n=user,r=abc,r=def",
        b"n,,n=user,r=abc,1=x",
        b"n,,n=user,r=abc,x",
        b"n,,n=user,r=abc,x=",
        b"n,,n=us\xffer,r=abc",
        b"n,,n=us\0er,r=abc",
        b"n,,n=bell\x07,r=abc",
        b"n,,n=\xc2\xad,r=abc",
        b"N,,n=user,r=abc",
        b" n,,n=user,r=abc",
        long.as_bytes(),
    ];
    for &c in cases {
        let mut server = ScramServer::new(Mechanism::ScramSha256, both_bindings(), false);
        assert_eq!(
            server.handle_client_first(c),
            Err(SaslFailure::MalformedRequest),
            "{:?}",
            String::from_utf8_lossy(c)
        );
    }
}

#[test]
fn malformed_client_final() {
    let good_proof = B64.encode([0u8; 32]);
    let long = format!("c=biws,r=abc,x={},p={good_proof}", "a".repeat(MAX_MESSAGE_LEN));
    let cases: Vec<String> = vec![
        String::new(),
        "c=biws".into(),
        "c=biws,r=abc".into(),
        format!("r=abc,c=biws,p={good_proof}"),
        format!("c=biws,p={good_proof}"),
        format!("c=biws,r=abc,p={good_proof},x=y"),
        format!("c=b!ws,r=abc,p={good_proof}"),
        format!("c=biw,r=abc,p={good_proof}"),
        format!("c=,r=abc,p={good_proof}"),
        "c=biws,r=abc,p=".into(),
        "c=biws,r=abc,p=AAAA".into(),
        "c=biws,r=abc,p=not base64".into(),
        format!("c=biws,r=abc,p={}", &good_proof[..good_proof.len() - 1]),
        format!("c=biws,r=abc,m=x,p={good_proof}"),
        format!("c=biws,r=abc,p=x,p={good_proof}"),
        format!("c=biws,r=abc,,p={good_proof}"),
        format!("c=biws,r=a\u{e9}c,p={good_proof}"),
        format!("c=biws,r=abc\0,p={good_proof}"),
        format!("e=invalid-proof,c=biws,r=abc,p={good_proof}"),
        long,
    ];
    for c in cases {
        let mut server = ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
        server.handle_client_first(b"n,,n=user,r=abc").unwrap();
        server.server_first(None, SECRET, ITER);
        assert_eq!(
            server.handle_client_final(c.as_bytes()),
            Err(SaslFailure::MalformedRequest),
            "{c:?}"
        );
    }
}

#[test]
fn steps_out_of_order_or_after_failure() {
    let new = || ScramServer::new(Mechanism::ScramSha256, ChannelBindings::default(), false);
    let cf = format!("c=biws,r=abc,p={}", B64.encode([0u8; 32]));

    let mut s = new();
    assert_eq!(
        s.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
    assert_eq!(
        s.handle_client_first(b"n,,n=user,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );

    let mut s = new();
    assert!(s.server_first(None, SECRET, ITER).is_empty());
    assert_eq!(
        s.handle_client_first(b"n,,n=user,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );

    let mut s = new();
    s.handle_client_first(b"n,,n=user,r=abc").unwrap();
    assert_eq!(
        s.handle_client_first(b"n,,n=user,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );
    assert!(s.server_first(None, SECRET, ITER).is_empty());

    let mut s = new();
    s.handle_client_first(b"n,,n=user,r=abc").unwrap();
    assert_eq!(
        s.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );

    let mut s = new();
    assert!(s.handle_client_first(b"garbage").is_err());
    assert!(s.server_first(None, SECRET, ITER).is_empty());

    let mut s = new();
    s.handle_client_first(b"n,,n=user,r=abc").unwrap();
    assert!(!s.server_first(None, SECRET, ITER).is_empty());
    assert!(s.server_first(None, SECRET, ITER).is_empty());
    assert_eq!(
        s.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );

    // A successful exchange is over too.
    let mut s = ScramServer::new(Mechanism::ScramSha1, ChannelBindings::default(), false);
    s.handle_client_first(b"n,,n=user,r=abc").unwrap();
    let creds = derive_credentials(HashAlg::Sha1, "pencil", b"salt", ITER);
    let sf = String::from_utf8(s.server_first(Some(creds), SECRET, ITER)).unwrap();
    let cf = client_final(HashAlg::Sha1, "pencil", "n=user,r=abc", &sf, b"n,,");
    assert!(s.handle_client_final(cf.as_bytes()).is_ok());
    assert_eq!(
        s.handle_client_final(cf.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
    assert!(!s.is_success());
}

#[test]
fn plain_is_not_scram() {
    let mut s = ScramServer::new(Mechanism::Plain, ChannelBindings::default(), false);
    assert_eq!(
        s.handle_client_first(b"n,,n=user,r=abc"),
        Err(SaslFailure::InvalidMechanism)
    );
}

/// Random bytes, and random damage to valid messages, into every step: errors only, no panic.
#[test]
fn fuzz_parsers_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5ca1ab1e);
    let creds = derive_credentials(HashAlg::Sha256, "pencil", b"salt", 1);
    let seeds_first: &[&[u8]] = &[
        b"n,,n=user,r=abc",
        b"p=tls-exporter,a=x=2Cy,n=u=3D,r=a,x=1",
        b"y,,n=\xc3\xa9,r=abc",
    ];
    let seed_final = client_final(
        HashAlg::Sha256,
        "pencil",
        "n=user,r=abc",
        "r=abcXYZ,s=c2FsdA==,i=1",
        b"n,,",
    );
    let mutate = |seed: &[u8], rng: &mut StdRng| -> Vec<u8> {
        let mut m = seed.to_vec();
        match rng.random_range(0..4) {
            0 => m = (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            1 => m.truncate(rng.random_range(0..=m.len())),
            _ => {
                for _ in 0..rng.random_range(1..4) {
                    if m.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..m.len());
                    m[i] = *b",=\0\xff\xc3anrcpm2CD"
                        .get(rng.random_range(0..14))
                        .unwrap_or(&0x80);
                }
            }
        }
        m
    };
    // The unmutated seed must get all the way through, or the fuzzing stops early.
    let mut s = ScramServer::new(Mechanism::ScramSha256, both_bindings(), false);
    s.force_server_nonce("XYZ");
    s.handle_client_first(b"n,,n=user,r=abc").unwrap();
    s.server_first(Some(creds.clone()), SECRET, 1);
    assert!(s.handle_client_final(seed_final.as_bytes()).is_ok());
    for _ in 0..3000 {
        let mut s = ScramServer::new(Mechanism::ScramSha256Plus, both_bindings(), true);
        let seed = seeds_first[rng.random_range(0..seeds_first.len())];
        let _ = s.handle_client_first(&mutate(seed, &mut rng));
        let mut s = ScramServer::new(Mechanism::ScramSha256, both_bindings(), false);
        s.force_server_nonce("XYZ");
        s.handle_client_first(b"n,,n=user,r=abc").unwrap();
        s.server_first(Some(creds.clone()), SECRET, 1);
        let _ = s.handle_client_final(&mutate(seed_final.as_bytes(), &mut rng));
        let _ = parse_plain(&mutate(b"authz\0user\0pencil", &mut rng));
    }
}
