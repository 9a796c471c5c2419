//! XEP-0313 archives of MUC rooms, the archive's side. The room decides (it owns its
//! configuration, affiliations and occupants): whether it archives, who may query, who may
//! see real JIDs. This side stamps ids, queues rows for the writer (batched, as accounts'
//! are), answers queries addressed to the room JID with the same filters, paging and
//! full-text search, and reads join history back.
//!
//! A room's `with` filter names an occupant JID (`room@service/nick`): its messages under
//! that nick. The archived stanza is the broadcast one (from the occupant JID, with the
//! occupant-id and the room's stanza-id); the sender's real JID is kept beside it and added
//! as `<x xmlns='muc#user'><item jid=../></x>` only for requesters the room lets see it.

use std::sync::Arc;

use jid::{BareJid, FullJid};
use minidom::Element;
use xmpp_parsers::mam::{End, MetadataResponse, Start};

use super::{Archive, query};
use crate::error::StanzaError;
use crate::router;
use crate::server::Server;
use crate::storage::archive::PageFrom;
use crate::storage::room_archive::RoomArchiveRow;
use crate::xml;

const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// An IQ in `urn:xmpp:mam:2` the room let through, with what the requester may see.
pub struct RoomRequest {
    pub room: BareJid,
    pub requester: FullJid,
    pub iq: Element,
    pub show_real_jids: bool,
}

impl Archive {
    /// Stamps a groupchat message the room is about to broadcast with its archive id
    /// (`<stanza-id by=room>`, ids the sender forged for the room removed) and returns the
    /// row to queue with [`Archive::append_room`] (the broadcast does not wait for it).
    pub fn stamp_room_message(
        &self,
        room: &BareJid,
        nick: &str,
        sender: &BareJid,
        msg: &mut Element,
    ) -> RoomArchiveRow {
        let by = room.as_str();
        super::policy::strip_stanza_ids(msg, |b| b == by);
        let id = self.next_id();
        super::policy::add_stanza_id(msg, by, &id.to_string());
        RoomArchiveRow {
            host: room.domain().to_string(),
            room: room.node().map(|n| n.to_string()).unwrap_or_default(),
            id,
            nick: nick.to_string(),
            real_jid: sender.to_string(),
            origin_id: super::policy::origin_id(msg),
            body: super::policy::body_text(msg),
            stanza: xml::to_string(msg),
        }
    }

    /// Queues a room's message for the writer (waits only while its queue is full).
    pub async fn append_room(&self, server: &Arc<Server>, row: RoomArchiveRow) {
        self.writer(server).append_room(row).await;
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self, server: &Arc<Server>) {
        self.writer(server).flush().await;
    }

    /// The room's last messages for join history (XEP-0045 §7.2.13-15), oldest first, each
    /// with its time: at most `max`, none older than `since` (unix microseconds).
    pub async fn room_history(
        &self,
        server: &Arc<Server>,
        room: &BareJid,
        max: usize,
        since: Option<i64>,
    ) -> Vec<(i64, Element)> {
        self.flush(server).await;
        let filter = crate::storage::archive::ArchiveFilter {
            start: since,
            ..Default::default()
        };
        let (host, node) = parts(room);
        match server
            .storage
            .room_archive_query(host, node, &filter, PageFrom::Last, max)
            .await
        {
            Ok(page) => page
                .messages
                .into_iter()
                .filter_map(|m| m.stanza.parse().ok().map(|el| (m.id, el)))
                .collect(),
            Err(e) => {
                tracing::error!(room = %room, error = %e, "cannot read the room's archive for history");
                Vec::new()
            }
        }
    }

    /// Deletes the room's archive (after what is queued is written); returns how many.
    pub async fn purge_room(&self, server: &Arc<Server>, room: &BareJid) -> Result<u64, String> {
        self.flush(server).await;
        let (host, node) = parts(room);
        server
            .storage
            .room_archive_purge(host, node)
            .await
            .map_err(|e| e.to_string())
    }

    /// XEP-0425: turns message `id` of the room's archive into a tombstone naming the
    /// moderator (`by`, their occupant id) and the reason. Ok(false): no such message.
    pub async fn moderate_room(
        &self,
        server: &Arc<Server>,
        room: &BareJid,
        id: i64,
        moderated: &Element,
        reason: Option<&str>,
    ) -> Result<bool, String> {
        self.flush(server).await;
        let (host, node) = parts(room);
        let storage = &server.storage;
        let Some(found) = storage
            .room_archive_get(host, node, id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tomb = super::policy::tombstone(&found.stanza, &stamp)
            .and_then(|t| t.parse::<Element>().ok())
            .ok_or("the archived message does not parse")?;
        let tomb = moderated_tombstone(tomb, moderated, reason);
        storage
            .room_archive_tombstone(host, node, id, &xml::to_string(&tomb))
            .await
            .map_err(|e| e.to_string())
    }

    /// XEP-0424 in a room: message `id` becomes a tombstone if `sender` sent it (its real
    /// JID matches); Ok(false) otherwise.
    pub async fn retract_own_room_message(
        &self,
        server: &Arc<Server>,
        room: &BareJid,
        id: i64,
        sender: &BareJid,
    ) -> Result<bool, String> {
        self.flush(server).await;
        let (host, node) = parts(room);
        let storage = &server.storage;
        let found = storage
            .room_archive_get(host, node, id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(found) = found.filter(|m| m.real_jid == sender.as_str()) else {
            return Ok(false);
        };
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tomb =
            super::policy::tombstone(&found.stanza, &stamp).ok_or("the archived message does not parse")?;
        storage
            .room_archive_tombstone(host, node, id, &tomb)
            .await
            .map_err(|e| e.to_string())
    }

    /// Answers a query, metadata or form request addressed to the room JID.
    pub async fn serve_room(&self, server: Arc<Server>, req: RoomRequest) {
        let answer = match (req.iq.attr("type"), req.iq.children().next()) {
            (Some("set"), Some(q)) if q.name() == "query" => self.room_query(&server, &req, q).await,
            (Some("get"), Some(q)) if q.name() == "query" => Ok(Some(query::form())),
            (Some("get"), Some(q)) if q.name() == "metadata" => self.room_metadata(&server, &req.room).await,
            _ => Err(StanzaError::service_unavailable()),
        };
        match answer {
            Ok(payload) => {
                let mut r = xml::iq_result(&req.iq, payload);
                xml::set_attr(&mut r, "from", req.room.as_str());
                xml::set_attr(&mut r, "to", &req.requester.to_string());
                router::deliver_to_full(&server, &req.requester, r);
            }
            Err(e) => router::bounce(&server, &req.iq, e),
        }
    }

    async fn room_query(
        &self,
        server: &Arc<Server>,
        req: &RoomRequest,
        q: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let limit = server.config().limits.max_archive_page;
        let mut request = query::parse(q, limit)?;
        // `with`: an occupant JID of this room (by nick); the room itself: no filter.
        if let Some((bare, resource)) = request.filter.peer.take() {
            if bare != req.room.as_str() {
                request.filter.ids = Some(Vec::new());
            } else if resource.is_some() {
                request.filter.peer = Some((bare, resource));
            }
        }
        let (host, node) = parts(&req.room);
        let storage = &server.storage;
        self.flush(server).await;
        for id in &request.positions {
            let found = storage
                .room_archive_has_id(host, node, *id)
                .await
                .map_err(StanzaError::storage("archive"))?;
            if !found {
                return Err(StanzaError::item_not_found().text("no message with this id in the archive"));
            }
        }
        let from = request.from.unwrap_or(PageFrom::Start);
        let page = storage
            .room_archive_query(host, node, &request.filter, from, request.max)
            .await
            .map_err(StanzaError::storage("archive"))?;
        let session = server
            .sessions
            .get(&req.requester)
            .ok_or_else(StanzaError::internal_server_error)?;
        let requester = req.requester.to_string();
        let send = |m: &crate::storage::room_archive::RoomArchivedMessage| match m.stanza.parse::<Element>() {
            Ok(mut original) => {
                if req.show_real_jids {
                    with_real_jid(&mut original, &m.real_jid);
                }
                let msg = query::result_message(
                    &requester,
                    req.room.as_str(),
                    request.queryid.as_deref(),
                    m.id,
                    original,
                );
                router::push(&session, msg);
            }
            Err(e) => tracing::error!(id = m.id, error = %e, "archived room message does not parse; skipped"),
        };
        if request.flip {
            page.messages.iter().rev().for_each(send);
        } else {
            page.messages.iter().for_each(send);
        }
        let summary = crate::storage::archive::ArchivePage {
            messages: page
                .messages
                .iter()
                .map(|m| crate::storage::archive::ArchivedMessage {
                    id: m.id,
                    peer: String::new(),
                    peer_resource: String::new(),
                    outgoing: false,
                    stanza: String::new(),
                })
                .collect(),
            count: page.count,
            first_index: page.first_index,
            complete: page.complete,
        };
        Ok(Some(query::fin(&summary)))
    }

    async fn room_metadata(
        &self,
        server: &Arc<Server>,
        room: &BareJid,
    ) -> Result<Option<Element>, StanzaError> {
        self.flush(server).await;
        let (host, node) = parts(room);
        let bounds = server
            .storage
            .room_archive_bounds(host, node)
            .await
            .map_err(StanzaError::storage("archive"))?;
        let response = MetadataResponse {
            start: bounds.map(|(first, _)| Start {
                id: first.to_string(),
                timestamp: query::stamp(first),
            }),
            end: bounds.map(|(_, last)| End {
                id: last.to_string(),
                timestamp: query::stamp(last),
            }),
        };
        Ok(Some(response.into()))
    }
}

/// The room's service domain and node.
fn parts(room: &BareJid) -> (&str, &str) {
    (room.domain().as_str(), room.node().map_or("", |n| n.as_str()))
}

/// A tombstone's `<retracted/>` with who moderated it and why (XEP-0425 §4).
fn moderated_tombstone(mut tomb: Element, moderated: &Element, reason: Option<&str>) -> Element {
    for child in tomb.children_mut() {
        if child.is("retracted", super::policy::NS_RETRACT) {
            child.append_child(moderated.clone());
            if let Some(reason) = reason {
                child.append_child(xml::text_element("reason", super::policy::NS_RETRACT, reason));
            }
        }
    }
    tomb
}

/// Adds the sender's real JID to an archived room message (XEP-0313 §5.1.2, for those
/// allowed to see it).
fn with_real_jid(msg: &mut Element, real_jid: &str) {
    let mut x = Element::bare("x", NS_MUC_USER);
    let mut item = Element::bare("item", NS_MUC_USER);
    xml::set_attr(&mut item, "jid", real_jid);
    x.append_child(item);
    msg.append_child(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0313_5_room_message_stamped_by_the_room_forged_id_removed() {
        let archive = Archive::default();
        let room = BareJid::new("lounge@conference.example.org").unwrap();
        let mut m: Element =
            "<message xmlns='jabber:client' from='lounge@conference.example.org/Al' type='groupchat'>\
             <body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='lounge@conference.example.org' id='forged'/></message>"
                .parse()
                .unwrap();
        let sender = BareJid::new("alice@example.org").unwrap();
        let row = archive.stamp_room_message(&room, "Al", &sender, &mut m);
        let ids: Vec<_> = m
            .children()
            .filter(|c| c.is("stanza-id", super::super::policy::NS_SID))
            .map(|c| c.attr("id").unwrap().to_string())
            .collect();
        assert_eq!(ids, [row.id.to_string()]);
        assert_eq!(
            (row.host.as_str(), row.room.as_str()),
            ("conference.example.org", "lounge")
        );
        assert_eq!(
            (row.nick.as_str(), row.real_jid.as_str()),
            ("Al", "alice@example.org")
        );
        assert_eq!((row.origin_id.as_str(), row.body.as_str()), ("o1", "hi"));
        assert!(!row.stanza.contains("alice@example.org"));
    }
}
