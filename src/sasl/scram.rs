//! Server side of SCRAM (RFC 5802, RFC 7677) with channel binding (RFC 5929, RFC 9266).
//!
//! Failure mapping (RFC 5802's `e=` values have no XMPP equivalent, so we use RFC 6120 §6.5):
//! * syntax errors, an `m=` extension, a step out of order or after a failure,
//!   `p=` on a non-PLUS mechanism, or no `p=` on a PLUS one: `MalformedRequest`;
//! * `p=` naming a binding type we have no data for (RFC 5802's
//!   `channel-binding-not-supported`): `NotAuthorized`, since the request is well-formed
//!   but we cannot authenticate it as asked;
//! * `y` while we offered -PLUS (a downgrade), a `c=` or nonce mismatch, a wrong proof,
//!   or an unknown user: `NotAuthorized`.

use std::mem;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::Choice;

use super::scram_msg::{CbFlag, parse_client_final, parse_client_first};
use super::{ChannelBindings, HashAlg, Mechanism, SaslFailure, ScramCredentials};
use super::{crypto, fake_credentials};

/// Random bytes in our half of the nonce (base64: 24 printable characters).
const SERVER_NONCE_BYTES: usize = 18;

/// What the client-first-message asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The authcid after SASLprep: look credentials up by this.
    pub username: String,
    /// The authzid as sent (unescaped, not prepared), if any; usually a bare JID.
    pub authzid: Option<String>,
}

/// One SCRAM exchange. Steps: [`handle_client_first`](Self::handle_client_first),
/// [`server_first`](Self::server_first), [`handle_client_final`](Self::handle_client_final).
pub struct ScramServer {
    mech: Mechanism,
    cb: ChannelBindings,
    plus_offered: bool,
    state: State,
    /// Whether a client proof was compared with the credentials (a password was tried).
    proof_checked: bool,
    #[cfg(test)]
    forced_nonce: Option<String>,
}

enum State {
    Start,
    GotClientFirst {
        username: String,
        client_nonce: String,
        bare: String,
        /// gs2 header plus binding data: what `c=` must decode to.
        expected_cb: Vec<u8>,
    },
    SentServerFirst {
        nonce: String,
        /// client-first-message-bare "," server-first-message
        auth_prefix: String,
        expected_cb: Vec<u8>,
        creds: ScramCredentials,
        fake: bool,
    },
    Done,
    Failed,
}

impl ScramServer {
    /// `plus_offered`: whether this server advertised -PLUS mechanisms on this connection (for the 'y' downgrade check).
    pub fn new(mech: Mechanism, cb: ChannelBindings, plus_offered: bool) -> Self {
        ScramServer {
            mech,
            cb,
            plus_offered,
            state: State::Start,
            proof_checked: false,
            #[cfg(test)]
            forced_nonce: None,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// True once the client's proof has been accepted.
    pub fn is_success(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the exchange got as far as comparing the client's proof, i.e. tried a
    /// password. Failures before that (syntax, channel binding, downgrade, nonce) did not:
    /// they say nothing about the password, so they are neither counted nor slowed down.
    pub fn proof_checked(&self) -> bool {
        self.proof_checked
    }

    /// Test hook: use this server nonce instead of a random one (RFC example exchanges).
    #[cfg(test)]
    pub(crate) fn force_server_nonce(&mut self, nonce: &str) {
        self.forced_nonce = Some(nonce.to_owned());
    }

    /// Parse client-first-message (RFC 5802 §7). Returns the SASLprepped username and authzid.
    /// PLAIN is not SCRAM: a server made for it fails here with `InvalidMechanism`.
    pub fn handle_client_first(&mut self, msg: &[u8]) -> Result<ClientFirst, SaslFailure> {
        // Any error leaves the exchange Failed, so later steps are refused.
        if !matches!(mem::replace(&mut self.state, State::Failed), State::Start) {
            return Err(SaslFailure::MalformedRequest);
        }
        if self.mech.hash().is_none() {
            return Err(SaslFailure::InvalidMechanism);
        }
        let m = parse_client_first(msg)?;
        let cb_data = self.binding_data(&m.cb_flag)?;
        let username = match stringprep::saslprep(&m.username) {
            Ok(u) if !u.is_empty() => u.into_owned(),
            _ => return Err(SaslFailure::MalformedRequest),
        };
        let mut expected_cb = m.gs2_header.into_bytes();
        expected_cb.extend_from_slice(cb_data);
        self.state = State::GotClientFirst {
            username: username.clone(),
            client_nonce: m.nonce,
            bare: m.bare,
            expected_cb,
        };
        Ok(ClientFirst {
            username,
            authzid: m.authzid,
        })
    }

    /// Binding data the client must prove it sees, after the downgrade and PLUS checks.
    fn binding_data(&self, flag: &CbFlag) -> Result<&[u8], SaslFailure> {
        match (flag, self.mech.is_plus()) {
            (CbFlag::Binding(name), true) => self.cb.get(name).ok_or(SaslFailure::NotAuthorized),
            (CbFlag::Binding(_), false) | (_, true) => Err(SaslFailure::MalformedRequest),
            (CbFlag::ClientOnly, false) if self.plus_offered => Err(SaslFailure::NotAuthorized),
            (CbFlag::None | CbFlag::ClientOnly, false) => Ok(&[]),
        }
    }

    /// Build server-first-message with our nonce appended.
    ///
    /// `creds` None (unknown user), or credentials of another hash than the mechanism's,
    /// -> [`fake_credentials`] with `fake_secret` and `default_iterations`, so the reply looks
    /// like a real one; the final step then fails with `NotAuthorized`. Pass the iteration
    /// count real accounts use. Called out of order, it returns an empty message and the
    /// exchange is failed (the final step answers `MalformedRequest`).
    pub fn server_first(
        &mut self,
        creds: Option<ScramCredentials>,
        fake_secret: &[u8],
        default_iterations: u32,
    ) -> Vec<u8> {
        let State::GotClientFirst {
            username,
            client_nonce,
            bare,
            expected_cb,
        } = mem::replace(&mut self.state, State::Failed)
        else {
            return Vec::new();
        };
        let Some(alg) = self.mech.hash() else {
            return Vec::new();
        };
        let (creds, fake) = match creds {
            Some(c) if usable(&c, alg) => (c, false),
            _ => {
                let c = fake_credentials(alg, fake_secret, &username, default_iterations);
                (c, true)
            }
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce());
        let msg = format!(
            "r={nonce},s={},i={}",
            B64.encode(&creds.salt),
            creds.iterations.max(1)
        );
        self.state = State::SentServerFirst {
            nonce,
            auth_prefix: format!("{bare},{msg}"),
            expected_cb,
            creds,
            fake,
        };
        msg.into_bytes()
    }

    fn server_nonce(&self) -> String {
        #[cfg(test)]
        if let Some(n) = &self.forced_nonce {
            return n.clone();
        }
        let bytes: [u8; SERVER_NONCE_BYTES] = rand::random();
        B64.encode(bytes)
    }

    /// Verify client-final-message: channel binding, nonce, proof (constant time).
    /// Returns server-final-message "v=...", to send in `<success/>`.
    pub fn handle_client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        let State::SentServerFirst {
            nonce,
            auth_prefix,
            expected_cb,
            creds,
            fake,
        } = mem::replace(&mut self.state, State::Failed)
        else {
            return Err(SaslFailure::MalformedRequest);
        };
        let m = parse_client_final(msg)?;
        let alg = creds.alg;
        if m.proof.len() != crypto::output_len(alg) {
            return Err(SaslFailure::MalformedRequest);
        }
        if m.nonce != nonce || !bool::from(crypto::ct_eq(&m.cb_data, &expected_cb)) {
            return Err(SaslFailure::NotAuthorized);
        }
        self.proof_checked = true;
        let auth_message = format!("{auth_prefix},{}", m.without_proof);
        let client_signature = crypto::hmac(alg, &creds.stored_key, auth_message.as_bytes());
        let client_key = crypto::xor(&m.proof, &client_signature);
        // The fake case runs the same work so it takes the same time.
        let ok =
            crypto::ct_eq(&crypto::hash(alg, &client_key), &creds.stored_key) & Choice::from(u8::from(!fake));
        if !bool::from(ok) {
            return Err(SaslFailure::NotAuthorized);
        }
        let server_signature = crypto::hmac(alg, &creds.server_key, auth_message.as_bytes());
        self.state = State::Done;
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// Credentials of the right hash with well-formed keys; anything else is treated as unknown.
fn usable(c: &ScramCredentials, alg: HashAlg) -> bool {
    let len = crypto::output_len(alg);
    c.alg == alg && c.stored_key.len() == len && c.server_key.len() == len
}
