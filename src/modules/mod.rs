//! Feature modules. Each registers its IQ handlers, disco features and ad-hoc commands; none
//! imports another.

pub mod account_commands;
pub mod adhoc;
pub mod admin;
pub mod blacklist;
pub mod blocking;
pub mod carbons;
pub mod disco;
pub mod extdisco;
pub mod legacy_session;
pub mod mam;
pub mod motd;
pub mod muc;
pub mod offline;
pub mod ping;
pub mod private;
pub mod proxy65;
pub mod pubsub;
pub mod push;
pub mod register;
pub mod roster;
pub mod time;
pub mod upload;
pub mod vcard;
pub mod version;

use std::sync::Arc;

use crate::router::registry::Module;

/// The modules `config` enables, in registration order.
pub fn enabled(config: &crate::config::Config) -> Vec<Arc<dyn Module>> {
    let mut modules = all();
    if !config.mam.enabled {
        modules.retain(|m| m.name() != "mam");
    }
    modules
}

/// Every module, in registration order. Config decides which are enabled as they gain options.
pub fn all() -> Vec<Arc<dyn Module>> {
    vec![
        // The service-wide commands first: disco lists commands in registration order
        // (administrative ones before the users'), so these lead, the features' follow.
        Arc::new(admin::Admin),
        Arc::new(account_commands::AccountCommands),
        Arc::new(disco::Disco),
        Arc::new(legacy_session::LegacySession),
        Arc::new(ping::Ping),
        Arc::new(version::Version),
        Arc::new(time::Time),
        Arc::new(register::Register),
        Arc::new(roster::Roster::new()),
        Arc::new(vcard::VCard),
        Arc::new(private::Private),
        Arc::new(pubsub::PubSub::new()),
        Arc::new(offline::Offline::default()),
        Arc::new(carbons::Carbons),
        Arc::new(mam::Mam::default()),
        Arc::new(muc::Muc::new()),
        Arc::new(motd::Motd),
        Arc::new(blocking::Blocking::new()),
        Arc::new(blacklist::Blacklist),
        // After blocking: what a user refused is not pushed.
        Arc::new(push::Push::default()),
        Arc::new(upload::Upload::default()),
        Arc::new(extdisco::ExternalServices),
        Arc::new(proxy65::Proxy65::default()),
        // Last: it offers the commands every module above registered.
        Arc::new(adhoc::AdHoc::default()),
    ]
}
