//! Module registrations as data: IQ handlers keyed by (type, namespace, element) and target,
//! disco features and identities. Built once at start; readers never lock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use jid::{BareJid, FullJid};
use minidom::Element;

use super::hooks::Hooks;
use crate::command::Command;
use crate::config::Config;
use crate::error::{StanzaError, StreamError};
use crate::server::Server;

/// A feature module: registers its handlers and disco features.
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn register(self: Arc<Self>, r: &mut Registry);
}

/// Whom an IQ is addressed to, relative to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqTarget {
    /// A hosted domain: the server itself.
    Server,
    /// No `to`, or the sender's own bare JID: the server answers for the account.
    OwnAccount,
    /// Another local account's bare JID: the server answers on that user's behalf.
    OtherAccount,
}

/// IQ type of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
}

/// What a handler receives.
pub struct IqRequest {
    pub server: Arc<Server>,
    pub from: FullJid,
    /// The addressed entity: a domain (Server) or a bare JID.
    pub to: BareJid,
    pub target: IqTarget,
    pub kind: IqType,
    /// The whole `<iq/>`, as received.
    pub iq: Element,
}

impl IqRequest {
    /// The IQ's single child (validated before dispatch).
    pub fn payload(&self) -> &Element {
        self.iq
            .children()
            .next()
            .expect("get/set IQs are checked to have one child")
    }
}

/// A handler's answer.
#[derive(Default)]
pub struct IqResponse {
    /// The child of the result IQ, if any.
    pub payload: Option<Element>,
    /// Sessions to close after the result is sent (account removal, for instance).
    pub then_close: Option<(BareJid, StreamError)>,
}

impl IqResponse {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn with(payload: Element) -> Self {
        IqResponse {
            payload: Some(payload),
            then_close: None,
        }
    }
}

pub type IqResult = Result<IqResponse, StanzaError>;
pub type IqHandler = Arc<dyn Fn(IqRequest) -> BoxFuture<'static, IqResult> + Send + Sync>;
/// The items a module lists in an account's disco#items (XEP-0030 §4.1), for the request's
/// sender: given the request (no node, addressed to an account).
pub type AccountItems =
    Arc<dyn Fn(&IqRequest) -> BoxFuture<'static, Vec<xmpp_parsers::disco::Item>> + Send + Sync>;

/// Receives every stanza addressed to a service domain (a component such as MUC): the
/// sender's full JID and the stanza, `from` stamped. The service answers or bounces itself.
pub type ServiceHandler = Arc<dyn Fn(Arc<Server>, FullJid, Element) -> BoxFuture<'static, ()> + Send + Sync>;

/// A component domain registered by a module (see `Registry::service`).
struct Service {
    /// Human-readable name, listed in the server's disco#items.
    name: &'static str,
    /// The domain, derived from the configuration (`None`: the service is disabled).
    domain_of: fn(&Config) -> Option<String>,
    /// `domain_of`, computed on first use: the configuration never changes in a process.
    domain: std::sync::OnceLock<Option<String>>,
    handler: ServiceHandler,
}

impl Service {
    fn domain(&self, config: &Config) -> Option<&str> {
        self.domain.get_or_init(|| (self.domain_of)(config)).as_deref()
    }
}

/// A disco#info identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    pub category: &'static str,
    pub kind: &'static str,
    pub name: &'static str,
}

/// Answers disco#info or disco#items for one node (the whole `<query/>`, node attribute
/// included).
struct DiscoNode {
    node: String,
    targets: Vec<IqTarget>,
    info: IqHandler,
    items: IqHandler,
}

struct IqRoute {
    kind: IqType,
    name: String,
    targets: Vec<IqTarget>,
    handler: IqHandler,
}

/// Everything the modules registered.
#[derive(Default)]
pub struct Registry {
    /// Keyed by namespace so a lookup borrows the payload's strings instead of allocating.
    iq: HashMap<String, Vec<IqRoute>>,
    /// Namespaces whose every get/set a module answers itself (see [`Registry::iq_namespace`]).
    iq_namespaces: HashMap<String, IqRoute>,
    features: BTreeSet<&'static str>,
    identities: Vec<Identity>,
    /// disco#info of an account's bare JID, beside its IQ namespaces (XEP-0163 PEP).
    account_features: BTreeSet<&'static str>,
    account_identities: Vec<Identity>,
    /// Contributors to an account's disco#items (PEP nodes).
    account_items: Vec<AccountItems>,
    modules: Vec<&'static str>,
    /// Offered in stream features after authentication (roster versioning, pre-approval...).
    stream_features: Vec<Element>,
    /// Disco nodes answered by modules (the disco module asks here before `item-not-found`).
    disco_nodes: Vec<DiscoNode>,
    /// Component domains answered by modules (MUC...).
    services: Vec<Service>,
    /// Ad-hoc commands (XEP-0050) offered by modules, in registration order.
    commands: Vec<&'static Command>,
    /// Module state other parts of the server reach by type (see [`Registry::provide`]).
    provided: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    pub hooks: Hooks,
}

impl Registry {
    /// Builds the table from the given modules, in order.
    pub fn build(modules: Vec<Arc<dyn Module>>) -> Registry {
        let mut r = Registry::default();
        for m in modules {
            r.modules.push(m.name());
            m.register(&mut r);
        }
        r
    }

    /// Registers an IQ handler for `(kind, ns, name)` addressed to any of `targets`.
    pub fn iq<F, Fut>(&mut self, kind: IqType, ns: &str, name: &str, targets: &[IqTarget], f: F)
    where
        F: Fn(IqRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = IqResult> + Send + 'static,
    {
        let handler: IqHandler = Arc::new(move |req| Box::pin(f(req)));
        self.iq.entry(ns.to_string()).or_default().push(IqRoute {
            kind,
            name: name.to_string(),
            targets: targets.to_vec(),
            handler,
        });
    }

    /// Registers one handler for every get and set whose payload is in `ns`, whatever its
    /// element, addressed to any of `targets`: for a protocol that answers an unknown element
    /// of its own with `bad-request` rather than the router's `service-unavailable` (the
    /// ignore list, xep/xep-ignore-list.md §9). Handlers registered with [`Registry::iq`] for
    /// the same namespace are looked up first.
    pub fn iq_namespace<F, Fut>(&mut self, ns: &str, targets: &[IqTarget], f: F)
    where
        F: Fn(IqRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = IqResult> + Send + 'static,
    {
        let handler: IqHandler = Arc::new(move |req| Box::pin(f(req)));
        let route = IqRoute {
            kind: IqType::Get,
            name: String::new(),
            targets: targets.to_vec(),
            handler,
        };
        let previous = self.iq_namespaces.insert(ns.to_string(), route);
        assert!(previous.is_none(), "two modules answer every IQ of {ns}");
    }

    /// Advertises a disco#info feature on the server.
    pub fn feature(&mut self, var: &'static str) {
        self.features.insert(var);
    }

    /// Advertises a disco#info feature on every account's bare JID.
    pub fn account_feature(&mut self, var: &'static str) {
        self.account_features.insert(var);
    }

    /// Advertises a disco#info identity on every account's bare JID.
    pub fn account_identity(&mut self, identity: Identity) {
        self.account_identities.push(identity);
    }

    pub fn account_features(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.account_features.iter().copied()
    }

    pub fn account_identities(&self) -> &[Identity] {
        &self.account_identities
    }

    /// Lists items in every account's disco#items (see [`AccountItems`]).
    pub fn account_items<F, Fut>(&mut self, f: F)
    where
        F: Fn(&IqRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<xmpp_parsers::disco::Item>> + Send + 'static,
    {
        self.account_items.push(Arc::new(move |req| Box::pin(f(req))));
    }

    pub fn account_item_lists(&self) -> &[AccountItems] {
        &self.account_items
    }

    /// Lets a module answer disco#info and disco#items requests for `node` addressed to any of
    /// `targets` (XEP-0030 §3.2, §4.2). Each handler returns the whole `<query/>`.
    pub fn disco_node<I, IFut, T, TFut>(&mut self, node: &str, targets: &[IqTarget], info: I, items: T)
    where
        I: Fn(IqRequest) -> IFut + Send + Sync + 'static,
        IFut: std::future::Future<Output = IqResult> + Send + 'static,
        T: Fn(IqRequest) -> TFut + Send + Sync + 'static,
        TFut: std::future::Future<Output = IqResult> + Send + 'static,
    {
        self.disco_nodes.push(DiscoNode {
            node: node.to_string(),
            targets: targets.to_vec(),
            info: Arc::new(move |req| Box::pin(info(req))),
            items: Arc::new(move |req| Box::pin(items(req))),
        });
    }

    /// The disco#info (`items` false) or disco#items handler a module registered for `node`.
    pub fn disco_node_handler(&self, node: &str, target: IqTarget, items: bool) -> Option<&IqHandler> {
        self.disco_nodes
            .iter()
            .find(|n| n.node == node && n.targets.contains(&target))
            .map(|n| if items { &n.items } else { &n.info })
    }

    /// Registers a component domain: every stanza whose `to` is `domain_of(config)` or one of
    /// its JIDs goes to `handler` instead of the routing table. Listed in disco#items.
    pub fn service<F, Fut>(&mut self, name: &'static str, domain_of: fn(&Config) -> Option<String>, f: F)
    where
        F: Fn(Arc<Server>, FullJid, Element) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.services.push(Service {
            name,
            domain_of,
            domain: std::sync::OnceLock::new(),
            handler: Arc::new(move |s, from, el| Box::pin(f(s, from, el))),
        });
    }

    /// The service answering `domain` (case-insensitive), with its configured spelling.
    pub fn service_for(&self, config: &Config, domain: &str) -> Option<(&str, &ServiceHandler)> {
        self.services.iter().find_map(|s| {
            let d = s.domain(config)?;
            d.eq_ignore_ascii_case(domain).then_some((d, &s.handler))
        })
    }

    /// Every enabled service: (domain, name).
    pub fn services<'a>(&'a self, config: &'a Config) -> impl Iterator<Item = (&'a str, &'static str)> + 'a {
        self.services
            .iter()
            .filter_map(move |s| Some((s.domain(config)?, s.name)))
    }

    /// Offers an element in the post-authentication stream features.
    pub fn stream_feature(&mut self, feature: Element) {
        self.stream_features.push(feature);
    }

    pub fn stream_features(&self) -> &[Element] {
        &self.stream_features
    }

    pub fn identity(&mut self, identity: Identity) {
        self.identities.push(identity);
    }

    pub fn handler(&self, kind: IqType, ns: &str, name: &str, target: IqTarget) -> Option<&IqHandler> {
        self.iq
            .get(ns)
            .and_then(|routes| {
                routes
                    .iter()
                    .find(|r| r.kind == kind && r.name == name && r.targets.contains(&target))
            })
            .or_else(|| self.iq_namespaces.get(ns).filter(|r| r.targets.contains(&target)))
            .map(|r| &r.handler)
    }

    /// The namespaces of the IQ handlers registered for `target`, sorted: what the server
    /// answers there (an account's disco#info lists them).
    pub fn namespaces_for(&self, target: IqTarget) -> BTreeSet<&str> {
        let exact = self
            .iq
            .iter()
            .filter(|(_, routes)| routes.iter().any(|r| r.targets.contains(&target)))
            .map(|(ns, _)| ns.as_str());
        let whole = self
            .iq_namespaces
            .iter()
            .filter(|(_, r)| r.targets.contains(&target))
            .map(|(ns, _)| ns.as_str());
        exact.chain(whole).collect()
    }

    pub fn features(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.features.iter().copied()
    }

    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// Offers an ad-hoc command (XEP-0050): the ad-hoc module lists, describes and runs it.
    pub fn command(&mut self, command: &'static Command) {
        self.commands.push(command);
    }

    /// Every registered command, in registration order.
    pub fn commands(&self) -> &[&'static Command] {
        &self.commands
    }

    /// Publishes a module's state to the rest of the server by its type (the MUC service for
    /// the admin commands and the shutdown announcement), instead of a process-global.
    pub fn provide<T: Send + Sync + 'static>(&mut self, state: Arc<T>) {
        self.provided.push(state);
    }

    /// The state a module published with [`Registry::provide`], if it is registered. Not for
    /// the hot path: a short scan.
    pub fn provided<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.provided
            .iter()
            .find_map(|state| state.clone().downcast::<T>().ok())
    }

    pub fn module_names(&self) -> &[&'static str] {
        &self.modules
    }
}
