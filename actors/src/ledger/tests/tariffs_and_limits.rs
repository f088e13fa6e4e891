//! Tariff band edges and the regulator's limits, through the books.

use crate::ledger::Command;
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::tariff::Tariffs;
use crate::testkit::{ksh, Cluster};
use crate::transfer::TransferKind;

/// Every send-money and withdrawal band edge: the fee charged is the band's, the books balance,
/// and the payer loses exactly amount + fee while the payee gains the amount.
#[test]
fn every_band_edge_charges_its_band() {
    let tariffs = Tariffs::kenya_default();
    let mut c = Cluster::new(1);
    let agent = c.open(&c.agent_on(0), AccountKind::Agent);
    let cases: Vec<(TransferKind, Money, Money)> = [
        (TransferKind::SendMoney, &tariffs.send_money),
        (TransferKind::CashOut, &tariffs.withdrawal),
    ]
    .into_iter()
    .flat_map(|(kind, table)| {
        table.bands().iter().flat_map(move |band| {
            let upper = Money::from_cents(band.to.cents() + 99);
            [
                (kind, band.from, band.value),
                (kind, band.to, band.value),
                (kind, upper, band.value),
            ]
        })
    })
    .filter(|(_, amount, _)| *amount <= tariffs.limits.per_transaction)
    .collect();
    assert!(cases.len() >= 80, "{}", cases.len());
    for (n, (kind, amount, fee)) in cases.into_iter().enumerate() {
        let payer = c.open(&c.customer_on(0, 100 + n as u32), AccountKind::Customer);
        let payee = match kind {
            TransferKind::CashOut => agent.clone(),
            _ => c.open(&c.customer_on(0, 500 + n as u32), AccountKind::Customer),
        };
        c.fund(&payer, ksh(260_000));
        let payee_before = c.balance(&payee);
        let request = c.request(kind, &payer, &payee, amount);
        let receipt = c.finish(request);
        assert_eq!(receipt.result, ResultCode::Success, "{kind:?} {amount}");
        assert_eq!(receipt.fee, fee, "{kind:?} {amount}");
        assert_eq!(
            c.balance(&payer).cents(),
            26_000_000 - amount.cents() - fee.cents()
        );
        assert_eq!(
            c.balance(&payee).cents() - payee_before.cents(),
            amount.cents()
        );
        c.apply(
            0,
            Command::SmsDelivered {
                up_to_seq: u64::MAX,
            },
        );
    }
    c.ledgers[0].audit().unwrap();
}

#[test]
fn free_kinds_and_commissions() {
    let mut c = Cluster::new(1);
    let tariffs = Tariffs::kenya_default();
    let agent = c.open(&c.agent_on(0), AccountKind::Agent);
    let customer = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let till = c.open(&c.business_on(0, 500_000), AccountKind::Till);
    c.fund(&agent, ksh(100_000));
    // Deposits are free for the customer and earn the agent a commission.
    let r = c.request(TransferKind::CashIn, &agent, &customer, ksh(5_000));
    let receipt = c.finish(r);
    assert_eq!(
        (receipt.result, receipt.fee),
        (ResultCode::Success, Money::ZERO)
    );
    let earned_in = c.ledgers[0].account(&agent).unwrap().commission_earned();
    assert_eq!(earned_in, tariffs.cash_in_commission(ksh(5_000)));
    // Withdrawals charge the band fee and earn the agent its share of it.
    let r = c.request(TransferKind::CashOut, &customer, &agent, ksh(1_000));
    assert_eq!(c.finish(r).fee, ksh(29));
    let earned = c.ledgers[0].account(&agent).unwrap().commission_earned();
    assert_eq!(
        earned.cents() - earned_in.cents(),
        tariffs.cash_out_commission(ksh(1_000)).cents()
    );
    // Buy goods and airtime are free.
    for (kind, to, amount) in [
        (TransferKind::BuyGoods, &till, 100),
        (TransferKind::BuyAirtime, &customer, 50),
    ] {
        let r = c.request(kind, &customer, to, ksh(amount));
        let receipt = c.finish(r);
        assert_eq!(
            (receipt.result, receipt.fee),
            (ResultCode::Success, Money::ZERO),
            "{kind:?}"
        );
    }
    let audit = c.ledgers[0].audit().unwrap();
    assert_eq!(audit.airtime, ksh(50));
    assert_eq!(audit.commissions.cents(), earned.cents());
    assert_eq!(audit.fees.cents(), 2_900 - earned.cents());
}

#[test]
fn limits_at_their_edges() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    let carol = c.open(&c.customer_on(0, 3), AccountKind::Customer);
    // Maximum balance: exactly 500,000 is fine, a cent more is refused.
    c.fund(&bob, ksh(499_000));
    c.fund(&alice, ksh(300_000));
    let r = c.request(
        TransferKind::SendMoney,
        &alice,
        &bob,
        Money::from_cents(100_001),
    );
    assert_eq!(c.finish(r).result, ResultCode::BalanceLimitExceeded);
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(1_000));
    assert_eq!(c.finish(r).result, ResultCode::Success);
    assert_eq!(c.balance(&bob), ksh(500_000));
    // Per transaction: 250,000 is fine, 250,000.01 is not.
    let r = c.request(
        TransferKind::SendMoney,
        &alice,
        &carol,
        Money::from_cents(25_000_001),
    );
    assert_eq!(c.finish(r).result, ResultCode::LimitExceeded);
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(250_000));
    assert_eq!(c.finish(r).result, ResultCode::Success);
    // Daily: alice has sent 251,000 today; she may send up to 500,000 in all.
    c.fund(&alice, ksh(250_000));
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(249_001));
    assert_eq!(c.finish(r).result, ResultCode::DailyLimitExceeded);
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(249_000));
    assert_eq!(c.finish(r).result, ResultCode::Success);
    let r = c.request(
        TransferKind::SendMoney,
        &alice,
        &carol,
        Money::from_cents(1),
    );
    assert_eq!(c.finish(r).result, ResultCode::AmountBelowMinimum);
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(1));
    assert_eq!(c.finish(r).result, ResultCode::DailyLimitExceeded);
    // The next EAT day starts afresh.
    c.now += 24 * 3_600_000;
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(1));
    assert_eq!(c.finish(r).result, ResultCode::Success);
}

#[test]
fn aborting_a_transfer_held_yesterday_keeps_todays_daily_usage() {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    let carol = c.open(&c.customer_on(1, 3), AccountKind::Customer);
    c.fund(&alice, ksh(500_000));
    // 23:59:59 EAT (T0 is 08:00 EAT): a cross-shard hold whose offer never arrives.
    let midnight = crate::testkit::T0 + 16 * 3_600_000;
    c.now = midnight - 1_000;
    let held = c.request(TransferKind::SendMoney, &alice, &carol, ksh(100_000));
    c.submit(held.clone());
    c.in_flight.clear();
    // Just after midnight: today's first transfer.
    c.now = midnight + 5_000;
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(240_000));
    assert_eq!(c.finish(r).result, ResultCode::Success);
    // Yesterday's hold passes its deadline and the sweeper aborts it.
    c.now = midnight + 20_000;
    c.tick();
    c.deliver_all();
    assert_eq!(
        c.ledgers[0].receipt(&held.id).unwrap().result,
        ResultCode::DeadlinePassed
    );
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(240_000));
    assert_eq!(c.finish(r).result, ResultCode::Success);
    c.fund(&alice, ksh(100_000));
    // 480,000 sent today: 25,000 more would pass the 500,000 daily limit.
    let r = c.request(TransferKind::SendMoney, &alice, &carol, ksh(25_000));
    assert_eq!(c.finish(r).result, ResultCode::DailyLimitExceeded);
}

#[test]
fn float_issue_has_a_per_transaction_limit_and_agents_a_maximum_balance() {
    let mut c = Cluster::new(1);
    let agent = c.open(&c.agent_on(0), AccountKind::Agent);
    let issuer = crate::AccountRef::System(crate::account::SystemAccount::Issuer(0));
    let issue = |c: &mut Cluster, amount: Money| {
        let mut r = c.request(TransferKind::FloatIssue, &issuer, &agent, amount);
        r.initiator = crate::roles::Role::Operator;
        r.pin = crate::transfer::PinVerdict::NotRequired;
        c.finish(r).result
    };
    let limits = Tariffs::kenya_default().limits;
    let over = limits
        .float_per_transaction
        .checked_add(Money::from_cents(1))
        .unwrap();
    assert_eq!(issue(&mut c, over), ResultCode::LimitExceeded);
    assert_eq!(
        issue(&mut c, limits.float_per_transaction),
        ResultCode::Success
    );
    // Fill the agent up to its maximum balance; a cent more is refused.
    let mut balance = limits.float_per_transaction;
    while balance < limits.max_float_balance {
        assert_eq!(
            issue(&mut c, limits.float_per_transaction),
            ResultCode::Success
        );
        balance = balance.checked_add(limits.float_per_transaction).unwrap();
    }
    assert_eq!(c.balance(&agent), limits.max_float_balance);
    assert_eq!(issue(&mut c, ksh(1)), ResultCode::BalanceLimitExceeded);
}

#[test]
fn a_shard_near_its_counter_capacity_refuses_instead_of_crashing_apply() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(1_000));
    // A shard whose totals have grown to their capacity (centuries of traffic, or a flood of
    // client-chosen amounts): the next transfer is refused, never an overflow panic.
    let full = Money::from_cents(i64::MAX - 1_000);
    assert!(full.cents() > super::super::checks::COUNTER_CAPACITY_CENTS);
    c.ledgers[0].state.totals.debits_posted = full;
    c.ledgers[0].state.totals.credits_posted = full;
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    assert_eq!(c.finish(r).result, ResultCode::LimitExceeded);
}
