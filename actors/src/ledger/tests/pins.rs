//! PIN lockout, unlock, reset and change, as replicated state.

use crate::ledger::{Applied, Command};
use crate::outcome::ResultCode;
use crate::pin::{Pin, PinHasher, PIN_MAX_ATTEMPTS};
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind};

#[test]
fn five_wrong_pins_lock_until_care_unlocks() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(1_000));
    let attempt = |c: &mut Cluster, verdict| {
        let mut r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
        r.pin = verdict;
        c.finish(r).result
    };
    for _ in 1..PIN_MAX_ATTEMPTS {
        assert_eq!(attempt(&mut c, PinVerdict::Wrong), ResultCode::WrongPin);
    }
    assert_eq!(attempt(&mut c, PinVerdict::Wrong), ResultCode::PinLocked);
    assert_eq!(attempt(&mut c, PinVerdict::Verified), ResultCode::PinLocked);
    assert_eq!(c.balance(&bob), ksh(0));
    assert_eq!(
        c.apply(
            0,
            Command::UnlockPin {
                account: alice.clone()
            }
        ),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(attempt(&mut c, PinVerdict::Verified), ResultCode::Success);
    // A success resets the count: four more wrong tries do not lock.
    for _ in 1..PIN_MAX_ATTEMPTS {
        assert_eq!(attempt(&mut c, PinVerdict::Wrong), ResultCode::WrongPin);
    }
    assert_eq!(attempt(&mut c, PinVerdict::Verified), ResultCode::Success);
}

#[test]
fn wrong_pins_on_reads_count_toward_lockout() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let attempt = |c: &mut Cluster, verdict| {
        c.apply(
            0,
            Command::PinAttempt {
                account: alice.clone(),
                verdict,
            },
        )
    };
    assert_eq!(
        attempt(&mut c, PinVerdict::Verified),
        Applied::Admin(ResultCode::Success)
    );
    for _ in 1..PIN_MAX_ATTEMPTS {
        assert_eq!(
            attempt(&mut c, PinVerdict::Wrong),
            Applied::Admin(ResultCode::WrongPin)
        );
    }
    assert_eq!(
        attempt(&mut c, PinVerdict::Wrong),
        Applied::Admin(ResultCode::PinLocked)
    );
    assert_eq!(
        attempt(&mut c, PinVerdict::Verified),
        Applied::Admin(ResultCode::PinLocked)
    );
}

#[test]
fn care_reset_and_own_change() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let hasher = PinHasher::fast_for_tests();
    let start_pin = hasher.hash(&Pin::parse("4321").unwrap());
    for _ in 0..PIN_MAX_ATTEMPTS {
        c.apply(
            0,
            Command::ChangePin {
                account: alice.clone(),
                verdict: PinVerdict::Wrong,
                new_hash: start_pin.clone(),
            },
        );
    }
    let state = c.ledgers[0].account(&alice).unwrap().pin.clone().unwrap();
    assert!(state.locked);
    let locked = c.apply(
        0,
        Command::ChangePin {
            account: alice.clone(),
            verdict: PinVerdict::Verified,
            new_hash: start_pin.clone(),
        },
    );
    assert_eq!(locked, Applied::Admin(ResultCode::PinLocked));
    assert_eq!(
        c.apply(
            0,
            Command::ResetPin {
                account: alice.clone(),
                new_hash: start_pin.clone()
            }
        ),
        Applied::Admin(ResultCode::Success)
    );
    let state = c.ledgers[0].account(&alice).unwrap().pin.clone().unwrap();
    assert!(!state.locked && state.failed_attempts == 0);
    assert_eq!(
        hasher.verify(&state.hash, &Pin::parse("4321").unwrap()),
        Ok(true)
    );
    let new_pin = hasher.hash(&Pin::parse("9999").unwrap());
    let changed = c.apply(
        0,
        Command::ChangePin {
            account: alice.clone(),
            verdict: PinVerdict::Verified,
            new_hash: new_pin,
        },
    );
    assert_eq!(changed, Applied::Admin(ResultCode::Success));
    let state = c.ledgers[0].account(&alice).unwrap().pin.clone().unwrap();
    assert_eq!(
        hasher.verify(&state.hash, &Pin::parse("9999").unwrap()),
        Ok(true)
    );
    let missing = crate::testkit::Cluster::new(1).customer_on(0, 9);
    assert_eq!(
        c.apply(0, Command::UnlockPin { account: missing }),
        Applied::Admin(ResultCode::UnknownAccount)
    );
}

#[test]
fn a_holder_sets_a_language_and_system_or_missing_accounts_cannot() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let swahili = crate::language::Language::parse("sw").unwrap();
    let set = |account: &crate::account::AccountRef| Command::SetLanguage {
        account: account.clone(),
        language: swahili,
    };
    assert_eq!(c.ledgers[0].account(&alice).unwrap().language, None);
    assert_eq!(c.apply(0, set(&alice)), Applied::Admin(ResultCode::Success));
    assert_eq!(
        c.ledgers[0].account(&alice).unwrap().language,
        Some(swahili)
    );
    let missing = c.customer_on(0, 99);
    assert_eq!(
        c.apply(0, set(&missing)),
        Applied::Admin(ResultCode::UnknownAccount)
    );
    let system = crate::account::AccountRef::System(crate::account::SystemAccount::Fees(0));
    assert_eq!(
        c.apply(0, set(&system)),
        Applied::Admin(ResultCode::NotPermitted)
    );
}
