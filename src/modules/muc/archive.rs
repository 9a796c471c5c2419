//! The room's message archive (XEP-0313 for rooms; the archive module keeps it, found on
//! the registry as `mam::Archive`). The room decides what only it knows:
//!
//! - whether it archives: `muc#roomconfig_enablearchiving` while persistent (a temporary
//!   room's archive would outlive it);
//! - who may query: nobody banned; only members of a members-only room; of a hidden or
//!   password-protected room, members and current occupants; of an open public room,
//!   anyone else not banned;
//! - who sees real JIDs in results: everyone in a non-anonymous room, else owners, admins
//!   and moderators.
//!
//! Messages get the room's stanza-id and go out once the archive's writer has written them
//! (held, as a stored room's messages were held for their history row, so one seen is never
//! lost in a crash; the writer batches across rooms and accounts). While archiving, the
//! archive is the room's history: join history (`<history/>`) is read from it, and no
//! separate history row is written.
//!
//! XEP-0424: an occupant retracting its own message (by the room's stanza-id) leaves a
//! tombstone too. XEP-0425 moderation: a moderator retracts an archived message by its stanza-id; the
//! archive keeps a tombstone naming the moderator, occupants get the retraction (itself
//! archived, so clients catching up learn of it).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jid::{BareJid, FullJid};
use minidom::Element;

use super::NS_MUC;
use super::affiliations::{Affiliation, Role};
use super::history::{self, Request};
use super::room::{Room, RoomCmd};
use crate::error::StanzaError;
use crate::modules::mam::policy::NS_RETRACT;
use crate::modules::mam::{self, room::RoomRequest};
use crate::storage::room_archive::RoomArchiveRow;
use crate::xml::{self, ns};

/// What a room holds for its archive.
#[derive(Default)]
pub struct RoomArchive {
    pub(super) archive: Option<Arc<mam::Archive>>,
    /// Rows to queue once the current command is handled.
    rows: Vec<RoomArchiveRow>,
    /// Join history read from the archive for the command being handled.
    pub(super) history: Option<Vec<(Element, SystemTime)>>,
    /// A moderation's archive step for the command being handled: the message was found
    /// and tombstoned (with the `<moderated/>` and reason used), or not.
    moderation: Option<Result<Option<Moderation>, String>>,
}

/// XEP-0425 moderation (`<moderate/>` to the room).
pub const NS_MODERATE: &str = "urn:xmpp:message-moderate:1";

struct Moderation {
    id: String,
    moderated: Element,
    reason: Option<String>,
}

impl RoomArchive {
    pub fn new(archive: Option<Arc<mam::Archive>>) -> RoomArchive {
        RoomArchive {
            archive,
            ..Default::default()
        }
    }
}

impl Room {
    /// Whether the room archives its messages now.
    pub(super) fn archiving(&self) -> bool {
        self.archive.archive.is_some() && self.config.archiving && self.config.persistent && !self.locked
    }

    /// Stamps a message about to be broadcast with the room's stanza-id and notes it for the
    /// archive; false when the room does not archive it.
    pub(super) fn archive_message(&mut self, out: &mut Element, nick: &str, sender: &BareJid) -> bool {
        if !mam::policy::room_archivable(out) {
            return false;
        }
        self.archive_always(out, nick, sender)
    }

    /// As [`Room::archive_message`], whatever the message holds (while archiving).
    fn archive_always(&mut self, out: &mut Element, nick: &str, sender: &BareJid) -> bool {
        if !self.archiving() {
            return false;
        }
        let Some(archive) = &self.archive.archive else {
            return false;
        };
        let row = archive.stamp_room_message(&self.jid, nick, sender, out);
        self.archive.rows.push(row);
        true
    }

    /// Hands the rows of the last command to the archive's writer.
    pub(super) async fn write_archive(&mut self) {
        if self.archive.rows.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.archive.rows);
        if let Some(archive) = &self.archive.archive {
            for row in rows {
                archive.append_room(&self.server, row).await;
            }
            // Written before the message goes out (it is held until then), so whoever saw
            // it finds it after a crash; the writer still batches across rooms and accounts.
            archive.flush(&self.server).await;
        }
    }

    /// Whether `from` may read the archive, and then whether it sees real JIDs.
    pub(super) fn archive_access(&self, from: &FullJid) -> Result<bool, StanzaError> {
        let affiliation = self.affiliations.get(&from.to_bare());
        if affiliation == Affiliation::Outcast {
            return Err(StanzaError::forbidden().text("you are banned from this room"));
        }
        let occupant = self.occupants.by_jid(from);
        if self.config.members_only && affiliation < Affiliation::Member {
            return Err(
                StanzaError::forbidden().text("the archive of a members-only room is for its members")
            );
        }
        let private = !self.config.public || self.config.password.is_some();
        if private && affiliation < Affiliation::Member && occupant.is_none() {
            return Err(StanzaError::forbidden().text("the archive of this room is for its occupants"));
        }
        Ok(self.config.whois_anyone
            || affiliation >= Affiliation::Admin
            || occupant.is_some_and(|o| o.role == Role::Moderator))
    }

    /// An IQ in `urn:xmpp:mam:2` to the room: checked here, answered by the archive module
    /// off the room's task.
    pub(super) fn archive_iq(&self, from: FullJid, iq: Element) {
        let Some(archive) = self.archive.archive.clone().filter(|_| self.archiving()) else {
            return self.error(
                &iq,
                StanzaError::service_unavailable().text("this room keeps no archive"),
            );
        };
        match self.archive_access(&from) {
            Err(e) => self.error(&iq, e),
            Ok(show_real_jids) => {
                let request = RoomRequest {
                    room: self.jid.clone(),
                    requester: from,
                    iq,
                    show_real_jids,
                };
                let server = self.server.clone();
                tokio::spawn(async move { archive.serve_room(server, request).await });
            }
        }
    }

    /// Before a command is handled, what it needs from the archive (the room waits for
    /// it, as it waits for its own SQL writes): a join's history, a moderation's tombstone.
    pub(super) async fn prepare(&mut self, cmd: &RoomCmd) {
        self.archive.moderation = None;
        if let RoomCmd::Stanza(from, iq) = cmd
            && iq.name() == "iq"
            && iq.attr("type") == Some("set")
            && iq.attr("to").is_some_and(|to| !to.contains('/'))
            && let Some(m) = iq.get_child("moderate", NS_MODERATE)
        {
            self.prepare_moderation(from, m).await;
        }
        if let RoomCmd::Stanza(from, m) = cmd
            && m.name() == "message"
            && m.attr("type") == Some("groupchat")
            && m.attr("to").is_some_and(|to| !to.contains('/'))
            && let Some(id) = mam::policy::retracts(m)
        {
            self.retract_own(from, id).await;
        }
        self.prefetch_history(cmd).await;
    }

    /// XEP-0424 in a room: an occupant with voice retracting its own message (named by the
    /// room's stanza-id) leaves a tombstone in the archive; the retraction itself is then
    /// broadcast as any message. Someone else's message stays as it was.
    async fn retract_own(&mut self, from: &FullJid, id: &str) {
        let may_speak = self
            .occupants
            .by_jid(from)
            .is_some_and(|o| o.role >= Role::Participant);
        let (Some(archive), Ok(id)) = (self.archive.archive.clone(), id.parse::<i64>()) else {
            return;
        };
        if !self.archiving() || !may_speak {
            return;
        }
        match archive
            .retract_own_room_message(&self.server, &self.jid, id, &from.to_bare())
            .await
        {
            Ok(done) => tracing::debug!(room = %self.jid, id, done, "occupant's retraction"),
            Err(e) => tracing::error!(room = %self.jid, error = %e, "retraction failed"),
        }
    }

    fn is_moderator(&self, jid: &FullJid) -> bool {
        self.occupants
            .by_jid(jid)
            .is_some_and(|o| o.role == Role::Moderator)
    }

    async fn prepare_moderation(&mut self, from: &FullJid, m: &Element) {
        if !self.archiving() || !self.is_moderator(from) || m.get_child("retract", NS_RETRACT).is_none() {
            return;
        }
        let (Some(archive), Some(o)) = (self.archive.archive.clone(), self.occupants.by_jid(from)) else {
            return;
        };
        let Some(id) = m.attr("id").and_then(|id| id.parse::<i64>().ok()) else {
            self.archive.moderation = Some(Ok(None));
            return;
        };
        let mut moderated = Element::bare("moderated", NS_MODERATE);
        xml::set_attr(&mut moderated, "by", &self.occupant_jid(&o.nick));
        moderated.append_child(super::room::occupant_id_element(&o.occupant_id));
        let reason = m.get_child("reason", NS_MODERATE).map(|r| r.text());
        let result = archive
            .moderate_room(&self.server, &self.jid, id, &moderated, reason.as_deref())
            .await;
        self.archive.moderation = Some(result.map(|found| {
            found.then(|| Moderation {
                id: id.to_string(),
                moderated,
                reason,
            })
        }));
    }

    /// XEP-0425 §4: a moderator's retraction of a message, once its archive entry is a
    /// tombstone: announced to every occupant.
    pub(super) fn moderate(&mut self, from: &FullJid, m: &Element) -> Result<Option<Element>, StanzaError> {
        if !self.is_moderator(from) {
            return Err(StanzaError::forbidden().text("only moderators may retract others' messages"));
        }
        if m.get_child("retract", NS_RETRACT).is_none() {
            return Err(StanzaError::bad_request().text("a moderation names what it does: <retract/>"));
        }
        let moderation = match self.archive.moderation.take() {
            Some(Ok(Some(moderation))) => moderation,
            Some(Err(e)) => {
                tracing::error!(room = %self.jid, error = %e, "moderation failed");
                return Err(StanzaError::internal_server_error());
            }
            _ => return Err(StanzaError::item_not_found().text("no message with this id in the archive")),
        };
        let mut retract = Element::bare("retract", NS_RETRACT);
        xml::set_attr(&mut retract, "id", &moderation.id);
        retract.append_child(moderation.moderated);
        if let Some(reason) = &moderation.reason {
            retract.append_child(xml::text_element("reason", NS_RETRACT, reason));
        }
        let mut notice = Element::bare("message", ns::CLIENT);
        xml::set_attr(&mut notice, "type", "groupchat");
        xml::set_attr(&mut notice, "from", &self.jid_str);
        xml::set_attr(&mut notice, "id", &format!("moderation-{}", moderation.id));
        notice.append_child(retract);
        self.archive_always(&mut notice, "", &from.to_bare());
        self.send_all(&notice);
        Ok(None)
    }

    /// Before a join is handled: its history, read from the archive while archiving (at
    /// most `historylength` messages, as the room announces in muc#maxhistoryfetch).
    async fn prefetch_history(&mut self, cmd: &RoomCmd) {
        self.archive.history = None;
        let RoomCmd::Stanza(_, p) = cmd else {
            return;
        };
        let join = p.name() == "presence"
            && p.attr("type").is_none()
            && p.get_child("x", NS_MUC).is_some()
            && p.attr("to").is_some_and(|to| to.contains('/'));
        if !join || !self.archiving() {
            return;
        }
        let Some(archive) = self.archive.archive.clone() else {
            return;
        };
        let req = Request::from_join(p);
        let max = req
            .max_stanzas
            .unwrap_or(self.config.history_length)
            .min(self.config.history_length);
        let mut since = req.since;
        if let Some(seconds) = req.seconds {
            let cutoff = SystemTime::now() - Duration::from_secs(seconds.min(u64::from(u32::MAX)));
            since = Some(since.map_or(cutoff, |s| s.max(cutoff)));
        }
        let since_us = since.map(|s| {
            s.duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        });
        let found = if max == 0 {
            Vec::new()
        } else {
            archive.room_history(&self.server, &self.jid, max, since_us).await
        };
        self.archive.history = Some(
            found
                .into_iter()
                .map(|(id, stanza)| {
                    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(id).unwrap_or(0));
                    (history::delayed(stanza, &self.jid_str, at), at)
                })
                .collect(),
        );
    }

    /// The history a joining session gets: from the archive when it was read for this
    /// join, else from memory.
    pub(super) fn history_for(&self, req: &Request) -> Vec<&Element> {
        match &self.archive.history {
            Some(found) => history::select(found.iter().map(|(e, at)| (e, *at)), req),
            None => self.history.select(req),
        }
    }

    /// A destroyed room's archive goes with it.
    pub(super) fn purge_archive(&self) {
        if let Some(archive) = self.archive.archive.clone() {
            let (server, room) = (self.server.clone(), self.jid.clone());
            tokio::spawn(async move {
                match archive.purge_room(&server, &room).await {
                    Ok(n) => tracing::debug!(%room, messages = n, "destroyed room's archive deleted"),
                    Err(e) => tracing::error!(%room, error = %e, "cannot delete a destroyed room's archive"),
                }
            });
        }
    }
}
