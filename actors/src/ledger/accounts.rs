//! Opening accounts and changing their PIN or status.

use crate::account::AccountRef;
use crate::language::Language;
use crate::outcome::ResultCode;
use crate::pin::{PinHash, PinState};
use crate::roles::AccountKind;
use crate::transfer::PinVerdict;

use super::command::{Applied, OpenAccount};
use super::records::{Account, AccountExtras, AccountStatus, Balances, DailyUsage};
use super::ShardLedger;

/// Does the reference's form fit the kind of account being opened?
fn kind_fits(account: &AccountRef, kind: AccountKind) -> bool {
    matches!(
        (account, kind),
        (AccountRef::Customer(_), AccountKind::Customer)
            | (AccountRef::Agent(_), AccountKind::Agent)
            | (
                AccountRef::Business(_),
                AccountKind::Paybill | AccountKind::Till
            )
    )
}

/// Was `existing` opened by exactly this registration? PIN digests are salted, so a second
/// registration with the same details never matches — only a retry of the same request does.
fn same_registration(existing: &Account, open: &OpenAccount) -> bool {
    existing.kind == open.kind
        && existing.name == open.name
        && existing.id_number == open.id_number
        && existing.store_number() == open.store_number.as_deref()
        && existing.api_credentials() == open.api_credentials.as_ref()
        && existing.pin.as_ref().map(|p| &p.hash) == open.pin_hash.as_ref()
}

impl ShardLedger {
    pub(super) fn open_account(&mut self, open: &OpenAccount) -> ResultCode {
        let here = self.config.shard_map.shard_of(&open.account) == self.config.shard;
        let code = if !kind_fits(&open.account, open.kind) || !here {
            ResultCode::NotPermitted
        } else if let Some(existing) = self.state.accounts.get(&open.account) {
            // A retry of the very registration that opened it (same content, same salted PIN
            // digest) gets the same answer; anything else is a second registration.
            if same_registration(existing, open) {
                ResultCode::Success
            } else {
                ResultCode::AccountExists
            }
        } else {
            let extras =
                (open.store_number.is_some() || open.api_credentials.is_some()).then(|| {
                    Box::new(AccountExtras {
                        store_number: open.store_number.clone(),
                        commission_earned: crate::money::Money::ZERO,
                        api_credentials: open.api_credentials.clone(),
                        c2b_urls: None,
                        initiators: Vec::new(),
                        ..AccountExtras::default()
                    })
                });
            let account = Account {
                kind: open.kind,
                status: AccountStatus::Active,
                name: open.name.clone(),
                id_number: open.id_number.clone(),
                phone: open.phone.or_else(|| open.account.msisdn().copied()),
                pin: open.pin_hash.clone().map(PinState::new),
                balances: Balances::default(),
                daily: DailyUsage::default(),
                language: None,
                extras,
            };
            self.state.accounts.insert(open.account.clone(), account);
            ResultCode::Success
        };
        code
    }

    fn pin_of(&mut self, account: &AccountRef) -> Result<&mut PinState, ResultCode> {
        let record = self
            .state
            .accounts
            .get_mut(account)
            .ok_or(ResultCode::UnknownAccount)?;
        record.pin.as_mut().ok_or(ResultCode::NoPin)
    }

    /// Counts a PIN verdict: a success clears the failure count, the fifth failure locks.
    fn attempt(&mut self, account: &AccountRef, verdict: PinVerdict) -> ResultCode {
        match self.pin_of(account) {
            Err(code) => code,
            Ok(pin) if pin.locked => ResultCode::PinLocked,
            Ok(pin) if verdict == PinVerdict::Verified => {
                pin.record_success();
                ResultCode::Success
            }
            Ok(pin) => {
                if pin.record_failure() {
                    ResultCode::PinLocked
                } else {
                    ResultCode::WrongPin
                }
            }
        }
    }

    pub(super) fn pin_attempt(&mut self, account: &AccountRef, verdict: PinVerdict) -> Applied {
        Applied::Admin(self.attempt(account, verdict))
    }

    pub(super) fn change_pin(
        &mut self,
        account: &AccountRef,
        verdict: PinVerdict,
        new_hash: &PinHash,
    ) -> Applied {
        let code = self.attempt(account, verdict);
        if code.is_success() {
            if let Ok(pin) = self.pin_of(account) {
                pin.reset(new_hash.clone());
            }
        }
        Applied::Admin(code)
    }

    pub(super) fn unlock_pin(&mut self, account: &AccountRef) -> Applied {
        let code = match self.pin_of(account) {
            Err(code) => code,
            Ok(pin) => {
                pin.unlock();
                ResultCode::Success
            }
        };
        Applied::Admin(code)
    }

    pub(super) fn reset_pin(&mut self, account: &AccountRef, new_hash: &PinHash) -> Applied {
        let code = match self.state.accounts.get_mut(account) {
            None => ResultCode::UnknownAccount,
            Some(record) if record.kind == AccountKind::System => ResultCode::NotPermitted,
            Some(record) => {
                match record.pin.as_mut() {
                    Some(pin) => pin.reset(new_hash.clone()),
                    None => record.pin = Some(PinState::new(new_hash.clone())),
                }
                ResultCode::Success
            }
        };
        Applied::Admin(code)
    }

    pub(super) fn set_status(&mut self, account: &AccountRef, status: AccountStatus) -> Applied {
        let code = match self.state.accounts.get_mut(account) {
            None => ResultCode::UnknownAccount,
            Some(record) if record.kind == AccountKind::System => ResultCode::NotPermitted,
            Some(record) => {
                record.status = status;
                ResultCode::Success
            }
        };
        Applied::Admin(code)
    }

    pub(super) fn set_language(&mut self, account: &AccountRef, language: Language) -> Applied {
        let code = match self.state.accounts.get_mut(account) {
            None => ResultCode::UnknownAccount,
            Some(record) if record.kind == AccountKind::System => ResultCode::NotPermitted,
            Some(record) => {
                record.language = Some(language);
                ResultCode::Success
            }
        };
        Applied::Admin(code)
    }
}
