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
//! | `express.rs` | M-Pesa Express: `stkpush/v1/processrequest`, `stkpushquery/v1/query`, result codes |
//! | `callbacks.rs` | delivering the shards' callback outboxes to businesses' URLs, at least once |
//! | `urls.rs` | which callback URLs are allowed |

mod c2b;
mod callbacks;
pub mod credentials;
pub mod envelope;
mod express;
pub mod ids;
mod oauth;
mod urls;

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
}

impl Default for DarajaConfig {
    fn default() -> DarajaConfig {
        DarajaConfig {
            prompt_lifetime: Duration::from_secs(60),
            validation_timeout: Duration::from_secs(5),
            urls: CallbackUrls::default(),
            callbacks: CallbackConfig::default(),
            calls_per_minute: 6_000,
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
        Daraja {
            inner: Arc::new(Inner {
                service,
                keys: Keys::derive(cluster_secret),
                calls: std::sync::Mutex::new(tuma_service::RateBuckets::new(
                    config.calls_per_minute,
                    BUSINESSES_TRACKED_MAX,
                )),
                config,
            }),
        }
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
        if calls.wait(business, now_ms).is_some() {
            metrics::counter!("tuma_daraja_calls_throttled_total").increment(1);
            return Err(envelope::DarajaError::throttled());
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
            .route("/mpesa/*rest", axum::routing::any(unknown_resource))
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
    }
}

async fn unknown_resource() -> envelope::DarajaError {
    envelope::DarajaError::not_found()
}

async fn method_not_allowed() -> envelope::DarajaError {
    envelope::DarajaError::method_not_allowed()
}
