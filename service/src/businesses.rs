//! Businesses of the business API: registration with API credentials (the consumer key is
//! indexed on its own shard first, so a token request finds its business), the lookup, and
//! their C2B URLs.

use std::time::Instant;

use tuma_actors::account::Shortcode;
use tuma_actors::ledger::{C2bUrls, Command, OpenAccount};
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::transfers::READ_DEADLINE;
use crate::{Service, ServiceError};

impl Service {
    /// Registers a business with its API credentials: the consumer key's index entry, then
    /// the account. Both steps are idempotent, so a registration whose answer was lost is
    /// simply sent again; a key another business holds is refused (`AccountExists`).
    pub async fn register_business(&self, open: OpenAccount) -> Result<(), ServiceError> {
        let tuma_actors::AccountRef::Business(business) = &open.account else {
            return Err(ServiceError::invalid("account", "not a business"));
        };
        let Some(credentials) = &open.api_credentials else {
            return Err(ServiceError::invalid(
                "consumer_key",
                "credentials are required",
            ));
        };
        let consumer_key = credentials.consumer_key.clone();
        let shard = self.handle().shard_map().shard_of_api_key(&consumer_key);
        let index = Command::IndexApiKey {
            consumer_key,
            business: business.clone(),
        };
        self.command(shard, index).await?;
        self.open_account(open).await
    }

    /// Records where a business's customers' payments are validated and confirmed (once: a
    /// second registration is refused `AccountExists`, as Daraja refuses it).
    pub async fn register_c2b_urls(
        &self,
        business: Shortcode,
        urls: C2bUrls,
    ) -> Result<(), ServiceError> {
        let account = tuma_actors::AccountRef::Business(business.clone());
        let shard = self.handle().shard_map().shard_of(&account);
        self.command(shard, Command::RegisterC2bUrls { business, urls })
            .await
    }

    /// The business a consumer key belongs to.
    pub async fn business_of_key(
        &self,
        consumer_key: &str,
    ) -> Result<Option<Shortcode>, ServiceError> {
        let shard = self.handle().shard_map().shard_of_api_key(consumer_key);
        let request = ClientRequest::ApiKey {
            shard,
            consumer_key: consumer_key.to_string(),
        };
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::Business(business) => Ok(business),
            other => Err(ServiceError::no_answer("no key read", &other)),
        }
    }
}
