//! Payment prompts (M-Pesa Express) and the callbacks owed to businesses: opening a prompt on
//! its customer's shard, finding it, the customer's acceptance (an ordinary PayBill or BuyGoods
//! transfer whose id names the prompt) or refusal, and the outbox the business API delivers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{Callback, Command, Prompt, PromptRequest};
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::roles::Role;
use tuma_cluster::engine::{ClientReply, ClientRequest, PromptLookup};

use crate::calls::Repeat;
use crate::transfers::READ_DEADLINE;
use crate::{Service, ServiceError, TransferOrder, TransferOutcome};

/// How long a customer's acceptance waits for its payment's decision.
const PAYMENT_WAIT: Duration = Duration::from_secs(15);
/// Outbox reads and acknowledgements give up after this long.
const OUTBOX_DEADLINE: Duration = Duration::from_secs(5);

impl Service {
    /// Opens a prompt on its customer's shard (opening the same one again changes nothing).
    /// Refused when the customer is unknown or inactive, already has a prompt waiting
    /// (`CustomerBusy`), or the shard or the business's callback share is full (`Overloaded`).
    pub async fn open_prompt(&self, request: PromptRequest) -> Result<(), ServiceError> {
        let shard = self.shard_of(&AccountRef::Customer(request.customer));
        self.command(shard, Command::OpenPrompt(request)).await
    }

    /// The prompt with this checkout id: asked of its customer's shard when the customer is
    /// known, else of every shard at once.
    pub async fn prompt(
        &self,
        checkout_id: &str,
        customer: Option<&Msisdn>,
    ) -> Result<Option<Prompt>, ServiceError> {
        let shards: Vec<u32> = match customer {
            Some(msisdn) => vec![self.shard_of(&AccountRef::Customer(*msisdn))],
            None => (0..self.shard_count()).collect(),
        };
        let reads = shards.into_iter().map(|shard| {
            self.read_prompt(ClientRequest::Prompt {
                shard,
                lookup: PromptLookup::ByCheckoutId(checkout_id.to_string()),
            })
        });
        let mut found = None;
        for answer in join_all(reads).await {
            if let Some(prompt) = answer? {
                found = Some(prompt);
            }
        }
        Ok(found)
    }

    /// The prompt waiting for this customer's answer (or being paid), if any.
    pub async fn waiting_prompt(&self, customer: &Msisdn) -> Result<Option<Prompt>, ServiceError> {
        self.read_prompt(ClientRequest::Prompt {
            shard: self.shard_of(&AccountRef::Customer(*customer)),
            lookup: PromptLookup::WaitingFor(*customer),
        })
        .await
    }

    /// The customer accepts with their PIN: the payment the prompt asked for is ordered (at
    /// most once: its id is the prompt's). A wrong PIN closes the prompt as M-Pesa does.
    pub async fn accept_prompt(
        &self,
        prompt: &Prompt,
        pin: Pin,
        source: Option<IpAddr>,
    ) -> Result<TransferOutcome, ServiceError> {
        let asked = &prompt.request;
        let order = TransferOrder {
            id: prompt.payment(),
            kind: asked.kind,
            from: AccountRef::Customer(asked.customer),
            to: AccountRef::Business(asked.business.clone()),
            amount: asked.amount,
            account_reference: Some(asked.account_reference.clone()),
            pin: Some(pin),
            wait: PAYMENT_WAIT,
            initiator: Role::Customer,
        };
        self.transfer_from(order, source).await
    }

    /// The customer declines their waiting prompt (declining again changes nothing).
    pub async fn decline_prompt(&self, checkout_id: &str, by: Msisdn) -> Result<(), ServiceError> {
        let shard = self.shard_of(&AccountRef::Customer(by));
        let command = Command::DeclinePrompt {
            checkout_id: checkout_id.to_string(),
            by,
        };
        self.command(shard, command).await
    }

    /// Up to `limit` undelivered callbacks of `shard` from `from_seq` on, oldest first (read
    /// on the shard's leader).
    pub async fn callbacks(
        &self,
        shard: u32,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Callback>, ServiceError> {
        let request = ClientRequest::Callbacks {
            shard,
            from_seq,
            limit,
        };
        match self
            .calls
            .call_with(
                request,
                Instant::now() + OUTBOX_DEADLINE,
                Repeat::AtMostOnce,
            )
            .await
            .0
        {
            ClientReply::Callbacks(callbacks) => Ok(callbacks),
            other => Err(ServiceError::no_answer("no callbacks", &other)),
        }
    }

    /// These callbacks of `shard` were delivered: the shard forgets them.
    pub async fn callbacks_delivered(
        &self,
        shard: u32,
        seqs: Vec<u64>,
    ) -> Result<(), ServiceError> {
        self.command(shard, Command::CallbacksDelivered { seqs })
            .await
    }

    async fn read_prompt(&self, request: ClientRequest) -> Result<Option<Prompt>, ServiceError> {
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::Prompt(prompt) => Ok(prompt.map(|p| *p)),
            other => Err(ServiceError::no_answer("no prompt read", &other)),
        }
    }

    fn shard_of(&self, account: &AccountRef) -> u32 {
        self.handle().shard_map().shard_of(account)
    }
}
