//! XEP-0163 personal eventing: a publish-subscribe service on every account's bare JID.
//!
//! An account's nodes are loaded on first use and kept while the account has a session (or
//! someone is using them); every change is written to storage before it is answered. Who
//! gets a notification follows XEP-0163 §4.3: the owner's own available resources and the
//! available resources of contacts that receive the owner's presence, when the node's
//! access model lets them see it and their XEP-0115 capabilities say `node+notify`.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
use xmpp_parsers::data_forms::DataForm;
use xmpp_parsers::pubsub::owner::{Owner, Payload as OwnerPayload};
use xmpp_parsers::pubsub::pubsub::{Create, Item as PubSubItem, Items, Publish, PublishOptions, Retract};
use xmpp_parsers::pubsub::{ItemId, NodeName, PubSub};

use super::avatar;
use super::bookmarks;
use super::caps::CapsCache;
use super::config::{NS_NODE_CONFIG, NS_PUBLISH_OPTIONS, NodeConfig, SendLast};
use super::errors;
use super::events;
use super::node::{Affiliation, Denied, Node, RosterFacts};
use super::rosters::{RosterView, Rosters};
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType};
use crate::server::Server;
use crate::session::Recipient;

pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";

pub(super) type Nodes = BTreeMap<String, Node>;
type Guard = OwnedMutexGuard<Option<Nodes>>;
/// One node of a locked account.
type NodeGuard = OwnedMappedMutexGuard<Option<Nodes>, Node>;

pub(super) const STORAGE: &str = "PEP storage error";

#[derive(Default)]
pub struct Pep {
    /// Loaded accounts' nodes; `None` until loaded.
    services: DashMap<BareJid, Arc<Mutex<Option<Nodes>>>>,
    pub caps: CapsCache,
    pub rosters: Rosters,
    /// XEP-0398: each online account's avatar hash ("" for none), for its presence.
    pub(super) photos: DashMap<BareJid, String>,
}

pub(super) fn parts(jid: &BareJid) -> (&str, &str) {
    (jid.domain().as_str(), jid.node().map_or("", |n| n.as_str()))
}

impl Pep {
    /// The account's nodes, loaded if needed, locked for one operation.
    pub(super) async fn lock(&self, server: &Server, owner: &BareJid) -> Result<Guard, StanzaError> {
        let cell = self.services.entry(owner.clone()).or_default().clone();
        let mut guard = cell.lock_owned().await;
        if guard.is_none() {
            let (host, user) = parts(owner);
            let stored = server
                .storage
                .pep_load(host, user)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            *guard = Some(
                stored
                    .into_iter()
                    .map(|n| (n.node.clone(), Node::from_stored(n)))
                    .collect(),
            );
        }
        Ok(guard)
    }

    /// The account's node `name`, locked, for the account itself: `forbidden` for anyone
    /// else, `item-not-found` when there is no such node.
    async fn with_owned_node(
        &self,
        req: &IqRequest,
        owner: &BareJid,
        name: &str,
    ) -> Result<NodeGuard, StanzaError> {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("only the account owns its nodes"));
        }
        let guard = self.lock(&req.server, owner).await?;
        OwnedMutexGuard::try_map(guard, |nodes| nodes.as_mut().and_then(|n| n.get_mut(name)))
            .map_err(|_| errors::no_such_node())
    }

    /// Forgets an account's nodes and roster view once it has no session and nobody holds
    /// them (they are loaded again when needed).
    pub fn release(&self, server: &Server, owner: &BareJid) {
        if server.sessions.count_of(owner) > 0 {
            return;
        }
        self.services
            .remove_if(owner, |_, cell| Arc::strong_count(cell) == 1);
        self.rosters.evict(owner);
        self.photos.remove(owner);
    }

    /// What the owner's roster says about `requester`.
    async fn facts(
        &self,
        server: &Server,
        owner: &BareJid,
        requester: &BareJid,
    ) -> Result<RosterFacts, StanzaError> {
        let roster = self
            .rosters
            .get(server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        Ok(roster
            .get(requester)
            .map(|c| RosterFacts {
                subscribed: c.has_from(),
                groups: c.groups.clone(),
            })
            .unwrap_or_default())
    }

    /// XEP-0030 §4.1 on an account: its nodes, all of them for the account itself, those
    /// the access model lets `requester` see for anyone else.
    pub async fn disco_items(
        &self,
        server: &Server,
        owner: &BareJid,
        requester: &BareJid,
    ) -> Vec<xmpp_parsers::disco::Item> {
        let listed = async {
            let facts = if requester == owner {
                None
            } else {
                Some(self.facts(server, owner, requester).await?)
            };
            let guard = self.lock(server, owner).await?;
            let items = guard
                .as_ref()
                .expect("loaded by lock")
                .iter()
                .filter(|(_, n)| {
                    facts
                        .as_ref()
                        .is_none_or(|f| n.access(requester.as_str(), f).is_ok())
                })
                .map(|(name, _)| xmpp_parsers::disco::Item {
                    jid: owner.clone().into(),
                    node: Some(name.clone()),
                    name: None,
                })
                .collect();
            Ok::<_, StanzaError>(items)
        }
        .await;
        self.release(server, owner);
        listed.unwrap_or_else(|e| {
            tracing::warn!(%owner, error = ?e, "PEP nodes not listed");
            Vec::new()
        })
    }

    /// `http://jabber.org/protocol/pubsub` requests to an account.
    pub async fn handle(&self, req: IqRequest) -> IqResult {
        let owner = req.to.clone();
        let result = self.dispatch(&req, &owner).await;
        self.release(&req.server, &owner);
        result
    }

    async fn dispatch(&self, req: &IqRequest, owner: &BareJid) -> IqResult {
        let request = PubSub::try_from(req.payload().clone())
            .map_err(|e| StanzaError::bad_request().text(format!("unreadable pubsub request: {e}")))?;
        match (req.kind, request) {
            (IqType::Get, PubSub::Items(items)) => self.items(req, owner, items).await,
            (
                IqType::Set,
                PubSub::Publish {
                    publish,
                    publish_options,
                },
            ) => self.publish(req, owner, publish, publish_options).await,
            (IqType::Set, PubSub::Retract(retract)) => self.retract(req, owner, retract).await,
            (IqType::Set, PubSub::Create { create, configure }) => {
                self.create(req, owner, create, configure.and_then(|c| c.form))
                    .await
            }
            (
                _,
                PubSub::Subscribe {
                    subscribe: Some(_), ..
                }
                | PubSub::Unsubscribe(_),
            ) => Err(errors::unsupported("subscribe")),
            (_, PubSub::Subscribe { subscribe: None, .. } | PubSub::Default(_)) => {
                Err(errors::unsupported("subscription-options"))
            }
            (_, PubSub::Subscriptions(_) | PubSub::Subscription(_)) => {
                Err(errors::unsupported("retrieve-subscriptions"))
            }
            (_, PubSub::Affiliations(_)) => Err(errors::unsupported("retrieve-affiliations")),
            _ => Err(StanzaError::bad_request().text("this request needs the other IQ type")),
        }
    }

    /// XEP-0060 §6.5: items retrieval.
    async fn items(&self, req: &IqRequest, owner: &BareJid, items: Items) -> IqResult {
        let requester = req.from.to_bare();
        let facts = if req.target == IqTarget::OwnAccount {
            None
        } else {
            Some(self.facts(&req.server, owner, &requester).await?)
        };
        let guard = self.lock(&req.server, owner).await?;
        let node = guard
            .as_ref()
            .and_then(|nodes| nodes.get(&items.node.0))
            .ok_or_else(errors::no_such_node)?;
        if let Some(facts) = facts {
            node.access(requester.as_str(), &facts).map_err(errors::denied)?;
        }
        Ok(IqResponse::with(events::items_answer(node, items)?))
    }

    /// XEP-0060 §7.1 publish, with XEP-0163 §3 auto-create and §7.1.5 publish-options.
    async fn publish(
        &self,
        req: &IqRequest,
        owner: &BareJid,
        publish: Publish,
        options: Option<PublishOptions>,
    ) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("only the account may publish to its nodes"));
        }
        let node_name = publish.node.0;
        if publish.items.len() > 1 {
            return Err(errors::bad_request("invalid-payload").text("publish one item at a time"));
        }
        let Some(item) = publish.items.into_iter().next() else {
            return Err(errors::bad_request("item-required"));
        };
        let Some(payload) = item.payload else {
            return Err(errors::bad_request("payload-required"));
        };
        let id = item
            .id
            .map(|i| i.0)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let options = options.and_then(|o| o.form);
        let roster = self
            .rosters
            .get(&req.server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut guard = self.lock(&req.server, owner).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        let (host, user) = parts(owner);
        if !nodes.contains_key(&node_name) {
            let mut config = NodeConfig::default();
            if let Some(form) = &options {
                config
                    .apply_form(form, NS_PUBLISH_OPTIONS)
                    .and_then(|()| config.check_pep())
                    .map_err(|e| errors::precondition_not_met(&e.0))?;
            }
            create_stored(&req.server, owner, &node_name, &config).await?;
            nodes.insert(node_name.clone(), Node::new(config));
        } else if let Some(form) = &options {
            nodes[&node_name]
                .config
                .check_preconditions(form)
                .map_err(|e| errors::precondition_not_met(&e.0))?;
        }
        let node = nodes.get_mut(&node_name).expect("present or created above");
        let (item, evicted) = node.publish(id.clone(), owner.to_string(), payload);
        if node.config.persist_items {
            req.server
                .storage
                .pep_publish(host, user, &node_name, &item.to_stored(), &evicted)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
        }
        let event = events::items_event(&node_name, &item, node.config.deliver_payloads);
        self.notify(&req.server, owner, &roster, &node_name, node, event);
        if node_name == bookmarks::NODE {
            bookmarks::write_private(&req.server, owner, node).await?;
        }
        if node_name == avatar::NS_METADATA {
            let nodes = guard.as_ref().expect("loaded by lock");
            self.avatar_to_vcard(&req.server, owner, nodes).await?;
        }
        let answer = Publish {
            node: NodeName(node_name),
            items: vec![PubSubItem {
                id: Some(ItemId(id)),
                publisher: None,
                payload: None,
            }],
        };
        Ok(IqResponse::with(
            PubSub::Publish {
                publish: answer,
                publish_options: None,
            }
            .into(),
        ))
    }

    /// XEP-0060 §7.2: retract.
    async fn retract(&self, req: &IqRequest, owner: &BareJid, retract: Retract) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("only the account may retract from its nodes"));
        }
        let ids: Vec<String> = retract
            .items
            .iter()
            .filter_map(|i| i.id.as_ref().map(|id| id.0.clone()))
            .collect();
        if ids.is_empty() {
            return Err(errors::bad_request("item-required"));
        }
        let roster = self
            .rosters
            .get(&req.server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let node_name = retract.node.0;
        let mut node = self.with_owned_node(req, owner, &node_name).await?;
        if !node.config.persist_items {
            return Err(errors::unsupported("persistent-items"));
        }
        if let Some(missing) = ids.iter().find(|id| !node.items.iter().any(|i| &i.id == *id)) {
            return Err(StanzaError::item_not_found().text(format!("no item '{missing}'")));
        }
        let (host, user) = parts(owner);
        req.server
            .storage
            .pep_retract(host, user, &node_name, &ids)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        for id in &ids {
            node.retract(id);
        }
        if retract.notify || node.config.notify_retract {
            let event = events::retract_event(&node_name, &ids);
            self.notify(&req.server, owner, &roster, &node_name, &node, event);
        }
        if node_name == bookmarks::NODE {
            bookmarks::write_private(&req.server, owner, &node).await?;
        }
        Ok(IqResponse::empty())
    }

    /// XEP-0060 §8.1: create a node (with an optional configuration form).
    async fn create(
        &self,
        req: &IqRequest,
        owner: &BareJid,
        create: Create,
        form: Option<DataForm>,
    ) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("only the account may create its nodes"));
        }
        let Some(NodeName(node_name)) = create.node else {
            return Err(StanzaError::not_acceptable()
                .application("nodeid-required", errors::NS_ERRORS)
                .text("personal eventing nodes need a name"));
        };
        let mut config = NodeConfig::default();
        if let Some(form) = &form {
            config
                .apply_form(form, NS_NODE_CONFIG)
                .and_then(|()| config.check_pep())
                .map_err(|e| StanzaError::not_acceptable().text(e.0))?;
        }
        let mut guard = self.lock(&req.server, owner).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        if nodes.contains_key(&node_name) {
            return Err(StanzaError::conflict().text("the node exists"));
        }
        create_stored(&req.server, owner, &node_name, &config).await?;
        nodes.insert(node_name, Node::new(config));
        Ok(IqResponse::empty())
    }

    /// `http://jabber.org/protocol/pubsub#owner` requests (XEP-0060 §8).
    pub async fn handle_owner(&self, req: IqRequest) -> IqResult {
        let owner = req.to.clone();
        let result = self.dispatch_owner(&req, &owner).await;
        self.release(&req.server, &owner);
        result
    }

    async fn dispatch_owner(&self, req: &IqRequest, owner: &BareJid) -> IqResult {
        if req.target != IqTarget::OwnAccount {
            return Err(StanzaError::forbidden().text("only the account owns its nodes"));
        }
        if let Some(affiliations) = req.payload().get_child("affiliations", NS_PUBSUB_OWNER) {
            return self.affiliations(req, owner, affiliations).await;
        }
        let request = Owner::try_from(req.payload().clone())
            .map_err(|e| StanzaError::bad_request().text(format!("unreadable pubsub#owner request: {e}")))?;
        match (req.kind, request.payload) {
            (IqType::Get, OwnerPayload::Configure { node, .. }) => {
                let node_name = node.ok_or_else(errors::nodeid_required)?.0;
                let node = self.with_owned_node(req, owner, &node_name).await?;
                let answer = OwnerPayload::Configure {
                    node: Some(NodeName(node_name)),
                    form: Some(node.config.to_form()),
                };
                Ok(IqResponse::with(Owner { payload: answer }.into()))
            }
            (IqType::Set, OwnerPayload::Configure { node, form }) => {
                let node_name = node.ok_or_else(errors::nodeid_required)?.0;
                let form =
                    form.ok_or_else(|| StanzaError::bad_request().text("the configuration form is missing"))?;
                self.configure(req, owner, node_name, form).await
            }
            (IqType::Get, OwnerPayload::Default { .. }) => {
                let answer = OwnerPayload::Default {
                    form: Some(NodeConfig::default().to_form()),
                };
                Ok(IqResponse::with(Owner { payload: answer }.into()))
            }
            (IqType::Set, OwnerPayload::Delete { node, .. }) => self.delete(req, owner, node.0).await,
            (IqType::Set, OwnerPayload::Purge { node }) => self.purge(req, owner, node.0).await,
            (_, OwnerPayload::Subscriptions { .. }) => Err(errors::unsupported("manage-subscriptions")),
            _ => Err(StanzaError::bad_request().text("this request needs the other IQ type")),
        }
    }

    /// XEP-0060 §8.2.5: submit a new configuration.
    async fn configure(
        &self,
        req: &IqRequest,
        owner: &BareJid,
        node_name: String,
        form: DataForm,
    ) -> IqResult {
        let roster = self
            .rosters
            .get(&req.server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut node = self.with_owned_node(req, owner, &node_name).await?;
        let mut config = node.config.clone();
        config
            .apply_form(&form, NS_NODE_CONFIG)
            .and_then(|()| config.check_pep())
            .map_err(|e| StanzaError::not_acceptable().text(e.0))?;
        let (host, user) = parts(owner);
        let storage = &req.server.storage;
        storage
            .pep_set_config(host, user, &node_name, &config.to_text())
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        node.config = config;
        // Fewer items allowed, or none kept any more.
        let dropped: Vec<String> = if node.config.persist_items {
            node.trim()
        } else {
            node.items.drain(..).map(|i| i.id).collect()
        };
        if !dropped.is_empty() {
            storage
                .pep_retract(host, user, &node_name, &dropped)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
        }
        if node.config.notify_config {
            let event = events::configuration_event(&node_name);
            self.notify(&req.server, owner, &roster, &node_name, &node, event);
        }
        Ok(IqResponse::empty())
    }

    /// XEP-0060 §8.4: delete a node.
    async fn delete(&self, req: &IqRequest, owner: &BareJid, node_name: String) -> IqResult {
        let roster = self
            .rosters
            .get(&req.server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut guard = self.lock(&req.server, owner).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        let node = nodes.get(&node_name).ok_or_else(errors::no_such_node)?;
        let (host, user) = parts(owner);
        req.server
            .storage
            .pep_delete_node(host, user, &node_name)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        if node.config.notify_delete {
            let event = events::delete_event(&node_name);
            self.notify(&req.server, owner, &roster, &node_name, node, event);
        }
        if let Some(mut node) = nodes.remove(&node_name)
            && node_name == bookmarks::NODE
        {
            node.items.clear();
            bookmarks::write_private(&req.server, owner, &node).await?;
        }
        Ok(IqResponse::empty())
    }

    /// XEP-0060 §8.5: purge a node's items.
    async fn purge(&self, req: &IqRequest, owner: &BareJid, node_name: String) -> IqResult {
        let roster = self
            .rosters
            .get(&req.server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut node = self.with_owned_node(req, owner, &node_name).await?;
        if !node.config.persist_items {
            return Err(errors::unsupported("persistent-items"));
        }
        let (host, user) = parts(owner);
        req.server
            .storage
            .pep_purge(host, user, &node_name)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        node.items.clear();
        if node.config.notify_retract {
            let event = events::purge_event(&node_name);
            self.notify(&req.server, owner, &roster, &node_name, &node, event);
        }
        if node_name == bookmarks::NODE {
            bookmarks::write_private(&req.server, owner, &node).await?;
        }
        Ok(IqResponse::empty())
    }

    /// XEP-0060 §8.9: retrieve (get) or change (set) a node's affiliations. For a personal
    /// node the owner grants `member` (whitelist access) and `outcast`.
    async fn affiliations(&self, req: &IqRequest, owner: &BareJid, el: &Element) -> IqResult {
        let node_name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let mut node = self.with_owned_node(req, owner, &node_name).await?;
        if req.kind == IqType::Get {
            let mut list = Element::bare("affiliations", NS_PUBSUB_OWNER);
            crate::xml::set_attr(&mut list, "node", &node_name);
            let owner_str = owner.to_string();
            let all = std::iter::once((owner_str.as_str(), "owner"))
                .chain(node.affiliations.iter().map(|(j, a)| (j.as_str(), a.as_str())));
            for (jid, affiliation) in all {
                let mut item = Element::bare("affiliation", NS_PUBSUB_OWNER);
                crate::xml::set_attr(&mut item, "jid", jid);
                crate::xml::set_attr(&mut item, "affiliation", affiliation);
                list.append_child(item);
            }
            let mut answer = Element::bare("pubsub", NS_PUBSUB_OWNER);
            answer.append_child(list);
            return Ok(IqResponse::with(answer));
        }
        // Validate everything before changing anything (§8.9.2.4).
        let mut changes = Vec::new();
        for item in el.children().filter(|c| c.is("affiliation", NS_PUBSUB_OWNER)) {
            let jid = item
                .attr("jid")
                .and_then(|j| BareJid::new(j).ok())
                .ok_or_else(|| StanzaError::bad_request().text("each affiliation needs a bare JID"))?;
            if jid == *owner {
                return Err(StanzaError::not_acceptable().text("the owner's affiliation cannot change"));
            }
            let affiliation = match item.attr("affiliation") {
                Some("none") => None,
                Some(a @ ("member" | "outcast")) => Affiliation::parse(a),
                _ => {
                    return Err(StanzaError::not_acceptable()
                        .text("a personal node's owner grants 'member', 'outcast' or 'none'"));
                }
            };
            changes.push((jid.to_string(), affiliation));
        }
        let (host, user) = parts(owner);
        for (jid, affiliation) in changes {
            req.server
                .storage
                .pep_set_affiliation(host, user, &node_name, &jid, affiliation.map(Affiliation::as_str))
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            match affiliation {
                Some(a) => node.affiliations.insert(jid, a),
                None => node.affiliations.remove(&jid),
            };
        }
        Ok(IqResponse::empty())
    }

    /// Sends `event` (a pubsub#event payload about `node_name`) to everyone XEP-0163 §4.3
    /// says gets it. Synchronous: the recipients are read from memory.
    pub(super) fn notify(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        roster: &RosterView,
        node_name: &str,
        node: &Node,
        event: Element,
    ) {
        if !node.config.deliver_notifications {
            return;
        }
        let mut recipients: Vec<Recipient> = Vec::new();
        let mut add_interested = |sessions: Vec<Recipient>| {
            for s in sessions {
                if s.is_available() && self.caps.wants(&s.jid, node_name) {
                    recipients.push(s);
                }
            }
        };
        add_interested(server.sessions.sessions_of(owner));
        for (contact, entry) in roster.iter() {
            if !entry.has_from() || contact == owner {
                continue;
            }
            let facts = RosterFacts {
                subscribed: true,
                groups: entry.groups.clone(),
            };
            if node.access(contact.as_str(), &facts).is_ok() {
                add_interested(server.sessions.sessions_of(contact));
            }
        }
        if recipients.is_empty() {
            return;
        }
        let Some(shared) = events::shared_message(owner, event) else {
            tracing::warn!(node = node_name, "a PEP notification could not be serialized");
            return;
        };
        for r in &recipients {
            let _ = crate::router::deliver_shared(r, &shared);
        }
    }

    /// XEP-0163 §4.3.2: the last item of every node `to` is interested in, from every
    /// account whose presence it receives (and its own), after it became available or
    /// announced new capabilities.
    pub async fn send_last_items(&self, server: &Arc<Server>, to: FullJid) {
        let Some(features) = self.caps.features_of(&to) else {
            return;
        };
        if !features.iter().any(|f| f.ends_with("+notify")) {
            return;
        }
        let me = to.to_bare();
        let my_roster = match self.rosters.get(server, &me).await {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "{STORAGE}"),
        };
        let mut owners = vec![me.clone()];
        owners.extend(
            my_roster
                .iter()
                .filter(|(jid, c)| c.has_to() && **jid != me && is_local_account(server, jid))
                .map(|(jid, _)| jid.clone()),
        );
        for owner in owners {
            if let Err(e) = self.send_last_items_of(server, &owner, &to, &features).await {
                tracing::debug!(%owner, error = %e, "last PEP items not sent");
            }
            if owner != me {
                self.release(server, &owner);
            }
        }
    }

    /// XEP-0163 §4.3.2 / XEP-0060 §6.1.7: `contact` was just allowed to receive `owner`'s
    /// presence: its available, interested resources get the last items.
    pub async fn send_last_items_to_new_contact(
        &self,
        server: &Arc<Server>,
        owner: BareJid,
        contact: BareJid,
    ) {
        if !is_local_account(server, &contact) {
            return;
        }
        for session in server.sessions.sessions_of(&contact) {
            if !session.is_available() {
                continue;
            }
            let Some(features) = self.caps.features_of(&session.jid) else {
                continue;
            };
            if let Err(e) = self
                .send_last_items_of(server, &owner, &session.jid, &features)
                .await
            {
                tracing::debug!(%owner, error = %e, "last PEP items not sent");
            }
        }
        self.release(server, &owner);
    }

    async fn send_last_items_of(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        to: &FullJid,
        features: &super::caps::Features,
    ) -> Result<(), StanzaError> {
        let me = to.to_bare();
        let guard = self.lock(server, owner).await?;
        let mut messages = Vec::new();
        let mut facts: Option<RosterFacts> = None;
        for (name, node) in guard.as_ref().expect("loaded by lock") {
            let config = &node.config;
            if !config.deliver_notifications
                || config.send_last_published_item != SendLast::OnSubAndPresence
                || !features.contains(&super::caps::notify_feature(name))
            {
                continue;
            }
            let Some(item) = node.last_item() else { continue };
            if *owner != me {
                if facts.is_none() {
                    facts = Some(self.facts(server, owner, &me).await?);
                }
                if node
                    .access(me.as_str(), facts.as_ref().expect("set above"))
                    .is_err()
                {
                    continue;
                }
            }
            let event = events::items_event(name, item, config.deliver_payloads);
            messages.push(events::message(owner, to, event));
        }
        drop(guard);
        if let Some(session) = server.sessions.get(to) {
            for m in messages {
                crate::router::push(&session, m);
            }
        }
        Ok(())
    }
}

pub(super) async fn create_stored(
    server: &Server,
    owner: &BareJid,
    node: &str,
    config: &NodeConfig,
) -> Result<(), StanzaError> {
    let (host, user) = parts(owner);
    let created = server
        .storage
        .pep_create_node(host, user, node, &config.to_text())
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    if !created {
        // The account was deleted meanwhile.
        return Err(StanzaError::item_not_found().text("this account no longer exists"));
    }
    Ok(())
}

pub fn is_local_account(server: &Server, jid: &BareJid) -> bool {
    jid.node().is_some() && server.hosted_domain(jid.domain().as_str()).is_some()
}

impl From<Denied> for StanzaError {
    fn from(d: Denied) -> StanzaError {
        errors::denied(d)
    }
}
