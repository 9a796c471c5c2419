//! The service's admin commands (list and destroy rooms, registered by the MUC module) and
//! what they need from the MUC service: the list of rooms (live and
//! stored) and destroying a room as its owner would (§10.9, `RoomCmd::AdminDestroy`).
//!
//! The admin commands live in another module, so the running service is published on the
//! registry (`Registry::provide`, at registration).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use tokio::sync::oneshot;

use super::room::RoomCmd;
use super::service::{JoinedRooms, Service};
use futures::FutureExt;

use crate::command::form::{Field, Form, Kind, one};
use crate::command::{Access, Command, Ctx, Done, admin_form, now};
use crate::server::Server;

/// Registered by the MUC module (`Registry::command`).
pub static COMMANDS: &[Command] = &[
    Command {
        node: "https://github.com/switchboard-xmpp/switchboard#list-muc-rooms",
        name: "List chat rooms",
        access: Access::Admin,
        enabled: muc_enabled,
        stages: &[],
        run: |c| list_rooms_command(c).boxed(),
    },
    Command {
        node: "https://github.com/switchboard-xmpp/switchboard#destroy-muc-room",
        name: "Destroy a chat room",
        access: Access::Admin,
        enabled: muc_enabled,
        stages: &[|c| now(destroy_room_form(&c.server))],
        run: |c| destroy_room_command(c).boxed(),
    },
];

fn service(server: &Server) -> Option<Arc<Service>> {
    super::running_service(server)
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
    if let Some(service) = service(server) {
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
    let service = service(server).ok_or("multi-user chat is not running")?;
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

fn muc_enabled(s: &Server) -> bool {
    let config = s.config();
    config.muc.service_domain(&config.domains).is_some()
}

async fn list_rooms_command(ctx: Ctx) -> Result<Done, String> {
    let rooms = list_rooms(&ctx.server).await?;
    tracing::info!(admin = %ctx.requester, rooms = rooms.len(), "admin listed chat rooms");
    let domain = {
        let config = ctx.server.config();
        config.muc.service_domain(&config.domains).unwrap_or_default()
    };
    let lines = rooms.iter().map(|r| {
        format!(
            "{}@{domain} occupants={} persistent={} loaded={} name={}",
            r.node, r.occupants, r.persistent, r.live, r.name
        )
    });
    Ok(Done::result(admin_form(
        "Chat rooms",
        vec![
            Field::new("roomsnum", Kind::TextSingle, "Number of rooms").value(rooms.len().to_string()),
            Field::new(
                "rooms",
                Kind::TextMulti,
                "Rooms (occupants = sessions joined; loaded = running now)",
            )
            .values(lines),
        ],
    )))
}

fn destroy_room_form(server: &Server) -> Form {
    let config = server.config();
    let domain = config.muc.service_domain(&config.domains).unwrap_or_default();
    let mut form = admin_form(
        "Destroying a chat room",
        vec![
            Field::new("roomjid", Kind::JidSingle, "The room's address").required(),
            Field::new("reason", Kind::TextSingle, "Reason told to the occupants"),
        ],
    );
    form.instructions = format!("A room of {domain}; its occupants are told, a stored room is deleted");
    form
}

/// XEP-0045 §10.9 on the admin's behalf.
async fn destroy_room_command(ctx: Ctx) -> Result<Done, String> {
    let room = one(&ctx.values, "roomjid").unwrap_or_default();
    let jid = BareJid::new(room).map_err(|_| format!("'{room}' is not a room address"))?;
    let domain = {
        let config = ctx.server.config();
        config.muc.service_domain(&config.domains).unwrap_or_default()
    };
    let node = match jid.node() {
        Some(n) if jid.domain().as_str() == domain => n.as_str().to_owned(),
        _ => return Err(format!("'{room}' is not a room of {domain}")),
    };
    let reason = one(&ctx.values, "reason").unwrap_or_default();
    destroy_room(&ctx.server, &node, reason, &ctx.requester.to_bare()).await?;
    tracing::info!(admin = %ctx.requester, room = %jid, reason, "admin destroyed a chat room");
    Ok(Done::note(format!("The room {jid} was destroyed")))
}
