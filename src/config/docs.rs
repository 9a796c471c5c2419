//! The documentation of every configuration key (its one source: the fields of [`Config`]
//! carry no doc comments of their own), and `config/example.toml` generated from it
//! with the defaults of [`Config`]. A test fails when a key of `Config` has no entry here, an
//! entry names a key `Config` does not have, or the shipped example is stale.

use toml::Value;

use super::Config;

/// One documented key or section (a table or an array of tables).
pub struct Key {
    /// Dotted path: `limits.session_rate.stanzas_per_second`; `listen` for each `[[listen]]`.
    pub path: &'static str,
    /// Comment lines written above the key.
    pub doc: &'static str,
    /// Changing it takes a restart: a reload keeps the old value and logs it.
    pub restart: bool,
    /// For keys with no default (unset options): the value shown, commented out.
    pub example: Option<&'static str>,
}

const fn k(path: &'static str, doc: &'static str) -> Key {
    Key {
        path,
        doc,
        restart: false,
        example: None,
    }
}

const fn restart(path: &'static str, doc: &'static str) -> Key {
    Key {
        path,
        doc,
        restart: true,
        example: None,
    }
}

const fn with_example(path: &'static str, doc: &'static str, value: &'static str, restart: bool) -> Key {
    Key {
        path,
        doc,
        restart,
        example: Some(value),
    }
}

/// Every key, in the order of the example file. Sections precede their keys; the scalar keys
/// of a table precede its sub-tables (TOML requires it).
pub static KEYS: &[Key] = &[
    restart(
        "domains",
        "The XMPP domains this server hosts. Users are user@domain.",
    ),
    k(
        "admins",
        "Admin accounts (bare JIDs): they may run the administrative ad-hoc commands.\n\
         A reload also replaces a list edited with the edit-admin command.",
    ),
    k("storage", "Where accounts and all other data live."),
    restart(
        "storage.url",
        "sqlite://path (created with its directory on first start) or\n\
         postgres://user:password@host/db. The environment variable SWITCHBOARD_DATABASE_URL\n\
         overrides it, so a password need not sit in this file.",
    ),
    k(
        "tls",
        "The certificate presented on STARTTLS and direct TLS. A reload reads the files again\n\
         (renewed certificates), for new connections.",
    ),
    k("tls.cert", "PEM certificate chain."),
    k("tls.key", "PEM private key."),
    k(
        "tls.generate_self_signed",
        "When both files are missing, generate a self-signed certificate for the domains\n\
         there (reused on later starts). For development; production sets real files.",
    ),
    restart(
        "listen",
        "Listening sockets (each [[listen]] one). kind: c2s (STARTTLS, usually 5222),\n\
         c2s_direct_tls (XEP-0368, usually 5223), http (/health, /metrics, RFC 7395 WebSocket\n\
         at /xmpp-websocket, BOSH at /http-bind, XEP-0156 /.well-known/host-meta, uploads) or\n\
         https (the same over TLS with the [tls] certificate, usually 5281). Port 0 picks a\n\
         free port (see `serve --ports-file`). Only session_rate changes on a reload.",
    ),
    k("listen.kind", "c2s | c2s_direct_tls | http | https"),
    k("listen.address", "ip:port"),
    k(
        "listen.require_encryption",
        "c2s: refuse authentication before STARTTLS. http: refuse logins over WebSocket on a\n\
         connection that is not secure (see behind_tls_proxy). Turn off only on trusted\n\
         networks (for example a loopback benchmark).",
    ),
    k(
        "listen.behind_tls_proxy",
        "http only: a TLS-terminating reverse proxy is in front of this listener, so its plain\n\
         connections count as encrypted for logins (as Prosody's consider_websocket_secure).\n\
         A listener on a loopback address is always trusted this way.",
    ),
    with_example(
        "listen.session_rate",
        "c2s only: the rate limits of ordinary users' sessions on this listener, replacing\n\
         [limits.session_rate] (same keys).",
        "{ stanzas_per_second = 50, stanza_burst = 100, bytes_per_second = 65536, bytes_burst = 131072 }",
        false,
    ),
    k("registration", "XEP-0077 in-band registration."),
    k(
        "registration.enabled",
        "Let anyone create an account from their client.",
    ),
    k(
        "registration.per_ip_per_hour",
        "Registration attempts one IP address may make per hour that get as far as creating\n\
         the account: a taken name counts too, since each answer tells whether it exists.",
    ),
    k(
        "registration.min_password_length",
        "Shortest password accepted at registration and password change.",
    ),
    k(
        "limits",
        "Resource limits. The defaults suit a public server. All of them change on a reload;\n\
         a live session keeps the stanza size and idle time it was told at login (XEP-0478).",
    ),
    k(
        "limits.max_stanza_size",
        "Bytes a stanza may have after authentication (advertised, XEP-0478).",
    ),
    k(
        "limits.max_stanza_size_preauth",
        "Bytes a stanza may have before authentication.",
    ),
    k("limits.max_depth", "Element nesting depth inside a stanza."),
    k(
        "limits.connections_per_ip",
        "Simultaneous authenticated connections from one IP address; one more is refused\n\
         with policy-violation after authentication.",
    ),
    k(
        "limits.unauthenticated_per_ip",
        "Simultaneous connections from one IP address that have not authenticated yet,\n\
         counted apart from the authenticated ones; one more is refused with\n\
         policy-violation at once. It also bounds how many password guesses one address\n\
         can have waiting at a time (see auth).",
    ),
    k(
        "limits.max_connections",
        "Simultaneous connections in all; one more is refused with resource-constraint.",
    ),
    k(
        "limits.negotiation_timeout_secs",
        "Seconds a client has to finish TLS, authentication and resource binding.",
    ),
    k(
        "limits.negotiation_idle_secs",
        "Seconds a connection that has not authenticated may stay silent (no complete stream\n\
         header or element, no finished TLS handshake) before it is closed with\n\
         connection-timeout; advertised as XEP-0478 idle-seconds before authentication.",
    ),
    k(
        "limits.idle_ping_secs",
        "Seconds without traffic before the server pings a client (XEP-0199).",
    ),
    k(
        "limits.ping_timeout_secs",
        "Seconds to wait for the answer to that ping before closing the stream.",
    ),
    k(
        "limits.session_queue",
        "Stanzas queued for one session before it is judged too slow and disconnected.",
    ),
    k(
        "limits.max_resources_per_user",
        "Resources (sessions) one account may have at once.",
    ),
    k(
        "limits.max_roster_items",
        "Items one roster may hold (RFC 6121 §2); also caps the subscription requests waiting\n\
         for one user's answer. Adding more is refused with not-allowed.",
    ),
    k(
        "limits.max_offline_messages",
        "Messages kept for one account while it is offline (XEP-0160); past it senders get\n\
         service-unavailable. 0 turns offline storage off.",
    ),
    k(
        "limits.csi_max_held",
        "Stanzas held for a client that said it is inactive (XEP-0352: presence, chat states,\n\
         room messages) before they are all written anyway; urgent ones (messages with a body,\n\
         IQs) are written at once after what was held.",
    ),
    k(
        "limits.max_archive_page",
        "Messages one archive query (XEP-0313) returns at most; a larger <max/> is lowered to\n\
         it and the page is then not complete. A query without <max/> gets 50 (or this, if lower).",
    ),
    k(
        "limits.archive_max_age_secs",
        "Archived messages (XEP-0313) older than this are deleted, checked every hour (or every\n\
         half of it, if shorter). 0 keeps them until the user or an admin purges them.",
    ),
    k(
        "limits.max_vcard_size",
        "Bytes one account's vCard (XEP-0054, avatars included) may take.",
    ),
    k(
        "limits.max_private_size",
        "Bytes of private XML (XEP-0049, e.g. bookmarks) one account may store per namespace.",
    ),
    k(
        "limits.throttle_disconnect_secs",
        "Seconds a session may stay over its rate limit, its reads held back all along,\n\
         before it is disconnected with policy-violation.",
    ),
    k(
        "limits.presence_per_second",
        "Presence broadcasts (presence without a 'to') one session may send per second, and\n\
         the burst allowed; past them presence is refused with policy-violation. 0: no limit.",
    ),
    k("limits.presence_burst", ""),
    k(
        "limits.subscriptions_per_minute",
        "Subscription requests one account may send per minute; past it they are refused\n\
         with policy-violation.",
    ),
    with_example(
        "limits.admin_session_rate",
        "The session rate limits of accounts in `admins` (same keys as [limits.session_rate]);\n\
         unset: the same as everyone's.",
        "{ stanzas_per_second = 20000, stanza_burst = 40000, bytes_per_second = 8388608, bytes_burst = 16777216 }",
        false,
    ),
    k(
        "limits.session_rate",
        "What one user's session may send (token buckets; 0 as a rate: no limit). Past it the\n\
         server stops reading from the client until the budget refills, which slows the client\n\
         down; still over after throttle_disconnect_secs, it is disconnected. The defaults are\n\
         generous (a benchmark sender reaches 4000 messages a second); a listener may set its\n\
         own (listen.session_rate).",
    ),
    k(
        "limits.session_rate.stanzas_per_second",
        "Stanzas per second, sustained.",
    ),
    k(
        "limits.session_rate.stanza_burst",
        "Stanzas allowed at once after a quiet period.",
    ),
    k(
        "limits.session_rate.bytes_per_second",
        "Bytes per second, sustained.",
    ),
    k(
        "limits.session_rate.bytes_burst",
        "Bytes allowed at once after a quiet period.",
    ),
    k("auth", "Authentication policy."),
    k(
        "auth.scram_iterations",
        "PBKDF2 iterations for new SCRAM credentials (at least 4096, RFC 7677).",
    ),
    k(
        "auth.failures_per_ip_per_minute",
        "Wrong passwords per minute per IP address and per account answered at once; past\n\
         either, every answer from that address or for that account, a success too, is held\n\
         back: 250 ms, doubling up to 2 s. Nothing is refused unchecked, so the owner of an\n\
         account under attack still logs in (within 2 s). Failures that never checked a\n\
         password (malformed, unsupported channel binding, downgrade, abort) are not\n\
         counted and never delayed.",
    ),
    k("auth.failures_per_account_per_minute", ""),
    k(
        "auth.fast_token_lifetime_secs",
        "How long a XEP-0484 FAST token logs in after it was issued (default 14 days). A\n\
         client that logs in with a token past half its life gets a fresh one; changing the\n\
         password revokes them all.",
    ),
    k("muc", "XEP-0045 multi-user chat."),
    restart("muc.enabled", "Run the service."),
    with_example(
        "muc.domain",
        "The service's domain; default: conference. followed by the first of `domains`.",
        "\"conference.example.org\"",
        true,
    ),
    k(
        "muc.creators",
        "Who may create rooms: \"anyone\" (every local user) or \"admins\".",
    ),
    k(
        "muc.max_occupants",
        "Occupants one room may hold (a room's maxusers cannot exceed it).",
    ),
    k(
        "muc.history_default",
        "Messages of discussion history a new room keeps and sends on join.",
    ),
    k("muc.max_history", "The most history a room owner may configure."),
    k(
        "muc.rooms_per_user",
        "Rooms one user may have created that still exist (0: no limit).",
    ),
    k(
        "muc.persistent_creators",
        "Who may make a room persistent: \"anyone\" (its owners) or \"admins\". Others submitting\n\
         muc#roomconfig_persistentroom=1 get not-acceptable (XEP-0045 §10.2).",
    ),
    k(
        "muc.max_room_address_length",
        "Characters in a new room's address (localpart); longer: not-acceptable on the join.",
    ),
    k(
        "muc.max_room_name_length",
        "Characters in a room's name (muc#roomconfig_roomname); longer: not-acceptable.",
    ),
    k(
        "muc.max_description_length",
        "Characters in a room's description (muc#roomconfig_roomdesc); longer: not-acceptable.",
    ),
    k(
        "muc.max_nick_length",
        "Characters in a nickname; a longer join or nickname change: not-acceptable.",
    ),
    k(
        "muc.max_items_per_page",
        "Rooms in one page of the service's disco#items when the client sets no XEP-0059 <max/>\n\
         or a larger one.",
    ),
    k(
        "muc.idle_unload_secs",
        "Seconds an empty persistent room stays in memory; it is loaded from storage again when\n\
         next addressed, and listed meanwhile.",
    ),
    k(
        "muc.room_queue_length",
        "Stanzas a room's queue holds. A sender finding it full waits for room (its reads\n\
         pause) instead of being refused.",
    ),
    k(
        "muc.room_queue_wait_ms",
        "Milliseconds a sender may wait for room in a full room queue; still full after that,\n\
         its stanza is refused with resource-constraint (counted in\n\
         switchboard_muc_overload_bounces_total).",
    ),
    k(
        "muc.archiving_default",
        "Whether a new room archives its messages (XEP-0313, muc#roomconfig_enablearchiving);\n\
         only persistent rooms archive.",
    ),
    k(
        "muc.archive_max_age_secs",
        "Seconds a room's archived message is kept (0: kept until purged); rooms' own limit,\n\
         beside limits.archive_max_age_secs for accounts.",
    ),
    k(
        "contact",
        "XEP-0157 contact addresses, listed in the server's disco#info (and in its XEP-0115\n\
         hash, hence a restart): lists of URIs such as \"mailto:abuse@example.org\" or\n\
         \"xmpp:admin@example.org\".",
    ),
    restart("contact.abuse", "Where to report abuse."),
    restart("contact.admin", "The service's administrators."),
    restart("contact.feedback", "Feedback on the service."),
    restart("contact.sales", "Sales."),
    restart("contact.security", "Where to report security issues."),
    restart("contact.status", "Status page or announcements."),
    restart("contact.support", "User support."),
    k(
        "upload",
        "XEP-0363 HTTP file upload: slots requested over XMPP at the service domain, files PUT\n\
         and fetched over the HTTP listener at signed, expiring URLs, kept on disk.",
    ),
    restart("upload.enabled", "Run the service (it needs an HTTP listener)."),
    with_example(
        "upload.domain",
        "The service's domain; default: upload. followed by the first of `domains`.",
        "\"upload.example.org\"",
        true,
    ),
    restart(
        "upload.directory",
        "Where uploaded files are kept (one folder per user and file).",
    ),
    with_example(
        "upload.public_url",
        "The base URL clients reach the HTTP listener at (a TLS reverse proxy in front of it,\n\
         typically); default: http:// and the listener's own address.",
        "\"https://upload.example.org\"",
        true,
    ),
    with_example(
        "upload.secret",
        "Key signing the upload and download URLs (16 characters or more); default: a random\n\
         key generated on first start and kept in the database.",
        "\"a long random string\"",
        true,
    ),
    k(
        "upload.max_file_size",
        "Largest file in bytes; a larger request gets file-too-large with this limit.",
    ),
    k(
        "upload.quota_per_user",
        "Bytes one user's stored files and open slots may take; past it: resource-constraint.",
    ),
    k(
        "upload.slot_lifetime_secs",
        "Seconds an upload (PUT) URL stays valid; it can be used once.",
    ),
    k(
        "upload.file_lifetime_secs",
        "Seconds a file is kept and its download URL valid; then it is deleted.",
    ),
    k(
        "upload.cleanup_interval_secs",
        "Seconds between two sweeps deleting expired files.",
    ),
    k(
        "external_services",
        "XEP-0215 external services: the STUN and TURN servers clients use for calls. None:\n\
         the feature is not advertised.",
    ),
    with_example(
        "external_services.services",
        "The servers: type (stun, stuns, turn, turns), host, and optionally port, transport\n\
         (udp, tcp) and name.",
        "[{ type = \"turn\", host = \"turn.example.org\", port = 3478, transport = \"udp\" }]",
        true,
    ),
    with_example(
        "external_services.secret",
        "The TURN REST shared secret (coturn's static-auth-secret): TURN servers are listed\n\
         with time-limited credentials, username = expiry:user, password =\n\
         base64(HMAC-SHA1(secret, username)). Unset: no credentials are handed out.",
        "\"the secret coturn has\"",
        false,
    ),
    k(
        "external_services.credential_lifetime_secs",
        "Seconds TURN credentials stay valid.",
    ),
    k(
        "proxy65",
        "XEP-0065 SOCKS5 bytestreams proxy: relays file transfers between clients that cannot\n\
         reach each other.",
    ),
    restart("proxy65.enabled", "Run the service."),
    with_example(
        "proxy65.domain",
        "The service's domain; default: proxy. followed by the first of `domains`.",
        "\"proxy.example.org\"",
        true,
    ),
    restart("proxy65.address", "Where the SOCKS5 listener binds (ip:port)."),
    with_example(
        "proxy65.host",
        "The host (name or IP) clients are told to connect to; default: the address's IP\n\
         (required when that is 0.0.0.0 or ::).",
        "\"proxy.example.org\"",
        true,
    ),
    k(
        "proxy65.max_transfer_size",
        "Bytes one transfer may relay (both directions together); then it is cut.",
    ),
    k(
        "proxy65.bytes_per_second",
        "Rate limit of one transfer, per direction (0: none).",
    ),
    k(
        "proxy65.activation_timeout_secs",
        "Seconds a connection may wait for its peer and the initiator's activation before it\n\
         is closed.",
    ),
    k(
        "proxy65.max_connections_per_ip",
        "SOCKS5 connections (waiting or relaying) one client address may hold open; more are\n\
         closed at once.",
    ),
    k(
        "pubsub",
        "XEP-0060 publish-subscribe service (nodes anyone may subscribe to, apart from each\n\
         account's personal eventing).",
    ),
    restart("pubsub.enabled", "Run the service."),
    with_example(
        "pubsub.domain",
        "The service's domain; default: pubsub. followed by the first of `domains`.",
        "\"pubsub.example.org\"",
        true,
    ),
    k(
        "pubsub.creators",
        "Who may create nodes: local (every account of a hosted domain) | admins.",
    ),
    k("log", "Log output (standard error)."),
    k(
        "log.level",
        "error | warn | info | debug | trace, or a tracing filter directive. RUST_LOG\n\
         overrides it (and then a reload does not change it). Never trace in production: it\n\
         logs raw traffic.",
    ),
    restart("log.format", "human | json"),
    k(
        "log.repeat_interval_secs",
        "Events a client can repeat at will (refused connections, failed logins, messages\n\
         refused by a full offline store...) are logged the first time per client, then as one\n\
         summary line per this many seconds; the metrics count every one.",
    ),
    k(
        "roster_notes",
        "Private per-contact notes (xep/xep-roster-notes.md), AES-256-GCM encrypted at rest.\n\
         No keys: notes are off and not advertised. To rotate: add a key, make it active,\n\
         restart, run `switchboard notes rotate`; remove the old key only after that (the\n\
         server refuses to start while a note uses a missing key).",
    ),
    with_example(
        "roster_notes.keys",
        "Key id -> base64 of 32 random bytes (`openssl rand -base64 32`). Several keys may be\n\
         listed (for rotation); a key may be removed only when no note uses it. The environment\n\
         variable SWITCHBOARD_NOTE_KEYS=\"id=base64,id=base64\" replaces this table, so the\n\
         secrets need not sit in this file.",
        "{ \"1\" = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }",
        true,
    ),
    with_example(
        "roster_notes.active_key",
        "Id of the key new and rotated notes are encrypted with; must be in keys.",
        "\"1\"",
        true,
    ),
    k("roster_notes.max_length", "Longest note accepted, in characters."),
    k("mam", "XEP-0313 message archives of accounts."),
    restart(
        "mam.enabled",
        "Keep the accounts' archives. Off: no archive is written or offered (nothing stored is\n\
         deleted; rooms' archives are the muc service's).",
    ),
    k(
        "web",
        "Web clients on the http listeners: RFC 7395 WebSocket at /xmpp-websocket, XEP-0206 BOSH\n\
         at /http-bind and XEP-0156 discovery at /.well-known/host-meta(.json).",
    ),
    k(
        "web.origins",
        "Origins (scheme://host[:port]) whose pages may use WebSocket and BOSH, e.g.\n\
         [\"https://chat.example.org\"]. Empty: any origin (for development).",
    ),
    with_example(
        "web.websocket_url",
        "The public WebSocket URL that host-meta lists. Unset: derived from the request (its\n\
         Host, and wss when X-Forwarded-Proto is https).",
        "\"wss://example.org/xmpp-websocket\"",
        false,
    ),
    with_example(
        "web.websocket_see_other_uri",
        "Moved: every WebSocket <open/> is answered with <close see-other-uri=...> (RFC 7395\n\
         §3.6.1), sending clients to this endpoint instead.",
        "\"wss://xmpp.example.net/xmpp-websocket\"",
        false,
    ),
    with_example(
        "web.bosh_url",
        "The public BOSH URL that host-meta lists. Unset: derived from the request (its Host,\n\
         and https when X-Forwarded-Proto is https).",
        "\"https://example.org/http-bind\"",
        false,
    ),
    k(
        "web.bosh_inactivity_secs",
        "A BOSH session with no request for this long ends (XEP-0124 inactivity).",
    ),
    k(
        "stream_management",
        "XEP-0198 stream management: acknowledgements and session resumption.",
    ),
    k(
        "stream_management.enabled",
        "Offer stream management (the sm:3 stream feature) after authentication. Off by\n\
         default for now: clients that enable it get the stanzas sent between bind and\n\
         <enabled/> before it, which tokio-xmpp 6 does not hand to its application.",
    ),
    k(
        "stream_management.request_ack_every",
        "The server asks for an acknowledgement (<r/>) after this many unacknowledged stanzas\n\
         (0: never by count).",
    ),
    k(
        "stream_management.request_ack_after_secs",
        "... or after this many seconds with stanzas unacknowledged (0: never by time).",
    ),
    k(
        "stream_management.max_unacked",
        "Stanzas sent and not yet acknowledged that one session may hold; a client that lets\n\
         more pile up is disconnected with resource-constraint (its unacknowledged messages go\n\
         to offline storage).",
    ),
    k(
        "stream_management.resume_timeout_secs",
        "How long a session with resumption enabled waits for its client after the connection\n\
         is lost (it stays available and keeps queueing meanwhile); the most a client may ask\n\
         for with max, it may ask for less. When it ends, unacknowledged messages go to\n\
         offline storage (or to the account's other resources).",
    ),
];

const HEADER: &str = "\
# switchboard: every configuration key, with its default.
# GENERATED by `switchboard config example` from src/config/docs.rs; do not edit by hand.
# Unknown keys are errors. Check a file with: switchboard config check FILE
#
# Reload: SIGHUP or the ad-hoc command \"Reload the configuration\" re-reads this file
# without dropping connections. Keys marked (restart) keep their running value until
# the server restarts; the reload logs them. An invalid file changes nothing: the
# running configuration stays and the error is logged and answered.
#
# Secrets may come from the environment instead of this file:
# SWITCHBOARD_DATABASE_URL (storage.url), SWITCHBOARD_NOTE_KEYS (roster_notes.keys).

";

/// The documentation entry of `path`.
pub fn key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// The default configuration as a TOML value (the one domain "localhost").
fn defaults() -> Value {
    let config = Config::parse("domains = [\"localhost\"]\n", "defaults").expect("defaults are valid");
    Value::try_from(&config).expect("the configuration serializes")
}

/// The value at a dotted path (arrays are not traversed).
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, part| v.get(part))
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn comment(out: &mut String, doc: &str, restart: bool) {
    for line in doc.lines().filter(|l| !l.is_empty()) {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    if restart {
        out.push_str("# (restart)\n");
    }
}

/// Writes one key: its documentation, then `name = value`, or the example commented out
/// (uncommented when `full`).
fn leaf(out: &mut String, key: &Key, value: Option<&Value>, documented: bool, full: bool) {
    if documented {
        comment(out, key.doc, key.restart && !key.path.starts_with("listen."));
    }
    let name = last(key.path);
    // An empty map with an example (roster_notes.keys) reads better as the example.
    let value = value.filter(|v| key.example.is_none() || !is_empty(v));
    match (value, key.example) {
        (Some(v), _) => out.push_str(&format!("{name} = {v}\n")),
        (None, Some(example)) if full => out.push_str(&format!("{name} = {example}\n")),
        (None, Some(example)) if documented => out.push_str(&format!("# {name} = {example}\n")),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    v.as_table().is_some_and(|t| t.is_empty()) || v.as_array().is_some_and(|a| a.is_empty())
}

/// The example file. With `full`, the unset keys' examples are written as real keys (used
/// by the test that every key is known to [`Config`]).
pub fn example(full: bool) -> String {
    let defaults = defaults();
    let mut out = String::from(HEADER);
    let mut i = 0;
    while i < KEYS.len() {
        let key = &KEYS[i];
        let value = lookup(&defaults, key.path);
        match value {
            Some(Value::Array(items)) if items.first().is_some_and(Value::is_table) => {
                // An array of tables: its keys follow it in KEYS; write them per element.
                let prefix = format!("{}.", key.path);
                let end = KEYS[i + 1..]
                    .iter()
                    .position(|k| !k.path.starts_with(&prefix))
                    .map_or(KEYS.len(), |p| i + 1 + p);
                out.push('\n');
                comment(&mut out, key.doc, key.restart);
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push('\n');
                    }
                    out.push_str(&format!("[[{}]]\n", key.path));
                    for sub in &KEYS[i + 1..end] {
                        leaf(&mut out, sub, item.get(last(sub.path)), n == 0, full && n == 0);
                    }
                }
                i = end;
                continue;
            }
            Some(Value::Table(_)) if key.example.is_none() => {
                out.push('\n');
                comment(&mut out, key.doc, key.restart);
                out.push_str(&format!("[{}]\n", key.path));
            }
            _ => leaf(&mut out, key, value, true, full),
        }
        i += 1;
    }
    out
}

/// Every key path a configuration value has; a path documented with an example (an
/// inline table or a map) counts as one key.
pub fn paths(value: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        let table = match v {
            Value::Table(t) => t,
            Value::Array(items) if items.first().is_some_and(Value::is_table) => {
                for item in items {
                    walk(item, prefix, out);
                }
                return;
            }
            _ => return,
        };
        for (name, child) in table {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if !out.contains(&path) {
                out.push(path.clone());
            }
            if key(&path).is_none_or(|k| k.example.is_none()) {
                walk(child, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_key_is_documented_and_every_documented_key_exists() {
        // The full example sets every optional key too, so that Config parsing it proves no
        // documented key is unknown (deny_unknown_fields), and serializing the result lists
        // every key Config has.
        let full = example(true);
        let config = Config::parse(&full, "full example").unwrap_or_else(|e| panic!("{e}\n{full}"));
        let value = Value::try_from(&config).unwrap();
        let found = paths(&value);
        for p in &found {
            assert!(key(p).is_some(), "config key `{p}` is not documented in KEYS");
        }
        for k in KEYS {
            assert!(
                found.iter().any(|p| p == k.path),
                "documented key `{}` is not a key of Config",
                k.path
            );
        }
    }

    #[test]
    fn shipped_example_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            shipped == example(false),
            "config/example.toml is stale: run `cargo run -- config example > config/example.toml`"
        );
    }

    #[test]
    fn example_parses_to_the_defaults() {
        let c = Config::parse(&example(false), "example").unwrap();
        let d = Config::parse("domains = [\"localhost\"]", "d").unwrap();
        assert_eq!(Value::try_from(&c).unwrap(), Value::try_from(&d).unwrap());
    }
}
