//! RFC 3921 §3 session establishment, kept for old clients: the feature is offered as
//! `<optional/>` (RFC 6121 Appendix E) and the IQ, whenever sent, is simply acknowledged.

use std::sync::Arc;

use crate::router::registry::{IqResponse, IqTarget, IqType, Module, Registry};
use crate::xml::ns;

pub struct LegacySession;

impl Module for LegacySession {
    fn name(&self) -> &'static str {
        "legacy_session"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.iq(
            IqType::Set,
            ns::SESSION,
            "session",
            &[IqTarget::Server, IqTarget::OwnAccount],
            |_| async { Ok(IqResponse::empty()) },
        );
    }
}
