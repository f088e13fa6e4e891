//! A seed's world: the cluster's shape, the bank opened and funded through the API, then the
//! workload — transfers of every kind (some reusing another's id with other content, some
//! with a wrong PIN), business payout orders (`payouts.rs`), balance reads and status reads —
//! and the fault schedule.

use std::sync::Arc;

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::Command;
use tuma_actors::pin::{Pin, PinHasher, PinKey};
use tuma_actors::tariff::Tariffs;
use tuma_actors::transfer::{PinVerdict, TransferId};
use tuma_actors::ShardMap;
use tuma_cluster::engine::EngineConfig;
use tuma_cluster::membership::MetaOutcome;
use tuma_cluster::transport::NodeId;

use super::clients::{Answer, BalanceRead, StatusRead, TransferClient};
use super::config::NodesConfig;
use super::env::EPOCH_MS;
use super::faults::schedule_faults;
use super::node::SimNode;
use super::world::{CommandClient, Event, World};
use crate::sim::bank::Bank;
use crate::sim::rng::SimRng;

/// The PIN every simulated account has; wrong attempts type another.
pub const RIGHT_PIN: &str = "1234";
const WRONG_PIN: &str = "9999";

/// Where the seed is in its life.
#[derive(Debug, Default)]
pub(super) struct Setup {
    pub opens_left: usize,
    pub floats_left: usize,
    pub workload_started: bool,
}

/// The PIN hasher every simulated node shares (a keyed digest, verified in the actor).
pub fn sim_pin_hasher() -> PinHasher {
    PinHasher::fast_for_tests().keyed(
        PinKey::derive(b"tuma simulator pin key, not a secret"),
        true,
    )
}

/// Builds a seed's world with its initial members started.
pub(super) fn build(cfg: &NodesConfig, seed: u64, tariffs: Arc<Tariffs>) -> World {
    let mut rng = SimRng::new(seed);
    let single = rng.chance(cfg.single_node_per_mille);
    let nodes = if single {
        1
    } else {
        rng.range(cfg.nodes_min, cfg.nodes_max)
    };
    let shards = rng.range(cfg.shards_min, cfg.shards_max) as u32;
    let replicas = nodes.min(3) as usize;
    let map = ShardMap::new(shards).expect("validated shard count");
    let hasher = sim_pin_hasher();
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    let pin_hash = hasher
        .keyed_with_salt(&Pin::parse(RIGHT_PIN).expect("valid pin"), salt)
        .expect("a keyed hasher");
    let (bank, opens) = Bank::open(&mut rng, pin_hash);
    let members: std::collections::BTreeMap<NodeId, std::net::SocketAddr> =
        (1..=nodes).map(|n| (n, super::env::peer_addr(n))).collect();
    let mut template = EngineConfig::new(1, members, shards, replicas);
    template.tariffs = tariffs;
    template.pin_hasher = hasher;
    template.checkpoint_every_entries =
        rng.range(cfg.checkpoint_every_min, cfg.checkpoint_every_max);
    template.log_keep_entries = rng.range(2, 30);
    // A window of seconds, so every finished record retires to history before the run ends
    // (settling waits for it; late retries meet request_id_expired); the grace stays above the
    // longest wait (6 s) plus the clock bound.
    template.idempotency_window_ms = rng.range(1_000, 3_000);
    template.retire_grace_ms = 7_000;
    template.forward_timeout_ms = 3_000;
    template.snapshot_retry_ms = 2_000;
    // Snapshots stream in small chunks here, so every one spans many frames that drops,
    // partitions and crashes can cut.
    let streams = &mut template.snapshot_streams;
    streams.chunk_bytes = rng.range(64, 4_096) as usize;
    streams.window_chunks = rng.range(1, 8) as usize;
    streams.resend_ms = rng.range(100, 1_000);
    streams.give_up_ms = rng.range(3_000, 20_000);
    template.actor_idle_ms = 5_000;
    template.planted_fault = cfg.planted_fault;
    // Protocol timing differs per seed: short inquiry graces make a payee ask about a
    // transfer while its payer shard is still electing a leader.
    // A hair-trigger seed: deadlines of tens of milliseconds and payees that ask at once, so
    // inquiries meet payer shards in the middle of leadership changes.
    let hair_trigger = rng.chance(150);
    if hair_trigger {
        template.driver.resend_interval_ms = rng.range(10, 30);
        template.driver.inquiry_grace_ms = template.driver.resend_interval_ms;
    } else {
        template.driver.resend_interval_ms = rng.range(20, 200);
        template.driver.inquiry_grace_ms = rng.range(template.driver.resend_interval_ms, 1_500);
    }
    template.driver.propose_retry_ms = rng.range(100, 500);
    let shared = World::new_shared(seed);
    let mut world = World::assemble(
        cfg.clone(),
        rng,
        map,
        replicas,
        template,
        bank,
        Setup::default(),
        shared,
    );
    world.skew_ms_max = world.rng.range(0, cfg.skew_ms_max);
    world.hair_trigger = hair_trigger;
    world.drop_per_mille = world.rng.range(0, u64::from(cfg.drop_per_mille_max)) as u32;
    world.duplicate_per_mille = world.rng.range(0, u64::from(cfg.duplicate_per_mille_max)) as u32;
    world.delay_ms_max = world.rng.range(1, cfg.delay_ms_max);
    let every = world.template.checkpoint_every_entries;
    world.note(|| {
        format!("seed {seed}: {nodes} nodes, {shards} shards × {replicas} replicas, checkpoint every {every} entries")
    });
    for id in 1..=nodes {
        let skew = if single {
            0
        } else {
            world.rng.range(0, 2 * world.skew_ms_max) as i64 - world.skew_ms_max as i64
        };
        world.nodes.insert(id, SimNode::new(id, skew, true));
    }
    for id in 1..=nodes {
        world.start_node(id);
    }
    for account in bank_accounts(&world.bank) {
        let shard = world.map.shard_of(&account);
        world.recorder().watch(shard, account);
    }
    world.setup.opens_left = opens.len();
    for open in opens {
        let shard = world.map.shard_of(&open.account);
        world
            .commands
            .push(CommandClient::new(shard, Command::OpenAccount(open)));
        let i = world.commands.len() - 1;
        world.schedule(300, Event::Command(i));
    }
    world.hard_stop = 600_000;
    world
}

/// Every account of the bank.
pub fn bank_accounts(bank: &Bank) -> Vec<AccountRef> {
    bank.customers
        .iter()
        .chain(&bank.agents)
        .chain(&bank.paybills)
        .chain(&bank.tills)
        .cloned()
        .collect()
}

impl World {
    /// A registration was answered; once all are, the float goes out.
    pub(super) fn after_command(&mut self) {
        self.setup.opens_left = self.setup.opens_left.saturating_sub(1);
        if self.setup.opens_left > 0 || self.setup.floats_left > 0 || self.setup.workload_started {
            return;
        }
        let wall = EPOCH_MS + self.now();
        let floats = self.bank.funding(&mut self.rng, &self.map, wall + 600_000);
        self.setup.floats_left = floats.len();
        self.note(|| format!("accounts open; issuing {} floats", floats.len()));
        for request in floats {
            let mut client = TransferClient::new(request, String::new(), 600_000);
            client.setup = true;
            self.transfers.push(client);
            let i = self.transfers.len() - 1;
            self.schedule_in(0, Event::Transfer(i));
        }
    }

    /// A transfer was answered: setup progress, and sometimes a follow-up check.
    pub(super) fn after_answer(&mut self, i: usize) {
        if self.transfers[i].setup {
            self.setup.floats_left = self.setup.floats_left.saturating_sub(1);
            if self.setup.floats_left == 0 && !self.setup.workload_started {
                self.begin_workload();
            }
            return;
        }
        let confirmed =
            matches!(&self.transfers[i].answer, Some(Answer::Receipt(r)) if r.result.is_success());
        if confirmed && self.rng.chance(250) {
            // The status of a confirmed transfer, asked of any node: never "unknown".
            let started_at = self.now();
            self.status_reads.push(StatusRead {
                client: i,
                started_at,
                pending: None,
                result: None,
                attempts: 0,
            });
            let r = self.status_reads.len() - 1;
            let delay = self.rng.range(0, 2_000);
            self.status_reads[r].started_at = started_at + delay;
            self.schedule_in(delay, Event::Status(r));
        }
    }

    /// A cluster change was recorded: a joining node starts once the cluster knows it.
    pub(super) fn after_meta(&mut self, i: usize) {
        if let Some(MetaOutcome::Joined(id)) = self.metas[i].outcome {
            if !self.nodes.contains_key(&id) {
                let skew = self.rng.range(0, 2 * self.skew_ms_max) as i64 - self.skew_ms_max as i64;
                self.nodes.insert(id, SimNode::new(id, skew, false));
                self.start_node(id);
            }
        }
    }

    /// The bank is funded: transfers, reads and faults start now.
    fn begin_workload(&mut self) {
        self.setup.workload_started = true;
        let start = self.now();
        self.workload_end = start + self.cfg.workload_ms;
        self.hard_stop = self.workload_end + self.cfg.settle_ms;
        self.note(|| "bank funded; workload starts".to_string());
        for n in 0..self.cfg.transfers {
            let at = start + self.rng.range(0, self.cfg.workload_ms * 9 / 10);
            let wall = EPOCH_MS + at;
            let mut request = self.bank.random_transfer(&mut self.rng, n, wall);
            request.id = TransferId::parse(&format!("t{n}")).expect("id");
            if self.hair_trigger && self.rng.chance(500) {
                request.deadline_ms = wall + self.rng.range(30, 150);
            }
            let wait_ms = request.deadline_ms.saturating_sub(wall);
            let pin = match request.pin {
                PinVerdict::Wrong => WRONG_PIN.to_string(),
                _ => RIGHT_PIN.to_string(),
            };
            let payer_shard = self.map.shard_of(&request.from);
            self.recorder()
                .watch_transfer(payer_shard, request.id.clone());
            self.transfers
                .push(TransferClient::new(request, pin, wait_ms));
            let i = self.transfers.len() - 1;
            self.schedule(at, Event::Transfer(i));
            if self.rng.chance(40) {
                self.reuse_id(i, at);
            }
        }
        let reads = self.cfg.transfers / 3;
        let accounts = bank_accounts(&self.bank);
        for _ in 0..reads {
            let at = start + self.rng.range(0, self.cfg.workload_ms);
            let account = self.rng.pick(&accounts).clone();
            self.balance_reads.push(BalanceRead {
                account,
                started_at: at,
                pending: None,
                result: None,
                attempts: 0,
            });
            let i = self.balance_reads.len() - 1;
            self.schedule(at, Event::Balance(i));
        }
        self.schedule_payouts(start);
        self.schedule_audited_actions(start);
        self.schedule_intake_pauses(start);
        schedule_faults(self, start);
        self.schedule(self.workload_end, Event::Heal);
    }

    /// Another caller sends transfer `i`'s id with other content (another amount or payee),
    /// soon after or at the same time: it must be refused as a conflict, or win the id — and
    /// then the original is the one refused — but never get the other's receipt.
    fn reuse_id(&mut self, i: usize, at: u64) {
        let mut request = self.transfers[i].request.clone();
        let extra = tuma_actors::money::Money::from_shillings(self.rng.range(1, 50) as i64);
        request.amount = request.amount.checked_add(extra).unwrap_or(request.amount);
        request.pin = PinVerdict::Wrong;
        let mut client =
            TransferClient::new(request, WRONG_PIN.to_string(), self.transfers[i].wait_ms);
        client.reuses_id_of = Some(i);
        self.transfers.push(client);
        let j = self.transfers.len() - 1;
        let when = at + self.rng.range(0, 300);
        self.schedule(when, Event::Transfer(j));
    }
}
