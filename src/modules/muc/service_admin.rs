//! What the server's admin commands need from the MUC service: the list of rooms (live and
//! stored) and destroying a room as its owner would (§10.9, `RoomCmd::AdminDestroy`).
//!
//! The admin commands live in another module, so the running service is published here
//! (`install`, at registration). One server per process, like the runtime admin list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use tokio::sync::oneshot;

use super::room::RoomCmd;
use super::service::{JoinedRooms, Service};
use crate::server::Server;

fn service() -> Option<Arc<Service>> {
    super::running_service()
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
        let Some(joined) = s.local().map(|l| l.extension::<JoinedRooms>()) else {
            continue;
        };
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

/// How long the admin command waits for the room to act.
const DESTROY_WAIT: Duration = Duration::from_secs(10);

/// Destroys `node` as an owner's §10.9 request would (`RoomCmd::AdminDestroy`): every occupant
/// gets the unavailable presence with `<destroy/>` and the reason, a stored room is deleted
/// from SQL (an unloaded one is loaded for that). Returns once the room acted.
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
    let room_jid = format!("{node}@{domain}");
    let live = service.rooms.contains_key(node);
    // Only a stored room may be loaded for this: starting a room that does not exist would
    // hold its name for a moment against a real creator.
    let stored = live
        || server
            .storage
            .muc_load_room(&domain, node)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
    if !stored {
        return Err(format!("there is no room {room_jid}"));
    }
    let (done, acted) = oneshot::channel();
    let cmd = RoomCmd::AdminDestroy {
        reason: reason.to_string(),
        admin: admin.clone(),
        done,
    };
    service.dispatch(server, node, cmd, true);
    match tokio::time::timeout(DESTROY_WAIT, acted).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) | Ok(Err(_)) if service.rooms.contains_key(node) => {
            Err(format!("the room {room_jid} is busy, try again"))
        }
        Ok(Ok(false)) | Ok(Err(_)) => Err(format!("there is no room {room_jid}")),
        Err(_) => Err(format!("the room {room_jid} did not answer in time")),
    }
}
