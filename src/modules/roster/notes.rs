//! Private per-contact roster notes (`xep/xep-roster-notes.md`, namespace [`NS`]).
//!
//! - Wire: a `<note xmlns='urn:switchboard:roster-notes:0'>` child of a roster `<item/>`.
//!   Sessions opt in with a `<notes/>` child of their roster get; only they see notes, in
//!   results and pushes, under a roster version prefixed with `n` (so a cache filled without
//!   notes is never taken as up to date with them).
//! - At rest: AES-256-GCM per note, a random 96-bit nonce, the key id stored with the row,
//!   and (host, username, contact) as associated data ([`aad`]). Keys come from
//!   `[roster_notes]` in the configuration; new notes use the active one.
//! - Rotation: [`rotate`] re-encrypts rows not under the active key in batches while the
//!   server runs (the CLI `switchboard notes rotate`, and the admin ad-hoc command).
//! - [`check_keys`]: refuses to start when a stored note uses a key id missing from the
//!   configuration.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::config::RosterNotesConfig;
use crate::storage::notes::{NoteRow, StoredNote};
use crate::storage::{Storage, StorageError};

/// Namespace of the extension and its disco feature.
pub const NS: &str = "urn:switchboard:roster-notes:0";
/// Prefix of the roster version shown to sessions that opted in.
pub const VER_PREFIX: &str = "n";
/// Notes re-encrypted per rotation batch.
pub const ROTATE_BATCH: i64 = 100;

/// Errors of this module's crypto and rotation.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("roster notes are disabled (no keys in [roster_notes])")]
    Disabled,
    #[error("roster note key '{0}' is not configured")]
    MissingKey(String),
    #[error("a roster note did not decrypt (wrong key, or the row was tampered with or moved)")]
    Decrypt,
    #[error("a roster note is not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The configured keys, decoded.
pub struct NoteKeys {
    keys: HashMap<String, Zeroizing<[u8; 32]>>,
    active: String,
}

impl NoteKeys {
    /// `None` when notes are disabled (no keys). The configuration was validated at load.
    pub fn from_config(config: &RosterNotesConfig) -> Option<NoteKeys> {
        if !config.enabled() {
            return None;
        }
        let keys: HashMap<_, _> = config.decoded_keys().ok()?.into_iter().collect();
        let active = config.active_key.clone()?;
        keys.contains_key(&active).then_some(NoteKeys { keys, active })
    }

    /// Builds a key set directly (tests, tools).
    pub fn new(keys: Vec<(String, [u8; 32])>, active: &str) -> Option<NoteKeys> {
        let keys: HashMap<_, _> = keys.into_iter().map(|(id, k)| (id, Zeroizing::new(k))).collect();
        keys.contains_key(active).then(|| NoteKeys {
            keys,
            active: active.to_owned(),
        })
    }

    pub fn active(&self) -> &str {
        &self.active
    }

    pub fn has(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    fn cipher(&self, key_id: &str) -> Result<Aes256Gcm, NoteError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NoteError::MissingKey(key_id.to_owned()))?;
        Ok(Aes256Gcm::new(key.as_slice().into()))
    }

    /// Encrypts `text` for the row (host, username, contact) under the active key.
    pub fn encrypt(&self, host: &str, username: &str, contact: &str, text: &str) -> StoredNote {
        let nonce: [u8; 12] = rand::random();
        let cipher = self.cipher(&self.active).expect("the active key is configured");
        let aad = aad(host, username, contact);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        StoredNote {
            contact: contact.to_owned(),
            key_id: self.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts a stored note of the row (host, username, note.contact).
    pub fn decrypt(&self, host: &str, username: &str, note: &StoredNote) -> Result<String, NoteError> {
        let cipher = self.cipher(&note.key_id)?;
        if note.nonce.len() != 12 {
            return Err(NoteError::Decrypt);
        }
        let aad = aad(host, username, &note.contact);
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&note.nonce),
                    Payload {
                        msg: &note.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| NoteError::Decrypt)?,
        );
        String::from_utf8(plain.to_vec()).map_err(|_| NoteError::NotUtf8)
    }
}

/// Associated data binding a ciphertext to its row: a label, then host, username and
/// contact, each prefixed with its length (so no two rows share an encoding).
pub fn aad(host: &str, username: &str, contact: &str) -> Vec<u8> {
    let mut out = b"switchboard roster note v1".to_vec();
    for part in [host, username, contact] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Refuses a configuration that lacks a key some stored note uses; the error names it.
pub async fn check_keys(storage: &Storage, config: &RosterNotesConfig) -> anyhow::Result<()> {
    for (key_id, count) in storage.notes_key_usage().await? {
        if !config.keys.contains_key(&key_id) {
            anyhow::bail!(
                "roster note key '{key_id}' is used by {count} stored note(s) but is not in \
                 [roster_notes] keys: add it back (rotate with `switchboard notes rotate` before \
                 removing a key)"
            );
        }
    }
    Ok(())
}

/// Progress of a rotation, reported after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotateProgress {
    /// Notes not under the active key when the rotation started.
    pub total: u64,
    /// Notes re-encrypted so far.
    pub done: u64,
    /// Notes skipped because they changed meanwhile (a concurrent write re-encrypted them
    /// under the writer's active key; run the rotation again if that was an old key).
    pub skipped: u64,
}

/// Re-encrypts every note not under the active key, in batches of [`ROTATE_BATCH`], each
/// row with a conditional update, so it runs safely while the server serves (reads decrypt
/// with whichever configured key a row names). `progress` is called after each batch.
/// Returns the final counts; fails, naming the key, if a row's key is not configured.
pub async fn rotate_storage(
    storage: &Storage,
    keys: &NoteKeys,
    mut progress: impl FnMut(RotateProgress),
) -> Result<RotateProgress, NoteError> {
    let total: i64 = storage
        .notes_key_usage()
        .await?
        .iter()
        .filter(|(k, _)| k != keys.active())
        .map(|(_, n)| n)
        .sum();
    let mut p = RotateProgress {
        total: total as u64,
        ..RotateProgress::default()
    };
    progress(p);
    let mut after: Option<NoteRow> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|r| (r.host.as_str(), r.username.as_str(), r.note.contact.as_str()));
        let batch = storage
            .notes_not_under(keys.active(), cursor, ROTATE_BATCH)
            .await?;
        let Some(last) = batch.last().cloned() else {
            break;
        };
        for row in &batch {
            let text = Zeroizing::new(keys.decrypt(&row.host, &row.username, &row.note)?);
            let new = keys.encrypt(&row.host, &row.username, &row.note.contact, &text);
            if storage.note_replace(row, &new).await? {
                p.done += 1;
            } else {
                p.skipped += 1;
            }
        }
        progress(p);
        after = Some(last);
        tokio::task::yield_now().await;
    }
    Ok(p)
}

/// The rotation for the admin ad-hoc command: re-encrypts the notes of a running server
/// under its active key; see [`rotate_storage`].
pub async fn rotate(
    server: &crate::server::Server,
    progress: impl FnMut(RotateProgress),
) -> Result<RotateProgress, NoteError> {
    let keys = NoteKeys::from_config(&server.config().roster_notes).ok_or(NoteError::Disabled)?;
    rotate_storage(&server.storage, &keys, progress).await
}

/// Decrypts a user's notes; unreadable ones are logged and left out (and left in storage).
pub async fn load(
    storage: &Storage,
    keys: &NoteKeys,
    host: &str,
    username: &str,
) -> Result<Vec<(String, String)>, StorageError> {
    let mut out = Vec::new();
    for note in storage.notes_load(host, username).await? {
        match keys.decrypt(host, username, &note) {
            Ok(text) => out.push((note.contact, text)),
            Err(e) => tracing::error!(host, username, contact = %note.contact, key = %note.key_id,
                error = %e, "cannot read a roster note"),
        }
    }
    Ok(out)
}

/// The admin command that runs [`rotate`] (registered by the roster module).
pub static ROTATE_COMMAND: crate::command::Command = crate::command::Command {
    node: "https://github.com/switchboard-xmpp/switchboard#rotate-roster-note-keys",
    name: "Re-encrypt roster notes under the active key",
    access: crate::command::Access::Admin,
    enabled: |s| s.config().roster_notes.enabled(),
    stages: &[],
    run: |c| Box::pin(rotate_notes(c)),
};

async fn rotate_notes(ctx: crate::command::Ctx) -> Result<crate::command::Done, String> {
    tracing::info!(admin = %ctx.requester, "admin started roster note key rotation");
    let p = rotate(&ctx.server, |_| {}).await.map_err(|e| e.to_string())?;
    tracing::info!(admin = %ctx.requester, total = p.total, done = p.done, skipped = p.skipped, "roster note key rotation finished");
    Ok(crate::command::Done::note(format!(
        "Re-encrypted {} of {} note(s); {} changed meanwhile and were skipped",
        p.done, p.total, p.skipped
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(active: &str) -> NoteKeys {
        NoteKeys::new(vec![("1".into(), [1; 32]), ("2".into(), [2; 32])], active).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = keys("1");
        let n = k.encrypt("h", "alice", "bob@h", "plays only ranked");
        assert_eq!(n.key_id, "1");
        assert_eq!(n.nonce.len(), 12);
        assert!(!n.ciphertext.windows(5).any(|w| w == b"plays"));
        assert_eq!(k.decrypt("h", "alice", &n).unwrap(), "plays only ranked");
        // Random nonces: the same note encrypts differently.
        assert_ne!(
            k.encrypt("h", "alice", "bob@h", "plays only ranked").ciphertext,
            n.ciphertext
        );
    }

    #[test]
    fn wrong_aad_fails() {
        let k = keys("1");
        let n = k.encrypt("h", "alice", "bob@h", "x");
        assert!(matches!(k.decrypt("h", "mallory", &n), Err(NoteError::Decrypt)));
        assert!(matches!(k.decrypt("other", "alice", &n), Err(NoteError::Decrypt)));
        let mut moved = n.clone();
        moved.contact = "carol@h".into();
        assert!(matches!(k.decrypt("h", "alice", &moved), Err(NoteError::Decrypt)));
        // Length prefixes: shifting a character between fields changes the AAD.
        assert_ne!(aad("h", "ab", "c"), aad("h", "a", "bc"));
    }

    #[test]
    fn tampering_fails() {
        let k = keys("1");
        let n = k.encrypt("h", "alice", "bob@h", "secret");
        for i in 0..n.ciphertext.len() {
            let mut t = n.clone();
            t.ciphertext[i] ^= 1;
            assert!(k.decrypt("h", "alice", &t).is_err(), "byte {i}");
        }
        let mut t = n.clone();
        t.nonce[0] ^= 1;
        assert!(k.decrypt("h", "alice", &t).is_err());
        let mut t = n;
        t.key_id = "2".into();
        assert!(k.decrypt("h", "alice", &t).is_err(), "another key");
    }

    #[test]
    fn key_id_selection() {
        let old = keys("1").encrypt("h", "u", "c@h", "old");
        let k2 = keys("2");
        let new = k2.encrypt("h", "u", "c@h", "new");
        assert_eq!(new.key_id, "2");
        // Rows under either configured key stay readable.
        assert_eq!(k2.decrypt("h", "u", &old).unwrap(), "old");
        assert_eq!(k2.decrypt("h", "u", &new).unwrap(), "new");
        let only2 = NoteKeys::new(vec![("2".into(), [2; 32])], "2").unwrap();
        assert!(matches!(only2.decrypt("h", "u", &old), Err(NoteError::MissingKey(id)) if id == "1"));
        assert!(NoteKeys::new(vec![("1".into(), [1; 32])], "9").is_none());
    }
}
