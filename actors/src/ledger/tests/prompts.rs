//! Payment prompts: opened on the customer's shard, closed once — paid, declined, unanswered
//! or refused — with one callback each; payments only as the prompt asked; retirement.

use crate::account::AccountRef;
use crate::ledger::{
    payment_id, Applied, CallbackEvent, Command, PromptRequest, PromptState, ShardLedger,
};
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind, TransferRequest};

struct Shop {
    c: Cluster,
    customer: AccountRef,
    business: AccountRef,
}

/// A funded customer on shard 0 and a paybill business on `business_shard` of two.
fn shop(business_shard: u32) -> Shop {
    let mut c = Cluster::new(2);
    let customer = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let business = c.open(
        &c.business_on(business_shard, 600_100),
        AccountKind::Paybill,
    );
    c.fund(&customer, ksh(5_000));
    Shop {
        c,
        customer,
        business,
    }
}

fn prompt_request(shop: &Shop, checkout_id: &str, amount: Money) -> PromptRequest {
    let (AccountRef::Customer(customer), AccountRef::Business(business)) =
        (&shop.customer, &shop.business)
    else {
        unreachable!()
    };
    PromptRequest {
        checkout_id: checkout_id.to_string(),
        merchant_request_id: format!("m-{checkout_id}"),
        customer: *customer,
        business: business.clone(),
        business_name: "Duka".into(),
        kind: TransferKind::PayBill,
        amount,
        account_reference: "INV-1".into(),
        callback_url: "http://127.0.0.1:9/cb".into(),
        expires_ms: shop.c.now + 60_000,
    }
}

fn open(shop: &mut Shop, request: PromptRequest) -> Applied {
    shop.c.apply(0, Command::OpenPrompt(request))
}

/// The customer's acceptance: the transfer that pays the prompt, PIN verdict as given.
fn payment(shop: &Shop, request: &PromptRequest, pin: PinVerdict) -> TransferRequest {
    TransferRequest {
        id: payment_id(&request.checkout_id),
        kind: request.kind,
        from: shop.customer.clone(),
        to: shop.business.clone(),
        amount: request.amount,
        account_reference: Some(request.account_reference.clone()),
        pin,
        deadline_ms: shop.c.now + 10_000,
        initiator: crate::roles::Role::Customer,
        reverses: None,
    }
}

fn customer_shard(shop: &Shop) -> &ShardLedger {
    &shop.c.ledgers[0]
}

/// The one callback queued on the customer's shard, as (result, receipt present).
fn only_callback(shop: &Shop) -> (ResultCode, bool) {
    let callbacks: Vec<_> = customer_shard(shop).callbacks(0, 10).collect();
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    let CallbackEvent::PromptClosed { result, txn_id, .. } = &callbacks[0].event else {
        panic!("not a prompt's callback: {callbacks:?}");
    };
    (*result, txn_id.is_some())
}

fn closed_with(shop: &Shop, checkout_id: &str) -> ResultCode {
    match &customer_shard(shop).prompt(checkout_id).unwrap().state {
        PromptState::Closed { result, .. } => *result,
        other => panic!("prompt still {other:?}"),
    }
}

#[test]
fn an_accepted_prompt_pays_the_business_across_shards_and_queues_one_callback() {
    let mut shop = shop(1);
    let request = prompt_request(&shop, "ws_CO_1", ksh(100));
    assert_eq!(
        open(&mut shop, request.clone()),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        open(&mut shop, request.clone()),
        Applied::Admin(ResultCode::Success),
        "opening the same prompt again changes nothing"
    );
    let paying = payment(&shop, &request, PinVerdict::Verified);
    assert!(matches!(
        shop.c.submit(paying.clone()),
        Applied::TransferPrepared(_)
    ));
    assert_eq!(
        customer_shard(&shop).prompt("ws_CO_1").unwrap().state,
        PromptState::Paying
    );
    // Being paid, it no longer expires (the leader's expiry time past the prompt's).
    shop.c.apply(
        0,
        Command::ExpireRequests {
            up_to_ms: request.expires_ms + 1,
        },
    );
    assert_eq!(
        customer_shard(&shop).prompt("ws_CO_1").unwrap().state,
        PromptState::Paying
    );
    shop.c.deliver_all();
    assert_eq!(closed_with(&shop, "ws_CO_1"), ResultCode::Success);
    assert_eq!(only_callback(&shop), (ResultCode::Success, true));
    assert_eq!(shop.c.balance(&shop.business), ksh(100));
    // A second payment of the same prompt is its first one's record; a new one is refused.
    let receipt = shop.c.finish(paying);
    assert!(receipt.result.is_success());
    let mut again = payment(&shop, &request, PinVerdict::Verified);
    again.id = crate::transfer::TransferId::parse("stk:ws_CO_other").unwrap();
    assert_eq!(
        shop.c.submit(again),
        Applied::TransferRefused {
            id: crate::transfer::TransferId::parse("stk:ws_CO_other").unwrap(),
            result: ResultCode::NotPermitted
        }
    );
    assert_eq!(shop.c.balance(&shop.business), ksh(100), "paid once");
}

#[test]
fn a_payment_must_be_what_the_prompt_asked() {
    let mut shop = shop(0);
    let request = prompt_request(&shop, "ws_CO_2", ksh(100));
    open(&mut shop, request.clone());
    let mut more = payment(&shop, &request, PinVerdict::Verified);
    more.amount = ksh(1_000);
    let id = more.id.clone();
    assert_eq!(
        shop.c.submit(more),
        Applied::TransferRefused {
            id,
            result: ResultCode::NotPermitted
        }
    );
    assert_eq!(
        customer_shard(&shop).prompt("ws_CO_2").unwrap().state,
        PromptState::Waiting,
        "a payment refused as not asked leaves the prompt waiting"
    );
    let receipt = shop
        .c
        .finish(payment(&shop, &request, PinVerdict::Verified));
    assert!(receipt.result.is_success(), "{receipt:?}");
    assert_eq!(only_callback(&shop), (ResultCode::Success, true));
}

#[test]
fn a_wrong_pin_declining_and_silence_each_close_the_prompt_once() {
    let mut shop = shop(1);
    let wrong = prompt_request(&shop, "ws_CO_pin", ksh(100));
    open(&mut shop, wrong.clone());
    let receipt = shop.c.finish(payment(&shop, &wrong, PinVerdict::Wrong));
    assert_eq!(receipt.result, ResultCode::WrongPin);
    assert_eq!(closed_with(&shop, "ws_CO_pin"), ResultCode::WrongPin);

    let declined = prompt_request(&shop, "ws_CO_no", ksh(100));
    assert_eq!(
        open(&mut shop, declined),
        Applied::Admin(ResultCode::Success)
    );
    let AccountRef::Customer(by) = shop.customer else {
        unreachable!()
    };
    let someone_else = Command::DeclinePrompt {
        checkout_id: "ws_CO_no".into(),
        by: crate::msisdn::Msisdn::parse("254799999998").unwrap(),
    };
    assert_eq!(
        shop.c.apply(0, someone_else),
        Applied::Admin(ResultCode::NotPermitted),
        "only its customer declines a prompt"
    );
    let decline = Command::DeclinePrompt {
        checkout_id: "ws_CO_no".into(),
        by,
    };
    assert_eq!(
        shop.c.apply(0, decline.clone()),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        shop.c.apply(0, decline),
        Applied::Admin(ResultCode::Success),
        "declining again changes nothing"
    );
    assert_eq!(closed_with(&shop, "ws_CO_no"), ResultCode::Declined);

    let silent = prompt_request(&shop, "ws_CO_late", ksh(100));
    let expires_ms = silent.expires_ms;
    open(&mut shop, silent.clone());
    assert_eq!(
        customer_shard(&shop).next_prompt_expiry_ms(),
        Some(expires_ms)
    );
    shop.c.apply(
        0,
        Command::ExpireRequests {
            up_to_ms: expires_ms - 1,
        },
    );
    assert_eq!(
        customer_shard(&shop).prompt("ws_CO_late").unwrap().state,
        PromptState::Waiting
    );
    shop.c.apply(
        0,
        Command::ExpireRequests {
            up_to_ms: expires_ms,
        },
    );
    assert_eq!(closed_with(&shop, "ws_CO_late"), ResultCode::NoAnswer);
    // Paying an expired prompt is refused; the business was never paid.
    let late = payment(&shop, &silent, PinVerdict::Verified);
    assert!(matches!(
        shop.c.submit(late),
        Applied::TransferRefused {
            result: ResultCode::NotPermitted,
            ..
        }
    ));
    assert_eq!(shop.c.balance(&shop.business), Money::ZERO);

    let results: Vec<ResultCode> = customer_shard(&shop)
        .callbacks(0, 10)
        .map(|c| match c.event {
            CallbackEvent::PromptClosed { result, .. } => result,
            _ => panic!("not a prompt's callback"),
        })
        .collect();
    assert_eq!(
        results,
        [
            ResultCode::WrongPin,
            ResultCode::Declined,
            ResultCode::NoAnswer
        ]
    );
}

#[test]
fn one_prompt_waits_per_customer_and_bad_prompts_are_refused() {
    let mut shop = shop(0);
    let first = prompt_request(&shop, "ws_CO_a", ksh(100));
    open(&mut shop, first.clone());
    let second = prompt_request(&shop, "ws_CO_b", ksh(100));
    assert_eq!(
        open(&mut shop, second.clone()),
        Applied::Admin(ResultCode::CustomerBusy)
    );
    let mut changed = first.clone();
    changed.amount = ksh(5);
    assert_eq!(
        open(&mut shop, changed),
        Applied::Admin(ResultCode::IdempotencyConflict)
    );
    let AccountRef::Customer(by) = shop.customer else {
        unreachable!()
    };
    shop.c.apply(
        0,
        Command::DeclinePrompt {
            checkout_id: "ws_CO_a".into(),
            by,
        },
    );
    assert_eq!(
        open(&mut shop, second),
        Applied::Admin(ResultCode::Success),
        "the customer is free once the first closed"
    );

    let mut stranger = prompt_request(&shop, "ws_CO_c", ksh(100));
    stranger.customer = crate::msisdn::Msisdn::parse("254799999999").unwrap();
    let mut bad_id = prompt_request(&shop, "ws CO d", ksh(100));
    bad_id.customer = stranger.customer;
    let mut zero = prompt_request(&shop, "ws_CO_e", Money::ZERO);
    zero.customer = stranger.customer;
    let mut past = prompt_request(&shop, "ws_CO_f", ksh(1));
    past.expires_ms = shop.c.now;
    for (request, code) in [
        (stranger, ResultCode::UnknownAccount),
        (bad_id, ResultCode::NotPermitted),
        (zero, ResultCode::InvalidAmount),
    ] {
        let c = &mut shop.c;
        // Sent to the shard that would hold the customer (or shard 0).
        let shard = c.shard_of(&AccountRef::Customer(request.customer));
        let applied = c.apply(shard, Command::OpenPrompt(request));
        assert_eq!(applied, Applied::Admin(code));
    }
    // Busy beats a past expiry only after a prompt closed; close the second one first.
    shop.c.apply(
        0,
        Command::DeclinePrompt {
            checkout_id: "ws_CO_b".into(),
            by,
        },
    );
    assert_eq!(
        open(&mut shop, past),
        Applied::Admin(ResultCode::DeadlinePassed)
    );
}

#[test]
fn callbacks_are_kept_until_delivered_and_closed_prompts_retire() {
    let mut shop = shop(0);
    let request = prompt_request(&shop, "ws_CO_r", ksh(100));
    open(&mut shop, request.clone());
    shop.c
        .finish(payment(&shop, &request, PinVerdict::Verified));
    let seq = customer_shard(&shop).callbacks(0, 1).next().unwrap().seq;
    assert_eq!(customer_shard(&shop).callbacks(seq + 1, 10).count(), 0);
    shop.c.apply(
        0,
        Command::CallbacksDelivered {
            seqs: vec![seq, seq + 100],
        },
    );
    assert_eq!(customer_shard(&shop).callbacks_queued(), 0);

    let closed_at = shop.c.now;
    assert_eq!(customer_shard(&shop).oldest_retirable_ms(), Some(closed_at));
    shop.c.now += 1;
    let up_to_ms = shop.c.now;
    shop.c.apply(0, Command::Retire { up_to_ms });
    assert!(customer_shard(&shop).prompt("ws_CO_r").is_none());
    // Its receipt answered by the record until then; now the id is simply unknown.
    assert!(customer_shard(&shop).oldest_retirable_ms().is_none());
}
