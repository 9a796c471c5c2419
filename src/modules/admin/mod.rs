//! XEP-0133 service administration and our own admin commands for the whole service:
//! accounts (add, delete, disable, passwords, sessions), statistics, announcements, shutdown
//! and restart, configuration reload, the admin list and traffic tracing. The commands of a
//! feature (the blacklist, the message of the day, chat rooms, roster note keys) are
//! registered by that feature's module.

pub mod commands;

use std::sync::Arc;

use crate::router::registry::{Module, Registry};

pub struct Admin;

impl Module for Admin {
    fn name(&self) -> &'static str {
        "admin"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        for command in commands::TABLE {
            r.command(command);
        }
    }
}
