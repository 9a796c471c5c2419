//! Module registrations as data: IQ handlers keyed by (type, namespace, element) and target,
//! disco features and identities. Built once at start; readers never lock.
//!
//! Generic over the context handlers receive (`C`, the server): this file never names the
//! server, so that the server can hold its registry without an import circle. Modules use
//! the instantiation for `Server` (`router::registry`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use jid::{BareJid, FullJid};
use minidom::Element;

use super::hooks::Hooks;
use crate::config::Config;
use crate::error::{StanzaError, StreamError};

/// What the registry is generic over: the state handlers receive, and what it lists as an
/// ad-hoc command (the ad-hoc module drives them; the registry only keeps them in order).
pub trait Context: Send + Sync + 'static {
    type Command: Sync + 'static;
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
pub struct IqRequest<C> {
    pub server: Arc<C>,
    pub from: FullJid,
    /// The addressed entity: a domain (Server) or a bare JID.
    pub to: BareJid,
    pub target: IqTarget,
    pub kind: IqType,
    /// The whole `<iq/>`, as received.
    pub iq: Element,
}

impl<C> IqRequest<C> {
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
pub type IqHandler<C> = Arc<dyn Fn(IqRequest<C>) -> BoxFuture<'static, IqResult> + Send + Sync>;

/// Receives every stanza addressed to a service domain (a component such as MUC): the
/// sender's full JID and the stanza, `from` stamped. The service answers or bounces itself.
pub type ServiceHandler<C> = Arc<dyn Fn(Arc<C>, FullJid, Element) -> BoxFuture<'static, ()> + Send + Sync>;

/// The items a module lists in an account's disco#items (XEP-0030 §4.1), for the request's
/// sender: given the request (no node, addressed to an account).
pub type AccountItems<C> =
    Arc<dyn Fn(&IqRequest<C>) -> BoxFuture<'static, Vec<xmpp_parsers::disco::Item>> + Send + Sync>;

/// Enables a feature inline in a Bind2 request (XEP-0386 §5) for the session just bound as
/// the given JID, from the request's child in the feature's namespace; what it returns goes
/// into `<bound/>`. Runs before the session reads its first stanza.
pub type Bind2Inline<C> = Arc<dyn Fn(&Arc<C>, &FullJid, &Element) -> Option<Element> + Send + Sync>;

/// A component domain registered by a module (see `Registry::service`).
struct Service<C> {
    /// Human-readable name, listed in the server's disco#items.
    name: &'static str,
    /// The domain, derived from the configuration (`None`: the service is disabled).
    domain_of: fn(&Config) -> Option<String>,
    /// `domain_of`, computed on first use: the configuration never changes in a process.
    domain: std::sync::OnceLock<Option<String>>,
    handler: ServiceHandler<C>,
}

impl<C> Service<C> {
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
struct DiscoNode<C> {
    node: String,
    targets: Vec<IqTarget>,
    info: IqHandler<C>,
    items: IqHandler<C>,
}

struct IqRoute<C> {
    kind: IqType,
    name: String,
    targets: Vec<IqTarget>,
    handler: IqHandler<C>,
}

/// Everything the modules registered.
pub struct Registry<C: Context> {
    /// Keyed by namespace so a lookup borrows the payload's strings instead of allocating.
    iq: HashMap<String, Vec<IqRoute<C>>>,
    /// Namespaces whose every get/set a module answers itself (see [`Registry::iq_namespace`]).
    iq_namespaces: HashMap<String, IqRoute<C>>,
    features: BTreeSet<&'static str>,
    identities: Vec<Identity>,
    /// disco#info of an account's bare JID, beside its IQ namespaces (XEP-0163 PEP).
    account_features: BTreeSet<&'static str>,
    account_identities: Vec<Identity>,
    modules: Vec<&'static str>,
    /// Offered in stream features after authentication (roster versioning, pre-approval...).
    stream_features: Vec<Element>,
    /// Disco nodes answered by modules (the disco module asks here before `item-not-found`).
    disco_nodes: Vec<DiscoNode<C>>,
    /// Component domains answered by modules (MUC...).
    services: Vec<Service<C>>,
    /// Ad-hoc commands (XEP-0050) offered by modules, in registration order.
    commands: Vec<&'static C::Command>,
    /// Contributors to an account's disco#items (PEP nodes).
    account_items: Vec<AccountItems<C>>,
    /// Features a Bind2 request may enable inline, by namespace (see [`Registry::bind2_inline`]).
    bind2_inline: Vec<(&'static str, Bind2Inline<C>)>,
    /// Module state other parts of the server reach by type (see [`Registry::provide`]).
    provided: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    pub hooks: Hooks<C>,
}

impl<C: Context> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            iq: HashMap::new(),
            iq_namespaces: HashMap::new(),
            features: BTreeSet::new(),
            identities: Vec::new(),
            account_features: BTreeSet::new(),
            account_identities: Vec::new(),
            modules: Vec::new(),
            stream_features: Vec::new(),
            disco_nodes: Vec::new(),
            services: Vec::new(),
            commands: Vec::new(),
            account_items: Vec::new(),
            bind2_inline: Vec::new(),
            provided: Vec::new(),
            hooks: Hooks::default(),
        }
    }
}

impl<C: Context> Registry<C> {
    /// Records that `name`'s registrations follow (the module list of logs and tests).
    pub fn begin_module(&mut self, name: &'static str) {
        self.modules.push(name);
    }

    /// Registers an IQ handler for `(kind, ns, name)` addressed to any of `targets`.
    pub fn iq<F, Fut>(&mut self, kind: IqType, ns: &str, name: &str, targets: &[IqTarget], f: F)
    where
        F: Fn(IqRequest<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = IqResult> + Send + 'static,
    {
        let handler: IqHandler<C> = Arc::new(move |req| Box::pin(f(req)));
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
        F: Fn(IqRequest<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = IqResult> + Send + 'static,
    {
        let handler: IqHandler<C> = Arc::new(move |req| Box::pin(f(req)));
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

    /// Lets a module answer disco#info and disco#items requests for `node` addressed to any of
    /// `targets` (XEP-0030 §3.2, §4.2). Each handler returns the whole `<query/>`.
    pub fn disco_node<I, IFut, T, TFut>(&mut self, node: &str, targets: &[IqTarget], info: I, items: T)
    where
        I: Fn(IqRequest<C>) -> IFut + Send + Sync + 'static,
        IFut: std::future::Future<Output = IqResult> + Send + 'static,
        T: Fn(IqRequest<C>) -> TFut + Send + Sync + 'static,
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
    pub fn disco_node_handler(&self, node: &str, target: IqTarget, items: bool) -> Option<&IqHandler<C>> {
        self.disco_nodes
            .iter()
            .find(|n| n.node == node && n.targets.contains(&target))
            .map(|n| if items { &n.items } else { &n.info })
    }

    /// Registers a component domain: every stanza whose `to` is `domain_of(config)` or one of
    /// its JIDs goes to `handler` instead of the routing table. Listed in disco#items.
    pub fn service<F, Fut>(&mut self, name: &'static str, domain_of: fn(&Config) -> Option<String>, f: F)
    where
        F: Fn(Arc<C>, FullJid, Element) -> Fut + Send + Sync + 'static,
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
    pub fn service_for(&self, config: &Config, domain: &str) -> Option<(&str, &ServiceHandler<C>)> {
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

    pub fn handler(&self, kind: IqType, ns: &str, name: &str, target: IqTarget) -> Option<&IqHandler<C>> {
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
    pub fn command(&mut self, command: &'static C::Command) {
        self.commands.push(command);
    }

    /// Lets a Bind2 request (XEP-0386) enable `ns` inline: advertised as
    /// `<feature var=ns/>` in the SASL2 `<bind/>` feature; a child of the request in `ns` is
    /// given to `handler` once the session is bound (carbons' `<enable/>`, for instance).
    pub fn bind2_inline<F>(&mut self, ns: &'static str, handler: F)
    where
        F: Fn(&Arc<C>, &FullJid, &Element) -> Option<Element> + Send + Sync + 'static,
    {
        assert!(
            self.bind2_inline.iter().all(|(n, _)| *n != ns),
            "two modules enable {ns} inline"
        );
        self.bind2_inline.push((ns, Arc::new(handler)));
    }

    /// The namespaces Bind2 requests may enable inline, in registration order.
    pub fn bind2_inline_features(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.bind2_inline.iter().map(|(ns, _)| *ns)
    }

    /// The inline handler for `ns`, if a module registered one.
    pub fn bind2_inline_handler(&self, ns: &str) -> Option<&Bind2Inline<C>> {
        self.bind2_inline.iter().find(|(n, _)| *n == ns).map(|(_, h)| h)
    }

    /// Lists items in every account's disco#items (see [`AccountItems`]).
    pub fn account_items<F, Fut>(&mut self, f: F)
    where
        F: Fn(&IqRequest<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<xmpp_parsers::disco::Item>> + Send + 'static,
    {
        self.account_items.push(Arc::new(move |req| Box::pin(f(req))));
    }

    pub fn account_item_lists(&self) -> &[AccountItems<C>] {
        &self.account_items
    }

    /// Every registered command, in registration order.
    pub fn commands(&self) -> &[&'static C::Command] {
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
