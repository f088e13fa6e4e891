//! The shards' confirmation texts, for the SMS channel: which shards this node leads, their
//! undelivered texts, and acknowledging the ones the channel has taken.

use std::time::{Duration, Instant};

use tuma_actors::ledger::{Command, SmsRecord};
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::calls::Repeat;
use crate::{Service, ServiceError};

/// Outbox reads and acknowledgements give up after this long.
const SMS_DEADLINE: Duration = Duration::from_secs(5);

impl Service {
    /// The shards this node leads now.
    pub async fn led_shards(&self) -> Result<Vec<u32>, ServiceError> {
        Ok(self
            .status()
            .await?
            .shards
            .into_iter()
            .filter(|s| s.role == "leader")
            .map(|s| s.shard)
            .collect())
    }

    /// Up to `limit` undelivered texts of `shard` from `from_seq` on, oldest first (read on the
    /// shard's leader).
    pub async fn sms_outbox(
        &self,
        shard: u32,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<SmsRecord>, ServiceError> {
        let request = ClientRequest::SmsOutbox {
            shard,
            from_seq,
            limit,
        };
        match self
            .calls
            .call_with(request, Instant::now() + SMS_DEADLINE, Repeat::AtMostOnce)
            .await
            .0
        {
            ClientReply::SmsOutbox(records) => Ok(records),
            other => Err(ServiceError::no_answer("no outbox", &other)),
        }
    }

    /// Every text of `shard` up to and including `up_to_seq` is in the channel's hands: the
    /// shard forgets them.
    pub async fn sms_taken(&self, shard: u32, up_to_seq: u64) -> Result<(), ServiceError> {
        let request = ClientRequest::Command {
            shard,
            command: Command::SmsDelivered { up_to_seq },
        };
        match self
            .calls
            .call(request, Instant::now() + SMS_DEADLINE)
            .await
            .0
        {
            ClientReply::Done(code) if code.is_success() => Ok(()),
            ClientReply::Done(code) => Err(ServiceError::Refused(code)),
            other => Err(ServiceError::no_answer("not acknowledged", &other)),
        }
    }
}
