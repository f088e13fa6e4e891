//! Faults on a seeded schedule: what each does to the cluster and how it is healed.

use std::time::Duration;

use super::cluster::ChaosCluster;
use crate::sim::SimRng;

/// The kinds `--faults` selects from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    Net,
    Clock,
    /// Move a running node's wall clock by a minute to an hour, either way (NTP gone wrong):
    /// it must refuse to lead, and no shard's clock may follow it.
    ClockJump,
    Restart,
    /// Remove a member (`DELETE /admin/v1/members/{id}`): its replicas move to the others while
    /// the other faults go on. Needs more nodes than replicas; once as many remain, refused.
    Drain,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Net,
        FaultKind::Clock,
        FaultKind::ClockJump,
        FaultKind::Restart,
        FaultKind::Drain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Net => "net",
            FaultKind::Clock => "clock",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::Restart => "restart",
            FaultKind::Drain => "drain",
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One fault of the schedule.
#[derive(Clone, Debug)]
pub struct Planned {
    pub at_ms: u64,
    pub hold_ms: u64,
    pub kind: FaultKind,
    /// Which variant and which nodes, drawn from the seed.
    pub draw: u64,
}

/// A fault as it happened, for the timeline and the report.
#[derive(Clone, Debug)]
pub struct FaultEvent {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: FaultKind,
    pub description: String,
}

/// Quiet first and last seconds; faults of 1.5–4 s with 1.5–3 s of calm between them.
pub fn schedule(seed: u64, kinds: &[FaultKind], duration_ms: u64) -> Vec<Planned> {
    let mut rng = SimRng::new(seed ^ 0xFA17);
    let mut plan = Vec::new();
    let mut t = 3_000;
    while !kinds.is_empty() && t + 4_000 + 3_000 <= duration_ms {
        let hold_ms = rng.range(1_500, 4_000);
        let kind = *rng.pick(kinds);
        plan.push(Planned {
            at_ms: t,
            hold_ms,
            kind,
            draw: rng.next_u64(),
        });
        t += hold_ms + rng.range(1_500, 3_000);
    }
    plan
}

/// Applies a fault; returns what it did. Faults that take time (rolling restarts) await.
pub async fn apply(cluster: &mut ChaosCluster, fault: &Planned) -> String {
    let n = cluster.size();
    let mut rng = SimRng::new(fault.draw);
    let victim = 1 + rng.below(n as u64) as usize;
    match fault.kind {
        FaultKind::Kill => match rng.below(5) {
            0..=2 => {
                cluster.kill9(victim);
                format!("kill -9 node {victim}")
            }
            3 => {
                let minority: Vec<usize> = (0..(n - 1) / 2).map(|i| 1 + (victim + i) % n).collect();
                for id in &minority {
                    cluster.kill9(*id);
                }
                format!("kill -9 minority {minority:?}")
            }
            _ => {
                for id in 1..=n {
                    cluster.kill9(id);
                }
                "kill -9 every node".to_string()
            }
        },
        FaultKind::Pause => {
            cluster.pause(victim);
            format!("SIGSTOP node {victim}")
        }
        FaultKind::Partition => match rng.below(3) {
            0 => {
                for other in (1..=n).filter(|o| *o != victim) {
                    cluster.cut(victim, other);
                    cluster.cut(other, victim);
                }
                format!("isolate node {victim}")
            }
            1 => {
                for other in (1..=n).filter(|o| *o != victim) {
                    cluster.cut(victim, other);
                }
                format!("one-way: node {victim} cannot send to anyone")
            }
            _ => {
                let minority: Vec<usize> = (0..(n - 1) / 2).map(|i| 1 + (victim + i) % n).collect();
                for a in &minority {
                    for b in (1..=n).filter(|b| !minority.contains(b)) {
                        cluster.cut(*a, b);
                        cluster.cut(b, *a);
                    }
                }
                format!("split minority {minority:?} from the majority")
            }
        },
        FaultKind::Net => {
            let delay = rng.range(20, 150);
            let loss = rng.range(5, 50) as u32;
            if cluster.degrade(delay, loss) {
                format!("every link: +{delay} ms, {loss}‰ of segments break the connection")
            } else {
                "net fault skipped: no tc netem in namespaces".to_string()
            }
        }
        FaultKind::Clock => {
            let offset = rng.range(200, 3_000) as i64 * if rng.chance(500) { 1 } else { -1 };
            cluster.set_clock_offset(victim, offset);
            cluster.stop(victim);
            let _ = cluster.spawn(victim);
            format!("restart node {victim} with its clock {offset:+} ms")
        }
        FaultKind::ClockJump => {
            let jump = rng.range(60_000, 3_600_000) as i64 * if rng.chance(500) { 1 } else { -1 };
            if cluster.jump_clock(victim, jump).await {
                format!("node {victim}'s clock jumps {jump:+} ms while it runs")
            } else {
                format!("clock jump skipped: node {victim} did not answer")
            }
        }
        FaultKind::Restart => {
            for id in 1..=n {
                cluster.stop(id);
                let _ = cluster.spawn(id);
                cluster.wait_ready(Duration::from_secs(20)).await;
            }
            "rolling restart of every node (SIGTERM)".to_string()
        }
        FaultKind::Drain => cluster.drain(victim).await,
    }
}
