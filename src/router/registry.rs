//! The registry as modules use it: `hub::registry`'s types for this server. The generic
//! machinery is in `hub/`, which never names the server (so the server can hold its
//! registry without an import circle); this file instantiates it.

use std::sync::Arc;

use crate::hub::registry as generic;
use crate::server::Server;

pub use generic::{Identity, IqResponse, IqResult, IqTarget, IqType};

impl generic::Context for Server {
    type Command = crate::command::Command;
}

/// Every module's registrations, for this server.
pub type Registry = generic::Registry<Server>;
/// An IQ a handler receives.
pub type IqRequest = generic::IqRequest<Server>;
pub type IqHandler = generic::IqHandler<Server>;
pub type ServiceHandler = generic::ServiceHandler<Server>;
pub type Bind2Inline = generic::Bind2Inline<Server>;
pub type AccountItems = generic::AccountItems<Server>;

/// A feature module: registers its handlers and disco features.
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn register(self: Arc<Self>, r: &mut Registry);
}

impl generic::Registry<Server> {
    /// Builds the table from the given modules, in order.
    pub fn build(modules: Vec<Arc<dyn Module>>) -> Registry {
        let mut r = Registry::default();
        for m in modules {
            r.begin_module(m.name());
            m.register(&mut r);
        }
        r
    }
}
