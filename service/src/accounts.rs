//! Accounts: registration (one, or thousands in a bulk import), reads, PIN checks and care's
//! PIN unlock and reset, balance and statement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{Account, Balances, Command, OpenAccount};
use tuma_actors::outcome::ResultCode;
use tuma_actors::pin::{Pin, PinHash};
use tuma_actors::transfer::PinVerdict;
use tuma_cluster::engine::{ClientReply, ClientRequest, StatementLine};

use crate::transfers::READ_DEADLINE;
use crate::{Repeat, Service, ServiceError};

/// Changes to accounts give up after this long.
const CHANGE_DEADLINE: Duration = Duration::from_secs(15);
/// A bulk import gives up after this long.
const BULK_DEADLINE: Duration = Duration::from_secs(60);

/// What became of one account of a bulk registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOutcome {
    Opened,
    /// The same account was already open (with this content or another).
    Existed,
    Refused(ResultCode),
    /// Its shard did not answer in time: it may or may not be open; importing again is safe.
    NotRecorded(String),
}

impl Service {
    /// Opens an account. Opening the same account again with the same content succeeds
    /// again; with other content it is refused (`AccountExists`).
    pub async fn open_account(&self, open: OpenAccount) -> Result<(), ServiceError> {
        let account = open.account.clone();
        self.change(&account, Command::OpenAccount(open)).await
    }

    /// Opens many accounts: grouped by shard, one log entry per shard, every shard at once.
    /// Answers one outcome per account, in order.
    pub async fn open_accounts(&self, opens: Vec<OpenAccount>) -> Vec<RowOutcome> {
        let map = self.handle().shard_map();
        let mut outcomes = vec![RowOutcome::NotRecorded("not sent".into()); opens.len()];
        let mut by_shard: BTreeMap<u32, Vec<(usize, OpenAccount)>> = BTreeMap::new();
        for (row, open) in opens.into_iter().enumerate() {
            by_shard
                .entry(map.shard_of(&open.account))
                .or_default()
                .push((row, open));
        }
        let deadline = Instant::now() + BULK_DEADLINE;
        let calls = by_shard.into_iter().map(|(shard, rows)| async move {
            let (numbers, opens): (Vec<usize>, Vec<OpenAccount>) = rows.into_iter().unzip();
            let command = Command::OpenAccounts(opens);
            let (reply, _) = self
                .calls
                .call(ClientRequest::Command { shard, command }, deadline)
                .await;
            (numbers, reply)
        });
        for (numbers, reply) in futures::future::join_all(calls).await {
            match reply {
                ClientReply::DoneMany(codes) if codes.len() == numbers.len() => {
                    for (row, code) in numbers.into_iter().zip(codes) {
                        outcomes[row] = match code {
                            ResultCode::Success => RowOutcome::Opened,
                            ResultCode::AccountExists => RowOutcome::Existed,
                            other => RowOutcome::Refused(other),
                        };
                    }
                }
                other => {
                    for row in numbers {
                        outcomes[row] = RowOutcome::NotRecorded(other.describe());
                    }
                }
            }
        }
        outcomes
    }

    /// The account as its shard's leader holds it now (a linearizable read).
    pub async fn account(&self, account: &AccountRef) -> Result<Option<Account>, ServiceError> {
        let request = ClientRequest::Account {
            account: account.clone(),
        };
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::Account(found) => Ok(found.map(|a| *a)),
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// Checks `pin` against the account's PIN and records the attempt (a wrong one counts
    /// toward the lockout; the attempt is sent at most once).
    pub async fn authenticate(&self, account: &AccountRef, pin: Pin) -> Result<(), ServiceError> {
        let deadline = Instant::now() + READ_DEADLINE;
        let verdict = self.verdict_for(account, pin).await?;
        let command = Command::PinAttempt {
            account: account.clone(),
            verdict,
        };
        self.once(account, command, deadline).await
    }

    /// Applies a command that records a PIN attempt on the account's shard, sent at most once
    /// (a repeat would count the attempt twice).
    async fn once(
        &self,
        account: &AccountRef,
        command: Command,
        deadline: Instant,
    ) -> Result<(), ServiceError> {
        let shard = self.handle().shard_map().shard_of(account);
        let request = ClientRequest::Command { shard, command };
        match self
            .calls
            .call_with(request, deadline, Repeat::AtMostOnce)
            .await
            .0
        {
            ClientReply::Done(ResultCode::Success) => Ok(()),
            ClientReply::Done(code) => Err(ServiceError::Refused(code)),
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// Whether `pin` is the account's PIN (an account without one has no right PIN).
    async fn verdict_for(
        &self,
        account: &AccountRef,
        pin: Pin,
    ) -> Result<PinVerdict, ServiceError> {
        let hash = self
            .account(account)
            .await?
            .ok_or(ServiceError::Refused(ResultCode::UnknownAccount))?
            .pin
            .map(|p| p.hash);
        match hash {
            Some(hash) => self.verdict(hash, pin).await,
            None => Ok(PinVerdict::Wrong),
        }
    }

    async fn verdict(&self, hash: PinHash, pin: Pin) -> Result<PinVerdict, ServiceError> {
        match self.pins.verify(hash, pin).await {
            Ok(true) => Ok(PinVerdict::Verified),
            Ok(false) => Ok(PinVerdict::Wrong),
            Err(error) => {
                tracing::error!(%error, "cannot verify a PIN: check --pin-key-file on every node");
                Err(ServiceError::Unavailable(format!(
                    "this node cannot verify the PIN: {error}"
                )))
            }
        }
    }

    /// The account's balances, for its holder (PIN checked first).
    pub async fn balance(&self, account: &AccountRef, pin: Pin) -> Result<Balances, ServiceError> {
        self.authenticate(account, pin).await?;
        self.account(account)
            .await?
            .map(|a| a.balances)
            .ok_or(ServiceError::Refused(ResultCode::UnknownAccount))
    }

    /// A page of the account's statement, for its holder (PIN checked first): committed
    /// transfers numbered below `before` (from the newest, if `None`), newest first, at most
    /// `limit`.
    pub async fn statement(
        &self,
        account: &AccountRef,
        pin: Pin,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<StatementLine>, ServiceError> {
        self.authenticate(account, pin).await?;
        self.statement_page(account, limit, before).await
    }

    /// A page of any account's statement, for care (no PIN: the caller is staff).
    pub async fn statement_page(
        &self,
        account: &AccountRef,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<StatementLine>, ServiceError> {
        let request = ClientRequest::Statement {
            account: account.clone(),
            limit,
            before,
        };
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::Statement(lines) => Ok(lines),
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// Care unlocks a PIN locked by wrong attempts.
    pub async fn unlock_pin(&self, account: &AccountRef) -> Result<(), ServiceError> {
        let command = Command::UnlockPin {
            account: account.clone(),
        };
        self.change(account, command).await
    }

    /// Care sets a new PIN (and unlocks it).
    pub async fn reset_pin(&self, account: &AccountRef, pin: Pin) -> Result<(), ServiceError> {
        let new_hash = self
            .pins
            .hash(pin)
            .await
            .ok_or_else(|| ServiceError::Unavailable("PIN hashing failed".into()))?;
        let command = Command::ResetPin {
            account: account.clone(),
            new_hash,
        };
        self.change(account, command).await
    }

    /// The holder changes their PIN: one entry carries the old PIN's verdict and the new
    /// PIN's hash, so a wrong old PIN counts toward the lockout and changes nothing, and the
    /// change is sent at most once.
    pub async fn change_pin(
        &self,
        account: &AccountRef,
        old: Pin,
        new: Pin,
    ) -> Result<(), ServiceError> {
        let deadline = Instant::now() + READ_DEADLINE;
        let verdict = self.verdict_for(account, old).await?;
        let new_hash = self
            .pins
            .hash(new)
            .await
            .ok_or_else(|| ServiceError::Unavailable("PIN hashing failed".into()))?;
        let command = Command::ChangePin {
            account: account.clone(),
            verdict,
            new_hash,
        };
        self.once(account, command, deadline).await
    }

    /// The holder picks the language their menus are shown in.
    pub async fn set_language(
        &self,
        account: &AccountRef,
        language: tuma_actors::language::Language,
    ) -> Result<(), ServiceError> {
        let command = Command::SetLanguage {
            account: account.clone(),
            language,
        };
        self.change(account, command).await
    }

    /// Applies an account change on the account's shard.
    async fn change(&self, account: &AccountRef, command: Command) -> Result<(), ServiceError> {
        let shard = self.handle().shard_map().shard_of(account);
        self.command(shard, command).await
    }

    /// Applies a command on `shard` (retried across leader changes: commands sent this way
    /// are idempotent).
    pub(crate) async fn command(&self, shard: u32, command: Command) -> Result<(), ServiceError> {
        let request = ClientRequest::Command { shard, command };
        match self
            .calls
            .call(request, Instant::now() + CHANGE_DEADLINE)
            .await
            .0
        {
            ClientReply::Done(code) if code.is_success() => Ok(()),
            ClientReply::Done(code) => Err(ServiceError::Refused(code)),
            other => Err(ServiceError::no_answer("no leader answered", &other)),
        }
    }
}
