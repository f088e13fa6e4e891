//! Reversal requests by SMS, as M-Pesa customers make them: forward the confirmation text to
//! `456`. The node finds the receipt in it, files the request on the payer's shard (which checks
//! that the sender paid it, that it is committed and recent), and texts the customer at each
//! step: received, then reversed (the reversal's own confirmation), not possible, or declined.

use tuma_actors::msisdn::Msisdn;
use tuma_actors::outcome::ResultCode;
use tuma_actors::txn_id::TransactionId;
use tuma_service::{Service, ServiceError, TransferOutcome};

/// The short code customers forward confirmations to.
pub const REVERSAL_SHORT_CODE: &str = "456";

/// The answer to any text Tuma does not understand.
pub const HELP_TEXT: &str = "Tuma: to reverse a transaction, forward its confirmation SMS to 456. For anything else call customer care on 100.";

/// The first receipt in a forwarded text (`UKS7S36UAT Confirmed. Ksh…`, maybe after `Fwd:`).
pub fn receipt_in(text: &str) -> Option<TransactionId> {
    // Receipts carry letters (their date code); a phone number of ten digits is no receipt.
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| word.len() == 10 && word.bytes().any(|b| b.is_ascii_uppercase()))
        .find_map(|word| TransactionId::parse(word).ok())
}

/// What to text back to an incoming message from `from` to `to`.
pub async fn answer_incoming(service: &Service, from: Msisdn, to: &str, text: &str) -> String {
    let to_reversals = to.trim_start_matches('+') == REVERSAL_SHORT_CODE;
    let receipt = receipt_in(text);
    match (to_reversals, receipt) {
        (true, Some(txn_id)) => file(service, from, txn_id).await,
        (true, None) => format!(
            "To reverse a transaction, forward its confirmation SMS (it starts with the transaction code) to {REVERSAL_SHORT_CODE}."
        ),
        (false, _) => HELP_TEXT.to_string(),
    }
}

async fn file(service: &Service, from: Msisdn, txn_id: TransactionId) -> String {
    match service.request_reversal(txn_id, from).await {
        Ok(()) => {
            metrics::counter!("tuma_reversal_requests_filed_total").increment(1);
            let what = match service.reversal_request(txn_id).await {
                Ok(Some(request)) => format!(
                    " of {} to {}",
                    request.amount.sms(),
                    request.payee_name.unwrap_or_else(|| request.payee.to_string())
                ),
                _ => String::new(),
            };
            format!("Your request to reverse {txn_id}{what} has been received. Customer care will review it and you will get an SMS.")
        }
        Err(ServiceError::Refused(ResultCode::NotPermitted)) => {
            format!("Only the sender of {txn_id} can ask for it to be reversed.")
        }
        Err(ServiceError::Refused(ResultCode::NotReversible)) => format!(
            "{txn_id} cannot be reversed: it is not a recent completed transfer, or it was reversed already. For help call 100."
        ),
        Err(ServiceError::Invalid { .. }) => {
            format!("We could not find transaction {txn_id}. Check the code and forward the confirmation SMS again.")
        }
        Err(_) => format!(
            "We could not take your request to reverse {txn_id} now. Please forward the SMS again later."
        ),
    }
}

/// What care's approval did, and the text the customer gets (none when the reversal's own
/// confirmation says it).
pub struct Decision {
    pub outcome: Result<TransferOutcome, ServiceError>,
    pub text: Option<String>,
}

/// Care approves: the reversal runs; a refusal is texted to the customer.
pub async fn approve(
    service: &Service,
    txn_id: TransactionId,
) -> Result<(Decision, Msisdn), ServiceError> {
    let request = service
        .reversal_request(txn_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no open reversal request for {txn_id}")))?;
    let outcome = service.approve_reversal(txn_id).await;
    let refused = match &outcome {
        Ok(TransferOutcome::Decided { receipt, .. }) if !receipt.result.is_success() => {
            Some(receipt.result)
        }
        Err(ServiceError::Refused(code)) => Some(*code),
        _ => None,
    };
    let text = refused.map(|code| {
        let why = match code {
            ResultCode::ReversalRefused => "the recipient no longer holds the money",
            ResultCode::NotReversible => "it was reversed already or is too old",
            _ => "it could not be completed",
        };
        format!("Your request to reverse {txn_id} of {} could not be completed: {why}. For help call 100.", request.amount.sms())
    });
    Ok((Decision { outcome, text }, request.requested_by))
}

/// Care declines: the request is closed and the customer told.
pub async fn decline(
    service: &Service,
    txn_id: TransactionId,
) -> Result<(String, Msisdn), ServiceError> {
    let request = service
        .reversal_request(txn_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no open reversal request for {txn_id}")))?;
    service.close_reversal_request(txn_id).await?;
    Ok((
        format!(
            "Your request to reverse {txn_id} of {} was declined after review. For help call 100.",
            request.amount.sms()
        ),
        request.requested_by,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receipt_is_found_in_a_forwarded_confirmation() {
        let text = "Fwd: UKS7S36UAT Confirmed. Ksh1,000.00 sent to SOPHIA MWENI 0702972812 on 3/3/22 at 5:28 PM.";
        assert_eq!(
            receipt_in(text).map(|t| t.to_string()),
            Some("UKS7S36UAT".to_string())
        );
        assert_eq!(receipt_in("hello there"), None);
        assert_eq!(receipt_in("0702972812 and nothing else"), None);
    }
}
