//! Maker-checker for large float issues: e-money issued above a configured amount waits as a
//! request until a second caller with the right to issue float — never the one who asked —
//! approves it (then it is issued under the request's id, exactly once) or declines it. The
//! requests live in a cluster document (`access/float-approvals`), changed over the version
//! read, so every node sees the same queue and two approvals cannot both win.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tuma_actors::account::AccountRef;
use tuma_actors::money::Money;
use tuma_actors::transfer::TransferId;

use tuma_actors::ledger::Receipt;

use crate::{unix_ms, Service, ServiceError};

/// The cluster document holding the requests.
pub const APPROVALS_DOCUMENT: &str = "access/float-approvals";
/// Most requests waiting at once.
pub const PENDING_MAX: usize = 100;
/// Decided requests kept for the record (the oldest go first beyond this).
pub const DECIDED_KEPT: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Decision {
    Pending,
    Approved { by: String, unix_ms: u64 },
    Declined { by: String, unix_ms: u64 },
}

/// One float issue waiting for (or past) its second pair of eyes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatRequest {
    pub request_id: String,
    pub account: String,
    pub amount_cents: i64,
    /// Who asked (`bootstrap` or `key:<id>`).
    pub requested_by: String,
    pub requested_unix_ms: u64,
    pub decision: Decision,
}

/// Every request, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatApprovals {
    pub requests: BTreeMap<String, FloatRequest>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("no float request {0}")]
    Unknown(String),
    #[error("float request {0} was already decided")]
    Decided(String),
    #[error("the caller who asked for a float issue cannot approve it; another must")]
    SameCaller,
    #[error("request id {0} is already used for another float request")]
    IdTaken(String),
    #[error("{PENDING_MAX} float requests are already waiting")]
    Full,
}

impl FloatApprovals {
    /// Adds a request; the same request again (a retry) changes nothing.
    pub fn add(&mut self, request: FloatRequest) -> Result<(), ApprovalError> {
        if let Some(existing) = self.requests.get(&request.request_id) {
            let same = existing.account == request.account
                && existing.amount_cents == request.amount_cents
                && existing.requested_by == request.requested_by;
            return if same {
                Ok(())
            } else {
                Err(ApprovalError::IdTaken(request.request_id))
            };
        }
        let pending = self
            .requests
            .values()
            .filter(|r| r.decision == Decision::Pending)
            .count();
        if pending >= PENDING_MAX {
            return Err(ApprovalError::Full);
        }
        self.requests.insert(request.request_id.clone(), request);
        self.forget_oldest_decided();
        Ok(())
    }

    /// Records `by`'s decision on request `id`.
    pub fn decide(
        &mut self,
        id: &str,
        by: &str,
        approve: bool,
        now_unix_ms: u64,
    ) -> Result<&FloatRequest, ApprovalError> {
        let request = self
            .requests
            .get_mut(id)
            .ok_or_else(|| ApprovalError::Unknown(id.to_string()))?;
        if request.decision != Decision::Pending {
            return Err(ApprovalError::Decided(id.to_string()));
        }
        if request.requested_by == by {
            return Err(ApprovalError::SameCaller);
        }
        let by = by.to_string();
        request.decision = if approve {
            Decision::Approved {
                by,
                unix_ms: now_unix_ms,
            }
        } else {
            Decision::Declined {
                by,
                unix_ms: now_unix_ms,
            }
        };
        Ok(request)
    }

    fn forget_oldest_decided(&mut self) {
        let mut decided: Vec<(u64, String)> = self
            .requests
            .values()
            .filter(|r| r.decision != Decision::Pending)
            .map(|r| (r.requested_unix_ms, r.request_id.clone()))
            .collect();
        if decided.len() > DECIDED_KEPT {
            decided.sort();
            for (_, id) in decided.iter().take(decided.len() - DECIDED_KEPT) {
                self.requests.remove(id);
            }
        }
    }
}

fn service_error(error: ApprovalError) -> ServiceError {
    match error {
        ApprovalError::Unknown(_) => ServiceError::NotFound(error.to_string()),
        ApprovalError::SameCaller
        | ApprovalError::Decided(_)
        | ApprovalError::IdTaken(_)
        | ApprovalError::Full => ServiceError::Conflict(error.to_string()),
    }
}

impl Service {
    /// The float requests as this node applied the cluster state, with the document version.
    pub async fn float_approvals(&self) -> Result<(FloatApprovals, u64), ServiceError> {
        self.read_json_document(APPROVALS_DOCUMENT).await
    }

    /// Records a float issue that waits for another caller's approval.
    pub async fn request_float(
        &self,
        id: &TransferId,
        to: &AccountRef,
        amount: Money,
        requested_by: &str,
    ) -> Result<FloatRequest, ServiceError> {
        let request = FloatRequest {
            request_id: id.as_str().to_string(),
            account: to.to_string(),
            amount_cents: amount.cents(),
            requested_by: requested_by.to_string(),
            requested_unix_ms: unix_ms(),
            decision: Decision::Pending,
        };
        self.change_approvals(|approvals| approvals.add(request.clone()))
            .await?;
        Ok(request)
    }

    /// `by` approves (the float is issued, once, under the request's id) or declines request
    /// `id`. An approved request whose issue did not finish is issued again by the next
    /// approval call (refused as decided, but the float goes out under the same id).
    pub async fn decide_float(
        &self,
        id: &str,
        by: &str,
        approve: bool,
    ) -> Result<(FloatRequest, Option<Receipt>), ServiceError> {
        let now = unix_ms();
        let mut decided = None;
        self.change_approvals(|approvals| {
            decided = Some(approvals.decide(id, by, approve, now)?.clone());
            Ok(())
        })
        .await?;
        let request = decided.expect("set by the change");
        if !approve {
            return Ok((request, None));
        }
        let transfer = TransferId::parse(&request.request_id)
            .map_err(|e| ServiceError::Unavailable(format!("stored request id: {e}")))?;
        let to = AccountRef::parse(&request.account)
            .map_err(|e| ServiceError::Unavailable(format!("stored account: {e}")))?;
        let receipt = self
            .issue_float(transfer, to, Money::from_cents(request.amount_cents))
            .await?;
        Ok((request, Some(receipt)))
    }

    async fn change_approvals(
        &self,
        change: impl FnMut(&mut FloatApprovals) -> Result<(), ApprovalError>,
    ) -> Result<(), ServiceError> {
        self.change_json_document(APPROVALS_DOCUMENT, change, service_error)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, by: &str) -> FloatRequest {
        FloatRequest {
            request_id: id.into(),
            account: "254700000001".into(),
            amount_cents: 500_000_000,
            requested_by: by.into(),
            requested_unix_ms: 1,
            decision: Decision::Pending,
        }
    }

    #[test]
    fn the_maker_never_checks_and_a_request_is_decided_once() {
        let mut approvals = FloatApprovals::default();
        approvals.add(request("f1", "key:aaaa0001")).unwrap();
        approvals.add(request("f1", "key:aaaa0001")).unwrap();
        assert_eq!(
            approvals.add(request("f1", "key:bbbb0002")).unwrap_err(),
            ApprovalError::IdTaken("f1".into())
        );
        assert_eq!(
            approvals.decide("f1", "key:aaaa0001", true, 2).unwrap_err(),
            ApprovalError::SameCaller
        );
        let decided = approvals.decide("f1", "bootstrap", true, 3).unwrap();
        assert!(matches!(&decided.decision, Decision::Approved { by, .. } if by == "bootstrap"));
        assert_eq!(
            approvals
                .decide("f1", "key:cccc0003", false, 4)
                .unwrap_err(),
            ApprovalError::Decided("f1".into())
        );
        assert_eq!(
            approvals.decide("nope", "bootstrap", true, 5).unwrap_err(),
            ApprovalError::Unknown("nope".into())
        );
    }

    #[test]
    fn waiting_requests_are_bounded_and_old_decisions_forgotten() {
        let mut approvals = FloatApprovals::default();
        for n in 0..PENDING_MAX {
            approvals
                .add(request(&format!("p{n}"), "bootstrap"))
                .unwrap();
        }
        assert_eq!(
            approvals.add(request("one-more", "bootstrap")).unwrap_err(),
            ApprovalError::Full
        );
        for n in 0..PENDING_MAX {
            approvals
                .decide(&format!("p{n}"), "key:00000001", false, 9)
                .unwrap();
        }
        for n in 0..DECIDED_KEPT {
            let id = format!("d{n}");
            approvals.add(request(&id, "bootstrap")).unwrap();
            approvals.decide(&id, "key:00000001", true, 9).unwrap();
        }
        approvals.add(request("last", "bootstrap")).unwrap();
        assert!(approvals.requests.len() <= DECIDED_KEPT + 1);
        assert!(approvals.requests.contains_key("last"));
    }
}
