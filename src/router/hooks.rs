//! The hook points as modules use them: `hub::hooks`'s types for this server (the generic
//! machinery, its kinds and stages are documented there).

use crate::hub::hooks as generic;
use crate::server::Server;

pub use generic::{
    AccountRemoved, Delivered, Flow, PrivateStored, RosterItemView, RosterObserverFn, RosterObservers,
    Routed, SessionEvent, Stage, VCardStored,
};

/// Every hook point, for this server.
pub type Hooks = generic::Hooks<Server>;
/// The interceptors of one hook point.
pub type Interceptors<T> = generic::Interceptors<Server, T>;
/// The observers of one hook point.
pub type Observers<T> = generic::Observers<Server, T>;
/// The per-recipient presence filters.
pub type RecipientFilters = generic::RecipientFilters<Server>;
pub type RecipientFilterFn = generic::RecipientFilterFn<Server>;
pub type InterceptorFn<T> = generic::InterceptorFn<Server, T>;
pub type WantsFn<T> = generic::WantsFn<Server, T>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::hooks::Stage;
    use crate::router::registry::Registry;

    /// Every interceptor chain of the server's modules, in the order it runs: the stages of
    /// ARCHITECTURE.md's hook table. A module that lands in another place fails here.
    #[test]
    fn interceptor_chains_run_by_stage_in_the_documented_order() {
        use Stage::*;
        let registry = Registry::build(crate::modules::all());
        let hooks = &registry.hooks;
        let chain = |list: &Interceptors<Routed>| list.modules().collect::<Vec<_>>();
        assert_eq!(
            chain(&hooks.outbound),
            [
                (Admission, "blacklist"),
                (Policy, "blocking"),
                (Protocol, "roster"),
                // Answers to its caps queries; the XEP-0398 avatar hash in presence.
                (Protocol, "pubsub"),
                (Protocol, "pubsub"),
                // The sender's archive copy, forged stanza-ids removed.
                (Protocol, "mam")
            ]
        );
        // push: the app servers' answers to its publishes.
        assert_eq!(
            chain(&hooks.inbound),
            [(Policy, "blocking"), (Protocol, "mam"), (Protocol, "push")]
        );
        assert_eq!(
            chain(&hooks.presence_to_account),
            [(Policy, "blocking"), (Protocol, "roster")]
        );
        assert_eq!(chain(&hooks.presence_broadcast), [(Protocol, "roster")]);
        // push looks (and passes on) before offline storage takes the message over.
        assert_eq!(
            chain(&hooks.message_offline),
            [(Policy, "push"), (Protocol, "offline")]
        );
        assert_eq!(
            hooks.session_opening.modules().collect::<Vec<_>>(),
            [(Admission, "blacklist")]
        );
        // Observers: who looks, in no order that matters.
        let sorted = |mut list: Vec<&'static str>| {
            list.sort();
            list
        };
        assert_eq!(sorted(hooks.sent.modules().collect()), ["carbons"]);
        assert_eq!(
            sorted(hooks.session_closed.modules().collect()),
            ["mam", "muc", "pubsub", "roster"]
        );
        assert_eq!(sorted(hooks.session_released.modules().collect()), ["blocking"]);
        assert_eq!(sorted(hooks.account_removed.modules().collect()), ["roster"]);
        assert_eq!(
            sorted(hooks.presence_broadcasted.modules().collect()),
            ["muc", "offline", "pubsub"]
        );
    }
}
