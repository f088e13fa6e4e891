//! The refusal rules, as pure functions of the request, the tariffs and account records.
//! The order of checks is part of the contract: the first failing rule names the result.

use crate::account::AccountRef;
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::{transfer_rule, AccountKind};
use crate::tariff::Tariffs;
use crate::transfer::{TransferKind, TransferRequest, ACCOUNT_REFERENCE_LEN_MAX};

use super::records::{Account, AccountStatus};

/// Fee charged to the payer and commission earned by an agent payer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Pricing {
    pub fee: Money,
    pub commission: Money,
}

/// Checks that need no account state: amount, parties' forms, roles, limits, tariff.
pub(super) fn check_request(
    request: &TransferRequest,
    tariffs: &Tariffs,
) -> Result<Pricing, ResultCode> {
    let rule = transfer_rule(request.kind);
    let limits = &tariffs.limits;
    let amount = request.amount;
    if !amount.is_positive() {
        return Err(ResultCode::InvalidAmount);
    }
    // Airtime names the phone to top up, usually the payer's own; the money goes elsewhere.
    if request.from == request.to && request.kind != TransferKind::BuyAirtime {
        return Err(ResultCode::SameAccount);
    }
    check_account_reference(request)?;
    if !rule.initiators.contains(&request.initiator) {
        return Err(ResultCode::NotPermitted);
    }
    // A business orders only from its own account.
    if request.initiator == crate::roles::Role::Business
        && !matches!(request.from, crate::account::AccountRef::Business(_))
    {
        return Err(ResultCode::NotPermitted);
    }
    if (request.kind == TransferKind::Reversal) != request.reverses.is_some() {
        return Err(ResultCode::NotReversible);
    }
    if request.kind == TransferKind::BuyAirtime && request.to.msisdn().is_none() {
        return Err(ResultCode::NotPermitted);
    }
    if rule.per_transaction_limit && amount > limits.per_transaction {
        return Err(ResultCode::LimitExceeded);
    }
    if request.kind == TransferKind::FloatIssue && amount > limits.float_per_transaction {
        return Err(ResultCode::LimitExceeded);
    }
    if amount < limits.min_transfer {
        return Err(ResultCode::AmountBelowMinimum);
    }
    let fee = match request.kind {
        TransferKind::SendMoney => tariffs
            .send_fee(amount)
            .ok_or(ResultCode::AmountOutsideTariff)?,
        TransferKind::CashOut => {
            if amount < limits.min_withdrawal {
                return Err(ResultCode::AmountBelowMinimum);
            }
            tariffs
                .withdrawal_fee(amount)
                .ok_or(ResultCode::AmountOutsideTariff)?
        }
        _ => Money::ZERO,
    };
    let commission = match request.kind {
        TransferKind::CashIn => tariffs.cash_in_commission(amount),
        _ => Money::ZERO,
    };
    Ok(Pricing { fee, commission })
}

fn check_account_reference(request: &TransferRequest) -> Result<(), ResultCode> {
    let reference = request.account_reference.as_deref();
    let fits = |r: &str| r.len() <= ACCOUNT_REFERENCE_LEN_MAX && !r.chars().any(char::is_control);
    let ok = match (request.kind, reference) {
        (TransferKind::PayBill, Some(r)) => !r.trim().is_empty() && fits(r),
        (TransferKind::PayBill, None) => false,
        (_, Some(r)) => fits(r),
        (_, None) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ResultCode::InvalidAccountReference)
    }
}

/// Checks on the payer's record other than the PIN and funds.
pub(super) fn check_payer(
    request: &TransferRequest,
    payer: Option<&Account>,
    shard_issuer: &AccountRef,
) -> Result<(), ResultCode> {
    let payer = payer.ok_or(ResultCode::UnknownAccount)?;
    let rule = transfer_rule(request.kind);
    if !rule.payers.contains(&payer.kind) {
        return Err(ResultCode::NotPermitted);
    }
    if payer.kind == AccountKind::System && &request.from != shard_issuer {
        return Err(ResultCode::NotPermitted);
    }
    if payer.status != AccountStatus::Active {
        return Err(ResultCode::AccountInactive);
    }
    Ok(())
}

/// Daily limit and funds, after the PIN was accepted. `planted_spendable` is zero except under
/// the planted fault that lets pending credits be spent.
pub(super) fn check_payer_funds(
    request: &TransferRequest,
    payer: &Account,
    fee: Money,
    day: u32,
    daily_limit: Money,
    planted_spendable: Money,
) -> Result<(), ResultCode> {
    if payer.kind == AccountKind::System {
        return Ok(());
    }
    if payer.kind.has_customer_limits() {
        let after = payer.sent_on(day).checked_add(request.amount);
        if after.is_none_or(|after| after > daily_limit) {
            return Err(ResultCode::DailyLimitExceeded);
        }
    }
    let needed = request
        .amount
        .checked_add(fee)
        .ok_or(ResultCode::InvalidAmount)?;
    let spendable = payer.spendable().checked_add(planted_spendable);
    if spendable.is_none_or(|spendable| spendable < needed) {
        return Err(if request.kind == TransferKind::Reversal {
            ResultCode::ReversalRefused
        } else {
            ResultCode::InsufficientFunds
        });
    }
    Ok(())
}

/// Most any of a shard's running counters may reach. Every counter of every account is at
/// most the shard's total of the same counter, so checking the totals before a transfer moves
/// money keeps every later addition (posting, settling, commissions) far from overflow: a
/// client-chosen amount can be refused, never crash apply.
pub(super) const COUNTER_CAPACITY_CENTS: i64 = i64::MAX / 4;

/// Refuses a transfer that could take the shard's counters past their capacity.
pub(super) fn check_capacity(
    totals: &super::records::Balances,
    moving: Money,
) -> Result<(), ResultCode> {
    let fits = |counter: Money, more: Money| {
        counter
            .cents()
            .checked_add(more.cents())
            .and_then(|c| c.checked_add(more.cents()))
            .is_some_and(|c| c <= COUNTER_CAPACITY_CENTS)
    };
    let debits = totals.debits_posted.checked_add(totals.debits_pending);
    let credits = totals.credits_posted.checked_add(totals.credits_pending);
    match (debits, credits) {
        (Some(d), Some(c)) if fits(d, moving) && fits(c, moving) => Ok(()),
        _ => Err(ResultCode::LimitExceeded),
    }
}

/// Can `payee` take `amount` of `kind`? Returns the payee's name for the confirmation.
pub(super) fn check_payee(
    kind: TransferKind,
    payee: Option<&Account>,
    amount: Money,
    limits: &crate::tariff::Limits,
) -> Result<String, ResultCode> {
    let payee = payee.ok_or(ResultCode::UnknownPayee)?;
    if !transfer_rule(kind).payees.contains(&payee.kind) {
        return Err(ResultCode::NotPermitted);
    }
    if payee.status != AccountStatus::Active {
        return Err(ResultCode::AccountInactive);
    }
    let max_balance = if payee.kind.has_customer_limits() {
        Some(limits.max_balance)
    } else if payee.kind == AccountKind::System {
        None
    } else {
        Some(limits.max_float_balance)
    };
    if let Some(max_balance) = max_balance {
        let b = &payee.balances;
        let after = b
            .balance()
            .checked_add(b.credits_pending)
            .and_then(|m| m.checked_add(amount));
        if after.is_none_or(|after| after > max_balance) {
            return Err(ResultCode::BalanceLimitExceeded);
        }
    }
    Ok(payee.name.clone())
}
