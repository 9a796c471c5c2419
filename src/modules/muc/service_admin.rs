//! What the server's admin commands need from the MUC service: the list of rooms (live and
//! stored) and destroying a room as its owner would (§10.9).
//!
//! The admin commands live in another module, so the running service is published here
//! (`install`, at registration). One server per process, like the runtime admin list.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use jid::{BareJid, FullJid};
use minidom::Element;

use super::NS_OWNER;
use super::room::RoomCmd;
use super::service::{JoinedRooms, Service};
use crate::server::Server;
use crate::xml::{self, ns};

static SERVICE: RwLock<Option<Weak<Service>>> = RwLock::new(None);

/// Publishes the running service for the admin commands.
pub fn install(service: &Arc<Service>) {
    *SERVICE.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(service));
}

fn service() -> Option<Arc<Service>> {
    SERVICE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()?
        .upgrade()
}

/// One room as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub node: String,
    pub name: String,
    /// Stored in SQL (survives restarts and an empty room).
    pub persistent: bool,
    /// Loaded now (a stored room unloads when idle).
    pub live: bool,
    /// Local sessions that joined it.
    pub occupants: usize,
}

/// Sessions that joined each room, by room localpart.
fn joined_sessions(server: &Server) -> BTreeMap<String, Vec<FullJid>> {
    let mut map: BTreeMap<String, Vec<FullJid>> = BTreeMap::new();
    for s in server.sessions.all_sessions() {
        let joined = s.extension::<JoinedRooms>();
        let rooms = joined.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for node in rooms {
            map.entry(node).or_default().push(s.jid.clone());
        }
    }
    map
}

/// Every live or stored room of the service, sorted by localpart.
pub async fn list_rooms(server: &Server) -> Result<Vec<RoomInfo>, String> {
    let config = server.config();
    let domain = config
        .muc
        .service_domain(&config.domains)
        .ok_or("multi-user chat is not enabled")?;
    let stored = server
        .storage
        .muc_room_names(&domain)
        .await
        .map_err(|e| e.to_string())?;
    let joined = joined_sessions(server);
    let mut rooms: BTreeMap<String, RoomInfo> = BTreeMap::new();
    if let Some(service) = service() {
        for r in service.rooms.iter() {
            let name = r.summary.lock().unwrap_or_else(|e| e.into_inner()).name.clone();
            rooms.insert(
                r.key().clone(),
                RoomInfo {
                    node: r.key().clone(),
                    name,
                    persistent: false,
                    live: true,
                    occupants: 0,
                },
            );
        }
    }
    for node in stored {
        rooms
            .entry(node.clone())
            .or_insert_with(|| RoomInfo {
                node,
                name: String::new(),
                persistent: true,
                live: false,
                occupants: 0,
            })
            .persistent = true;
    }
    for (node, info) in rooms.iter_mut() {
        info.occupants = joined.get(node).map_or(0, Vec::len);
    }
    Ok(rooms.into_values().collect())
}

/// How long to wait for a room to act on one destroy request.
const ATTEMPT_WAIT: Duration = Duration::from_millis(500);
/// Owners tried at most (stored owners first, then the requester, then occupants).
const MAX_ATTEMPTS: usize = 16;

/// Destroys `node` as an owner's §10.9 request would: every occupant gets the unavailable
/// presence with `<destroy/>` and the reason, a stored room is deleted from SQL.
///
/// The room accepts destruction only from an owner, and the room task keeps its affiliations
/// to itself, so the request is sent in the name of a known owner (stored owners, the
/// requesting admin, then accounts in the room) from a resource that is not connected: the
/// room's answer to it is dropped, and a refusal (not an owner) leaves the room as it was.
pub async fn destroy_room(
    server: &Arc<Server>,
    node: &str,
    reason: &str,
    admin: &BareJid,
) -> Result<(), String> {
    let config = server.config();
    let domain = config
        .muc
        .service_domain(&config.domains)
        .ok_or("multi-user chat is not enabled")?;
    let service = service().ok_or("multi-user chat is not running")?;
    let stored = server
        .storage
        .muc_load_room(&domain, node)
        .await
        .map_err(|e| e.to_string())?;
    let live = service.rooms.contains_key(node);
    if stored.is_none() && !live {
        return Err(format!("there is no room {node}@{domain}"));
    }
    let mut owners: Vec<BareJid> = Vec::new();
    let mut push = |j: BareJid| {
        if !owners.contains(&j) {
            owners.push(j);
        }
    };
    if let Some(s) = &stored {
        for (jid, affiliation, _) in &s.affiliations {
            if affiliation == "owner"
                && let Ok(j) = BareJid::new(jid)
            {
                push(j);
            }
        }
    }
    push(admin.clone());
    for full in joined_sessions(server).remove(node).unwrap_or_default() {
        push(full.to_bare());
    }
    let room_jid = format!("{node}@{domain}");
    let resource = format!("switchboard-admin-{}", uuid::Uuid::new_v4().simple());
    for (i, owner) in owners.iter().take(MAX_ATTEMPTS).enumerate() {
        let Ok(from) = FullJid::new(&format!("{owner}/{resource}")) else {
            continue;
        };
        let iq = destroy_iq(&from, &room_jid, reason);
        // Only the first request may load a stored room; later ones reach a loaded room or
        // nothing (a destroyed room must not be loaded again).
        let create = i == 0 && stored.is_some();
        if i > 0 && !service.rooms.contains_key(node) {
            break;
        }
        service.dispatch(server, node, RoomCmd::Stanza(from, iq), create);
        if gone(&service, node).await {
            return Ok(());
        }
    }
    if gone(&service, node).await
        && server
            .storage
            .muc_load_room(&domain, node)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
    {
        return Ok(());
    }
    Err(format!(
        "the room {room_jid} was not destroyed: no owner of it could be found"
    ))
}

/// Waits (bounded) until the room task ended.
async fn gone(service: &Service, node: &str) -> bool {
    let deadline = tokio::time::Instant::now() + ATTEMPT_WAIT;
    loop {
        if !service.rooms.contains_key(node) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn destroy_iq(from: &FullJid, room: &str, reason: &str) -> Element {
    let mut iq = Element::bare("iq", ns::CLIENT);
    xml::set_attr(&mut iq, "type", "set");
    xml::set_attr(&mut iq, "id", "admin-destroy");
    xml::set_attr(&mut iq, "from", &from.to_string());
    xml::set_attr(&mut iq, "to", room);
    let mut q = Element::bare("query", NS_OWNER);
    let mut d = Element::bare("destroy", NS_OWNER);
    if !reason.is_empty() {
        d.append_child(xml::text_element("reason", NS_OWNER, reason));
    }
    q.append_child(d);
    iq.append_child(q);
    iq
}
