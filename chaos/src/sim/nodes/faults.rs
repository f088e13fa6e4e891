//! The seed's fault schedule and how each fault is applied and healed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tuma_cluster::membership::MetaCommand;
use tuma_cluster::storage::WriteFault;
use tuma_cluster::transport::NodeId;

use super::clients::MetaClient;
use super::env::peer_addr;
use super::world::{Event, World};

#[derive(Debug, Clone)]
pub(super) enum Fault {
    /// `kill -9`: the engine is dropped; back after a while.
    Crash(NodeId, u64),
    /// The node dies in the middle of its next step that sends a money-protocol message:
    /// some of that step's frames get out, some do not.
    CrashWhileSending(NodeId),
    /// The next payer leader to send an offer due soon dies in that step: the offer gets out,
    /// its Raft frames (the commit index its followers would learn) do not.
    CrashNextOfferSender,
    /// The busiest leader goes quiet and dies: its outgoing links fail first (what it commits
    /// now, its followers never hear committed), then it crashes; back after a while.
    CrashLeaderQuietly(u64),
    /// The node dies in the middle of one of its next writes, losing that batch (or tearing
    /// it: the record is cut at recovery).
    CrashMidWrite(NodeId, WriteFault),
    Restart(NodeId),
    /// SIGSTOP: frames wait, timers stand still; SIGCONT after a while.
    Pause(NodeId, u64),
    /// The node leading the most shards is paused: the others elect new leaders and move on,
    /// and it wakes up to a queue of frames, still believing it leads.
    PauseBusiestLeader(u64),
    Resume(NodeId),
    /// Frames over these links are lost, for a while.
    Cut(Vec<(NodeId, NodeId)>, u64),
    Mend(Vec<(NodeId, NodeId)>),
    /// The node's wall clock jumps by this much (NTP gone wrong), for a while.
    ClockJump(NodeId, i64, u64),
    ClockBack(NodeId),
    /// SIGTERM: leaderships handed away, then a clean stop; back after a while.
    Leave(NodeId, u64),
    Stop(NodeId, u64),
    /// A new node joins through any member; sometimes it is drained again soon after (the
    /// moves towards it are then cancelled).
    Join {
        drain_after_ms: Option<u64>,
    },
    /// The operator removes a member (live or dead).
    Drain(NodeId),
}

/// A leader that died while sending left committed entries its followers may not know are
/// committed; the node that wins one of its shards next is cut off (its outgoing links fail)
/// the moment it wins, before its first entry commits, for `hold` ms — so it leads, for a
/// while, a log it has not applied, and everything it answers then is judged. Disarmed after
/// `until` if nobody won.
#[derive(Debug, Clone)]
pub(super) struct IsolateNewLeader {
    pub shards: std::collections::BTreeSet<u32>,
    pub hold: u64,
    pub until: u64,
}

/// Draws the seed's faults within the workload window.
pub(super) fn schedule_faults(world: &mut World, start: u64) {
    let single = world.nodes.len() == 1;
    let window = world.cfg.workload_ms * 8 / 10;
    for _ in 0..world.cfg.faults {
        let at = start + world.rng.range(0, window);
        let fault = if single {
            draw_single(world)
        } else {
            draw(world)
        };
        if let Some(fault) = fault {
            world.stats.faults += 1;
            world.schedule(at, Event::Fault(fault));
        }
    }
}

fn any_node(world: &mut World) -> NodeId {
    let ids: Vec<NodeId> = world.nodes.keys().copied().collect();
    *world.rng.pick(&ids)
}

fn draw_single(world: &mut World) -> Option<Fault> {
    let node = any_node(world);
    Some(match world.rng.below(3) {
        0 => Fault::Crash(node, world.rng.range(100, 2_000)),
        1 => Fault::CrashMidWrite(
            node,
            if world.rng.chance(500) {
                WriteFault::Torn
            } else {
                WriteFault::CrashBeforeDurable
            },
        ),
        _ => Fault::Leave(node, world.rng.range(100, 1_500)),
    })
}

fn draw(world: &mut World) -> Option<Fault> {
    let node = any_node(world);
    let roll = world.rng.below(100);
    let hold = world.rng.range(300, 3_500);
    Some(match roll {
        0..=4 => Fault::Crash(node, hold),
        5..=9 => Fault::CrashWhileSending(node),
        10..=16 => Fault::CrashNextOfferSender,
        17..=19 => Fault::CrashLeaderQuietly(hold),
        20..=29 => Fault::CrashMidWrite(
            node,
            if world.rng.chance(500) {
                WriteFault::Torn
            } else {
                WriteFault::CrashBeforeDurable
            },
        ),
        30..=34 => Fault::Pause(node, hold),
        35..=39 => Fault::PauseBusiestLeader(hold),
        40..=54 => {
            let others: Vec<NodeId> = world.nodes.keys().copied().filter(|n| *n != node).collect();
            let links = others
                .iter()
                .flat_map(|o| [(node, *o), (*o, node)])
                .collect();
            Fault::Cut(links, hold)
        }
        55..=61 => {
            let other = any_node(world);
            if other == node {
                return None;
            }
            Fault::Cut(vec![(node, other)], hold)
        }
        62..=71 => {
            let jump = world
                .rng
                .range(60_000, world.cfg.clock_jump_ms_max.max(60_000))
                as i64;
            let jump = if world.rng.chance(500) { jump } else { -jump };
            Fault::ClockJump(node, jump, hold)
        }
        72..=81 => Fault::Leave(node, world.rng.range(100, 1_500)),
        82..=93 => Fault::Join {
            drain_after_ms: world.rng.chance(600).then(|| world.rng.range(100, 2_500)),
        },
        _ => Fault::Drain(node),
    })
}

impl World {
    pub(super) fn apply_fault(&mut self, fault: Fault) {
        if self.healed && !matches!(fault, Fault::Restart(_)) {
            return;
        }
        self.note(|| format!("fault {fault:?}"));
        match fault {
            Fault::Crash(id, down) => {
                if self.nodes.get(&id).is_some_and(|n| n.is_up()) {
                    self.crash_node(id);
                    self.schedule_in(down, Event::Fault(Fault::Restart(id)));
                }
            }
            Fault::CrashLeaderQuietly(down) => {
                let Some((id, followers)) = self.busiest_leader() else {
                    return;
                };
                // Only its followers stop hearing it: other shards' leaders still get its
                // offers and decisions, so a payee may hold a transfer the followers do not
                // know committed.
                let links: Vec<(NodeId, NodeId)> = followers.iter().map(|f| (id, *f)).collect();
                self.links().cut.extend(links.iter().copied());
                let quiet = self.rng.range(50, 400);
                self.schedule_in(quiet, Event::Fault(Fault::Crash(id, down)));
                self.schedule_in(quiet + 1, Event::Fault(Fault::Mend(links)));
                if self.rng.chance(500) {
                    // Around the election that follows, one survivor drops out for a while.
                    let &survivor = self.rng.pick(&followers);
                    let cut: Vec<(NodeId, NodeId)> = self
                        .nodes
                        .keys()
                        .filter(|n| **n != survivor)
                        .flat_map(|n| [(survivor, *n), (*n, survivor)])
                        .collect();
                    let at = quiet + self.rng.range(900, 2_200);
                    let hold = self.rng.range(500, 2_500);
                    self.schedule_in(at, Event::Fault(Fault::Cut(cut, hold)));
                }
            }
            Fault::CrashWhileSending(id) => {
                if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.is_up()) {
                    node.crash_while_sending = true;
                }
            }
            Fault::CrashNextOfferSender => self.crash_next_offer_sender = true,
            Fault::CrashMidWrite(id, how) => {
                if let Some(node) = self.nodes.get(&id).filter(|n| n.is_up()) {
                    let writes = self.rng.range(1, 4);
                    node.disk.arm(writes, how);
                }
            }
            Fault::Restart(id) => {
                let retired = self.nodes.get(&id).is_none_or(|n| n.retired);
                if !retired {
                    self.start_node(id);
                }
            }
            Fault::Pause(id, hold) => {
                if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.serves()) {
                    node.paused = true;
                    self.schedule_in(hold, Event::Fault(Fault::Resume(id)));
                }
            }
            Fault::PauseBusiestLeader(hold) => {
                if let Some((id, _)) = self.busiest_leader() {
                    self.apply_fault(Fault::Pause(id, hold));
                }
            }
            Fault::Resume(id) => self.resume(id),
            Fault::Cut(links, hold) => {
                self.stats.partitions += 1;
                self.links().cut.extend(links.iter().copied());
                self.schedule_in(hold, Event::Fault(Fault::Mend(links)));
            }
            Fault::Mend(links) => {
                let mut state = self.links();
                for link in links {
                    state.cut.remove(&link);
                }
            }
            Fault::ClockJump(id, jump, hold) => {
                // One clock off at a time: a majority of wrong clocks that agree with one
                // another is indistinguishable from the truth.
                let jumped = self
                    .nodes
                    .values()
                    .any(|n| n.offset_ms.load(Ordering::Relaxed) != n.skew_ms);
                if jumped {
                    return;
                }
                if let Some(node) = self.nodes.get(&id) {
                    node.offset_ms.fetch_add(jump, Ordering::Relaxed);
                    self.schedule_in(hold, Event::Fault(Fault::ClockBack(id)));
                }
            }
            Fault::ClockBack(id) => {
                if let Some(node) = self.nodes.get(&id) {
                    node.offset_ms.store(node.skew_ms, Ordering::Relaxed);
                }
            }
            Fault::Leave(id, down) => {
                self.resume(id);
                let handle = self
                    .nodes
                    .get(&id)
                    .and_then(|n| n.running.as_ref())
                    .map(|r| r.handle.clone());
                if let Some(handle) = handle {
                    let _ = handle.begin_leave(Duration::from_millis(2_000));
                    self.step_node(id);
                    // The stop follows once leaderships moved (the node binary waits ≤ 10 s).
                    self.schedule_in(1_000, Event::Fault(Fault::Stop(id, down)));
                }
            }
            Fault::Stop(id, down) => {
                self.resume(id);
                let handle = self
                    .nodes
                    .get(&id)
                    .and_then(|n| n.running.as_ref())
                    .map(|r| r.handle.clone());
                if let Some(handle) = handle {
                    handle.shutdown();
                    self.step_node(id);
                    let stopped = self
                        .nodes
                        .get(&id)
                        .and_then(|n| n.running.as_ref())
                        .is_none_or(|r| r.engine.is_stopped());
                    if !stopped {
                        self.violation(format!("node {id} did not stop after Shutdown"));
                    }
                    self.crash_node(id);
                    self.stats.crashes -= 1;
                    self.schedule_in(down, Event::Fault(Fault::Restart(id)));
                }
            }
            Fault::Join { drain_after_ms } => {
                let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
                if self.nodes.len() >= 7 {
                    return;
                }
                self.ask_meta(MetaCommand::Join {
                    node_id: Some(id),
                    peer_addr: peer_addr(id),
                    http_addr: None,
                });
                if let Some(after) = drain_after_ms {
                    self.schedule_in(after, Event::Fault(Fault::Drain(id)));
                }
            }
            Fault::Drain(id) => self.ask_meta(MetaCommand::Drain { node: id }),
        }
    }

    /// The shards node `id` leads right now.
    pub(super) fn shards_led_by(&self, id: NodeId) -> std::collections::BTreeSet<u32> {
        self.nodes
            .get(&id)
            .and_then(|n| n.running.as_ref())
            .map(|r| {
                r.engine
                    .probe_replicas()
                    .into_iter()
                    .filter(|p| p.leader)
                    .map(|p| p.shard)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Springs an armed `IsolateNewLeader` on node `id` if it just won one of the shards and
    /// has not applied an entry of its term yet.
    pub(super) fn isolate_new_leader(&mut self, id: NodeId) {
        let Some(armed) = self.isolate_next_leader.as_ref() else {
            return;
        };
        if self.now() > armed.until {
            self.isolate_next_leader = None;
            return;
        }
        let won = self
            .nodes
            .get(&id)
            .and_then(|n| n.running.as_ref())
            .is_some_and(|r| {
                r.engine
                    .probe_replicas()
                    .iter()
                    .any(|p| p.leader && !p.serving && armed.shards.contains(&p.shard))
            });
        if !won {
            return;
        }
        let hold = armed.hold;
        self.isolate_next_leader = None;
        let links: Vec<(NodeId, NodeId)> = self
            .nodes
            .keys()
            .filter(|n| **n != id)
            .map(|n| (id, *n))
            .collect();
        self.note(|| {
            format!("node {id} won a shard of a leader that died sending; cut off for {hold} ms")
        });
        self.apply_fault(Fault::Cut(links, hold));
    }

    /// The node leading the most shards right now, and the other voters of one shard it leads.
    fn busiest_leader(&self) -> Option<(NodeId, Vec<NodeId>)> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| {
                let running = n.running.as_ref()?;
                let led: Vec<_> = running
                    .engine
                    .probe_replicas()
                    .into_iter()
                    .filter(|p| p.leader)
                    .collect();
                let followers: Vec<NodeId> = led
                    .first()?
                    .conf
                    .voters
                    .iter()
                    .copied()
                    .filter(|v| v != id)
                    .collect();
                (!followers.is_empty()).then_some((led.len(), *id, followers))
            })
            .max()
            .map(|(_, id, followers)| (id, followers))
    }

    fn ask_meta(&mut self, command: MetaCommand) {
        self.metas.push(MetaClient {
            command,
            pending: None,
            outcome: None,
            attempts: 0,
        });
        let i = self.metas.len() - 1;
        self.schedule_in(0, Event::Meta(i));
    }

    fn resume(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            if !node.paused {
                return;
            }
            node.paused = false;
        }
        self.release_held(id);
    }

    /// The end of the workload: every fault heals. Nodes come back, links mend, clocks are
    /// fixed, the network stops losing frames; from here the cluster must settle on its own.
    pub(super) fn heal(&mut self) {
        self.note(|| "heal".to_string());
        self.healed = true;
        self.drop_per_mille = 0;
        self.duplicate_per_mille = 0;
        self.links().cut.clear();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = &self.nodes[&id];
            node.offset_ms.store(node.skew_ms, Ordering::Relaxed);
            if node.paused {
                self.resume(id);
            } else if !node.is_up() && !node.retired {
                self.start_node(id);
            }
        }
        self.schedule_settle_check();
    }
}
