//! The simulated bank: its accounts, their funding, and random transfers of every kind.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use tuma_actors::account::{AccountRef, AgentNumber, Shortcode, SystemAccount};
use tuma_actors::ledger::{OpenAccount, PayoutRequest};
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::{Pin, PinHash, PinHasher};
use tuma_actors::roles::{AccountKind, Role};
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use tuma_actors::ShardMap;

use super::rng::SimRng;

const CUSTOMERS: usize = 16;
const AGENTS: usize = 4;
const PAYBILLS: usize = 2;
const TILLS: usize = 2;

/// One real PIN hash shared by every account of the model simulator: verification happens at
/// the edge there, so it only needs a well-formed hash, and hashing per account would dominate a
/// run.
pub(super) fn shared_pin_hash() -> PinHash {
    static HASH: OnceLock<PinHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let pin = Pin::parse("1234").expect("valid pin");
        PinHasher::fast_for_tests().hash(&pin)
    })
    .clone()
}

/// The accounts of one seed.
#[derive(Clone, Debug)]
pub(super) struct Bank {
    pub customers: Vec<AccountRef>,
    pub agents: Vec<AccountRef>,
    pub paybills: Vec<AccountRef>,
    pub tills: Vec<AccountRef>,
}

impl Bank {
    /// Draws the bank's accounts and the entries that open them, every PIN stored as `pin_hash`.
    pub fn open(rng: &mut SimRng, pin_hash: PinHash) -> (Bank, Vec<OpenAccount>) {
        let mut phones = BTreeSet::new();
        while phones.len() < CUSTOMERS {
            phones.insert(format!("2547{:08}", rng.below(100_000_000)));
        }
        let customers: Vec<AccountRef> = phones
            .iter()
            .map(|p| AccountRef::Customer(Msisdn::parse(p).expect("generated msisdn")))
            .collect();
        let agents: Vec<AccountRef> = (0..AGENTS)
            .map(|i| {
                AccountRef::Agent(AgentNumber::parse(&format!("{}", 300_100 + i)).expect("agent"))
            })
            .collect();
        let business = |base: usize, n: usize| -> Vec<AccountRef> {
            (0..n)
                .map(|i| {
                    AccountRef::Business(
                        Shortcode::parse(&format!("{}", base + i)).expect("shortcode"),
                    )
                })
                .collect()
        };
        let paybills = business(888_880, PAYBILLS);
        let tills = business(500_500, TILLS);
        let mut opens = Vec::new();
        let mut open = |account: &AccountRef, kind: AccountKind, name: String| {
            opens.push(OpenAccount {
                account: account.clone(),
                kind,
                name,
                id_number: Some("12345678".to_string()),
                phone: account.msisdn().cloned(),
                store_number: None,
                pin_hash: Some(pin_hash.clone()),
                api_credentials: None,
            });
        };
        for (i, c) in customers.iter().enumerate() {
            open(c, AccountKind::Customer, format!("Customer {i}"));
        }
        for (i, a) in agents.iter().enumerate() {
            open(a, AccountKind::Agent, format!("Agent {i}"));
        }
        for (i, b) in paybills.iter().enumerate() {
            open(b, AccountKind::Paybill, format!("Utility {i}"));
        }
        for (i, t) in tills.iter().enumerate() {
            open(t, AccountKind::Till, format!("Shop {i}"));
        }
        (
            Bank {
                customers,
                agents,
                paybills,
                tills,
            },
            opens,
        )
    }

    /// Float issued to every account before the workload starts.
    pub fn funding(
        &self,
        rng: &mut SimRng,
        map: &ShardMap,
        deadline_ms: u64,
    ) -> Vec<TransferRequest> {
        let mut grants: Vec<(AccountRef, Money)> = Vec::new();
        for c in &self.customers {
            grants.push((
                c.clone(),
                Money::from_shillings(rng.range(1_000, 60_000) as i64),
            ));
        }
        for a in self.agents.iter().chain(&self.paybills).chain(&self.tills) {
            grants.push((
                a.clone(),
                Money::from_shillings(rng.range(100_000, 400_000) as i64),
            ));
        }
        grants
            .into_iter()
            .enumerate()
            .map(|(i, (to, amount))| TransferRequest {
                id: TransferId::parse(&format!("float-{i}")).expect("id"),
                kind: TransferKind::FloatIssue,
                from: AccountRef::System(SystemAccount::Issuer(map.shard_of(&to))),
                to,
                amount,
                account_reference: None,
                pin: PinVerdict::NotRequired,
                deadline_ms,
                initiator: Role::Operator,
                reverses: None,
            })
            .collect()
    }

    fn business(&self, rng: &mut SimRng) -> AccountRef {
        if rng.chance(500) {
            rng.pick(&self.paybills).clone()
        } else {
            rng.pick(&self.tills).clone()
        }
    }

    /// A random client transfer of any kind, sometimes deliberately bad.
    pub fn random_transfer(&self, rng: &mut SimRng, index: usize, now_ms: u64) -> TransferRequest {
        let kinds = [
            (TransferKind::SendMoney, 30),
            (TransferKind::CashIn, 10),
            (TransferKind::CashOut, 15),
            (TransferKind::PayBill, 12),
            (TransferKind::BuyGoods, 12),
            (TransferKind::BuyAirtime, 8),
            (TransferKind::BusinessToCustomer, 7),
            (TransferKind::BusinessToBusiness, 6),
        ];
        let mut roll = rng.below(100);
        let kind = kinds
            .iter()
            .find(|(_, weight)| {
                let hit = roll < *weight;
                roll = roll.saturating_sub(*weight);
                hit
            })
            .map_or(TransferKind::SendMoney, |(k, _)| *k);
        let customer = |rng: &mut SimRng| rng.pick(&self.customers).clone();
        let (from, to, initiator) = match kind {
            TransferKind::SendMoney => {
                let to = if rng.chance(20) {
                    AccountRef::Customer(
                        Msisdn::parse(&format!("2541{:08}", rng.below(100_000_000)))
                            .expect("msisdn"),
                    )
                } else {
                    customer(rng)
                };
                (customer(rng), to, Role::Customer)
            }
            TransferKind::CashIn => {
                let role = if rng.chance(300) {
                    Role::AgentAssistant
                } else {
                    Role::Agent
                };
                (rng.pick(&self.agents).clone(), customer(rng), role)
            }
            TransferKind::CashOut => (
                customer(rng),
                rng.pick(&self.agents).clone(),
                Role::Customer,
            ),
            TransferKind::PayBill => (
                customer(rng),
                rng.pick(&self.paybills).clone(),
                Role::Customer,
            ),
            TransferKind::BuyGoods => {
                (customer(rng), rng.pick(&self.tills).clone(), Role::Customer)
            }
            TransferKind::BuyAirtime => (customer(rng), customer(rng), Role::Customer),
            TransferKind::BusinessToCustomer => (self.business(rng), customer(rng), Role::Business),
            _ => (self.business(rng), self.business(rng), Role::Business),
        };
        let needs_pin = tuma_actors::roles::transfer_rule(kind).needs_pin;
        let pin = match (needs_pin, rng.chance(30)) {
            (false, _) => PinVerdict::NotRequired,
            (true, true) => PinVerdict::Wrong,
            (true, false) => PinVerdict::Verified,
        };
        let account_reference = match kind {
            TransferKind::PayBill if rng.chance(980) => Some(format!("ACC{}", rng.below(10_000))),
            _ => None,
        };
        let deadline_ms = if rng.chance(200) {
            now_ms + rng.range(20, 250)
        } else {
            now_ms + rng.range(1_000, 6_000)
        };
        TransferRequest {
            id: TransferId::parse(&format!("t{index}")).expect("id"),
            kind,
            from,
            to,
            amount: random_amount(rng),
            account_reference,
            pin,
            deadline_ms,
            initiator,
            reverses: None,
        }
    }
}

impl Bank {
    /// A random business payout order (B2C or B2B) under conversation id `AG_sim_{index}`,
    /// queued until `expires_ms`; its key is `originator_id`.
    pub fn random_payout(
        &self,
        rng: &mut SimRng,
        index: usize,
        originator_id: String,
        expires_ms: u64,
    ) -> PayoutRequest {
        let payer = self.business(rng);
        let (kind, to, command) = if rng.chance(700) {
            let to = rng.pick(&self.customers).clone();
            (TransferKind::BusinessToCustomer, to, "BusinessPayment")
        } else {
            let to = self.business(rng);
            (TransferKind::BusinessToBusiness, to, "BusinessBuyGoods")
        };
        let business = match payer {
            AccountRef::Business(shortcode) => shortcode,
            other => panic!("the bank's businesses are business accounts, not {other}"),
        };
        PayoutRequest {
            conversation_id: format!("AG_sim_{index}"),
            originator_id,
            business,
            kind,
            to,
            amount: random_amount(rng),
            account_reference: None,
            reverses: None,
            command: command.to_string(),
            remarks: "simulated".to_string(),
            occasion: String::new(),
            result_url: "http://127.0.0.1:9/result".to_string(),
            queue_timeout_url: "http://127.0.0.1:9/timeout".to_string(),
            expires_ms,
        }
    }
}

/// Amounts across every tariff band, a few beyond the limits, a few with cents.
fn random_amount(rng: &mut SimRng) -> Money {
    let shillings = match rng.below(100) {
        0..=24 => rng.range(1, 100),
        25..=64 => rng.range(101, 2_500),
        65..=89 => rng.range(2_501, 20_000),
        90..=97 => rng.range(20_001, 80_000),
        _ => rng.range(200_000, 260_000),
    } as i64;
    let cents = if rng.chance(100) {
        rng.below(100) as i64
    } else {
        0
    };
    Money::from_cents(shillings * 100 + cents)
}
