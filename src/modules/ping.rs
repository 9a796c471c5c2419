//! XEP-0199: answer client pings. (The server's own idle pings live in the session loop.)

use std::sync::Arc;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};

pub const NS: &str = "urn:xmpp:ping";

pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.iq(
            IqType::Get,
            NS,
            "ping",
            &[IqTarget::Server, IqTarget::OwnAccount],
            |_| async { Ok(IqResponse::empty()) },
        );
    }
}
