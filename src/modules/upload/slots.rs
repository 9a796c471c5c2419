//! The upload service's state: the signing key, the open slots and the base URL, and the
//! issuing of a slot (limits, quota, signed URLs).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use jid::BareJid;
use xmpp_parsers::http_upload::{Get, Put, SlotRequest, SlotResult};

use super::sign::{Grant, encode_segment};
use super::{NS, store};
use crate::config::UploadConfig;
use crate::error::StanzaError;
use crate::server::Server;

/// Longest filename and content type accepted, in bytes.
const MAX_NAME: usize = 255;

/// A slot handed out and not yet used up.
#[derive(Debug, Clone)]
pub struct Slot {
    pub user: String,
    pub filename: String,
    pub size: u64,
    pub content_type: Option<String>,
    /// Unix seconds: the PUT URL's expiry.
    pub expires: u64,
    /// The GET URL's expiry, which the stored file keeps.
    pub file_expires: u64,
    /// A PUT is streaming into it now.
    pub uploading: bool,
}

/// Shared by the XMPP side (issuing slots) and the HTTP side (using them).
#[derive(Default)]
pub struct Uploads {
    key: tokio::sync::OnceCell<Vec<u8>>,
    /// Open slots by id. Never locked across an await.
    slots: Mutex<HashMap<String, Slot>>,
    /// `http://` and the HTTP listener's address, when `public_url` is not set.
    listener_url: OnceLock<String>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Uploads {
    /// The URL signing key: `[upload] secret`, else one generated once and kept in storage.
    pub async fn key(&self, server: &Server) -> Result<&[u8], StanzaError> {
        self.key
            .get_or_try_init(|| async {
                match &server.config().upload.secret {
                    Some(secret) => Ok(secret.as_bytes().to_vec()),
                    None => server
                        .storage
                        .secret("upload-url-signing")
                        .await
                        .map_err(StanzaError::storage("upload: reading the signing key")),
                }
            })
            .await
            .map(Vec::as_slice)
    }

    /// Records where the HTTP listener is (the default base URL); `false` when another
    /// listener did first.
    pub fn set_listener_url(&self, url: String) -> bool {
        self.listener_url.set(url).is_ok()
    }

    fn base_url(&self, config: &UploadConfig) -> Option<String> {
        match &config.public_url {
            Some(url) => Some(url.trim_end_matches('/').to_string()),
            None => self.listener_url.get().cloned(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// XEP-0363 §4: a slot for `owner`, within the size limit and their quota (stored files
    /// plus open slots).
    pub async fn request(
        &self,
        server: &Server,
        owner: &BareJid,
        req: SlotRequest,
    ) -> Result<SlotResult, StanzaError> {
        let config = server.config().upload.clone();
        check_name(&req.filename, "filename")?;
        if let Some(t) = &req.content_type {
            check_name(t, "content-type")?;
        }
        if req.size > config.max_file_size {
            return Err(file_too_large(config.max_file_size));
        }
        let base = self.base_url(&config).ok_or_else(|| {
            tracing::error!("upload: no HTTP listener serves the upload URLs");
            StanzaError::service_unavailable()
        })?;
        let key = self.key(server).await?.to_vec();
        let user = store::user_key(owner);
        let stored = store::usage(&config.directory, &user)
            .await
            .map_err(StanzaError::storage("upload: reading a user's usage"))?;
        let now = now();
        let id = hex::encode(rand::random::<[u8; 16]>());
        let slot = Slot {
            user: user.clone(),
            filename: req.filename,
            size: req.size,
            content_type: req.content_type,
            expires: now + config.slot_lifetime_secs,
            file_expires: now + config.file_lifetime_secs,
            uploading: false,
        };
        {
            let mut slots = self.lock();
            let open: u64 = slots
                .values()
                .filter(|s| s.user == user && s.expires > now)
                .map(|s| s.size)
                .sum();
            if stored + open + slot.size > config.quota_per_user {
                return Err(StanzaError::resource_constraint().text(format!(
                    "quota exceeded: {} of {} bytes used",
                    stored + open,
                    config.quota_per_user
                )));
            }
            slots.insert(id.clone(), slot.clone());
        }
        // Written before it is handed out: a restart does not void it.
        if let Err(e) = server.storage.upload_slot_insert(&slot.to_stored(&id)).await {
            self.lock().remove(&id);
            return Err(StanzaError::storage("upload: storing a slot")(e));
        }
        let path = format!("{user}/{id}/{}", slot.filename);
        let url = format!("{base}/upload/{user}/{id}/{}", encode_segment(&slot.filename));
        let put = Grant::Put {
            path: &path,
            expires: slot.expires,
            size: slot.size,
            content_type: slot.content_type.as_deref(),
        };
        let get = Grant::Get {
            path: &path,
            expires: slot.file_expires,
        };
        Ok(SlotResult {
            put: Put {
                url: format!("{url}?expires={}&sig={}", slot.expires, put.sign(&key)),
                headers: Vec::new(),
            },
            get: Get {
                url: format!("{url}?expires={}&sig={}", slot.file_expires, get.sign(&key)),
            },
        })
    }

    /// The open slot `id`, if any.
    pub fn peek(&self, id: &str) -> Option<Slot> {
        self.lock().get(id).cloned()
    }

    /// Claims slot `id` for a PUT: `Err` says why it cannot be used now.
    pub fn claim(&self, id: &str, user: &str, filename: &str) -> Result<Slot, Claim> {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(id) else {
            return Err(Claim::Unknown);
        };
        if slot.user != user || slot.filename != filename {
            return Err(Claim::Unknown);
        }
        if slot.uploading {
            return Err(Claim::InUse);
        }
        if slot.expires <= now() {
            slots.remove(id);
            return Err(Claim::Expired);
        }
        slot.uploading = true;
        Ok(slot.clone())
    }

    /// The slots stored before a restart, open again (those still valid).
    pub async fn load(&self, server: &Server) {
        let stored = match server.storage.upload_slots_open(now() as i64).await {
            Ok(s) => s,
            Err(e) => return tracing::error!(error = %e, "upload: open slots not loaded"),
        };
        let mut slots = self.lock();
        for s in stored {
            slots.entry(s.id).or_insert(Slot {
                user: s.owner,
                filename: s.filename,
                size: s.size.max(0) as u64,
                content_type: s.content_type,
                expires: s.expires.max(0) as u64,
                file_expires: s.file_expires.max(0) as u64,
                uploading: false,
            });
        }
    }

    /// A PUT completed: the slot is gone, here and in storage.
    pub async fn used_up(&self, server: &Server, id: &str) {
        self.release(id, true);
        if let Err(e) = server.storage.upload_slot_delete(id).await {
            tracing::warn!(error = %e, "upload: a used slot stays stored until it expires");
        }
    }

    /// A PUT ended: the slot is used up (`done`), or open again for another try.
    pub fn release(&self, id: &str, done: bool) {
        let mut slots = self.lock();
        if done {
            slots.remove(id);
        } else if let Some(slot) = slots.get_mut(id) {
            slot.uploading = false;
        }
    }

    /// Forgets expired slots nobody is uploading to.
    pub fn forget_expired(&self, now: u64) {
        self.lock().retain(|_, s| s.uploading || s.expires > now);
    }

    /// Whether slot `id` is open (its folder is not a leftover).
    pub fn is_open(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }
}

impl Slot {
    fn to_stored(&self, id: &str) -> crate::storage::upload::StoredSlot {
        crate::storage::upload::StoredSlot {
            id: id.to_owned(),
            owner: self.user.clone(),
            filename: self.filename.clone(),
            size: self.size as i64,
            content_type: self.content_type.clone(),
            expires: self.expires as i64,
            file_expires: self.file_expires as i64,
        }
    }
}

/// Why a slot cannot take a PUT.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Never issued, already used, or for another path.
    Unknown,
    /// Another PUT is writing it.
    InUse,
    Expired,
}

/// XEP-0363 §4: `not-acceptable` with `<file-too-large><max-file-size/></file-too-large>`.
pub fn file_too_large(max: u64) -> StanzaError {
    let mut limit = minidom::Element::bare("file-too-large", NS);
    limit.append_child(crate::xml::text_element("max-file-size", NS, &max.to_string()));
    StanzaError::not_acceptable()
        .text(format!("the largest file accepted is {max} bytes"))
        .with_application(limit)
}

/// Filenames and types: 1 to 255 bytes, no control characters; filenames no `/` or `\`
/// either (a filename is a URL path segment), nor `.` or `..`.
fn check_name(s: &str, what: &str) -> Result<(), StanzaError> {
    let bad = s.is_empty()
        || s.len() > MAX_NAME
        || s.chars().any(char::is_control)
        || (what == "filename" && (s.contains(['/', '\\']) || s == "." || s == ".."));
    if bad {
        return Err(StanzaError::bad_request().text(format!("unacceptable {what}")));
    }
    Ok(())
}
