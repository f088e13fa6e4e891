//! The business API, Daraja-compatible: a business's existing M-Pesa client works against any
//! Tuma node by changing only its base URL. Built on the typed node API (`tuma_service`); the
//! cluster knows nothing of Daraja.
//!
//! | file | holds |
//! |---|---|
//! | `credentials.rs` | keyed digests of secrets and passkeys; stateless access tokens any node checks |
//! | `envelope.rs` | Daraja's error envelope and codes; lenient readers (numbers as numbers or strings) |
//! | `ids.rs` | `requestId`, `MerchantRequestID`, `CheckoutRequestID`, EAT timestamps |
//! | `oauth.rs` | `GET /oauth/v1/generate` (Basic auth) and the `Bearer` check of every other call |
//! | `c2b.rs` | C2B: `registerurl` (v1, v2), the validation asked before a bill payment, the confirmation's payload |
//! | `simulate.rs` | C2B `simulate` (sandbox clusters only): a test customer pays the business |
//! | `express.rs` | M-Pesa Express: `stkpush/v1/processrequest`, `stkpushquery/v1/query`, result codes |
//! | `initiator.rs` | the cluster's RSA key and certificate; reading a `SecurityCredential` |
//! | `payouts.rs` | B2C (`b2c/v1`, `b2c/v3`) and B2B payment requests: the order, its payment, the ack |
//! | `reversals.rs` | a business sends back a payment it received (`reversal/v1/request`) |
//! | `wallets.rs` | B2B `BusinessTransferFromMMFToUtility`: Working back to Utility |
//! | `queries.rs` | transaction status and account balance, answered to the `ResultURL` |
//! | `results.rs` | the `Result` bodies posted to `ResultURL` and `QueueTimeOutURL` |
//! | `callbacks.rs` | delivering the shards' callback outboxes to businesses' URLs, at least once |
//! | `urls.rs` | which callback URLs are allowed |

mod c2b;
mod callbacks;
pub mod credentials;
pub mod envelope;
mod express;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
mod initiator;
mod oauth;
mod payouts;
mod queries;
mod results;
mod reversals;
mod simulate;
mod urls;
mod wallets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tuma_service::Service;

pub use c2b::c2b_confirmation_body;
pub use callbacks::{stk_callback_body, CallbackConfig};
pub use credentials::{Keys, TOKEN_LIFETIME_S};
pub use express::daraja_result;
pub use initiator::PASSWORD_LEN_MAX as INITIATOR_PASSWORD_LEN_MAX;
pub use urls::CallbackUrls;

/// Businesses whose call budgets one node tracks at most.
const BUSINESSES_TRACKED_MAX: usize = 100_000;

/// The business API's settings.
#[derive(Clone, Debug)]
pub struct DarajaConfig {
    /// How long a customer has to answer a payment prompt before it closes as 1037.
    pub prompt_lifetime: Duration,
    /// How long a business's C2B validation URL has to answer (Daraja waits about 8 s; 5 s
    /// leaves a USSD session, answered within 8 s, time to submit and answer).
    pub validation_timeout: Duration,
    pub urls: CallbackUrls,
    pub callbacks: CallbackConfig,
    /// Authenticated calls one business may make to this node a minute (a burst of as many);
    /// past it, Daraja's `500.003.02 Spike Arrest Violation`. 0: no limit.
    pub calls_per_minute: u32,
    /// How long a payout order (B2C, B2B) may wait for its payment to start before it is
    /// closed and announced to its `QueueTimeOutURL`, nothing paid.
    pub payout_queue_timeout: Duration,
    /// Sandboxes only: the PIN `c2b/simulate` pays with (`None`: simulate is not offered).
    pub simulate_pin: Option<tuma_actors::pin::Pin>,
}

impl Default for DarajaConfig {
    fn default() -> DarajaConfig {
        DarajaConfig {
            prompt_lifetime: Duration::from_secs(60),
            validation_timeout: Duration::from_secs(5),
            urls: CallbackUrls::default(),
            callbacks: CallbackConfig::default(),
            calls_per_minute: 6_000,
            payout_queue_timeout: Duration::from_secs(30),
            simulate_pin: None,
        }
    }
}

/// The business API of one node. Cheap to clone. Creating it installs its C2B validation on
/// the service (every channel's bill payments pass it).
#[derive(Clone)]
pub struct Daraja {
    inner: Arc<Inner>,
}

struct Inner {
    service: Service,
    keys: Keys,
    config: DarajaConfig,
    /// The initiator key, derived once in the background (see `initiator.rs`).
    initiator: std::sync::OnceLock<Option<initiator::InitiatorKey>>,
    /// Each business's call budget on this node.
    calls: std::sync::Mutex<tuma_service::RateBuckets<tuma_actors::account::Shortcode>>,
}

impl Daraja {
    /// The business API for a node whose cluster secret is `cluster_secret` and whose own HTTP
    /// listener is `own_http` (callbacks are never sent there).
    pub fn new(
        service: Service,
        cluster_secret: &[u8],
        own_http: SocketAddr,
        mut config: DarajaConfig,
    ) -> Daraja {
        config.urls.forbid(own_http);
        let validation = c2b::Validation {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            timeout: config.validation_timeout,
        };
        service.set_payee_check(Arc::new(validation));
        let daraja = Daraja {
            inner: Arc::new(Inner {
                service,
                keys: Keys::derive(cluster_secret),
                initiator: std::sync::OnceLock::new(),
                calls: std::sync::Mutex::new(tuma_service::RateBuckets::new(
                    config.calls_per_minute,
                    BUSINESSES_TRACKED_MAX,
                )),
                config,
            }),
        };
        let deriving = daraja.clone();
        std::thread::spawn(move || deriving.initiator_key_blocking().is_some());
        daraja
    }

    /// The initiator key, waiting for its derivation if it is under way (blocking: call from
    /// a blocking thread). `None` if it could not be made (logged).
    fn initiator_key_blocking(&self) -> Option<&initiator::InitiatorKey> {
        self.inner
            .initiator
            .get_or_init(|| {
                initiator::InitiatorKey::derive(self.inner.keys.initiator_seed())
                    .map_err(|error| tracing::error!(%error, "no initiator key"))
                    .ok()
            })
            .as_ref()
    }

    /// The certificate clients encrypt initiator passwords with (PEM).
    pub async fn certificate_pem(&self) -> Option<String> {
        let daraja = self.clone();
        tokio::task::spawn_blocking(move || {
            daraja
                .initiator_key_blocking()
                .map(|k| k.certificate_pem().to_string())
        })
        .await
        .ok()
        .flatten()
    }

    /// Whether `credential` (a `SecurityCredential`) carries the password of the business's
    /// initiator `name`.
    pub(crate) async fn initiator_valid(
        &self,
        account: &tuma_actors::ledger::Account,
        name: &str,
        credential: &str,
    ) -> bool {
        let Some(digest) = account
            .extras
            .as_ref()
            .and_then(|e| e.initiators.iter().find(|i| i.name == name))
            .map(|i| i.password_digest.clone())
        else {
            return false;
        };
        let daraja = self.clone();
        let credential = credential.to_string();
        tokio::task::spawn_blocking(move || {
            let password = daraja.initiator_key_blocking()?.password(&credential)?;
            Some(daraja.keys().matches(&password, &digest))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
    }

    /// The keys credentials are stored and tokens signed with.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn service(&self) -> &Service {
        &self.inner.service
    }

    fn config(&self) -> &DarajaConfig {
        &self.inner.config
    }

    /// Spends one of `business`'s calls; `Err` (Spike Arrest) when its budget is spent.
    fn admit(
        &self,
        business: &tuma_actors::account::Shortcode,
    ) -> Result<(), envelope::DarajaError> {
        let now_ms = tuma_service::unix_ms();
        let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = calls.wait(business, now_ms) {
            metrics::counter!("tuma_daraja_calls_throttled_total").increment(1);
            return Err(envelope::DarajaError::throttled_for(wait));
        }
        calls.charge(business, now_ms);
        Ok(())
    }

    /// Delivers the callbacks of the shards this node leads, until the process ends.
    pub fn spawn(&self) {
        tokio::spawn(callbacks::deliver(self.clone()));
    }

    /// Daraja's routes (`/oauth/…`, `/mpesa/…`; the customer's side of a prompt is the app
    /// channel's, `node/src/http/prompts.rs`). Other `/mpesa/…` paths answer Daraja's
    /// `404.001.01`; a wrong method, `405.001`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth/v1/generate", get(oauth::generate))
            .route("/mpesa/stkpush/v1/processrequest", post(express::push))
            .route("/mpesa/stkpushquery/v1/query", post(express::query))
            .route("/mpesa/c2b/:version/registerurl", post(c2b::register))
            .route("/mpesa/c2b/:version/simulate", post(simulate::simulate))
            .route("/mpesa/b2c/:version/paymentrequest", post(payouts::b2c))
            .route("/mpesa/b2b/v1/paymentrequest", post(payouts::b2b))
            .route("/mpesa/transactionstatus/v1/query", post(queries::status))
            .route("/mpesa/accountbalance/v1/query", post(queries::balance))
            .route("/mpesa/reversal/v1/request", post(reversals::request))
            .route("/daraja/v1/certificate", get(certificate))
            .route("/mpesa/*rest", axum::routing::any(unknown_resource))
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
    }
}

/// `GET /daraja/v1/certificate`: the PEM certificate initiator passwords are encrypted with.
async fn certificate(
    axum::extract::State(daraja): axum::extract::State<Daraja>,
) -> Result<String, envelope::DarajaError> {
    daraja
        .certificate_pem()
        .await
        .ok_or_else(envelope::DarajaError::unavailable)
}

async fn unknown_resource() -> envelope::DarajaError {
    envelope::DarajaError::not_found()
}

async fn method_not_allowed() -> envelope::DarajaError {
    envelope::DarajaError::method_not_allowed()
}
