//! Business payouts (B2C, B2B): recording an order on the business's shard under its key,
//! paying it (an ordinary business transfer whose id names the order), finding it; a
//! business's initiators and the moves between its accounts; results the business API
//! renders, queued in the callback outbox.

use std::time::{Duration, Instant};

use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::ledger::{
    payout_payment_id, CallbackEvent, Command, Initiator, Payout, PayoutRequest, Wallet,
};
use tuma_actors::money::Money;
use tuma_actors::roles::Role;
use tuma_cluster::engine::{ClientReply, ClientRequest, PayoutLookup};

use crate::transfers::READ_DEADLINE;
use crate::{unix_ms, Service, ServiceError, TransferOrder, TransferOutcome};

/// How long an order's payment waits for its decision.
const PAYOUT_WAIT: Duration = Duration::from_secs(15);

impl Service {
    /// Records a payout order on its business's shard (the same order again changes nothing).
    /// Refused `IdempotencyConflict` when the business already used its key, `Overloaded` when
    /// the shard's orders or the business's callback share are full.
    pub async fn open_payout(&self, request: PayoutRequest) -> Result<(), ServiceError> {
        let shard = self.business_shard(&request.business);
        self.command(shard, Command::OpenPayout(request)).await
    }

    /// Pays a recorded order and waits for its decision. At most once: the payment's id is the
    /// order's, and the ledger lets it start only while the order is queued.
    pub async fn pay_payout(
        &self,
        ordered: &PayoutRequest,
    ) -> Result<TransferOutcome, ServiceError> {
        if ordered.reverses.is_some() {
            // A reversal names its receipt, which a channel's order does not carry.
            let request = ordered.payment(unix_ms() + PAYOUT_WAIT.as_millis() as u64);
            let deadline = Instant::now() + PAYOUT_WAIT + Duration::from_secs(3);
            return self.submit_transfer(request, None, deadline).await;
        }
        let order = TransferOrder {
            id: payout_payment_id(&ordered.conversation_id),
            kind: ordered.kind,
            from: AccountRef::Business(ordered.business.clone()),
            to: ordered.to.clone(),
            amount: ordered.amount,
            account_reference: ordered.account_reference.clone(),
            pin: None,
            wait: PAYOUT_WAIT,
            initiator: Role::Business,
        };
        self.transfer(order).await
    }

    /// A business's order, by our conversation id or by its own key.
    pub async fn payout(
        &self,
        business: &Shortcode,
        lookup: PayoutLookup,
    ) -> Result<Option<Payout>, ServiceError> {
        let request = ClientRequest::Payout {
            business: business.clone(),
            lookup,
        };
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::Payout(payout) => Ok(payout.map(|p| *p)),
            other => Err(ServiceError::no_answer("no payout read", &other)),
        }
    }

    /// Adds or replaces (by name) an initiator allowed to order the business's payouts.
    pub async fn set_initiator(
        &self,
        business: Shortcode,
        initiator: Initiator,
    ) -> Result<(), ServiceError> {
        let shard = self.business_shard(&business);
        self.command(
            shard,
            Command::SetInitiator {
                business,
                initiator,
            },
        )
        .await
    }

    /// Moves `amount` between two of a business's accounts (Utility, Working, Organization
    /// Settlement). `InsufficientFunds` when the source holds less.
    pub async fn move_between_wallets(
        &self,
        business: Shortcode,
        from: Wallet,
        to: Wallet,
        amount: Money,
    ) -> Result<(), ServiceError> {
        let shard = self.business_shard(&business);
        let command = Command::MoveBetweenWallets {
            business,
            from,
            to,
            amount,
        };
        self.command(shard, command).await
    }

    /// Queues a rendered result for a business's URL in its shard's callback outbox
    /// (delivered at least once, like every callback). `Overloaded` when its share is full.
    pub async fn queue_callback(
        &self,
        business: Shortcode,
        url: String,
        body: String,
    ) -> Result<(), ServiceError> {
        let shard = self.business_shard(&business);
        let command = Command::QueueCallback {
            business,
            url,
            event: CallbackEvent::Rendered { body },
        };
        self.command(shard, command).await
    }

    fn business_shard(&self, business: &Shortcode) -> u32 {
        self.handle()
            .shard_map()
            .shard_of(&AccountRef::Business(business.clone()))
    }
}
