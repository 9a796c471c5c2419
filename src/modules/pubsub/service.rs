//! The XEP-0060 service at `pubsub.<domain>`: nodes anyone may subscribe to, owned by the
//! accounts that created them, on the engine PEP uses (`node`, `config`, `events`).
//!
//! The service's nodes are loaded on first use and kept in memory; every change is written
//! to storage (`storage::pubsub`) before it is answered. Notifications go to the
//! subscriptions (bare JID: every available resource; full JID: that resource).

use std::collections::BTreeMap;
use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::Mutex;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::disco::{DiscoInfoResult, DiscoItemsResult, Identity, Item as DiscoItem};
use xmpp_parsers::pubsub::owner::{Owner, Payload as OwnerPayload};
use xmpp_parsers::pubsub::pubsub::{Item as PubSubItem, Items, Publish, PublishOptions, Retract};
use xmpp_parsers::pubsub::{ItemId, NodeName, PubSub};

use super::config::{AccessModel, NS_NODE_CONFIG, NodeConfig, SendLast};
use super::errors::{self, NS_ERRORS, NS_PUBSUB};
use super::events;
use super::node::{Affiliation, Node, RosterFacts};
use super::pep::NS_PUBSUB_OWNER;
use crate::config::PubSubCreators;
use crate::error::StanzaError;
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router;
use crate::server::Server;
use crate::storage::pubsub::{StoredPubsubNode, StoredSubscription};
use crate::xml::{self, ns};

const STORAGE: &str = "pubsub storage error";
const NS_SUBSCRIBE_OPTIONS: &str = "http://jabber.org/protocol/pubsub#subscribe_options";
const NS_SUBSCRIBE_AUTHORIZATION: &str = "http://jabber.org/protocol/pubsub#subscribe_authorization";
const NS_DATA_FORMS: &str = "jabber:x:data";
const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// XEP-0060 §10 features this service implements.
const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-authorize",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#instant-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#outcast-affiliation",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#publisher-affiliation",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
    "http://jabber.org/protocol/pubsub#subscription-options",
    "http://jabber.org/protocol/pubsub#subscription-notifications",
];

/// One subscription (one per JID and node).
#[derive(Debug, Clone)]
struct Subscription {
    subid: String,
    pending: bool,
    /// `pubsub#deliver` (XEP-0060 §6.3): notifications wanted.
    deliver: bool,
}

impl Subscription {
    fn to_stored(&self, jid: &str) -> StoredSubscription {
        StoredSubscription {
            jid: jid.to_owned(),
            subid: self.subid.clone(),
            state: if self.pending { "pending" } else { "subscribed" }.to_owned(),
            options: format!("deliver={}", u8::from(self.deliver)),
        }
    }

    fn from_stored(s: StoredSubscription) -> Subscription {
        Subscription {
            subid: s.subid,
            pending: s.state == "pending",
            deliver: !s.options.lines().any(|l| l == "deliver=0"),
        }
    }

    fn state(&self) -> &'static str {
        if self.pending { "pending" } else { "subscribed" }
    }
}

/// A node of the service: the shared engine's node plus its subscriptions.
struct ServiceNode {
    node: Node,
    /// JID as subscribed (bare or full) -> subscription.
    subscriptions: BTreeMap<String, Subscription>,
}

impl ServiceNode {
    fn affiliation(&self, bare: &BareJid) -> Option<Affiliation> {
        self.node.affiliations.get(bare.as_str()).copied()
    }

    fn is_owner(&self, bare: &BareJid) -> bool {
        self.affiliation(bare) == Some(Affiliation::Owner)
    }

    fn owners(&self) -> impl Iterator<Item = &str> {
        self.node
            .affiliations
            .iter()
            .filter(|(_, a)| **a == Affiliation::Owner)
            .map(|(j, _)| j.as_str())
    }

    /// Whether `from` may retrieve items: the affiliation, then the access model (an
    /// `authorize` node wants an approved subscription of the account).
    fn access(&self, from: &FullJid) -> Result<(), StanzaError> {
        let bare = from.to_bare();
        if self.node.config.access_model == AccessModel::Authorize
            && self.affiliation(&bare) != Some(Affiliation::Outcast)
            && self.subscriptions_of(&bare).any(|(_, s)| !s.pending)
        {
            return Ok(());
        }
        self.node
            .access(bare.as_str(), &RosterFacts::default())
            .map_err(errors::denied)
    }

    /// The subscriptions of an account (its bare JID and its full JIDs).
    fn subscriptions_of<'a>(
        &'a self,
        bare: &'a BareJid,
    ) -> impl Iterator<Item = (&'a String, &'a Subscription)> {
        self.subscriptions.iter().filter(move |(jid, _)| {
            Jid::new(jid).is_ok_and(|j| j.node() == bare.node() && j.domain() == bare.domain())
        })
    }
}

type Nodes = BTreeMap<String, ServiceNode>;

/// A request being answered: who asked, and the service's domain.
struct Ctx<'a> {
    server: &'a Arc<Server>,
    from: &'a FullJid,
    service: BareJid,
}

impl Ctx<'_> {
    fn bare(&self) -> BareJid {
        self.from.to_bare()
    }
}

#[derive(Default)]
pub struct Service {
    /// The nodes, `None` until loaded.
    nodes: Mutex<Option<Nodes>>,
}

impl Service {
    /// Everything addressed to the service's domain or one of its JIDs.
    pub async fn handle(&self, server: &Arc<Server>, from: FullJid, stanza: Element) {
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        let Some(service) = to
            .filter(|j| j.node().is_none() && j.resource().is_none())
            .map(|j| j.to_bare())
        else {
            return router::bounce(server, &stanza, StanzaError::service_unavailable());
        };
        let ctx = Ctx {
            server,
            from: &from,
            service,
        };
        if stanza.name() == "message" {
            if stanza.attr("type") == Some("error") {
                return;
            }
            if let Err(e) = self.authorization_answer(&ctx, &stanza).await {
                router::bounce(server, &stanza, e);
            }
            return;
        }
        if stanza.name() != "iq" || !matches!(stanza.attr("type"), Some("get" | "set")) {
            return;
        }
        let set = stanza.attr("type") == Some("set");
        let Some(payload) = stanza.children().next() else {
            return router::bounce(server, &stanza, StanzaError::bad_request());
        };
        let answer = match (set, payload.name(), payload.ns().as_str()) {
            (false, "query", NS_INFO) => self.disco_info(&ctx, payload.attr("node")).await,
            (false, "query", NS_ITEMS) => self.disco_items(&ctx, payload.attr("node")).await,
            (_, "pubsub", NS_PUBSUB) => self.pubsub(&ctx, set, payload).await,
            (_, "pubsub", NS_PUBSUB_OWNER) => self.owner(&ctx, set, payload).await,
            _ => Err(StanzaError::service_unavailable()),
        };
        match answer {
            Ok(payload) => {
                let mut r = xml::iq_result(&stanza, payload);
                xml::set_attr(&mut r, "from", ctx.service.as_str());
                xml::set_attr(&mut r, "to", &from.to_string());
                router::deliver_to_full(server, &from, r);
            }
            Err(e) => router::bounce(server, &stanza, e),
        }
    }

    /// The nodes, loaded if needed, locked for one operation.
    async fn lock(&self, ctx: &Ctx<'_>) -> Result<tokio::sync::MutexGuard<'_, Option<Nodes>>, StanzaError> {
        let mut guard = self.nodes.lock().await;
        if guard.is_none() {
            let stored = ctx
                .server
                .storage
                .pubsub_load(ctx.service.as_str())
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            *guard = Some(stored.into_iter().map(load_node).collect());
        }
        Ok(guard)
    }

    // ---- disco (XEP-0060 §5) ----

    async fn disco_info(&self, ctx: &Ctx<'_>, node: Option<&str>) -> Result<Option<Element>, StanzaError> {
        let mut features: std::collections::BTreeSet<String> = [NS_INFO, NS_ITEMS, NS_PUBSUB]
            .iter()
            .map(|f| f.to_string())
            .collect();
        let identity = match node {
            None => {
                features.extend(FEATURES.iter().map(|f| f.to_string()));
                Identity {
                    category: "pubsub".into(),
                    type_: "service".into(),
                    lang: None,
                    name: Some("Publish-Subscribe".into()),
                }
            }
            Some(name) => {
                let guard = self.lock(ctx).await?;
                let node = node_of(&guard, name)?;
                Identity {
                    category: "pubsub".into(),
                    type_: "leaf".into(),
                    lang: None,
                    name: (!node.node.config.title.is_empty()).then(|| node.node.config.title.clone()),
                }
            }
        };
        let info = DiscoInfoResult {
            node: node.map(str::to_owned),
            identities: vec![identity],
            features,
            extensions: Vec::new(),
        };
        Ok(Some(info.into()))
    }

    /// §5.2 the nodes the requester may see; §5.5 a node's items (names are item ids).
    async fn disco_items(&self, ctx: &Ctx<'_>, node: Option<&str>) -> Result<Option<Element>, StanzaError> {
        let guard = self.lock(ctx).await?;
        let items = match node {
            None => guard
                .as_ref()
                .expect("loaded by lock")
                .iter()
                .filter(|(_, n)| n.access(ctx.from).is_ok())
                .map(|(name, n)| DiscoItem {
                    jid: ctx.service.clone().into(),
                    node: Some(name.clone()),
                    name: (!n.node.config.title.is_empty()).then(|| n.node.config.title.clone()),
                })
                .collect(),
            Some(name) => {
                let n = node_of(&guard, name)?;
                n.access(ctx.from)?;
                n.node
                    .items
                    .iter()
                    .map(|i| DiscoItem {
                        jid: ctx.service.clone().into(),
                        node: None,
                        name: Some(i.id.clone()),
                    })
                    .collect()
            }
        };
        let answer = DiscoItemsResult {
            node: node.map(str::to_owned),
            items,
            rsm: None,
        };
        Ok(Some(answer.into()))
    }

    // ---- entity use cases (§6, §7) ----

    async fn pubsub(
        &self,
        ctx: &Ctx<'_>,
        set: bool,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        // Subscription requests by hand: xmpp-parsers keeps their fields private.
        let first = payload.children().next();
        match (set, first.map(|c| c.name())) {
            (true, Some("subscribe")) => return self.subscribe(ctx, payload).await.map(Some),
            (true, Some("unsubscribe")) => {
                return self
                    .unsubscribe(ctx, first.expect("matched"))
                    .await
                    .map(|()| None);
            }
            (_, Some("options")) => return self.options(ctx, set, first.expect("matched")).await,
            (false, Some("subscriptions")) => {
                return self
                    .my_subscriptions(ctx, first.expect("matched"))
                    .await
                    .map(Some);
            }
            (false, Some("affiliations")) => {
                return self.my_affiliations(ctx, first.expect("matched")).await.map(Some);
            }
            _ => {}
        }
        let request = PubSub::try_from(payload.clone())
            .map_err(|e| StanzaError::bad_request().text(format!("unreadable pubsub request: {e}")))?;
        match (set, request) {
            (false, PubSub::Items(items)) => self.items(ctx, items).await.map(Some),
            (
                true,
                PubSub::Publish {
                    publish,
                    publish_options,
                },
            ) => self.publish(ctx, publish, publish_options).await.map(Some),
            (true, PubSub::Retract(retract)) => self.retract(ctx, retract).await.map(|()| None),
            (true, PubSub::Create { create, configure }) => {
                self.create(ctx, create.node.map(|n| n.0), configure.and_then(|c| c.form))
                    .await
            }
            (false, PubSub::Default(_)) => Ok(Some(default_form())),
            _ => Err(StanzaError::bad_request().text("this request needs the other IQ type")),
        }
    }

    /// §6.5 items retrieval.
    async fn items(&self, ctx: &Ctx<'_>, items: Items) -> Result<Element, StanzaError> {
        let guard = self.lock(ctx).await?;
        let node = node_of(&guard, &items.node.0)?;
        node.access(ctx.from)?;
        events::items_answer(&node.node, items)
    }

    /// §7.1 publish (owners and publishers), with §7.1.5 publish-options preconditions.
    async fn publish(
        &self,
        ctx: &Ctx<'_>,
        publish: Publish,
        options: Option<PublishOptions>,
    ) -> Result<Element, StanzaError> {
        let name = publish.node.0;
        if publish.items.len() > 1 {
            return Err(errors::bad_request("invalid-payload").text("publish one item at a time"));
        }
        let mut guard = self.lock(ctx).await?;
        let node = node_mut(&mut guard, &name)?;
        if !matches!(
            node.affiliation(&ctx.bare()),
            Some(Affiliation::Owner | Affiliation::Publisher)
        ) {
            return Err(StanzaError::forbidden().text("only owners and publishers may publish"));
        }
        let item = publish.items.into_iter().next();
        let payload = match item.as_ref().and_then(|i| i.payload.clone()) {
            Some(p) => p,
            None if item.is_none() => return Err(errors::bad_request("item-required")),
            None => return Err(errors::bad_request("payload-required")),
        };
        if let Some(form) = options.and_then(|o| o.form) {
            node.node
                .config
                .check_preconditions(&form)
                .map_err(|e| errors::precondition_not_met(&e.0))?;
        }
        let id = item
            .and_then(|i| i.id)
            .map(|i| i.0)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (item, evicted) = node.node.publish(id.clone(), ctx.bare().to_string(), payload);
        if node.node.config.persist_items {
            ctx.server
                .storage
                .pubsub_publish(ctx.service.as_str(), &name, &item.to_stored(), &evicted)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
        }
        let event = events::items_event(&name, &item, node.node.config.deliver_payloads);
        notify(ctx, node, event);
        let answer = Publish {
            node: NodeName(name),
            items: vec![PubSubItem {
                id: Some(ItemId(id)),
                publisher: None,
                payload: None,
            }],
        };
        Ok(PubSub::Publish {
            publish: answer,
            publish_options: None,
        }
        .into())
    }

    /// §7.2 retract (owners and publishers).
    async fn retract(&self, ctx: &Ctx<'_>, retract: Retract) -> Result<(), StanzaError> {
        let ids: Vec<String> = retract
            .items
            .iter()
            .filter_map(|i| i.id.as_ref().map(|id| id.0.clone()))
            .collect();
        let name = retract.node.0;
        let mut guard = self.lock(ctx).await?;
        let node = node_mut(&mut guard, &name)?;
        if !matches!(
            node.affiliation(&ctx.bare()),
            Some(Affiliation::Owner | Affiliation::Publisher)
        ) {
            return Err(StanzaError::forbidden().text("only owners and publishers may retract"));
        }
        if ids.is_empty() {
            return Err(errors::bad_request("item-required"));
        }
        if !node.node.config.persist_items {
            return Err(errors::unsupported("persistent-items"));
        }
        if let Some(missing) = ids
            .iter()
            .find(|id| !node.node.items.iter().any(|i| &i.id == *id))
        {
            return Err(StanzaError::item_not_found().text(format!("no item '{missing}'")));
        }
        ctx.server
            .storage
            .pubsub_retract(ctx.service.as_str(), &name, &ids)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        for id in &ids {
            node.node.retract(id);
        }
        if retract.notify || node.node.config.notify_retract {
            notify(ctx, node, events::retract_event(&name, &ids));
        }
        Ok(())
    }

    /// §6.1 subscribe (with §6.3.7 options in the same request).
    async fn subscribe(&self, ctx: &Ctx<'_>, payload: &Element) -> Result<Element, StanzaError> {
        let el = payload
            .get_child("subscribe", NS_PUBSUB)
            .expect("dispatched on it");
        let name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let jid = subscriber_jid(ctx, el.attr("jid"))
            .ok_or_else(|| errors::bad_request("invalid-jid").text("subscribe only your own JID"))?;
        let options = payload
            .get_child("options", NS_PUBSUB)
            .and_then(|o| o.get_child("x", NS_DATA_FORMS))
            .map(|x| DataForm::try_from(x.clone()))
            .transpose()
            .map_err(|_| errors::bad_request("invalid-options"))?;
        let mut guard = self.lock(ctx).await?;
        let node = node_mut(&mut guard, &name)?;
        let bare = ctx.bare();
        let affiliation = node.affiliation(&bare);
        let mut subscription = match node.subscriptions.get(&jid) {
            Some(existing) => existing.clone(),
            None => {
                if affiliation == Some(Affiliation::Outcast) {
                    return Err(StanzaError::forbidden());
                }
                let affiliated = affiliation.is_some();
                let pending = match node.node.config.access_model {
                    AccessModel::Whitelist if !affiliated => {
                        return Err(StanzaError::not_allowed().application("closed-node", NS_ERRORS));
                    }
                    AccessModel::Authorize => !affiliated,
                    _ => false,
                };
                Subscription {
                    subid: uuid::Uuid::new_v4().to_string(),
                    pending,
                    deliver: true,
                }
            }
        };
        if let Some(form) = &options {
            apply_options(&mut subscription, form)?;
        }
        ctx.server
            .storage
            .pubsub_set_subscription(
                ctx.service.as_str(),
                &name,
                &jid,
                Some(&subscription.to_stored(&jid)),
            )
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let new = node
            .subscriptions
            .insert(jid.clone(), subscription.clone())
            .is_none();
        if new && subscription.pending {
            ask_owners(ctx, node, &name, &jid, &subscription.subid);
        } else if new && node.node.config.send_last_published_item != SendLast::Never {
            // §6.1.7: the last item, after the result (this task queues it behind).
            if let Some(item) = node.node.last_item() {
                let event = events::items_event(&name, item, node.node.config.deliver_payloads);
                let message = notification(&ctx.service, &ctx.from.to_string(), event);
                let (server, to) = (ctx.server.clone(), ctx.from.clone());
                tokio::spawn(async move { router::deliver_to_full(&server, &to, message) });
            }
        }
        Ok(wrap(
            NS_PUBSUB,
            subscription_el(NS_PUBSUB, Some(&name), &jid, Some(&subscription)),
        ))
    }

    /// §6.2 unsubscribe.
    async fn unsubscribe(&self, ctx: &Ctx<'_>, el: &Element) -> Result<(), StanzaError> {
        let name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let jid = subscriber_jid(ctx, el.attr("jid"))
            .ok_or_else(|| StanzaError::forbidden().text("unsubscribe only your own JID"))?;
        let mut guard = self.lock(ctx).await?;
        let node = node_mut(&mut guard, &name)?;
        let sub = node.subscriptions.get(&jid).ok_or_else(not_subscribed)?;
        if let Some(subid) = el.attr("subid")
            && subid != sub.subid
        {
            return Err(StanzaError::not_acceptable().application("invalid-subid", NS_ERRORS));
        }
        ctx.server
            .storage
            .pubsub_set_subscription(ctx.service.as_str(), &name, &jid, None)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        node.subscriptions.remove(&jid);
        Ok(())
    }

    /// §6.3 subscription options: the form (get) or new values (set).
    async fn options(&self, ctx: &Ctx<'_>, set: bool, el: &Element) -> Result<Option<Element>, StanzaError> {
        let name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let jid = subscriber_jid(ctx, el.attr("jid"))
            .ok_or_else(|| StanzaError::forbidden().text("only your own subscriptions"))?;
        let mut guard = self.lock(ctx).await?;
        let node = node_mut(&mut guard, &name)?;
        let sub = node.subscriptions.get_mut(&jid).ok_or_else(not_subscribed)?;
        if let Some(subid) = el.attr("subid")
            && subid != sub.subid
        {
            return Err(StanzaError::not_acceptable().application("invalid-subid", NS_ERRORS));
        }
        if !set {
            let form = DataForm::new(
                DataFormType::Form,
                NS_SUBSCRIBE_OPTIONS,
                vec![boolean_field("pubsub#deliver", sub.deliver)],
            );
            let mut options = Element::bare("options", NS_PUBSUB);
            xml::set_attr(&mut options, "node", &name);
            xml::set_attr(&mut options, "jid", &jid);
            xml::set_attr(&mut options, "subid", &sub.subid);
            options.append_child(form.into());
            return Ok(Some(wrap(NS_PUBSUB, options)));
        }
        let form = el
            .get_child("x", NS_DATA_FORMS)
            .and_then(|x| DataForm::try_from(x.clone()).ok())
            .ok_or_else(|| errors::bad_request("invalid-options"))?;
        let mut changed = sub.clone();
        apply_options(&mut changed, &form)?;
        ctx.server
            .storage
            .pubsub_set_subscription(ctx.service.as_str(), &name, &jid, Some(&changed.to_stored(&jid)))
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        *sub = changed;
        Ok(None)
    }

    /// §5.6 the requester's subscriptions (all nodes, or one).
    async fn my_subscriptions(&self, ctx: &Ctx<'_>, el: &Element) -> Result<Element, StanzaError> {
        let guard = self.lock(ctx).await?;
        let bare = ctx.bare();
        let mut list = Element::bare("subscriptions", NS_PUBSUB);
        let wanted = el.attr("node");
        if let Some(n) = wanted {
            xml::set_attr(&mut list, "node", n);
            node_of(&guard, n)?;
        }
        for (name, node) in guard.as_ref().expect("loaded by lock") {
            if wanted.is_some_and(|w| w != name) {
                continue;
            }
            for (jid, sub) in node.subscriptions_of(&bare) {
                list.append_child(subscription_el(NS_PUBSUB, Some(name), jid, Some(sub)));
            }
        }
        Ok(wrap(NS_PUBSUB, list))
    }

    /// §5.7 the requester's affiliations.
    async fn my_affiliations(&self, ctx: &Ctx<'_>, el: &Element) -> Result<Element, StanzaError> {
        let guard = self.lock(ctx).await?;
        let bare = ctx.bare();
        let mut list = Element::bare("affiliations", NS_PUBSUB);
        let wanted = el.attr("node");
        if let Some(n) = wanted {
            xml::set_attr(&mut list, "node", n);
        }
        for (name, node) in guard.as_ref().expect("loaded by lock") {
            if wanted.is_some_and(|w| w != name) {
                continue;
            }
            if let Some(a) = node.affiliation(&bare) {
                let mut item = Element::bare("affiliation", NS_PUBSUB);
                xml::set_attr(&mut item, "node", name);
                xml::set_attr(&mut item, "affiliation", a.as_str());
                list.append_child(item);
            }
        }
        Ok(wrap(NS_PUBSUB, list))
    }

    /// §8.1 create, instant (no name: one is made up and returned) or named, with an optional
    /// configuration form.
    async fn create(
        &self,
        ctx: &Ctx<'_>,
        name: Option<String>,
        form: Option<DataForm>,
    ) -> Result<Option<Element>, StanzaError> {
        let bare = ctx.bare();
        let allowed = match ctx.server.config().pubsub.creators {
            PubSubCreators::Local => {
                ctx.server.hosted_domain(bare.domain().as_str()).is_some() && bare.node().is_some()
            }
            PubSubCreators::Admins => ctx.server.is_admin(&bare),
        };
        if !allowed {
            return Err(StanzaError::forbidden().text("you may not create nodes here"));
        }
        let mut config = NodeConfig::service_default();
        if let Some(form) = &form {
            apply_config(&mut config, form)?;
        }
        let instant = name.is_none();
        let name = name.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut guard = self.lock(ctx).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        if nodes.contains_key(&name) {
            return Err(StanzaError::conflict().text("the node exists"));
        }
        let created = ctx
            .server
            .storage
            .pubsub_create_node(ctx.service.as_str(), &name, &config.to_text(), bare.as_str())
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        if !created {
            return Err(StanzaError::conflict().text("the node exists"));
        }
        let mut node = Node::new(config);
        node.affiliations.insert(bare.to_string(), Affiliation::Owner);
        nodes.insert(
            name.clone(),
            ServiceNode {
                node,
                subscriptions: BTreeMap::new(),
            },
        );
        Ok(instant.then(|| {
            let mut create = Element::bare("create", NS_PUBSUB);
            xml::set_attr(&mut create, "node", &name);
            wrap(NS_PUBSUB, create)
        }))
    }

    // ---- owner use cases (§8) ----

    async fn owner(
        &self,
        ctx: &Ctx<'_>,
        set: bool,
        payload: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let first = payload.children().next();
        match first.map(|c| c.name()) {
            Some("subscriptions") => {
                return self.manage_subscriptions(ctx, set, first.expect("matched")).await;
            }
            Some("affiliations") => return self.manage_affiliations(ctx, set, first.expect("matched")).await,
            _ => {}
        }
        let request = Owner::try_from(payload.clone())
            .map_err(|e| StanzaError::bad_request().text(format!("unreadable pubsub#owner request: {e}")))?;
        match (set, request.payload) {
            (false, OwnerPayload::Default { .. }) => {
                let answer = OwnerPayload::Default {
                    form: Some(NodeConfig::service_default().to_form()),
                };
                Ok(Some(Owner { payload: answer }.into()))
            }
            (false, OwnerPayload::Configure { node, .. }) => {
                let name = node.ok_or_else(errors::nodeid_required)?.0;
                let guard = self.lock(ctx).await?;
                let node = owned(node_of(&guard, &name)?, ctx)?;
                let answer = OwnerPayload::Configure {
                    node: Some(NodeName(name)),
                    form: Some(node.node.config.to_form()),
                };
                Ok(Some(Owner { payload: answer }.into()))
            }
            (true, OwnerPayload::Configure { node, form }) => {
                let name = node.ok_or_else(errors::nodeid_required)?.0;
                let form =
                    form.ok_or_else(|| StanzaError::bad_request().text("the configuration form is missing"))?;
                self.configure(ctx, &name, &form).await.map(|()| None)
            }
            (true, OwnerPayload::Delete { node, .. }) => self.delete(ctx, &node.0).await.map(|()| None),
            (true, OwnerPayload::Purge { node }) => self.purge(ctx, &node.0).await.map(|()| None),
            _ => Err(StanzaError::bad_request().text("this request needs the other IQ type")),
        }
    }

    /// §8.2.5 submit a configuration.
    async fn configure(&self, ctx: &Ctx<'_>, name: &str, form: &DataForm) -> Result<(), StanzaError> {
        let mut guard = self.lock(ctx).await?;
        let node = owned_mut(node_mut(&mut guard, name)?, ctx)?;
        let mut config = node.node.config.clone();
        apply_config(&mut config, form)?;
        let storage = &ctx.server.storage;
        let service = ctx.service.as_str();
        storage
            .pubsub_set_config(service, name, &config.to_text())
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        node.node.config = config;
        let dropped: Vec<String> = if node.node.config.persist_items {
            node.node.trim()
        } else {
            node.node.items.drain(..).map(|i| i.id).collect()
        };
        if !dropped.is_empty() {
            storage
                .pubsub_retract(service, name, &dropped)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
        }
        if node.node.config.notify_config {
            notify(ctx, node, events::configuration_event(name));
        }
        Ok(())
    }

    /// §8.4 delete a node (subscribers told when `notify_delete`).
    async fn delete(&self, ctx: &Ctx<'_>, name: &str) -> Result<(), StanzaError> {
        let mut guard = self.lock(ctx).await?;
        owned(node_of(&guard, name)?, ctx)?;
        ctx.server
            .storage
            .pubsub_delete_node(ctx.service.as_str(), name)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let node = guard
            .as_mut()
            .expect("loaded by lock")
            .remove(name)
            .expect("found above");
        if node.node.config.notify_delete {
            notify(ctx, &node, events::delete_event(name));
        }
        Ok(())
    }

    /// §8.5 purge a node's items.
    async fn purge(&self, ctx: &Ctx<'_>, name: &str) -> Result<(), StanzaError> {
        let mut guard = self.lock(ctx).await?;
        let node = owned_mut(node_mut(&mut guard, name)?, ctx)?;
        if !node.node.config.persist_items {
            return Err(errors::unsupported("persistent-items"));
        }
        ctx.server
            .storage
            .pubsub_purge(ctx.service.as_str(), name)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        node.node.items.clear();
        if node.node.config.notify_retract {
            notify(ctx, node, events::purge_event(name));
        }
        Ok(())
    }

    /// §8.8 the node's subscriptions (get) or changes to them (set: `subscribed` approves,
    /// `none` removes).
    async fn manage_subscriptions(
        &self,
        ctx: &Ctx<'_>,
        set: bool,
        el: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let mut guard = self.lock(ctx).await?;
        let node = owned_mut(node_mut(&mut guard, &name)?, ctx)?;
        if !set {
            let mut list = Element::bare("subscriptions", NS_PUBSUB_OWNER);
            xml::set_attr(&mut list, "node", &name);
            for (jid, sub) in &node.subscriptions {
                list.append_child(subscription_el(NS_PUBSUB_OWNER, None, jid, Some(sub)));
            }
            return Ok(Some(wrap(NS_PUBSUB_OWNER, list)));
        }
        let mut changes = Vec::new();
        for item in el.children().filter(|c| c.is("subscription", NS_PUBSUB_OWNER)) {
            let jid = item
                .attr("jid")
                .and_then(|j| Jid::new(j).ok())
                .ok_or_else(|| StanzaError::bad_request().text("each subscription needs a JID"))?;
            let state = match item.attr("subscription") {
                Some(s @ ("subscribed" | "pending" | "none")) => s,
                _ => {
                    return Err(
                        StanzaError::bad_request().text("subscription is subscribed, pending or none")
                    );
                }
            };
            changes.push((jid.to_string(), state));
        }
        for (jid, state) in changes {
            let next = (state != "none").then(|| {
                let mut s = node.subscriptions.get(&jid).cloned().unwrap_or(Subscription {
                    subid: uuid::Uuid::new_v4().to_string(),
                    pending: false,
                    deliver: true,
                });
                s.pending = state == "pending";
                s
            });
            set_subscription(ctx, node, &name, &jid, next).await?;
        }
        Ok(None)
    }

    /// §8.9 the node's affiliations (get) or changes to them (set); a node keeps an owner.
    async fn manage_affiliations(
        &self,
        ctx: &Ctx<'_>,
        set: bool,
        el: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        let name = el.attr("node").ok_or_else(errors::nodeid_required)?.to_owned();
        let mut guard = self.lock(ctx).await?;
        let node = owned_mut(node_mut(&mut guard, &name)?, ctx)?;
        if !set {
            let mut list = Element::bare("affiliations", NS_PUBSUB_OWNER);
            xml::set_attr(&mut list, "node", &name);
            for (jid, a) in &node.node.affiliations {
                let mut item = Element::bare("affiliation", NS_PUBSUB_OWNER);
                xml::set_attr(&mut item, "jid", jid);
                xml::set_attr(&mut item, "affiliation", a.as_str());
                list.append_child(item);
            }
            return Ok(Some(wrap(NS_PUBSUB_OWNER, list)));
        }
        // Validate everything before changing anything (§8.9.2.4).
        let mut changes = Vec::new();
        let mut after = node.node.affiliations.clone();
        for item in el.children().filter(|c| c.is("affiliation", NS_PUBSUB_OWNER)) {
            let jid = item
                .attr("jid")
                .and_then(|j| BareJid::new(j).ok())
                .ok_or_else(|| StanzaError::bad_request().text("each affiliation needs a bare JID"))?;
            let affiliation =
                match item.attr("affiliation") {
                    Some("none") => None,
                    Some(a) => Some(Affiliation::parse(a).ok_or_else(|| {
                        StanzaError::bad_request().text(format!("unknown affiliation '{a}'"))
                    })?),
                    None => return Err(StanzaError::bad_request().text("each affiliation needs a value")),
                };
            match affiliation {
                Some(a) => after.insert(jid.to_string(), a),
                None => after.remove(jid.as_str()),
            };
            changes.push((jid, affiliation));
        }
        if !after.values().any(|a| *a == Affiliation::Owner) {
            return Err(StanzaError::not_acceptable().text("a node keeps at least one owner"));
        }
        let service = ctx.service.as_str();
        for (jid, affiliation) in changes {
            ctx.server
                .storage
                .pubsub_set_affiliation(service, &name, jid.as_str(), affiliation.map(Affiliation::as_str))
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            match affiliation {
                Some(a) => node.node.affiliations.insert(jid.to_string(), a),
                None => node.node.affiliations.remove(jid.as_str()),
            };
            // §4.1: outcasts lose their subscriptions.
            if affiliation == Some(Affiliation::Outcast) {
                let gone: Vec<String> = node.subscriptions_of(&jid).map(|(j, _)| j.clone()).collect();
                for j in gone {
                    set_subscription(ctx, node, &name, &j, None).await?;
                }
            }
        }
        Ok(None)
    }

    /// §8.6.2 an owner's answer to a subscription approval form.
    async fn authorization_answer(&self, ctx: &Ctx<'_>, message: &Element) -> Result<(), StanzaError> {
        let form = message
            .get_child("x", NS_DATA_FORMS)
            .and_then(|x| DataForm::try_from(x.clone()).ok())
            .filter(|f| f.form_type() == Some(NS_SUBSCRIBE_AUTHORIZATION) && f.type_ == DataFormType::Submit)
            .ok_or_else(StanzaError::service_unavailable)?;
        let value = |var: &str| {
            form.fields
                .iter()
                .find(|f| f.var.as_deref() == Some(var))
                .and_then(|f| f.values.first().cloned())
        };
        let name = value("pubsub#node").ok_or_else(errors::nodeid_required)?;
        let jid = value("pubsub#subscriber_jid")
            .and_then(|j| Jid::new(&j).ok())
            .ok_or_else(|| errors::bad_request("invalid-jid"))?
            .to_string();
        let allow = matches!(value("pubsub#allow").as_deref(), Some("1" | "true"));
        let mut guard = self.lock(ctx).await?;
        let node = owned_mut(node_mut(&mut guard, &name)?, ctx)?;
        let Some(sub) = node.subscriptions.get(&jid).filter(|s| s.pending).cloned() else {
            return Err(StanzaError::item_not_found().text("no pending subscription"));
        };
        if value("pubsub#subid").is_some_and(|id| !id.is_empty() && id != sub.subid) {
            return Err(StanzaError::not_acceptable().application("invalid-subid", NS_ERRORS));
        }
        let next = allow.then_some(Subscription {
            pending: false,
            ..sub
        });
        set_subscription(ctx, node, &name, &jid, next).await
    }
}

/// Stores and applies a subscription change made by an owner, and tells the subscriber
/// (§8.6.2, §8.8.2.4).
async fn set_subscription(
    ctx: &Ctx<'_>,
    node: &mut ServiceNode,
    name: &str,
    jid: &str,
    next: Option<Subscription>,
) -> Result<(), StanzaError> {
    let stored = next.as_ref().map(|s| s.to_stored(jid));
    ctx.server
        .storage
        .pubsub_set_subscription(ctx.service.as_str(), name, jid, stored.as_ref())
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    match &next {
        Some(s) => node.subscriptions.insert(jid.to_owned(), s.clone()),
        None => node.subscriptions.remove(jid),
    };
    let mut event = Element::bare("event", NS_EVENT);
    event.append_child(subscription_el(NS_EVENT, Some(name), jid, next.as_ref()));
    deliver_to(ctx.server, jid, &notification(&ctx.service, jid, event));
    Ok(())
}

fn load_node(stored: StoredPubsubNode) -> (String, ServiceNode) {
    let subscriptions = stored
        .subscriptions
        .iter()
        .cloned()
        .map(|s| (s.jid.clone(), Subscription::from_stored(s)))
        .collect();
    let name = stored.node.clone();
    let pep_shape = crate::storage::pep::StoredPepNode {
        node: stored.node,
        config: stored.config,
        items: stored.items,
        affiliations: stored.affiliations,
    };
    (
        name,
        ServiceNode {
            node: Node::from_stored(pep_shape),
            subscriptions,
        },
    )
}

fn node_of<'a>(nodes: &'a Option<Nodes>, name: &str) -> Result<&'a ServiceNode, StanzaError> {
    nodes
        .as_ref()
        .and_then(|n| n.get(name))
        .ok_or_else(errors::no_such_node)
}

fn node_mut<'a>(nodes: &'a mut Option<Nodes>, name: &str) -> Result<&'a mut ServiceNode, StanzaError> {
    nodes
        .as_mut()
        .and_then(|n| n.get_mut(name))
        .ok_or_else(errors::no_such_node)
}

fn owned<'a>(node: &'a ServiceNode, ctx: &Ctx<'_>) -> Result<&'a ServiceNode, StanzaError> {
    if node.is_owner(&ctx.bare()) {
        Ok(node)
    } else {
        Err(StanzaError::forbidden().text("only the node's owners may do this"))
    }
}

fn owned_mut<'a>(node: &'a mut ServiceNode, ctx: &Ctx<'_>) -> Result<&'a mut ServiceNode, StanzaError> {
    if node.is_owner(&ctx.bare()) {
        Ok(node)
    } else {
        Err(StanzaError::forbidden().text("only the node's owners may do this"))
    }
}

/// The JID a subscription request names, when the requester may act for it (its bare JID
/// or one of its full JIDs): §6.1.3.1.
fn subscriber_jid(ctx: &Ctx<'_>, jid: Option<&str>) -> Option<String> {
    let jid = Jid::new(jid?).ok()?;
    let from = ctx.from;
    (jid.node() == from.node() && jid.domain() == from.domain()).then(|| jid.to_string())
}

/// §6.2.3.2 / §6.3.4.2.
fn not_subscribed() -> StanzaError {
    StanzaError::unexpected_request().application("not-subscribed", NS_ERRORS)
}

/// A service node's configuration from a form: the shared options, without the roster-based
/// access models (a service node has no roster).
fn apply_config(config: &mut NodeConfig, form: &DataForm) -> Result<(), StanzaError> {
    let mut next = config.clone();
    next.apply_form(form, NS_NODE_CONFIG)
        .map_err(|e| StanzaError::not_acceptable().text(e.0))?;
    if matches!(next.access_model, AccessModel::Presence | AccessModel::Roster) {
        return Err(errors::unsupported(&format!(
            "access-{}",
            next.access_model.as_str()
        )));
    }
    *config = next;
    Ok(())
}

/// §6.3.5 subscription options: `pubsub#deliver`.
fn apply_options(sub: &mut Subscription, form: &DataForm) -> Result<(), StanzaError> {
    if form.form_type().is_some_and(|t| t != NS_SUBSCRIBE_OPTIONS) {
        return Err(errors::bad_request("invalid-options"));
    }
    for field in &form.fields {
        match field.var.as_deref() {
            Some("FORM_TYPE") | None => {}
            Some("pubsub#deliver") => {
                sub.deliver = match field.values.first().map(String::as_str) {
                    Some("1" | "true") => true,
                    Some("0" | "false") => false,
                    _ => return Err(errors::bad_request("invalid-options")),
                }
            }
            Some(_) => return Err(errors::bad_request("invalid-options")),
        }
    }
    Ok(())
}

/// §8.3 (entity form): the default configuration under `pubsub`.
fn default_form() -> Element {
    let mut default = Element::bare("default", NS_PUBSUB);
    default.append_child(NodeConfig::service_default().to_form().into());
    wrap(NS_PUBSUB, default)
}

fn boolean_field(var: &str, value: bool) -> Field {
    let mut f = Field::new(var, xmpp_parsers::data_forms::FieldType::Boolean);
    f.values = vec![if value { "1" } else { "0" }.to_owned()];
    f
}

fn wrap(namespace: &str, child: Element) -> Element {
    let mut pubsub = Element::bare("pubsub", namespace);
    pubsub.append_child(child);
    pubsub
}

fn subscription_el(namespace: &str, node: Option<&str>, jid: &str, sub: Option<&Subscription>) -> Element {
    let mut el = Element::bare("subscription", namespace);
    if let Some(node) = node {
        xml::set_attr(&mut el, "node", node);
    }
    xml::set_attr(&mut el, "jid", jid);
    match sub {
        Some(s) => {
            xml::set_attr(&mut el, "subid", &s.subid);
            xml::set_attr(&mut el, "subscription", s.state());
        }
        None => xml::set_attr(&mut el, "subscription", "none"),
    }
    el
}

/// A headline message from the service to `to` carrying `payload`.
fn notification(service: &BareJid, to: &str, payload: Element) -> Element {
    message(service, to, payload, Some("headline"))
}

fn message(service: &BareJid, to: &str, payload: Element, kind: Option<&str>) -> Element {
    let mut m = Element::bare("message", ns::CLIENT);
    xml::set_attr(&mut m, "from", service.as_str());
    xml::set_attr(&mut m, "to", to);
    if let Some(kind) = kind {
        xml::set_attr(&mut m, "type", kind);
    }
    xml::set_attr(&mut m, "id", &uuid::Uuid::new_v4().to_string());
    m.append_child(payload);
    m
}

/// Delivers to a full JID's session, or to every available resource of a bare JID.
fn deliver_to(server: &Arc<Server>, jid: &str, message: &Element) {
    match Jid::new(jid).map(Jid::try_into_full) {
        Ok(Ok(full)) => router::deliver_to_full(server, &full, message.clone()),
        Ok(Err(bare)) => {
            for s in server.sessions.sessions_of(&bare) {
                if s.is_available() {
                    router::push(&s, message.clone());
                }
            }
        }
        Err(_) => {}
    }
}

/// §7.1.2 and the others: `event` to every approved subscription that wants notifications,
/// serialized once.
fn notify(ctx: &Ctx<'_>, node: &ServiceNode, event: Element) {
    if !node.node.config.deliver_notifications {
        return;
    }
    let Some(shared) = events::shared_message(&ctx.service, event) else {
        tracing::warn!("a pubsub notification could not be serialized");
        return;
    };
    let sessions = &ctx.server.sessions;
    for (jid, sub) in &node.subscriptions {
        if sub.pending || !sub.deliver {
            continue;
        }
        match Jid::new(jid).map(Jid::try_into_full) {
            Ok(Ok(full)) => {
                if let Some(s) = sessions.get(&full) {
                    let _ = router::deliver_shared(&s, &shared);
                }
            }
            Ok(Err(bare)) => {
                for s in sessions.sessions_of(&bare) {
                    if s.is_available() {
                        let _ = router::deliver_shared(&s, &shared);
                    }
                }
            }
            Err(_) => {}
        }
    }
}

/// §8.6.1: the approval form to each owner's available resources.
fn ask_owners(ctx: &Ctx<'_>, node: &ServiceNode, name: &str, jid: &str, subid: &str) {
    let hidden = |var: &str, v: &str| {
        let mut f = Field::new(var, xmpp_parsers::data_forms::FieldType::Hidden);
        f.values = vec![v.to_owned()];
        f
    };
    let mut subscriber = Field::new(
        "pubsub#subscriber_jid",
        xmpp_parsers::data_forms::FieldType::JidSingle,
    );
    subscriber.values = vec![jid.to_owned()];
    let mut form = DataForm::new(
        DataFormType::Form,
        NS_SUBSCRIBE_AUTHORIZATION,
        vec![
            hidden("pubsub#subid", subid),
            Field::text_single("pubsub#node", name),
            subscriber,
            boolean_field("pubsub#allow", false),
        ],
    );
    form.title = Some("PubSub subscriber request".into());
    let form: Element = form.into();
    for owner in node.owners() {
        // A normal message, not a headline: the owner is to answer it.
        deliver_to(
            ctx.server,
            owner,
            &message(&ctx.service, owner, form.clone(), None),
        );
    }
}
