//! The event loop: simulated time, network, shard logs, leaders, clients and faults.
//! `leader.rs` is what a shard leader does with requests, entries, messages and ticks;
//! `client.rs` is what a client does, and the checks on what clients were told.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use tuma_actors::account::ShardId;
use tuma_actors::ledger::{
    Applied, Command, Entry, LedgerConfig, OutgoingState, Receipt, ShardLedger,
};
use tuma_actors::outcome::ResultCode;
use tuma_actors::protocol::{Envelope, ShardDriver};
use tuma_actors::tariff::Tariffs;
use tuma_actors::transfer::{TransferId, TransferRequest};
use tuma_actors::ShardMap;

use super::super::bank::Bank;
use super::super::rng::SimRng;
use super::checker::Checker;
use super::config::SimConfig;

mod client;
mod leader;

/// Simulated time starts at 2026-11-27 08:00 EAT.
pub(super) const EPOCH_MS: u64 = 1_795_755_600_000;
/// Clients stop retrying this long after a transfer's deadline.
const CLIENT_PATIENCE_MS: u64 = 2_000;

/// What a client hears back.
#[derive(Clone, Debug)]
enum ClientReply {
    Final(Receipt),
    Refused(ResultCode),
}

#[derive(Debug)]
enum Event {
    /// A client (re)sends transfer `n`.
    Submit(usize),
    /// Transfer `n`'s request reaches its payer shard's leader.
    Request(usize),
    Reply(usize, ClientReply),
    Peer(Envelope),
    Apply {
        shard: ShardId,
        epoch: u64,
        entry: Entry,
    },
    /// The leader of `shard` (in `epoch`) has applied everything proposed before an inquiry
    /// about a transfer it had no record of (the model's ReadIndex): it answers now.
    ConfirmedInquiry {
        shard: ShardId,
        epoch: u64,
        id: tuma_actors::transfer::TransferId,
        from: ShardId,
    },
    Tick(ShardId),
    Crash(ShardId),
    Restart(ShardId),
    Cut(usize),
    Heal(usize),
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One client transfer and what its client has heard.
pub(super) struct Client {
    pub request: TransferRequest,
    pub payer_shard: ShardId,
    pub answer: Option<ResultCode>,
    receipt: Option<Receipt>,
    give_up_at: u64,
    pub payer_resolved_at: Option<u64>,
    pub payee_resolved_at: Option<u64>,
}

struct SimShard {
    ledger: ShardLedger,
    /// The leader's volatile driver; `None` while the shard has no leader.
    driver: Option<ShardDriver>,
    epoch: u64,
    clock_offset_ms: i64,
    last_apply_at: u64,
    /// Transfers whose clients wait on this leader (volatile).
    waiting: BTreeSet<TransferId>,
}

/// Counters for the report.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub crashes: u64,
    pub partitions: u64,
    pub messages: u64,
    pub dropped: u64,
    pub entries: u64,
    pub lost_entries: u64,
}

pub(super) struct World<'c> {
    cfg: &'c SimConfig,
    rng: SimRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    shards: Vec<SimShard>,
    map: ShardMap,
    bank: Bank,
    drop_per_mille: u32,
    duplicate_per_mille: u32,
    partitions: Vec<Vec<(ShardId, ShardId)>>,
    /// [start, end] of every crash and partition, for the liveness bound.
    fault_windows: Vec<(u64, u64)>,
    cut: BTreeMap<(ShardId, ShardId), u32>,
    pub clients: Vec<Client>,
    client_index: HashMap<TransferId, usize>,
    workload_end: u64,
    quiet_after: u64,
    hard_stop: u64,
    done: bool,
    pub checker: Checker,
    pub trace: Vec<String>,
    pub stats: Stats,
}

impl<'c> World<'c> {
    /// Builds the seed's world: shards, bank, funding, workload and fault schedule.
    pub fn new(cfg: &'c SimConfig, seed: u64, tariffs: Arc<Tariffs>) -> World<'c> {
        let mut rng = SimRng::new(seed);
        let shard_count = rng.range(u64::from(cfg.shards_min), u64::from(cfg.shards_max)) as u32;
        let map = ShardMap::new(shard_count).expect("validated shard count");
        let skew = cfg.skew_ms_max as i64;
        let shards = (0..shard_count)
            .map(|shard| {
                let mut config = LedgerConfig::new(shard, map, tariffs.clone());
                config.planted_fault = cfg.planted_fault;
                SimShard {
                    ledger: ShardLedger::new(config),
                    driver: Some(ShardDriver::new(shard, cfg.driver.clone())),
                    epoch: 0,
                    clock_offset_ms: rng.range(0, 2 * skew as u64) as i64 - skew,
                    last_apply_at: EPOCH_MS,
                    waiting: BTreeSet::new(),
                }
            })
            .collect();
        let (bank, opens) = Bank::open(&mut rng, super::super::bank::shared_pin_hash());
        let drop_per_mille = rng.range(0, u64::from(cfg.drop_per_mille_max)) as u32;
        let duplicate_per_mille = rng.range(0, u64::from(cfg.duplicate_per_mille_max)) as u32;
        let workload_end = EPOCH_MS + cfg.workload_ms;
        let fault_end = workload_end + cfg.downtime_ms_max.max(cfg.partition_ms_max);
        let mut world = World {
            cfg,
            rng,
            now: EPOCH_MS,
            seq: 0,
            queue: BinaryHeap::new(),
            shards,
            map,
            bank,
            drop_per_mille,
            duplicate_per_mille,
            partitions: Vec::new(),
            fault_windows: Vec::new(),
            cut: BTreeMap::new(),
            clients: Vec::new(),
            client_index: HashMap::new(),
            workload_end,
            quiet_after: fault_end + 6_000 + CLIENT_PATIENCE_MS + 1_000,
            hard_stop: fault_end + 6_000 + cfg.grace_ms + 10_000,
            done: false,
            checker: Checker::new(seed),
            trace: Vec::new(),
            stats: Stats::default(),
        };
        world.setup(opens);
        world
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let text = line();
            self.trace
                .push(format!("{:>8} {text}", self.now - EPOCH_MS));
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn setup(&mut self, opens: Vec<tuma_actors::ledger::OpenAccount>) {
        for open in opens {
            let shard = self.map.shard_of(&open.account) as usize;
            let entry = Entry {
                timestamp_ms: EPOCH_MS,
                command: Command::OpenAccount(open),
            };
            let applied = self.shards[shard].ledger.apply(&entry);
            assert_eq!(
                applied,
                Applied::Admin(ResultCode::Success),
                "opening a simulated account"
            );
        }
        let funding = self
            .bank
            .funding(&mut self.rng, &self.map, EPOCH_MS + 1_000);
        for request in funding {
            let shard = self.map.shard_of(&request.to) as usize;
            let entry = Entry {
                timestamp_ms: EPOCH_MS,
                command: Command::Transfer(request),
            };
            match self.shards[shard].ledger.apply(&entry) {
                Applied::TransferFinished(r) if r.result.is_success() => {}
                other => panic!("funding a simulated account failed: {other:?}"),
            }
        }
        for shard in 0..self.shards.len() as ShardId {
            let at = EPOCH_MS + self.rng.below(self.cfg.tick_ms);
            self.schedule(at, Event::Tick(shard));
        }
        for index in 0..self.cfg.transfers {
            let at = EPOCH_MS + 100 + self.rng.below(self.cfg.workload_ms);
            let request = self.bank.random_transfer(&mut self.rng, index, at);
            let client = self.add_client(request);
            self.schedule(at, Event::Submit(client));
        }
        self.schedule_faults();
    }

    fn schedule_faults(&mut self) {
        let shard_count = self.shards.len() as u64;
        for _ in 0..self.cfg.crashes {
            let at = EPOCH_MS + self.rng.below(self.cfg.workload_ms);
            let shard = self.rng.below(shard_count) as ShardId;
            self.schedule(at, Event::Crash(shard));
        }
        // Partitions get disjoint time slots: a fault schedule with no bound on how long a link
        // stays cut would make "resolved within deadline plus grace" unprovable.
        let slot = self.cfg.workload_ms / u64::from(self.cfg.partitions.max(1));
        for index in 0..self.cfg.partitions as usize {
            let length = self
                .rng
                .range(100, self.cfg.partition_ms_max.min(slot).max(100));
            let at =
                EPOCH_MS + slot * index as u64 + self.rng.below(slot.saturating_sub(length).max(1));
            let victim = self.rng.below(shard_count) as ShardId;
            let one_way = self.rng.chance(300);
            let mut links = Vec::new();
            for other in 0..shard_count as ShardId {
                if other != victim {
                    links.push((victim, other));
                    if !one_way {
                        links.push((other, victim));
                    }
                }
            }
            self.partitions.push(links);
            self.fault_windows.push((at, at + length));
            self.schedule(at, Event::Cut(index));
            self.schedule(at + length, Event::Heal(index));
        }
    }

    fn add_client(&mut self, request: TransferRequest) -> usize {
        let index = self.clients.len();
        self.client_index.insert(request.id.clone(), index);
        self.clients.push(Client {
            payer_shard: self.map.shard_of(&request.from),
            give_up_at: request.deadline_ms + CLIENT_PATIENCE_MS,
            request,
            answer: None,
            receipt: None,
            payer_resolved_at: None,
            payee_resolved_at: None,
        });
        index
    }

    fn leader_now(&self, shard: ShardId) -> u64 {
        (self.now as i64 + self.shards[shard as usize].clock_offset_ms) as u64
    }

    fn delay(&mut self) -> u64 {
        let max = self.cfg.delay_ms_max.max(1);
        if self.rng.chance(50) {
            self.rng.range(max, max * 10)
        } else {
            self.rng.range(1, max)
        }
    }

    /// Runs to quiescence (or the hard stop), then the final checks.
    pub fn run(&mut self) {
        while let Some(Reverse(next)) = self.queue.pop() {
            self.now = next.at;
            self.handle(next.event);
            if self.done || self.now > self.hard_stop || !self.checker.violations.is_empty() {
                break;
            }
        }
        if self.checker.violations.is_empty() {
            let ledgers: Vec<ShardLedger> = self.shards.iter().map(|s| s.ledger.clone()).collect();
            self.checker.final_checks(&ledgers);
            self.check_clients();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Submit(n) => self.submit(n),
            Event::Request(n) => self.request(n),
            Event::Reply(n, reply) => self.reply(n, reply),
            Event::Peer(envelope) => self.deliver(envelope),
            Event::Apply {
                shard,
                epoch,
                entry,
            } => self.apply(shard, epoch, entry),
            Event::ConfirmedInquiry {
                shard,
                epoch,
                id,
                from,
            } => self.answer_confirmed_inquiry(shard, epoch, id, from),
            Event::Tick(shard) => self.tick(shard),
            Event::Crash(shard) => self.crash(shard),
            Event::Restart(shard) => self.restart(shard),
            Event::Cut(index) => {
                self.stats.partitions += 1;
                for link in self.partitions[index].clone() {
                    *self.cut.entry(link).or_default() += 1;
                }
                self.note(|| format!("partition {index} cut"));
            }
            Event::Heal(index) => {
                for link in self.partitions[index].clone() {
                    if let Some(count) = self.cut.get_mut(&link) {
                        *count -= 1;
                        if *count == 0 {
                            self.cut.remove(&link);
                        }
                    }
                }
                self.note(|| format!("partition {index} healed"));
            }
        }
    }
}

impl World<'_> {
    /// The payer shard's record state of a client's transfer.
    pub(super) fn payer_state(&self, client: &Client) -> Option<OutgoingState> {
        self.shards[client.payer_shard as usize]
            .ledger
            .outgoing(&client.request.id)
            .map(|r| r.state.clone())
    }
}

impl World<'_> {
    /// When a transfer with deadline `from` must be resolved by: the end of the first stretch of
    /// `grace` ms at or after `from` with no crash or partition in progress. Liveness is owed
    /// only once the faults stop for long enough.
    pub(super) fn liveness_bound(&self, from: u64, grace: u64) -> u64 {
        let mut t = from;
        loop {
            let covering = self
                .fault_windows
                .iter()
                .filter(|(start, end)| *start <= t && t < *end)
                .map(|(_, end)| *end)
                .max();
            if let Some(end) = covering {
                t = end;
                continue;
            }
            let next_start = self
                .fault_windows
                .iter()
                .map(|(start, _)| *start)
                .filter(|&start| start > t)
                .min();
            match next_start {
                Some(start) if start - t < grace => t = start,
                _ => return t + grace,
            }
        }
    }
}
