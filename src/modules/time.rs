//! XEP-0202 entity time, in UTC.

use std::sync::Arc;

use minidom::Element;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};
use crate::xml::text_element;

pub const NS: &str = "urn:xmpp:time";

pub struct Time;

impl Module for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.iq(IqType::Get, NS, "time", &[IqTarget::Server], |_| async {
            let utc = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            let time = Element::builder("time", NS)
                .append(text_element("tzo", NS, "+00:00"))
                .append(text_element("utc", NS, &utc))
                .build();
            Ok(IqResponse::with(time))
        });
    }
}
