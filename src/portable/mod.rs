//! XEP-0227 Portable Import/Export: `switchboard export FILE` and `switchboard import FILE`.
//!
//! - [`reader`]: streams a file (and its XIncludes) one `<user/>` element at a time, with
//!   line numbers.
//! - [`record`]: checks a `<user/>` and converts it to what storage keeps.
//! - [`export`]: writes every account (SCRAM credentials exactly as stored, roster with
//!   groups, subscription states and pending requests, vCard, private XML, offline messages,
//!   privacy lists, PEP nodes and items ([`pep`], XEP-0227 §4.7), and roster notes when the
//!   configured keys decrypt them).
//! - [`import`]: checks the whole file first (nothing is written if any user is malformed),
//!   then makes each account hold exactly what the file says, one transaction per user, so a
//!   second import of the same file changes nothing.
//!
//! Both work while the server runs, on the same database. The server caches rosters while
//! an account has sessions, and privacy lists of accounts it has used: importing into an
//! account the running server has in use shows the new roster after its sessions end, and
//! the new privacy lists after a restart. Importing new accounts needs neither.

pub mod export;
pub mod import;
pub mod pep;
pub mod reader;
pub mod record;

use std::sync::Arc;

/// Namespace of `<server-data/>` (XEP-0227 §8).
pub const NS_PIE: &str = "urn:xmpp:pie:0";
/// The namespace before XEP-0227 was Draft; ejabberd wrote it for years.
pub const NS_PIE_OLD: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
/// `<scram-credentials/>` (XEP-0227 1.1).
pub const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
pub const NS_XINCLUDE: &str = "http://www.w3.org/2001/XInclude";

/// Something wrong in an import file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: Arc<str>,
    /// 1-based; 0 when the file could not be read at all.
    pub line: u32,
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.reason),
            line => write!(f, "{}:{line}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for FileError {}

impl FileError {
    pub fn new(file: &Arc<str>, line: u32, reason: impl Into<String>) -> FileError {
        FileError {
            file: file.clone(),
            line,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
