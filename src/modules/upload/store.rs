//! Uploaded files on disk: `<directory>/files/<user key>/<slot id>/` holds `data` (the file,
//! written as `data.part` and renamed when complete) and `meta` (expiry, content type,
//! filename). A user's usage is the size of their complete files; the sweep deletes expired
//! ones.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What `meta` records of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Unix seconds after which the file is deleted (its GET URL's expiry).
    pub expires: u64,
    pub content_type: Option<String>,
    pub filename: String,
}

impl Meta {
    fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.expires,
            self.content_type.as_deref().unwrap_or(""),
            self.filename
        )
    }

    fn parse(text: &str) -> Option<Meta> {
        let mut lines = text.splitn(3, '\n');
        let expires = lines.next()?.parse().ok()?;
        let content_type = Some(lines.next()?.to_string()).filter(|t| !t.is_empty());
        let filename = lines.next()?.to_string();
        Some(Meta {
            expires,
            content_type,
            filename,
        })
    }
}

/// A user's folder name: not the JID itself (no escaping, nothing to learn from a URL).
pub fn user_key(jid: &jid::BareJid) -> String {
    hex::encode(&Sha256::digest(jid.as_str().as_bytes())[..16])
}

/// Whether `s` may be a user key or slot id (lowercase hex, so never a path trick).
pub fn is_key(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn files_root(directory: &Path) -> PathBuf {
    directory.join("files")
}

pub fn slot_dir(directory: &Path, user: &str, slot: &str) -> PathBuf {
    files_root(directory).join(user).join(slot)
}

pub async fn read_meta(dir: &Path) -> Option<Meta> {
    Meta::parse(&tokio::fs::read_to_string(dir.join("meta")).await.ok()?)
}

/// Makes a fully written `data.part` the stored file: meta first, so a `data` never lacks it.
pub async fn commit(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    tokio::fs::write(dir.join("meta"), meta.to_text()).await?;
    tokio::fs::rename(dir.join("data.part"), dir.join("data")).await
}

/// Bytes of complete files stored for `user`.
pub async fn usage(directory: &Path, user: &str) -> std::io::Result<u64> {
    let mut total = 0;
    let mut slots = match tokio::fs::read_dir(files_root(directory).join(user)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    while let Some(slot) = slots.next_entry().await? {
        if let Ok(m) = tokio::fs::metadata(slot.path().join("data")).await {
            total += m.len();
        }
    }
    Ok(total)
}

/// Deletes expired files (and leftovers of uploads that never completed, unless `in_use`
/// says their slot is still open). Returns how many folders were removed.
pub async fn sweep(directory: &Path, now: u64, in_use: impl Fn(&str) -> bool) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut users = match tokio::fs::read_dir(files_root(directory)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    while let Some(user) = users.next_entry().await? {
        let mut slots = match tokio::fs::read_dir(user.path()).await {
            Ok(d) => d,
            Err(_) => continue,
        };
        while let Some(slot) = slots.next_entry().await? {
            let name = slot.file_name();
            let expired = match read_meta(&slot.path()).await {
                Some(meta) => meta.expires <= now,
                None => !in_use(&name.to_string_lossy()),
            };
            if expired && tokio::fs::remove_dir_all(slot.path()).await.is_ok() {
                removed += 1;
            }
        }
        // Fails (and stays) while the folder still holds files.
        let _ = tokio::fs::remove_dir(user.path()).await;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        for content_type in [None, Some("image/png".to_string())] {
            let m = Meta {
                expires: 42,
                content_type,
                filename: "a b\u{e9}.png".into(),
            };
            assert_eq!(Meta::parse(&m.to_text()), Some(m));
        }
        assert_eq!(Meta::parse("x\n\nname"), None);
    }

    #[tokio::test]
    async fn usage_counts_complete_files_and_sweep_removes_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let user = "0".repeat(32);
        let write = |slot: &str, meta: Option<Meta>, bytes: usize| {
            let d = slot_dir(dir.path(), &user, slot);
            async move {
                tokio::fs::create_dir_all(&d).await.unwrap();
                tokio::fs::write(d.join("data.part"), vec![0u8; bytes])
                    .await
                    .unwrap();
                if let Some(meta) = meta {
                    commit(&d, &meta).await.unwrap();
                }
            }
        };
        let meta = |expires| Meta {
            expires,
            content_type: None,
            filename: "f".into(),
        };
        write("a", Some(meta(100)), 10).await;
        write("b", Some(meta(300)), 20).await;
        write("c", None, 40).await;
        write("d", None, 80).await;
        assert_eq!(usage(dir.path(), &user).await.unwrap(), 30);
        let removed = sweep(dir.path(), 200, |slot| slot == "d").await.unwrap();
        assert_eq!(removed, 2);
        assert_eq!(usage(dir.path(), &user).await.unwrap(), 20);
        assert!(slot_dir(dir.path(), &user, "d").exists());
    }
}
