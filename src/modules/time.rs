//! XEP-0202 entity time, in UTC.

use std::sync::Arc;

use minidom::Element;

use xmpp_parsers::time::TimeResult;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};

pub const NS: &str = "urn:xmpp:time";

pub struct Time;

impl Module for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        r.iq(IqType::Get, NS, "time", &[IqTarget::Server], |_| async {
            let time = TimeResult {
                tz_offset: chrono::FixedOffset::east_opt(0).expect("UTC is a valid offset"),
                utc: chrono::Utc::now(),
            };
            Ok(IqResponse::with(Element::from(time)))
        });
    }
}
