//! The rebalancer's plan: from the cluster state, the next commands that bring every shard to
//! `replicas` replicas on active members, spread within one of each other, with leaders spread
//! the same way — never more than `moves_max` replica moves at a time. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::meta::{ClusterMeta, MemberState, MetaCommand};
use crate::transport::NodeId;

/// Bounds of one planning round.
#[derive(Clone, Copy, Debug)]
pub struct PlanLimits {
    /// Most replica moves in flight at once.
    pub moves_max: usize,
    /// Most preferred-leader changes proposed per round.
    pub leader_changes_max: usize,
    /// A move older than this is cancelled (and planned again later).
    pub move_timeout_ms: u64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            moves_max: 4,
            leader_changes_max: 8,
            move_timeout_ms: 120_000,
        }
    }
}

/// The next commands for the meta group, given the state and the meta leader's clock.
pub fn plan(meta: &ClusterMeta, limits: PlanLimits, now_ms: u64) -> Vec<MetaCommand> {
    let mut commands = Vec::new();
    let active: BTreeSet<NodeId> = meta.members_in(MemberState::Active).into_iter().collect();
    let mut cancelled = BTreeSet::new();
    for (&shard, m) in &meta.moves {
        let target_gone = m.target.iter().any(|n| !active.contains(n));
        let stuck = now_ms.saturating_sub(m.started_ms) > limits.move_timeout_ms;
        if target_gone || stuck {
            commands.push(MetaCommand::CancelMove { shard });
            cancelled.insert(shard);
        }
    }
    if active.len() < meta.replicas {
        return commands;
    }
    let mut load = meta.load();
    load.retain(|n, _| active.contains(n) || meta.state_of(*n) == Some(MemberState::Draining));
    for node in &active {
        load.entry(*node).or_insert(0);
    }
    let mut busy: BTreeSet<u32> = meta.moves.keys().copied().collect();
    let mut budget = limits
        .moves_max
        .saturating_sub(busy.len() - cancelled.len());
    // 1. Replicas on members that are leaving go first.
    for shard in 0..meta.shards {
        if budget == 0 {
            break;
        }
        if busy.contains(&shard) {
            continue;
        }
        let current = &meta.placement[shard as usize];
        if current.iter().all(|n| active.contains(n)) {
            continue;
        }
        // Every leaving member of the shard is replaced in one move: a target may name only
        // active members (two draining members of one shard must not wait on each other).
        let mut target = current.clone();
        let mut complete = true;
        for pos in 0..target.len() {
            if active.contains(&target[pos]) {
                continue;
            }
            match least_loaded(&load, &active, &target) {
                Some(to) => {
                    target[pos] = to;
                    *load.entry(to).or_default() += 1;
                }
                None => complete = false,
            }
        }
        if !complete {
            continue;
        }
        commands.push(MetaCommand::StartMove { shard, target });
        busy.insert(shard);
        budget -= 1;
    }
    // 2. Then spread replicas over active members until loads differ by at most one.
    while budget > 0 {
        let active_load: Vec<(NodeId, usize)> = active.iter().map(|n| (*n, load[n])).collect();
        let (hi, hi_load) = *active_load
            .iter()
            .max_by_key(|(n, l)| (*l, std::cmp::Reverse(*n)))
            .expect("active is not empty");
        let (lo, lo_load) = *active_load
            .iter()
            .min_by_key(|(n, l)| (*l, *n))
            .expect("active is not empty");
        if hi_load <= lo_load + 1 {
            break;
        }
        let candidate = (0..meta.shards).find(|s| {
            let p = &meta.placement[*s as usize];
            !busy.contains(s) && p.contains(&hi) && !p.contains(&lo)
        });
        let Some(shard) = candidate else { break };
        let mut target = meta.placement[shard as usize].clone();
        let pos = target.iter().position(|n| *n == hi).expect("contains");
        target[pos] = lo;
        *load.get_mut(&hi).expect("loaded") -= 1;
        *load.get_mut(&lo).expect("loaded") += 1;
        commands.push(MetaCommand::StartMove { shard, target });
        busy.insert(shard);
        budget -= 1;
    }
    commands.extend(leader_orders(
        meta,
        &active,
        &busy,
        limits.leader_changes_max,
    ));
    // 3. A draining member that holds nothing any more is removed.
    for node in meta.members_in(MemberState::Draining) {
        if (0..meta.shards).all(|s| !meta.may_hold(s, node)) {
            commands.push(MetaCommand::MarkRemoved { node });
        }
    }
    commands
}

/// The active member with the fewest replicas that is not already in `current`.
fn least_loaded(
    load: &BTreeMap<NodeId, usize>,
    active: &BTreeSet<NodeId>,
    current: &[NodeId],
) -> Option<NodeId> {
    active
        .iter()
        .filter(|n| !current.contains(n))
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), **n))
        .copied()
}

/// Preferred-leader changes: every shard's first replica active, and no member preferred for
/// more than its share of shards (rounded up).
fn leader_orders(
    meta: &ClusterMeta,
    active: &BTreeSet<NodeId>,
    busy: &BTreeSet<u32>,
    max: usize,
) -> Vec<MetaCommand> {
    let share = (meta.shards as usize).div_ceil(active.len().max(1));
    let mut leads: BTreeMap<NodeId, usize> = active.iter().map(|n| (*n, 0)).collect();
    for p in &meta.placement {
        if let Some(count) = leads.get_mut(&p[0]) {
            *count += 1;
        }
    }
    let mut out = Vec::new();
    for shard in 0..meta.shards {
        if out.len() >= max {
            break;
        }
        if busy.contains(&shard) {
            continue;
        }
        let p = &meta.placement[shard as usize];
        let first = p[0];
        let overloaded = !active.contains(&first) || leads[&first] > share;
        if !overloaded {
            continue;
        }
        let better = p
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, n)| active.contains(n) && leads[n] < share)
            .min_by_key(|(_, n)| leads[n]);
        let Some((pos, &to)) = better else { continue };
        let mut order = p.clone();
        order.swap(0, pos);
        if let Some(count) = leads.get_mut(&first) {
            *count -= 1;
        }
        *leads.get_mut(&to).expect("active") += 1;
        out.push(MetaCommand::SetLeaderOrder {
            shard,
            replicas: order,
        });
    }
    out
}
