//! XEP-0092 software version. The OS is left out on purpose: it helps attackers, not users.

use std::sync::Arc;

use minidom::Element;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};
use crate::xml::text_element;

pub const NS: &str = "jabber:iq:version";

pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.iq(IqType::Get, NS, "query", &[IqTarget::Server], |_| async {
            let query = Element::builder("query", NS)
                .append(text_element("name", NS, "switchboard"))
                .append(text_element("version", NS, env!("CARGO_PKG_VERSION")))
                .build();
            Ok(IqResponse::with(query))
        });
    }
}
