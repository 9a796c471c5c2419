//! `switchboard export`: every account and its data as one XEP-0227 document.
//!
//! Credentials are written as `<scram-credentials/>` (XEP-0227 1.1), exactly as stored, so
//! users log in on the importing server with their old password. We never have plaintext
//! passwords. Roster notes (our extension) are written in their own namespace inside roster
//! items, decrypted: only when `[roster_notes]` keys are configured and decrypt them; others
//! are counted and left out.

use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use minidom::Element;

use super::record::{NS_DELAY, NS_PRIVACY, NS_PRIVATE, NS_ROSTER};
use super::{NS_PIE, NS_SCRAM};
use crate::config::Config;
use crate::modules::roster::notes::{NS as NS_NOTES, NoteKeys};
use crate::storage::Storage;
use crate::storage::portable::PortableUser;
use crate::xml::{self, escape};

/// What an export wrote and left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub hosts: usize,
    pub users: usize,
    pub notes: usize,
    /// Notes not written: no keys configured, or a key that does not decrypt them.
    pub notes_skipped: usize,
    /// Stored rows that no longer parse as XML (left out, named in a warning).
    pub bad_rows: usize,
}

/// Writes every account to `out`. `progress(done, total)` is called every few hundred users
/// and at the end.
pub async fn export(
    storage: &Storage,
    config: &Config,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> anyhow::Result<ExportSummary> {
    let keys = NoteKeys::from_config(&config.roster_notes);
    let users = storage.list_users(None).await?;
    let total = users.len();
    let mut summary = ExportSummary::default();
    writeln!(out, "<?xml version='1.0' encoding='UTF-8'?>")?;
    writeln!(out, "<server-data xmlns='{NS_PIE}'>")?;
    // PostgreSQL answers several reads at once; SQLite gains nothing from it.
    let readers = if storage.backend_name() == "postgres" {
        8
    } else {
        1
    };
    let mut loaded = futures::stream::iter(&users)
        .map(|(host, username)| async move { storage.portable_load(host, username).await })
        .buffered(readers);
    let mut current_host: Option<&str> = None;
    for (i, (host, username)) in users.iter().enumerate() {
        let Some(result) = loaded.next().await else {
            break;
        };
        if current_host != Some(host.as_str()) {
            if current_host.is_some() {
                writeln!(out, "  </host>")?;
            }
            writeln!(out, "  <host jid='{}'>", escape(host))?;
            current_host = Some(host);
            summary.hosts += 1;
        }
        // Deleted since the listing: nothing to write.
        let Some((user, stored_notes)) = result? else {
            continue;
        };
        let mut notes = Vec::new();
        for note in &stored_notes {
            match keys.as_ref().map(|k| k.decrypt(host, username, note)) {
                Some(Ok(text)) => notes.push((note.contact.clone(), text)),
                _ => summary.notes_skipped += 1,
            }
        }
        summary.notes += notes.len();
        summary.bad_rows += write_user(out, host, username, &user, &notes)?;
        summary.users += 1;
        if (i + 1) % 500 == 0 {
            progress(i + 1, total);
        }
    }
    if current_host.is_some() {
        writeln!(out, "  </host>")?;
    }
    writeln!(out, "</server-data>")?;
    out.flush()?;
    progress(total, total);
    Ok(summary)
}

/// Writes one `<user/>`; returns how many stored rows were left out because they no longer
/// parse. `notes`: (contact, text).
pub fn write_user(
    out: &mut dyn Write,
    host: &str,
    username: &str,
    user: &PortableUser,
    notes: &[(String, String)],
) -> io::Result<usize> {
    let mut bad = 0;
    let mut warn = |what: &str| {
        tracing::warn!(user = %format!("{username}@{host}"), "stored {what} is not valid XML; not exported");
        bad += 1;
    };
    writeln!(out, "    <user name='{}'>", escape(username))?;
    for c in &user.credentials {
        writeln!(
            out,
            "      <scram-credentials xmlns='{NS_SCRAM}' mechanism='{}'>\
             <iter-count>{}</iter-count><salt>{}</salt>\
             <server-key>{}</server-key><stored-key>{}</stored-key></scram-credentials>",
            c.alg.mechanism_name(),
            c.iterations,
            B64.encode(&c.salt),
            B64.encode(&c.server_key),
            B64.encode(&c.stored_key),
        )?;
    }
    if !user.roster.is_empty() {
        writeln!(out, "      <query xmlns='{NS_ROSTER}'>")?;
        for item in &user.roster {
            write!(
                out,
                "        <item jid='{}' subscription='{}'",
                escape(&item.contact),
                escape(&item.subscription)
            )?;
            if let Some(name) = &item.name {
                write!(out, " name='{}'", escape(name))?;
            }
            if item.ask {
                write!(out, " ask='subscribe'")?;
            }
            if item.approved {
                write!(out, " approved='true'")?;
            }
            let note = notes.iter().find(|(c, _)| *c == item.contact);
            if item.groups.is_empty() && note.is_none() {
                writeln!(out, "/>")?;
                continue;
            }
            write!(out, ">")?;
            for g in &item.groups {
                write!(out, "<group>{}</group>", escape(g))?;
            }
            if let Some((_, text)) = note {
                write!(out, "<note xmlns='{NS_NOTES}'>{}</note>", escape(text))?;
            }
            writeln!(out, "</item>")?;
        }
        writeln!(out, "      </query>")?;
    }
    // XEP-0227 §4.8: requests waiting for an answer, as the presence stanzas received.
    for (_, stanza) in &user.pending_in {
        if stanza.parse::<Element>().is_ok() {
            writeln!(out, "      {stanza}")?;
        } else {
            warn("subscription request");
        }
    }
    if let Some(vcard) = &user.vcard {
        if vcard.parse::<Element>().is_ok() {
            writeln!(out, "      {vcard}")?;
        } else {
            warn("vCard");
        }
    }
    if !user.private.is_empty() {
        writeln!(out, "      <query xmlns='{NS_PRIVATE}'>")?;
        for (ns, data) in &user.private {
            let wrapped = format!("<query xmlns='{NS_PRIVATE}'>{data}</query>");
            if wrapped.parse::<Element>().is_ok() {
                writeln!(out, "        {data}")?;
            } else {
                warn(&format!("private XML '{ns}'"));
            }
        }
        writeln!(out, "      </query>")?;
    }
    if !user.privacy.lists.is_empty() {
        write_privacy(out, user)?;
    }
    if !user.offline.is_empty() {
        writeln!(out, "      <offline-messages>")?;
        for m in &user.offline {
            let Ok(mut el) = m.stanza.parse::<Element>() else {
                warn("offline message");
                continue;
            };
            // XEP-0227 §4.4 (and XEP-0203): when the server stored it.
            let stamp = chrono::DateTime::from_timestamp_millis(m.stamp_ms.unwrap_or(0))
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            el.append_child(
                Element::builder("delay", NS_DELAY)
                    .attr(rxml::NcName::try_from("from").expect("ncname"), host)
                    .attr(rxml::NcName::try_from("stamp").expect("ncname"), stamp)
                    .append("Offline Storage")
                    .build(),
            );
            writeln!(out, "        {}", xml::to_string(&el))?;
        }
        writeln!(out, "      </offline-messages>")?;
    }
    for pubsub in super::pep::export(&user.pep) {
        writeln!(out, "      {}", xml::to_string(&pubsub))?;
    }
    writeln!(out, "    </user>")?;
    Ok(bad)
}

/// XEP-0016 §2 form, as ejabberd writes it.
fn write_privacy(out: &mut dyn Write, user: &PortableUser) -> io::Result<()> {
    writeln!(out, "      <query xmlns='{NS_PRIVACY}'>")?;
    if let Some(name) = &user.privacy.default_list {
        writeln!(out, "        <default name='{}'/>", escape(name))?;
    }
    for list in &user.privacy.lists {
        writeln!(out, "        <list name='{}'>", escape(&list.name))?;
        for item in &list.items {
            write!(out, "          <item")?;
            if !item.kind.is_empty() {
                write!(
                    out,
                    " type='{}' value='{}'",
                    escape(&item.kind),
                    escape(&item.value)
                )?;
            }
            write!(out, " action='{}' order='{}'", escape(&item.action), item.order)?;
            if item.selectors == 0 {
                writeln!(out, "/>")?;
                continue;
            }
            write!(out, ">")?;
            for (bit, name) in [(1, "message"), (2, "iq"), (4, "presence-in"), (8, "presence-out")] {
                if item.selectors & bit != 0 {
                    write!(out, "<{name}/>")?;
                }
            }
            writeln!(out, "</item>")?;
        }
        writeln!(out, "        </list>")?;
    }
    writeln!(out, "      </query>")?;
    Ok(())
}

/// The command line: `switchboard export FILE` (`-`: standard output). The file is written
/// beside its final name, readable by its owner only (XEP-0227 §6: it holds credentials),
/// and renamed into place once complete.
pub async fn run(config: Config, file: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let storage = Storage::open(&config.storage.url).await?;
    let mut progress = |done: usize, total: usize| eprintln!("export: {done}/{total} users");
    let result = async {
        if file == std::path::Path::new("-") {
            let mut out = io::BufWriter::new(io::stdout());
            return export(&storage, &config, &mut out, &mut progress).await;
        }
        let mut partial = file.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
        let mut out = io::BufWriter::new(f);
        let summary = export(&storage, &config, &mut out, &mut progress).await;
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&partial, file)?;
        Ok(summary)
    }
    .await;
    storage.close().await;
    let s = result?;
    eprintln!("exported {} user(s) of {} host(s)", s.users, s.hosts);
    if s.notes > 0 {
        eprintln!("{} roster note(s) exported in plaintext", s.notes);
    }
    if s.notes_skipped > 0 {
        eprintln!(
            "warning: {} roster note(s) not exported: no configured [roster_notes] key decrypts them",
            s.notes_skipped
        );
    }
    if s.bad_rows > 0 {
        eprintln!(
            "warning: {} stored item(s) were not valid XML and were left out (see the log)",
            s.bad_rows
        );
    }
    Ok(())
}
