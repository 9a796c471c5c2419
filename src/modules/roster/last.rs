//! XEP-0012 last activity: the server's uptime (§5), and for an account (§4) the seconds
//! since its last session ended, or 0 while it has an available resource. Only the account
//! itself and contacts subscribed to its presence may ask; others get `forbidden`, whether
//! or not the account exists.

use minidom::Element;

use super::Roster;
use super::store_cache::storage_key;
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget};
use crate::xml::{self, ns};

pub const NS: &str = "jabber:iq:last";

fn answer(seconds: u64, status: &str) -> Element {
    let mut q = Element::bare("query", NS);
    xml::set_attr(&mut q, "seconds", &seconds.to_string());
    if !status.is_empty() {
        q.append_text(status);
    }
    q
}

impl Roster {
    pub(super) async fn last_activity(&self, req: IqRequest) -> IqResult {
        let server = &req.server;
        if req.target == IqTarget::Server {
            return Ok(IqResponse::with(answer(server.started.elapsed().as_secs(), "")));
        }
        let account = &req.to;
        if req.target == IqTarget::OtherAccount {
            let requester = req.from.to_bare();
            let subscribed = self
                .cache
                .lock(server, account)
                .await
                .map_err(StanzaError::storage(super::STORAGE))?
                .roster()
                .entry(&requester)
                .state
                .sub()
                .has_from();
            if !subscribed {
                return Err(
                    StanzaError::forbidden().text("you are not subscribed to this contact's presence")
                );
            }
        }
        // Online: the most available resource's status.
        let online = server
            .sessions
            .sessions_of(account)
            .into_iter()
            .filter(|s| s.is_available())
            .max_by_key(|s| s.priority());
        if let Some(session) = online {
            let status = session
                .last_presence()
                .and_then(|p| p.get_child("status", ns::CLIENT).map(|s| s.text()))
                .unwrap_or_default();
            return Ok(IqResponse::with(answer(0, &status)));
        }
        let (host, username) = storage_key(server, account);
        match server.storage.last_logout(host, username).await {
            Ok(Some((at, status))) => {
                let seconds = chrono::Utc::now().timestamp().saturating_sub(at).max(0);
                Ok(IqResponse::with(answer(seconds.unsigned_abs(), &status)))
            }
            Ok(None) => Err(StanzaError::item_not_found().text("no activity recorded yet")),
            Err(e) => Err(StanzaError::storage(super::STORAGE)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_shape() {
        let q = answer(903, "Heading Home");
        assert_eq!(q.attr("seconds"), Some("903"));
        assert_eq!(q.text(), "Heading Home");
        assert_eq!(answer(0, "").text(), "");
    }
}
