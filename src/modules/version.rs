//! XEP-0092 software version. The OS is left out on purpose: it helps attackers, not users.

use std::sync::Arc;

use minidom::Element;

use xmpp_parsers::version::VersionResult;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};

pub const NS: &str = "jabber:iq:version";

pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.iq(IqType::Get, NS, "query", &[IqTarget::Server], |_| async {
            let query = VersionResult {
                name: "switchboard".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                os: None,
            };
            Ok(IqResponse::with(Element::from(query)))
        });
    }
}
