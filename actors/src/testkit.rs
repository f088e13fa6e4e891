//! Test harness: several shard ledgers with their drivers over a perfect, synchronous network.
//! Tests hold messages back (or drop them) to drive the protocol through its branches.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use crate::account::{AccountRef, AgentNumber, ShardId, Shortcode, SystemAccount};
use crate::ledger::{Applied, Command, Entry, LedgerConfig, OpenAccount, Receipt, ShardLedger};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::pin::{Pin, PinHash, PinHasher};
use crate::protocol::{DriverConfig, Envelope, ShardDriver};
use crate::roles::{AccountKind, Role};
use crate::tariff::Tariffs;
use crate::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use crate::ShardMap;

/// 2026-11-27 08:00 EAT.
pub const T0: u64 = 1_795_755_600_000;

pub fn pin_hash() -> PinHash {
    static HASH: OnceLock<PinHash> = OnceLock::new();
    HASH.get_or_init(|| PinHasher::fast_for_tests().hash(&Pin::parse("1234").unwrap()))
        .clone()
}

pub fn ksh(shillings: i64) -> Money {
    Money::from_shillings(shillings)
}

pub struct Cluster {
    pub map: ShardMap,
    pub ledgers: Vec<ShardLedger>,
    pub drivers: Vec<ShardDriver>,
    pub now: u64,
    /// Messages sent and not yet delivered.
    pub in_flight: VecDeque<Envelope>,
    next_id: u64,
}

impl Cluster {
    pub fn new(shards: u32) -> Cluster {
        Cluster::with_tariffs(shards, Tariffs::kenya_default(), |_| {})
    }

    pub fn with_tariffs(
        shards: u32,
        tariffs: Tariffs,
        tune: impl Fn(&mut LedgerConfig),
    ) -> Cluster {
        let map = ShardMap::new(shards).unwrap();
        let tariffs = Arc::new(tariffs);
        let ledgers = (0..shards)
            .map(|s| {
                let mut config = LedgerConfig::new(s, map, tariffs.clone());
                tune(&mut config);
                ShardLedger::new(config)
            })
            .collect();
        let drivers = (0..shards)
            .map(|s| ShardDriver::new(s, DriverConfig::default()))
            .collect();
        Cluster {
            map,
            ledgers,
            drivers,
            now: T0,
            in_flight: VecDeque::new(),
            next_id: 0,
        }
    }

    /// A customer MSISDN that lands on `shard`.
    pub fn customer_on(&self, shard: ShardId, salt: u32) -> AccountRef {
        (0..)
            .map(|n: u32| {
                AccountRef::Customer(
                    Msisdn::parse(&format!(
                        "2547{:08}",
                        (u64::from(salt) * 10_000 + u64::from(n)) % 100_000_000
                    ))
                    .unwrap(),
                )
            })
            .find(|a| self.map.shard_of(a) == shard)
            .unwrap()
    }

    pub fn agent_on(&self, shard: ShardId) -> AccountRef {
        (100_000..)
            .map(|n: u32| AccountRef::Agent(AgentNumber::parse(&n.to_string()).unwrap()))
            .find(|a| self.map.shard_of(a) == shard)
            .unwrap()
    }

    pub fn business_on(&self, shard: ShardId, base: u32) -> AccountRef {
        (base..)
            .map(|n: u32| AccountRef::Business(Shortcode::parse(&n.to_string()).unwrap()))
            .find(|a| self.map.shard_of(a) == shard)
            .unwrap()
    }

    pub fn shard_of(&self, account: &AccountRef) -> usize {
        self.map.shard_of(account) as usize
    }

    pub fn apply(&mut self, shard: usize, command: Command) -> Applied {
        let entry = Entry {
            timestamp_ms: self.now,
            command,
        };
        let applied = self.ledgers[shard].apply(&entry);
        let effects = self.drivers[shard].on_applied(&self.ledgers[shard], &applied, self.now);
        self.run_effects(shard, effects);
        applied
    }

    pub fn run_effects(&mut self, shard: usize, effects: crate::protocol::Effects) {
        for command in effects.propose {
            self.apply(shard, command);
        }
        self.in_flight.extend(effects.send);
        // One ledger per shard and no other leader: an absence is confirmed at once.
        for (id, from) in effects.confirm_absent {
            let more = self.drivers[shard].answer_confirmed_inquiry(
                &self.ledgers[shard],
                &id,
                from,
                self.now,
            );
            self.run_effects(shard, more);
        }
    }

    /// Opens an account with a PIN (customers and agents) and returns it.
    pub fn open(&mut self, account: &AccountRef, kind: AccountKind) -> AccountRef {
        let open = OpenAccount {
            account: account.clone(),
            kind,
            name: format!("{} holder", kind.name()),
            id_number: None,
            phone: account.msisdn().cloned(),
            store_number: None,
            pin_hash: Some(pin_hash()),
            api_credentials: None,
        };
        let shard = self.shard_of(account);
        assert_eq!(
            self.apply(shard, Command::OpenAccount(open)),
            Applied::Admin(crate::ResultCode::Success)
        );
        account.clone()
    }

    pub fn fund(&mut self, account: &AccountRef, amount: Money) {
        let shard = self.shard_of(account);
        let mut request = self.request(
            TransferKind::FloatIssue,
            &AccountRef::System(SystemAccount::Issuer(shard as u32)),
            account,
            amount,
        );
        request.initiator = Role::Operator;
        request.pin = PinVerdict::NotRequired;
        let receipt = self.finish(request);
        assert!(receipt.result.is_success(), "funding failed: {receipt:?}");
    }

    /// A request with a fresh id, a verified PIN, the kind's usual initiator, a 10 s deadline.
    pub fn request(
        &mut self,
        kind: TransferKind,
        from: &AccountRef,
        to: &AccountRef,
        amount: Money,
    ) -> TransferRequest {
        self.next_id += 1;
        let initiator = crate::roles::transfer_rule(kind).initiators[0];
        TransferRequest {
            id: TransferId::parse(&format!("req-{}", self.next_id)).unwrap(),
            kind,
            from: from.clone(),
            to: to.clone(),
            amount,
            account_reference: (kind == TransferKind::PayBill).then(|| "INV-1".to_string()),
            pin: if crate::roles::transfer_rule(kind).needs_pin {
                PinVerdict::Verified
            } else {
                PinVerdict::NotRequired
            },
            deadline_ms: self.now + 10_000,
            initiator,
            reverses: None,
        }
    }

    /// Submits a transfer on its payer shard (no delivery of messages).
    pub fn submit(&mut self, request: TransferRequest) -> Applied {
        let shard = self.shard_of(&request.from);
        self.apply(shard, Command::Transfer(request))
    }

    /// Delivers every message until the network is quiet.
    pub fn deliver_all(&mut self) {
        let mut budget = 10_000;
        while let Some(envelope) = self.in_flight.pop_front() {
            budget -= 1;
            assert!(budget > 0, "protocol does not quiesce");
            let to = envelope.to as usize;
            let effects = self.drivers[to].on_message(&self.ledgers[to], &envelope, self.now);
            self.run_effects(to, effects);
        }
    }

    /// Ticks every driver at the current time.
    pub fn tick(&mut self) {
        for shard in 0..self.ledgers.len() {
            let effects = self.drivers[shard].on_tick(&self.ledgers[shard], self.now);
            self.run_effects(shard, effects);
        }
    }

    /// Submits and runs the protocol to the end; returns the payer's receipt.
    pub fn finish(&mut self, request: TransferRequest) -> Receipt {
        let id = request.id.clone();
        let shard = self.shard_of(&request.from);
        if let Applied::TransferFinished(receipt) = self.submit(request) {
            if self.ledgers[shard].outgoing(&id).is_none() {
                return receipt; // refused without a record: the answer is all there is
            }
        }
        self.deliver_all();
        self.ledgers[shard].receipt(&id).expect("transfer decided")
    }

    pub fn balance(&self, account: &AccountRef) -> Money {
        self.ledgers[self.shard_of(account)]
            .account(account)
            .unwrap()
            .balances
            .balance()
    }

    /// Σ clearing and Σ balances over the cluster, after auditing every shard.
    pub fn totals(&self) -> (i64, i64) {
        self.ledgers.iter().fold((0, 0), |(clearing, sum), l| {
            let audit = l.audit().expect("audit");
            (
                clearing + audit.clearing.cents(),
                sum + audit.balance_sum.cents(),
            )
        })
    }
}
