//! End-to-end conformance harness for the switchboard XMPP server.
//!
//! Tests talk to the server only over the network: [`TestServer`] starts the real
//! `switchboard` binary on free loopback ports with a temporary directory and
//! database; [`XmppClient`] drives it with tokio-xmpp (a third-party client
//! library), and [`RawClient`] speaks raw XML over a socket for edge and error
//! cases.
//!
//! Environment:
//! - `SWITCHBOARD_BIN`: path of the server binary to test (no build is done).
//! - otherwise the harness runs `cargo build --bin switchboard` once per test
//!   process (a no-op when up to date) and uses `target/debug/switchboard`.
//!   Set `SWITCHBOARD_NO_BUILD=1` to skip that build and use the binary as is.

pub mod blocking;
pub mod bosh;
pub mod client;
pub mod js;
pub mod muc;
pub mod ns;
pub mod pep;
pub mod raw;
pub mod sasl2;
pub mod scram;
pub mod server;
pub mod tls;
pub mod websocket;
pub mod xml;

pub use client::XmppClient;
pub use minidom::Element;
pub use raw::{Incoming, RawClient, SaslFailure, StreamErrorInfo};
pub use scram::{ChannelBindingMode, ScramHash};
pub use server::{CliOutput, Config, TestServer};

use std::time::Duration;

/// Default time to wait for an expected answer from the server.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Time to wait when asserting that nothing arrives.
pub const SILENCE: Duration = Duration::from_millis(800);

/// The domain every test server serves.
pub const DOMAIN: &str = "localhost";

/// The Python interpreter with slixmpp for tests that drive the server with it:
/// `SWITCHBOARD_TEST_PYTHON` (set by `scripts/test.sh`, which installs slixmpp into a venv),
/// else `python3`.
pub fn python() -> String {
    std::env::var("SWITCHBOARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}
