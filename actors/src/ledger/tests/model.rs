//! Property test: a one-shard ledger against a model that only knows balances.
//!
//! Random sends, deposits, withdrawals, payments and retries of earlier ids; after each the
//! ledger's balances must equal the model's, a success must have been affordable and a
//! funds refusal must not have been, and a retried id must return its first receipt.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::account::AccountRef;
use crate::ledger::Receipt;
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind, TransferRequest};

#[derive(Clone, Debug)]
enum Op {
    Send {
        from: usize,
        to: usize,
        cents: i64,
        wrong_pin: bool,
    },
    Deposit {
        to: usize,
        cents: i64,
    },
    Withdraw {
        from: usize,
        cents: i64,
    },
    Retry {
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..4usize,
            0..4usize,
            1..2_000_000i64,
            proptest::bool::weighted(0.1)
        )
            .prop_map(|(from, to, cents, wrong_pin)| Op::Send {
                from,
                to,
                cents,
                wrong_pin
            }),
        (0..4usize, 1..3_000_000i64).prop_map(|(to, cents)| Op::Deposit { to, cents }),
        (0..4usize, 1..2_000_000i64).prop_map(|(from, cents)| Op::Withdraw { from, cents }),
        (0..50usize).prop_map(|nth| Op::Retry { nth }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn ledger_matches_a_balance_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut c = Cluster::new(1);
        let customers: Vec<AccountRef> = (0..4).map(|i| c.open(&c.customer_on(0, i), AccountKind::Customer)).collect();
        let agent = c.open(&c.agent_on(0), AccountKind::Agent);
        c.fund(&agent, ksh(1_000_000));
        let mut model: BTreeMap<AccountRef, i64> = customers.iter().map(|a| (a.clone(), 0)).collect();
        model.insert(agent.clone(), 100_000_000);
        let mut history: Vec<(TransferRequest, Receipt)> = Vec::new();
        for op in ops {
            let (request, retry_of) = match op {
                Op::Send { from, to, cents, wrong_pin } => {
                    let mut r = c.request(TransferKind::SendMoney, &customers[from], &customers[to], Money::from_cents(cents));
                    if wrong_pin { r.pin = PinVerdict::Wrong; }
                    (r, None)
                }
                Op::Deposit { to, cents } => (c.request(TransferKind::CashIn, &agent, &customers[to], Money::from_cents(cents)), None),
                Op::Withdraw { from, cents } => (c.request(TransferKind::CashOut, &customers[from], &agent, Money::from_cents(cents)), None),
                Op::Retry { nth } if !history.is_empty() => {
                    let (r, receipt) = history[nth % history.len()].clone();
                    (r, Some(receipt))
                }
                Op::Retry { .. } => continue,
            };
            let available = model[&request.from];
            let recorded = c.ledgers[0].outgoing(&request.id).is_some();
            let receipt = c.finish(request.clone());
            if let Some(first) = retry_of {
                if recorded {
                    prop_assert_eq!(&receipt, &first);
                } else {
                    // Refused without a record (malformed, wrong PIN…): asked again, refused
                    // again, and nothing moves.
                    prop_assert!(!first.result.is_success() && !receipt.result.is_success());
                    prop_assert_eq!(receipt.txn_id, None);
                }
            } else {
                let debit = request.amount.cents() + receipt.fee.cents();
                match receipt.result {
                    ResultCode::Success => {
                        prop_assert!(available >= debit, "{:?} succeeded without funds", request);
                        *model.get_mut(&request.from).unwrap() -= debit;
                        *model.get_mut(&request.to).unwrap() += request.amount.cents();
                    }
                    ResultCode::InsufficientFunds => {
                        let fee = match request.kind {
                            TransferKind::SendMoney => c.ledgers[0].config().tariffs.send_fee(request.amount),
                            _ => c.ledgers[0].config().tariffs.withdrawal_fee(request.amount),
                        };
                        prop_assert!(available < request.amount.cents() + fee.unwrap().cents());
                    }
                    _ => {}
                }
                history.push((request, receipt));
            }
            for (account, cents) in &model {
                prop_assert_eq!(c.balance(account).cents(), *cents, "{}", account);
            }
            c.ledgers[0].audit().map_err(|v| TestCaseError::fail(v.to_string()))?;
        }
    }
}
