//! The HTTP API every node serves (the app channel and the admin API), on the typed node API
//! ([`tuma_service::Service`]): handlers parse and validate JSON, call the service, and shape
//! its answers; they never see shards, log commands or the engine's requests.
//!
//! | file | holds |
//! |---|---|
//! | `error.rs` | the JSON error answer and how each failure maps to a status code |
//! | `access.rs` | who may call which admin endpoint: the bootstrap key, scoped keys and their roles |
//! | `request_limits.rs` | budgets per source address and per phone number on the public endpoints (429 with `Retry-After`) |
//! | `backup.rs` | `/admin/v1/backup/…`: intake paused and resumed, shard states and history pages, documents (for `tuma ctl backup`) |
//! | `audit_log.rs` | the audit trail: every named admin and business call recorded before it is answered; `/admin/v1/audit-log` |
//! | `float_approvals.rs` | `/admin/v1/float/approvals`: large float issues waiting for a second caller (maker-checker) |
//! | `keys.rs` | `/admin/v1/keys`: scoped API keys created, listed, rotated, revoked |
//! | `admin.rs` | `/admin/v1/…`: registration, float, accounts, cluster, audit, care |
//! | `app.rs` | `/v1/…`: transfers, balance |
//! | `prompts.rs` | `/v1/prompts…`: the customer's side of an M-Pesa Express prompt (pay, decline) |
//! | `history.rs` | statements (pages, mini) and receipts from the history store |
//! | `businesses.rs` | `/admin/v1/businesses/{shortcode}/…`: initiators, payout orders by the business's key |
//! | `bulk.rs` | `/admin/v1/customers/bulk`: bulk registration for imports |
//! | `care.rs` | `/admin/v1/reversals`: care reverses a confirmed transfer |
//! | `menus.rs` | `/admin/v1/menus`: the USSD menus in force, pushing one; gateway session ends |
//! | `fuzzing.rs` | what the `http_requests` fuzz target feeds: every body and query type, the transfer's validation, the middleware's parsers |
//! | `sms.rs` | `/admin/v1/sms`: the texts queued and sent to a phone, gathered from every member |
//!
//! The USSD and SMS gateway endpoints (`/ussd/v1/…`, `/sms/v1/…`) come from the `tuma-channels` crate and are merged
//! in by [`router`].
//!
//! Amounts are decimal strings with two places (`"500.00"`), parsed by `Money::parse`.

pub mod access;
mod admin;
mod app;
pub mod audit_log;
mod backup;
mod bulk;
mod businesses;
mod care;
mod error;
mod float_approvals;
pub mod fuzzing;
mod history;
mod keys;
mod members;
mod menus;
mod prompts;
pub mod request_limits;
mod sms;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tuma_channels::sms::Sms;
use tuma_channels::ussd::Ussd;
use tuma_daraja::Daraja;
use tuma_service::Service;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    /// The USSD channel: its menus and sessions.
    pub ussd: Ussd,
    /// The SMS channel: its spool and what it sent.
    pub sms: Sms,
    /// The business API (Daraja-compatible); its keys digest business credentials.
    pub daraja: Daraja,
    /// The bootstrap token and this node's copy of the cluster's key ring.
    pub access: Arc<access::Access>,
    /// Enables `/admin/v1/test/…` fault hooks (tests only).
    pub test_hooks: bool,
    /// The engine clock's wall-clock offset, movable by the clock test hook (tests only).
    pub clock_offset: Option<Arc<std::sync::atomic::AtomicI64>>,
    pub prometheus: Option<PrometheusHandle>,
    /// How this node calls other members' HTTP API: a client trusting `--tls-ca`, and
    /// `https` when the cluster serves HTTPS.
    pub member_client: reqwest::Client,
    pub member_scheme: &'static str,
    /// Float issues above this wait for a second caller's approval.
    pub float_approval_above: Option<tuma_actors::money::Money>,
    /// Names this node's cluster secret and PIN key (a backup records it; see `restore.rs`).
    pub secrets_fingerprint: String,
    /// Budgets of the public endpoints per source address and per phone number.
    pub request_limiter: Arc<request_limits::RequestLimiter>,
}

impl ApiState {
    pub fn new(
        service: Service,
        ussd: Ussd,
        sms: Sms,
        daraja: Daraja,
        access: Arc<access::Access>,
        test_hooks: bool,
        prometheus: Option<PrometheusHandle>,
    ) -> ApiState {
        ApiState {
            service,
            ussd,
            sms,
            daraja,
            access,
            test_hooks,
            clock_offset: None,
            prometheus,
            member_client: reqwest::Client::new(),
            member_scheme: "http",
            float_approval_above: None,
            secrets_fingerprint: String::new(),
            request_limiter: Arc::new(request_limits::RequestLimiter::new(
                request_limits::RequestLimits::default(),
            )),
        }
    }
}

/// Most bytes of a request body (a transfer, a USSD step, a Daraja call, a menu file…): more is
/// answered 413 before it is read.
pub const BODY_BYTES_MAX: usize = 256 * 1024;
/// Most bytes of a bulk registration ([`bulk::BULK_ROWS_MAX`] rows with argon2id PIN hashes).
pub const BULK_BODY_BYTES_MAX: usize = 8 << 20;

/// The router with every endpoint.
pub fn router(state: ApiState) -> Router {
    let ussd = tuma_channels::ussd::router(state.ussd.clone());
    let sms = tuma_channels::sms::router(state.sms.clone());
    let daraja = state.daraja.router();
    let recorded = axum::middleware::from_fn_with_state(state.clone(), audit_log::record);
    let limited = axum::middleware::from_fn_with_state(state.clone(), request_limits::limit);
    Router::new()
        .route("/admin/v1/sms", get(sms::texts))
        .route("/admin/v1/sms/reports", get(sms::reports))
        .route("/admin/v1/menus", get(menus::list))
        .route("/admin/v1/menus/:name", get(menus::show).put(menus::push))
        .route("/admin/v1/ussd/events", get(menus::session_ends))
        .route("/health", get(admin::health))
        .route("/ready", get(admin::ready))
        .route("/metrics", get(admin::metrics))
        .route("/admin/v1/customers", post(admin::register_customer))
        .route(
            "/admin/v1/customers/bulk",
            post(bulk::register_customers).layer(DefaultBodyLimit::max(BULK_BODY_BYTES_MAX)),
        )
        .route("/admin/v1/agents", post(admin::register_agent))
        .route("/admin/v1/businesses", post(admin::register_business))
        .route(
            "/admin/v1/businesses/:shortcode/initiators/:name",
            axum::routing::put(businesses::set_initiator),
        )
        .route(
            "/admin/v1/businesses/:shortcode/wallets/moves",
            post(businesses::move_between_wallets),
        )
        .route(
            "/admin/v1/businesses/:shortcode/payouts/:originator_id",
            get(businesses::payout),
        )
        .route("/admin/v1/float", post(admin::issue_float))
        .route("/admin/v1/float/approvals", get(float_approvals::list))
        .route(
            "/admin/v1/float/approvals/:request_id/approve",
            post(float_approvals::approve),
        )
        .route(
            "/admin/v1/float/approvals/:request_id/decline",
            post(float_approvals::decline),
        )
        .route("/admin/v1/accounts/:reference", get(admin::account))
        .route("/admin/v1/reversals", post(care::reverse))
        .route("/admin/v1/reversal-requests", get(care::reversal_requests))
        .route(
            "/admin/v1/reversal-requests/:transaction_id/approve",
            post(care::approve_reversal_request),
        )
        .route(
            "/admin/v1/reversal-requests/:transaction_id/decline",
            post(care::decline_reversal_request),
        )
        .route("/admin/v1/pins/unlock", post(admin::unlock_pin))
        .route("/admin/v1/pins/reset", post(admin::reset_pin))
        .route("/admin/v1/cluster", get(admin::cluster))
        .route("/admin/v1/members", get(members::list).post(members::join))
        .route("/admin/v1/members/:id", delete(members::remove))
        .route("/admin/v1/audit", get(admin::audit))
        .route("/admin/v1/audit-log", get(audit_log::list))
        .route("/admin/v1/backup/pause", post(backup::pause))
        .route("/admin/v1/backup/resume", post(backup::resume))
        .route(
            "/admin/v1/backup/shards/:shard/state",
            get(backup::shard_state),
        )
        .route(
            "/admin/v1/backup/shards/:shard/rows",
            get(backup::shard_rows),
        )
        .route("/admin/v1/backup/documents", get(backup::documents))
        .route("/admin/v1/keys", get(keys::list).post(keys::create))
        .route("/admin/v1/keys/:id", delete(keys::revoke))
        .route("/admin/v1/keys/:id/rotate", post(keys::rotate))
        .route("/admin/v1/test/panic", post(admin::plant_panic))
        .route("/admin/v1/test/clock", post(admin::set_clock_offset))
        .route(
            "/admin/v1/test/engine-panic",
            post(admin::plant_engine_panic),
        )
        .route("/v1/transfers", post(app::create_transfer))
        .route("/v1/prompts", get(prompts::waiting))
        .route("/v1/prompts/:checkout_id", post(prompts::answer))
        .route("/v1/transfers/:request_id", get(app::transfer_status))
        .route("/v1/accounts/:msisdn/balance", get(app::balance))
        .route("/v1/accounts/:msisdn/statement", get(history::statement))
        .route(
            "/v1/accounts/:msisdn/mini-statement",
            get(history::mini_statement),
        )
        .route(
            "/admin/v1/accounts/:reference/statement",
            get(history::care_statement),
        )
        .route(
            "/admin/v1/transactions/:transaction_id",
            get(history::receipt),
        )
        .with_state(state)
        .merge(ussd)
        .merge(sms)
        .merge(daraja)
        .layer(recorded)
        .layer(limited)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
}
