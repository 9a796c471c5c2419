//! XEP-0363 HTTP file upload, served on its own component domain (`[upload] domain`, by
//! default `upload.<first domain>`), listed in the server's disco#items.
//!
//! - `service`: what is addressed to the service domain: disco#info (with the max-file-size
//!   form) and slot requests.
//! - `slots`: the shared state: the signing key, the open slots (single use, counted against
//!   the quota until their file is stored), the base URL.
//! - `sign`: the HMAC over each URL's method, path, expiry (and for PUT, size and type).
//! - `store`: the files on disk (`<directory>/files/<user key>/<slot id>/{data,meta}`), a
//!   user's usage, the sweep of expired files.
//! - `http`: the axum routes the HTTP listener merges: PUT and GET streamed to and from disk,
//!   CORS and preflight for web clients.

pub mod http;
pub mod service;
pub mod sign;
pub mod slots;
pub mod store;

use std::sync::Arc;

use crate::router::registry::{Module, Registry};

pub const NS: &str = "urn:xmpp:http:upload:0";

/// The upload module: registers the service domain and publishes its state for the HTTP
/// listener.
#[derive(Default)]
pub struct Upload {
    uploads: Arc<slots::Uploads>,
}

impl Module for Upload {
    fn name(&self) -> &'static str {
        "upload"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.provide(self.uploads.clone());
        let me = self.clone();
        r.service(
            "HTTP File Upload",
            |config| config.upload.service_domain(&config.domains),
            move |server, from, stanza| {
                let uploads = me.uploads.clone();
                async move { service::handle(&uploads, &server, from, stanza).await }
            },
        );
    }
}
