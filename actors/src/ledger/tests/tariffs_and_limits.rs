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
    let earned_in = c.ledgers[0].account(&agent).unwrap().commission_earned;
    assert_eq!(earned_in, tariffs.cash_in_commission(ksh(5_000)));
    // Withdrawals charge the band fee and earn the agent its share of it.
    let r = c.request(TransferKind::CashOut, &customer, &agent, ksh(1_000));
    assert_eq!(c.finish(r).fee, ksh(29));
    let earned = c.ledgers[0].account(&agent).unwrap().commission_earned;
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
