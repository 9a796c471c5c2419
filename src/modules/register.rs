//! XEP-0077 in-band registration: account creation before authentication (when enabled in
//! config), and password change and account removal for a logged-in user.

use std::net::IpAddr;
use std::sync::Arc;

use minidom::Element;
use xmpp_parsers::ibr::LegacyQuery;

use crate::accounts::{self, Account, AccountError};
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::xml;

pub const NS: &str = "jabber:iq:register";

pub struct Register;

impl Module for Register {
    fn name(&self) -> &'static str {
        "register"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        // Password change and removal work whether or not sign-up is open.
        r.feature(NS);
        r.iq(
            IqType::Get,
            NS,
            "query",
            &[IqTarget::Server, IqTarget::OwnAccount],
            registered_info,
        );
        r.iq(
            IqType::Set,
            NS,
            "query",
            &[IqTarget::Server, IqTarget::OwnAccount],
            change,
        );
    }
}

/// Whether an IQ on an unauthenticated stream is a registration request.
pub fn is_register_iq(iq: &Element) -> bool {
    iq.children().next().is_some_and(|c| c.is("query", NS))
}

/// A registration IQ on an unauthenticated stream (XEP-0077 §3.1). Returns the reply.
pub async fn preauth(server: &Arc<Server>, ip: IpAddr, domain: &str, iq: &Element) -> Element {
    let result = match iq.attr("type") {
        Some("get") => Ok(Some(form())),
        Some("set") => create(server, ip, domain, iq).await.map(|()| None),
        _ => Err(StanzaError::bad_request()),
    };
    match result {
        Ok(payload) => xml::iq_result(iq, payload),
        Err(e) => e.reply_to(iq),
    }
}

/// The legacy form (§3.1): the fields asked, empty.
fn form() -> Element {
    LegacyQuery {
        instructions: Some("Choose a username and password.".into()),
        username: Some(String::new()),
        password: Some(String::new()),
        ..LegacyQuery::default()
    }
    .into()
}

/// A set's `<query/>`: removal (§3.2), or the legacy fields (§3.1, §3.3). Unknown children
/// (a data form, which we do not offer) are ignored, so such a query lacks the fields.
enum Request {
    Remove,
    Fields {
        username: Option<String>,
        password: Option<String>,
    },
}

fn request(query: &Element) -> Result<Request, StanzaError> {
    if query.has_child("remove", NS) {
        return Ok(Request::Remove);
    }
    let fields = LegacyQuery::try_from(query.clone())
        .map_err(|e| StanzaError::bad_request().text(format!("malformed registration: {e}")))?;
    Ok(Request::Fields {
        username: fields.username,
        password: fields.password,
    })
}

async fn create(server: &Arc<Server>, ip: IpAddr, domain: &str, iq: &Element) -> Result<(), StanzaError> {
    let query = iq.children().next().ok_or_else(StanzaError::bad_request)?;
    let Request::Fields { username, password } = request(query)? else {
        return Err(StanzaError::not_authorized());
    };
    let (Some(user), Some(password)) = (username, password) else {
        return Err(StanzaError::not_acceptable().text("username and password are required"));
    };
    let account = Account::from_parts(&user, domain, &server.config())
        .map_err(|_| StanzaError::jid_malformed().text("the username is not valid"))?;
    accounts::validate_password(&password, &server.config()).map_err(account_error)?;
    // Every attempt that learns whether the name is taken counts, taken or not, and the
    // check and the count are one step: the limit also bounds probing for accounts.
    if !server.registrations_by_ip.try_record(&ip.to_string()) {
        return Err(
            StanzaError::resource_constraint().text("too many registrations from your address; try later")
        );
    }
    match accounts::create(&server.storage, &server.config(), &account, &password).await {
        Ok(()) => {
            tracing::info!(jid = %account, %ip, "account registered in-band");
            Ok(())
        }
        Err(e) => Err(account_error(e)),
    }
}

fn account_error(e: AccountError) -> StanzaError {
    match e {
        AccountError::Exists(_) => StanzaError::conflict().text("that username is taken"),
        AccountError::WeakPassword(_) | AccountError::InvalidPassword => {
            StanzaError::not_acceptable().text(e.to_string())
        }
        AccountError::InvalidJid(_) | AccountError::UnknownDomain(..) => {
            StanzaError::jid_malformed().text(e.to_string())
        }
        AccountError::NotFound(_) => StanzaError::item_not_found(),
        AccountError::Storage(err) => StanzaError::storage("storage error in registration")(err),
    }
}

/// XEP-0077 §3.1: a registered user asking for the form gets `<registered/>`.
async fn registered_info(req: IqRequest) -> IqResult {
    let user = req.from.node().map(|n| n.to_string()).unwrap_or_default();
    let query = LegacyQuery {
        registered: true,
        username: Some(user),
        ..LegacyQuery::default()
    };
    Ok(IqResponse::with(query.into()))
}

/// Password change (§3.3) or removal (§3.2) for the logged-in account.
async fn change(req: IqRequest) -> IqResult {
    let server = &req.server;
    let account = Account::from_parts(
        req.from.node().map(|n| n.as_str()).unwrap_or_default(),
        req.from.domain().as_str(),
        &server.config(),
    )
    .map_err(|_| StanzaError::internal_server_error())?;
    let (username, password) = match request(req.payload())? {
        Request::Fields { username, password } => (username, password),
        Request::Remove => {
            accounts::remove(server, &account, Some(req.from.clone()))
                .await
                .map_err(account_error)?;
            tracing::info!(jid = %account, "account removed in-band");
            let close =
                StreamError::with_text(StreamErrorCondition::NotAuthorized, "the account was removed");
            return Ok(IqResponse {
                payload: None,
                then_close: Some((req.from.to_bare(), close)),
            });
        }
    };
    let (Some(user), Some(password)) = (username, password) else {
        return Err(StanzaError::bad_request().text("username and password are required"));
    };
    if Account::from_parts(&user, &account.domain, &server.config())
        .ok()
        .as_ref()
        != Some(&account)
    {
        return Err(StanzaError::not_authorized().text("you can only change your own password"));
    }
    accounts::set_password(&server.storage, &server.config(), &account, &password)
        .await
        .map_err(account_error)?;
    tracing::info!(jid = %account, "password changed in-band");
    Ok(IqResponse::empty())
}
