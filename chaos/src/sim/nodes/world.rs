//! The event loop: simulated time, the nodes, the network between them, the callers, and the
//! faults. One thread, one seed: the same seed gives the same run.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot::error::TryRecvError;
use tuma_actors::outcome::ResultCode;
use tuma_actors::ShardMap;
use tuma_cluster::engine::{ClientReply, ClientRequest, EngineConfig};
use tuma_cluster::transport::NodeId;
use tuma_cluster::wire::PeerFrame;

use super::clients::{
    BalanceRead, MetaClient, Next, Pending, StatusRead, TransferClient, ATTEMPTS_MAX,
};
use super::config::NodesConfig;
use super::env::{Links, EPOCH_MS};
use super::faults::Fault;
use super::node::{Shared, SimNode, StepResult};
use super::recorder::Recorder;
use super::setup::Setup;
use crate::sim::bank::Bank;
use crate::sim::rng::SimRng;

/// A caller re-sends an unanswered attempt after this long (as the HTTP layer does).
pub(super) const ATTEMPT_TIMEOUT_MS: u64 = 1_000;
/// Pause before a retry.
const RETRY_PAUSE_MS: (u64, u64) = (20, 200);
/// How often the world checks whether the healed cluster has settled.
const SETTLE_CHECK_MS: u64 = 250;

/// Everything that can happen.
#[derive(Debug)]
pub(super) enum Event {
    /// A node's timer is due.
    Wake(NodeId),
    /// Frames delivered at this instant are handed in; the node then steps once.
    Step(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        frame: Box<PeerFrame>,
    },
    Transfer(usize),
    Balance(usize),
    Status(usize),
    Meta(usize),
    Command(usize),
    /// An attempt got no answer in time.
    AttemptTimeout(Caller, u32),
    Fault(Fault),
    Heal,
    SettleCheck,
}

/// Who waits on a node's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Caller {
    Transfer(usize),
    Balance(usize),
    Status(usize),
    Meta(usize),
    Command(usize),
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

/// Counters for the report.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    pub frames: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub partitions: u64,
    pub faults: u64,
}

/// An admin or business command (an account's registration, a payout order) and its caller.
pub(super) struct CommandClient {
    pub shard: u32,
    pub command: tuma_actors::ledger::Command,
    pub pending: Option<Pending>,
    pub done: bool,
    /// The final answer's result code.
    pub result: Option<ResultCode>,
    pub attempts: u32,
    /// The payout order this command opens (an index into `World::payouts`), if it opens one.
    pub opens_payout: Option<usize>,
}

impl CommandClient {
    pub fn new(shard: u32, command: tuma_actors::ledger::Command) -> CommandClient {
        CommandClient {
            shard,
            command,
            pending: None,
            done: false,
            result: None,
            attempts: 0,
            opens_payout: None,
        }
    }
}

pub(super) struct World {
    pub cfg: NodesConfig,
    pub rng: SimRng,
    pub now: Arc<AtomicU64>,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    pub map: ShardMap,
    pub replicas: usize,
    pub template: EngineConfig,
    pub nodes: BTreeMap<NodeId, SimNode>,
    pub shared: Shared,
    pub bank: Bank,
    pub setup: Setup,
    pub transfers: Vec<TransferClient>,
    pub balance_reads: Vec<BalanceRead>,
    pub status_reads: Vec<StatusRead>,
    pub metas: Vec<MetaClient>,
    pub commands: Vec<CommandClient>,
    pub payouts: Vec<super::payouts::PayoutOrder>,
    /// Callers waiting on each node.
    waiting: BTreeMap<NodeId, BTreeSet<Caller>>,
    /// This seed's bound on clock skew.
    pub skew_ms_max: u64,
    /// Deadlines of tens of milliseconds and payees that inquire at once (some seeds).
    pub hair_trigger: bool,
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    pub delay_ms_max: u64,
    pub workload_end: u64,
    pub hard_stop: u64,
    pub healed: bool,
    pub settled_at: Option<u64>,
    pub finished: bool,
    pub violations: Vec<String>,
    /// Armed when a leader died while sending: whoever next wins one of these shards loses its
    /// outgoing links the moment it wins (`faults.rs`, `isolate_new_leader`).
    pub isolate_next_leader: Option<super::faults::IsolateNewLeader>,
    /// Armed by `Fault::CrashNextOfferSender`: the next node to send a payee an offer due soon
    /// dies in that step.
    pub crash_next_offer_sender: bool,
    /// Shards whose clock was found poisoned (reported once each).
    pub poisoned: BTreeSet<u32>,
    pub trace: Vec<String>,
    pub stats: Stats,
}

impl World {
    pub fn now(&self) -> u64 {
        self.now.load(AtomicOrdering::Relaxed)
    }

    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>7} {}", self.now(), line());
            self.trace.push(line);
        }
    }

    pub fn violation(&mut self, message: String) {
        self.note(|| format!("VIOLATION {message}"));
        if self.violations.len() < 50 {
            self.violations.push(message);
        }
    }

    pub fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    pub fn schedule_in(&mut self, delay_ms: u64, event: Event) {
        let at = self.now() + delay_ms;
        self.schedule(at, event);
    }

    /// Runs until the healed cluster settled and every check ran, or the hard stop.
    pub fn run(&mut self) {
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > self.hard_stop || self.finished {
                break;
            }
            self.now.store(next.at, AtomicOrdering::Relaxed);
            self.handle(next.event);
        }
        if !self.finished {
            self.finish_unsettled();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Wake(id) => {
                let due = self.nodes.get(&id).and_then(|n| n.next_wake);
                if due == Some(self.now()) {
                    self.nodes.get_mut(&id).expect("known").next_wake = None;
                    self.step_node(id);
                }
            }
            Event::Step(id) => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.step_at = None;
                }
                self.step_node(id);
            }
            Event::Deliver { from, to, frame } => self.deliver(from, to, *frame),
            Event::Transfer(i) => {
                let prefer = self.transfers[i].prefer.take();
                self.send_transfer(i, prefer)
            }
            Event::Balance(i) => self.send_balance(i),
            Event::Status(i) => self.send_status(i),
            Event::Meta(i) => self.send_meta(i),
            Event::Command(i) => self.send_command(i),
            Event::AttemptTimeout(caller, attempt) => self.attempt_timed_out(caller, attempt),
            Event::Fault(fault) => self.apply_fault(fault),
            Event::Heal => self.heal(),
            Event::SettleCheck => self.settle_check(),
        }
    }

    // ---- nodes -------------------------------------------------------------------------

    /// Hands a frame to its node, which steps once at this instant with everything that
    /// arrived.
    fn deliver(&mut self, from: NodeId, to: NodeId, frame: PeerFrame) {
        let now = self.now();
        let Some(node) = self.nodes.get_mut(&to) else {
            return;
        };
        let Some(running) = node.running.as_ref() else {
            self.stats.dropped += 1;
            return;
        };
        if node.paused {
            node.held.push((from, frame));
            return;
        }
        if !running.handle.peer(from, frame) {
            self.stats.dropped += 1;
        }
        if node.step_at != Some(now) {
            node.step_at = Some(now);
            self.schedule(now, Event::Step(to));
        }
    }

    /// Steps a node's engine, then sends what it sent, answers its callers and checks it.
    pub fn step_node(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.serves() {
            return;
        }
        self.stats.steps += 1;
        let result = node.step();
        match result {
            StepResult::Ok => {}
            StepResult::Fatal(error) => {
                let armed = self.nodes[&id].disk.fault_fired();
                if armed {
                    self.note(|| format!("node {id} died in the middle of a write ({error})"));
                } else {
                    self.violation(format!("node {id} stopped on a storage failure: {error}"));
                }
                self.crash_node(id);
                if armed {
                    let downtime = self.rng.range(100, 2_000);
                    self.schedule_in(downtime, Event::Fault(Fault::Restart(id)));
                }
                return;
            }
            StepResult::Panicked(message) => {
                self.violation(format!("node {id} panicked: {message}"));
                self.crash_node(id);
                self.finished = true;
                return;
            }
        }
        let (offer, worst) = self.sends_protocol(id);
        if self.crash_next_offer_sender && offer {
            self.crash_next_offer_sender = false;
            self.crash_while_sending(id, true);
            return;
        }
        if self.nodes[&id].crash_while_sending && worst {
            self.crash_while_sending(id, false);
            return;
        }
        self.send_outbox(id);
        self.poll_callers(id);
        self.check_node(id);
        self.isolate_new_leader(id);
        self.schedule_wake(id);
    }

    /// Whether the node's pending sends hold what a payer leader sends at the worst moments,
    /// together with Raft traffic: the offer of a transfer due within a second (the step that
    /// applied its prepare; first), or that or a commit decision (the step that applied it).
    fn sends_protocol(&self, id: NodeId) -> (bool, bool) {
        use tuma_actors::ledger::Decision;
        use tuma_actors::protocol::PeerMessage;
        let Some(running) = self.nodes[&id].running.as_ref() else {
            return (false, false);
        };
        let outbox = running.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let due_soon = EPOCH_MS + self.now() + 1_000;
        let raft = outbox
            .iter()
            .any(|(_, frame)| matches!(frame, PeerFrame::Raft { .. }));
        let (mut soon, mut commit) = (false, false);
        for (_, frame) in outbox.iter() {
            if let PeerFrame::Protocol(e) = frame {
                match &e.message {
                    PeerMessage::Credit(o) => soon |= o.deadline_ms <= due_soon,
                    PeerMessage::Decision { decision, .. } => {
                        commit |= *decision == Decision::Commit
                    }
                    _ => {}
                }
            }
        }
        (raft && soon, raft && (soon || commit))
    }

    /// The node dies while its frames leave: each reaches its peer or not (they go out on
    /// different connections), then the process is gone. With `offer_out_raft_lost` the
    /// money-protocol frames all get out and the Raft frames are all lost — the payee hears of
    /// an entry whose commitment the followers never hear of. If it led shards, whoever wins
    /// one next is cut off the moment it wins (`IsolateNewLeader`).
    fn crash_while_sending(&mut self, id: NodeId, offer_out_raft_lost: bool) {
        let node = self.nodes.get_mut(&id).expect("stepping");
        node.crash_while_sending = false;
        let frames = node.take_outbox();
        let mut sent = Vec::new();
        let mut story = Vec::new();
        for frame in frames {
            let out = match (offer_out_raft_lost, &frame.1) {
                (true, PeerFrame::Protocol(_)) => true,
                (true, PeerFrame::Raft { .. }) => false,
                _ => self.rng.chance(500),
            };
            if self.cfg.trace {
                let what = match &frame.1 {
                    PeerFrame::Protocol(e) => format!("{:?} to shard {}", e.message, e.to),
                    PeerFrame::Raft { shard, .. } => {
                        format!("raft of shard {shard} to node {}", frame.0)
                    }
                    _ => "other".into(),
                };
                story.push(format!("{what}: {}", if out { "out" } else { "lost" }));
            }
            if out {
                sent.push(frame);
            }
        }
        self.note(|| {
            format!(
                "node {id} crashed while sending ({} frames got out): {}",
                sent.len(),
                story.join("; ")
            )
        });
        if let Some(running) = self.nodes.get(&id).and_then(|n| n.running.as_ref()) {
            running
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(sent);
        }
        let led = self.shards_led_by(id);
        self.send_outbox(id);
        self.poll_callers(id);
        self.crash_node(id);
        if !led.is_empty() {
            let hold = self.rng.range(1_000, 4_000);
            self.isolate_next_leader = Some(super::faults::IsolateNewLeader {
                shards: led,
                hold,
                until: self.now() + 5_000,
            });
        }
        let downtime = self.rng.range(50, 2_500);
        self.schedule_in(downtime, Event::Fault(super::faults::Fault::Restart(id)));
    }

    fn schedule_wake(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(running) = node.running.as_ref() else {
            return;
        };
        let at = running
            .engine
            .next_timer_ms()
            .max(self.now.load(AtomicOrdering::Relaxed) + 1);
        if node.next_wake.is_none_or(|w| at < w) {
            node.next_wake = Some(at);
            self.schedule(at, Event::Wake(id));
        }
    }

    /// Puts a node's sent frames on the wire: each is lost, delayed (a few much longer, so
    /// they overtake one another) or duplicated by the seed's weather; cut links lose all.
    fn send_outbox(&mut self, from: NodeId) {
        let frames = match self.nodes.get_mut(&from) {
            Some(node) => node.take_outbox(),
            None => return,
        };
        for (to, frame) in frames {
            self.stats.frames += 1;
            let passes = self
                .shared
                .links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .passes(from, to);
            if !passes || self.rng.chance(self.drop_per_mille) {
                self.stats.dropped += 1;
                continue;
            }
            if self.rng.chance(self.duplicate_per_mille) {
                self.stats.duplicated += 1;
                let delay = self.delay();
                self.schedule_in(
                    delay,
                    Event::Deliver {
                        from,
                        to,
                        frame: Box::new(frame.clone()),
                    },
                );
            }
            let delay = self.delay();
            self.schedule_in(
                delay,
                Event::Deliver {
                    from,
                    to,
                    frame: Box::new(frame),
                },
            );
        }
    }

    fn delay(&mut self) -> u64 {
        let base = self.rng.range(1, self.delay_ms_max.max(1));
        if self.rng.chance(30) {
            base * 10
        } else {
            base
        }
    }

    /// Stops a node as `kill -9` would.
    pub fn crash_node(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.running.is_none() {
            return;
        }
        node.crash();
        self.stats.crashes += 1;
        self.shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .up
            .remove(&id);
        self.poll_callers(id);
    }

    /// Starts (or restarts) a node on its disk.
    pub fn start_node(&mut self, id: NodeId) {
        // An initial member restarts with the member list it was created with (as an
        // operator's unchanged flags give it); a joined node knows the current members.
        let initial = self.nodes.get(&id).is_some_and(|n| n.initial);
        let members: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.retired && (n.initial || !initial))
            .map(|(id, _)| *id)
            .collect();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.running.is_some() {
            return;
        }
        let restart = node.starts > 0;
        let started = node.start(&self.template, &members, &self.shared);
        match started {
            Ok(()) => {
                if restart {
                    self.stats.restarts += 1;
                }
                self.shared
                    .links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .up
                    .insert(id);
                self.note(|| format!("node {id} started"));
                self.step_node(id);
            }
            Err(error) => {
                self.violation(error);
                self.finished = true;
            }
        }
    }

    // ---- callers -----------------------------------------------------------------------

    /// A node callers may use: `preferred` if it serves, else a random serving node.
    fn pick_node(&mut self, preferred: Option<NodeId>) -> Option<NodeId> {
        if let Some(node) = preferred.filter(|n| self.nodes.get(n).is_some_and(|n| n.serves())) {
            return Some(node);
        }
        let serving: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.serves())
            .map(|(id, _)| *id)
            .collect();
        if serving.is_empty() {
            return None;
        }
        Some(*self.rng.pick(&serving))
    }

    /// Submits `request` for `caller` at a node; `None` when no node serves (retry later).
    fn submit(
        &mut self,
        caller: Caller,
        preferred: Option<NodeId>,
        request: ClientRequest,
    ) -> Option<Pending> {
        let node = self.pick_node(preferred)?;
        let handle = self.nodes[&node].running.as_ref()?.handle.clone();
        let reply = handle.submit(request).ok()?;
        self.waiting.entry(node).or_default().insert(caller);
        if self.nodes[&node].step_at != Some(self.now()) {
            self.nodes.get_mut(&node).expect("picked").step_at = Some(self.now());
            self.schedule_in(0, Event::Step(node));
        }
        Some(Pending { node, reply })
    }

    fn retry_later(&mut self, event: Event) {
        let pause = self.rng.range(RETRY_PAUSE_MS.0, RETRY_PAUSE_MS.1);
        self.schedule_in(pause, event);
    }

    pub fn send_transfer(&mut self, i: usize, preferred: Option<NodeId>) {
        let client = &self.transfers[i];
        if client.answer.is_some() || client.pending.is_some() {
            return;
        }
        if client.attempts >= ATTEMPTS_MAX {
            return;
        }
        let request = ClientRequest::Transfer {
            request: client.request.clone(),
            pin: Some(client.pin.clone()),
        };
        match self.submit(Caller::Transfer(i), preferred, request) {
            Some(pending) => {
                let id = self.transfers[i].request.id.clone();
                let node = pending.node;
                self.note(|| format!("[{id}] sent to node {node}"));
                let client = &mut self.transfers[i];
                client.attempts += 1;
                let attempt = client.attempts;
                client.pending = Some(pending);
                self.schedule_in(
                    ATTEMPT_TIMEOUT_MS,
                    Event::AttemptTimeout(Caller::Transfer(i), attempt),
                );
            }
            None => self.retry_later(Event::Transfer(i)),
        }
    }

    pub fn send_balance(&mut self, i: usize) {
        let read = &self.balance_reads[i];
        if read.result.is_some() || read.pending.is_some() || read.attempts >= ATTEMPTS_MAX {
            return;
        }
        let request = ClientRequest::Account {
            account: read.account.clone(),
        };
        match self.submit(Caller::Balance(i), None, request) {
            Some(pending) => {
                let read = &mut self.balance_reads[i];
                read.attempts += 1;
                let attempt = read.attempts;
                read.pending = Some(pending);
                self.schedule_in(
                    ATTEMPT_TIMEOUT_MS,
                    Event::AttemptTimeout(Caller::Balance(i), attempt),
                );
            }
            None => self.retry_later(Event::Balance(i)),
        }
    }

    pub fn send_status(&mut self, i: usize) {
        let read = &self.status_reads[i];
        if read.result.is_some() || read.pending.is_some() || read.attempts >= ATTEMPTS_MAX {
            return;
        }
        let request = &self.transfers[read.client].request;
        let request = ClientRequest::TransferStatus {
            shard: self.map.shard_of(&request.from),
            id: request.id.clone(),
            payer: Some(request.from.clone()),
        };
        match self.submit(Caller::Status(i), None, request) {
            Some(pending) => {
                let read = &mut self.status_reads[i];
                read.attempts += 1;
                let attempt = read.attempts;
                read.pending = Some(pending);
                self.schedule_in(
                    ATTEMPT_TIMEOUT_MS,
                    Event::AttemptTimeout(Caller::Status(i), attempt),
                );
            }
            None => self.retry_later(Event::Status(i)),
        }
    }

    pub fn send_meta(&mut self, i: usize) {
        let meta = &self.metas[i];
        if meta.outcome.is_some() || meta.pending.is_some() || meta.attempts >= ATTEMPTS_MAX {
            return;
        }
        let request = ClientRequest::Meta {
            command: meta.command.clone(),
        };
        match self.submit(Caller::Meta(i), None, request) {
            Some(pending) => {
                let meta = &mut self.metas[i];
                meta.attempts += 1;
                let attempt = meta.attempts;
                meta.pending = Some(pending);
                self.schedule_in(
                    ATTEMPT_TIMEOUT_MS,
                    Event::AttemptTimeout(Caller::Meta(i), attempt),
                );
            }
            None => self.retry_later(Event::Meta(i)),
        }
    }

    pub fn send_command(&mut self, i: usize) {
        let command = &self.commands[i];
        if command.done || command.pending.is_some() || command.attempts >= ATTEMPTS_MAX {
            return;
        }
        let request = ClientRequest::Command {
            shard: command.shard,
            command: command.command.clone(),
        };
        match self.submit(Caller::Command(i), None, request) {
            Some(pending) => {
                let command = &mut self.commands[i];
                command.attempts += 1;
                let attempt = command.attempts;
                command.pending = Some(pending);
                self.schedule_in(
                    ATTEMPT_TIMEOUT_MS,
                    Event::AttemptTimeout(Caller::Command(i), attempt),
                );
            }
            None => self.retry_later(Event::Command(i)),
        }
    }

    fn pending_of(&mut self, caller: Caller) -> &mut Option<Pending> {
        match caller {
            Caller::Transfer(i) => &mut self.transfers[i].pending,
            Caller::Balance(i) => &mut self.balance_reads[i].pending,
            Caller::Status(i) => &mut self.status_reads[i].pending,
            Caller::Meta(i) => &mut self.metas[i].pending,
            Caller::Command(i) => &mut self.commands[i].pending,
        }
    }

    fn attempts_of(&self, caller: Caller) -> u32 {
        match caller {
            Caller::Transfer(i) => self.transfers[i].attempts,
            Caller::Balance(i) => self.balance_reads[i].attempts,
            Caller::Status(i) => self.status_reads[i].attempts,
            Caller::Meta(i) => self.metas[i].attempts,
            Caller::Command(i) => self.commands[i].attempts,
        }
    }

    fn attempt_timed_out(&mut self, caller: Caller, attempt: u32) {
        if self.attempts_of(caller) != attempt {
            return;
        }
        let Some(pending) = self.pending_of(caller).take() else {
            return;
        };
        if let Some(waiting) = self.waiting.get_mut(&pending.node) {
            waiting.remove(&caller);
        }
        self.on_reply(caller, ClientReply::Ambiguous("no answer in time".into()));
    }

    /// Collects the answers a node gave its callers (or their loss, if it crashed).
    fn poll_callers(&mut self, node: NodeId) {
        let Some(callers) = self.waiting.remove(&node) else {
            return;
        };
        let mut still = BTreeSet::new();
        for caller in callers {
            let Some(pending) = self.pending_of(caller).as_mut() else {
                continue;
            };
            let reply = match pending.reply.try_recv() {
                Ok(reply) => reply,
                Err(TryRecvError::Empty) => {
                    still.insert(caller);
                    continue;
                }
                Err(TryRecvError::Closed) => {
                    ClientReply::Ambiguous("the node dropped the request".into())
                }
            };
            *self.pending_of(caller) = None;
            self.on_reply(caller, reply);
        }
        if !still.is_empty() {
            self.waiting.entry(node).or_default().extend(still);
        }
    }

    fn on_reply(&mut self, caller: Caller, reply: ClientReply) {
        if let Caller::Transfer(i) = caller {
            let id = self.transfers[i].request.id.clone();
            let attempt = self.transfers[i].attempts;
            self.note(|| format!("[{id}] attempt {attempt}: {}", reply.describe()));
        }
        match caller {
            Caller::Transfer(i) => match TransferClient::judge(reply) {
                Next::Final(answer) => {
                    let at = self.now();
                    let client = &mut self.transfers[i];
                    client.answered_at = Some(at);
                    let id = client.request.id.clone();
                    self.note(|| format!("[{id}] answered {answer:?}"));
                    self.transfers[i].answer = Some(answer);
                    self.after_answer(i);
                }
                Next::Retry(leader) => {
                    let pause = self.rng.range(RETRY_PAUSE_MS.0, RETRY_PAUSE_MS.1);
                    self.retry_transfer(i, leader, pause);
                }
            },
            Caller::Balance(i) => match reply {
                ClientReply::Account(account) => {
                    let balance = account.map_or(0, |a| a.balances.balance().cents());
                    self.balance_reads[i].result = Some((balance, self.now()));
                }
                _ => self.retry_later(Event::Balance(i)),
            },
            Caller::Status(i) => match reply {
                ClientReply::NotLeader { .. }
                | ClientReply::Unavailable(_)
                | ClientReply::Ambiguous(_) => self.retry_later(Event::Status(i)),
                other => self.status_reads[i].result = Some(other),
            },
            Caller::Meta(i) => match reply {
                ClientReply::Meta(outcome) => {
                    let command = self.metas[i].command.clone();
                    self.note(|| format!("cluster change {command:?}: {outcome:?}"));
                    self.metas[i].outcome = Some(outcome);
                    self.after_meta(i);
                }
                _ => self.retry_later(Event::Meta(i)),
            },
            Caller::Command(i) => match reply {
                ClientReply::Done(code) | ClientReply::Refused(code) => {
                    self.command_answered(i, code)
                }
                ClientReply::DoneMany(_) => self.command_answered(i, ResultCode::Success),
                _ => self.retry_later(Event::Command(i)),
            },
        }
    }

    fn command_answered(&mut self, i: usize, code: ResultCode) {
        let command = &mut self.commands[i];
        command.done = true;
        command.result = Some(code);
        match command.opens_payout {
            Some(order) => self.payout_opened(order, code),
            None => self.after_command(),
        }
    }

    /// Retries a transfer after a pause: at the leader a node named (most of the time), else
    /// anywhere.
    fn retry_transfer(&mut self, i: usize, leader: Option<NodeId>, pause: u64) {
        let to_leader = leader.is_some() && self.rng.chance(700);
        self.transfers[i].prefer = if to_leader { leader } else { None };
        self.schedule_in(pause, Event::Transfer(i));
    }

    /// Sends every frame a paused node received once it resumes.
    pub fn release_held(&mut self, id: NodeId) {
        let held = match self.nodes.get_mut(&id) {
            Some(node) => std::mem::take(&mut node.held),
            None => return,
        };
        for (from, frame) in held {
            self.deliver(from, id, frame);
        }
        self.step_node(id);
    }

    pub fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.shared
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.shared.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn new_shared(seed: u64) -> Shared {
        Shared {
            now_ms: Arc::new(AtomicU64::new(0)),
            links: Arc::new(Mutex::new(Links::default())),
            recorder: Arc::new(Mutex::new(Recorder::default())),
            seed,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        cfg: NodesConfig,
        rng: SimRng,
        map: ShardMap,
        replicas: usize,
        template: EngineConfig,
        bank: Bank,
        setup: Setup,
        shared: Shared,
    ) -> World {
        World {
            now: shared.now_ms.clone(),
            cfg,
            rng,
            seq: 0,
            queue: BinaryHeap::new(),
            map,
            replicas,
            template,
            nodes: BTreeMap::new(),
            shared,
            bank,
            setup,
            transfers: Vec::new(),
            balance_reads: Vec::new(),
            status_reads: Vec::new(),
            metas: Vec::new(),
            commands: Vec::new(),
            payouts: Vec::new(),
            waiting: BTreeMap::new(),
            skew_ms_max: 0,
            hair_trigger: false,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_ms_max: 1,
            workload_end: u64::MAX,
            hard_stop: u64::MAX,
            healed: false,
            settled_at: None,
            finished: false,
            violations: Vec::new(),
            isolate_next_leader: None,
            crash_next_offer_sender: false,
            poisoned: BTreeSet::new(),
            trace: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn schedule_settle_check(&mut self) {
        self.schedule_in(SETTLE_CHECK_MS, Event::SettleCheck);
    }
}
