//! The HTTP API every node serves (the app channel and the admin API).
//!
//! | file | holds |
//! |---|---|
//! | `error.rs` | the JSON error answer and how each failure maps to a status code |
//! | `calls.rs` | calling the engine with retries on leader change until a deadline |
//! | `admin.rs` | `/admin/v1/…`: registration, float, accounts, cluster, audit, care |
//! | `app.rs` | `/v1/…`: transfers, balance, statement |
//! | `bulk.rs` | `/admin/v1/customers/bulk`: bulk registration for imports |
//! | `care.rs` | `/admin/v1/reversals`: care reverses a confirmed transfer |
//!
//! Amounts are decimal strings with two places (`"500.00"`), parsed by `Money::parse`.

mod admin;
mod app;
mod bulk;
mod calls;
mod care;
mod error;
mod members;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tuma_actors::pin::{Pin, PinError, PinHash, PinHasher};
use tuma_cluster::engine::NodeHandle;

pub use calls::Calls;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub calls: Calls,
    pub admin_token: Arc<str>,
    /// Hashes PINs at registration (argon2id; slow on purpose, run on the blocking pool).
    pub hasher: PinHasher,
    /// Enables `/admin/v1/test/…` fault hooks (tests only).
    pub test_hooks: bool,
    /// The engine clock's wall-clock offset, movable by the clock test hook (tests only).
    pub clock_offset: Option<Arc<std::sync::atomic::AtomicI64>>,
    pub prometheus: Option<PrometheusHandle>,
    /// Bounds concurrent argon2 work (19 MiB each by default) to the number of cores.
    pin_permits: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    pub fn new(
        handle: NodeHandle,
        admin_token: &str,
        hasher: PinHasher,
        test_hooks: bool,
        prometheus: Option<PrometheusHandle>,
    ) -> ApiState {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ApiState {
            calls: Calls::new(handle),
            admin_token: admin_token.into(),
            hasher,
            test_hooks,
            clock_offset: None,
            prometheus,
            pin_permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Runs slow PIN work (hash or verify) on the blocking pool, at most one job per core.
    /// Verifies a PIN: a keyed digest right here (microseconds), an argon2id hash on the
    /// bounded blocking pool.
    pub async fn verify_pin(&self, hash: PinHash, pin: Pin) -> Result<bool, PinError> {
        if hash.key_id().is_some() {
            return self.hasher.verify(&hash, &pin);
        }
        let hasher = self.hasher.clone();
        self.pin_work(move || hasher.verify(&hash, &pin))
            .await
            .unwrap_or(Ok(false))
    }

    /// Hashes a new PIN: keyed digests right here, argon2id on the bounded blocking pool.
    pub async fn hash_pin(&self, pin: Pin) -> Option<PinHash> {
        if self.hasher.makes_keyed() {
            return Some(self.hasher.hash(&pin));
        }
        let hasher = self.hasher.clone();
        self.pin_work(move || hasher.hash(&pin)).await
    }

    pub async fn pin_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.pin_permits.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }
}

/// The router with every endpoint.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(admin::health))
        .route("/metrics", get(admin::metrics))
        .route("/admin/v1/customers", post(admin::register_customer))
        .route("/admin/v1/customers/bulk", post(bulk::register_customers))
        .route("/admin/v1/agents", post(admin::register_agent))
        .route("/admin/v1/businesses", post(admin::register_business))
        .route("/admin/v1/float", post(admin::issue_float))
        .route("/admin/v1/accounts/:reference", get(admin::account))
        .route("/admin/v1/reversals", post(care::reverse))
        .route("/admin/v1/pins/unlock", post(admin::unlock_pin))
        .route("/admin/v1/pins/reset", post(admin::reset_pin))
        .route("/admin/v1/cluster", get(admin::cluster))
        .route("/admin/v1/members", get(members::list).post(members::join))
        .route("/admin/v1/members/:id", delete(members::remove))
        .route("/admin/v1/audit", get(admin::audit))
        .route("/admin/v1/test/panic", post(admin::plant_panic))
        .route("/admin/v1/test/clock", post(admin::set_clock_offset))
        .route(
            "/admin/v1/test/engine-panic",
            post(admin::plant_engine_panic),
        )
        .route("/v1/transfers", post(app::create_transfer))
        .route("/v1/transfers/:request_id", get(app::transfer_status))
        .route("/v1/accounts/:msisdn/balance", get(app::balance))
        .route("/v1/accounts/:msisdn/statement", get(app::statement))
        .with_state(state)
}
