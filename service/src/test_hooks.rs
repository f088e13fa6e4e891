//! Faults tests plant in a running node. The engine serves them only when the node was started
//! with test hooks on (`--enable-test-hooks`); channels expose them only then too.

use std::time::{Duration, Instant};

use tuma_actors::account::AccountRef;
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::{Service, ServiceError};

const HOOK_DEADLINE: Duration = Duration::from_secs(15);

impl Service {
    /// The account's next transfer panics in its actor (its supervisor must restart it).
    pub async fn plant_actor_panic(&self, account: AccountRef) -> Result<(), ServiceError> {
        let request = ClientRequest::PlantPanic { account };
        match self
            .calls
            .call(request, Instant::now() + HOOK_DEADLINE)
            .await
            .0
        {
            ClientReply::Done(_) => Ok(()),
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// The engine thread panics, as a defect in it would: the node must stop. Answers how the
    /// engine went away.
    pub async fn plant_engine_panic(&self) -> String {
        self.handle()
            .request(ClientRequest::PlantEnginePanic, Duration::from_secs(2))
            .await
            .describe()
    }
}
