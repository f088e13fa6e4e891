//! History against the ledger, checked once the healed cluster settled: on every caught-up
//! replica of a shard the history holds exactly the rows its ledger numbered (the same rows as
//! the leader's: same transfers, same receipts); every bank account's balance is the sum of
//! its committed rows; every confirmed transfer appears once in its payer's history and once
//! in its payee's, with the receipt its caller was told.

use std::collections::BTreeMap;

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{HistoryRow, HistorySide};
use tuma_actors::transfer::TransferKind;

use super::clients::Answer;
use super::world::World;

/// Each shard's history rows as its serving leader holds them.
pub(super) type Histories = BTreeMap<u32, Vec<HistoryRow>>;

impl World {
    /// Reads every shard's history from its leader's disk, checking each caught-up replica
    /// holds the same rows and that the rows are exactly those its ledger numbered.
    pub(super) fn histories(&self, problems: &mut Vec<String>) -> Histories {
        let mut histories = Histories::new();
        for shard in 0..self.map.shard_count() {
            let replicas = self.replicas_of(shard);
            let Some((leader, lead)) = replicas.iter().find(|(_, p)| p.serving) else {
                continue;
            };
            let rows = match self.nodes[leader].disk.history_rows(shard) {
                Ok(rows) => rows,
                Err(error) => {
                    problems.push(format!(
                        "shard {shard}: history unreadable on node {leader}: {error}"
                    ));
                    continue;
                }
            };
            let numbered = lead.ledger.history_next_seq();
            let gapless = rows.iter().enumerate().all(|(i, r)| r.seq == i as u64);
            if rows.len() as u64 != numbered || !gapless {
                problems.push(format!(
                    "shard {shard}: leader {leader} holds {} history rows, its ledger numbered {numbered}",
                    rows.len()
                ));
            }
            for (node, replica) in &replicas {
                if node == leader || !replica.initialized || replica.applied != lead.applied {
                    continue;
                }
                match self.nodes[node].disk.history_rows(shard) {
                    Ok(theirs) if theirs == rows => {}
                    Ok(theirs) => problems.push(format!(
                        "shard {shard}: node {node} holds {} history rows unlike leader {leader}'s {} at the same applied index",
                        theirs.len(),
                        rows.len()
                    )),
                    Err(error) => problems.push(format!(
                        "shard {shard}: history unreadable on node {node}: {error}"
                    )),
                }
            }
            histories.insert(shard, rows);
        }
        histories
    }

    /// Every bank account's balance is the sum of its committed history rows.
    pub(super) fn check_balances(&self, histories: &Histories, problems: &mut Vec<String>) {
        let mut sums: BTreeMap<&AccountRef, i64> = BTreeMap::new();
        for row in histories.values().flatten().filter(|r| r.committed()) {
            *sums.entry(&row.account).or_default() += row.amount_cents;
        }
        let ledgers = self.leader_ledgers();
        for account in super::setup::bank_accounts(&self.bank) {
            let shard = self.map.shard_of(&account);
            let actual = ledgers
                .get(&shard)
                .and_then(|l| l.account(&account))
                .map_or(0, |a| a.balances.balance().cents());
            let want = sums.get(&account).copied().unwrap_or(0);
            if actual != want {
                problems.push(format!(
                    "account {account}: balance {actual} cents, its history adds up to {want}"
                ));
            }
        }
    }

    /// Every confirmed transfer appears once on each side, with the receipt its caller got.
    pub(super) fn check_confirmed_in_history(
        &self,
        histories: &Histories,
        problems: &mut Vec<String>,
    ) {
        for client in &self.transfers {
            let Some(Answer::Receipt(receipt)) = &client.answer else {
                continue;
            };
            if !receipt.result.is_success() {
                continue;
            }
            let request = &client.request;
            // System accounts (the issuer of float, airtime) keep no history.
            let mut sides = Vec::new();
            if !request.from.is_system() {
                sides.push((HistorySide::Payer, self.map.shard_of(&request.from)));
            }
            if request.kind != TransferKind::BuyAirtime && !request.to.is_system() {
                sides.push((HistorySide::Payee, self.map.shard_of(&request.to)));
            }
            for (side, shard) in sides {
                let Some(rows) = histories.get(&shard) else {
                    continue;
                };
                let found: Vec<&HistoryRow> = rows
                    .iter()
                    .filter(|r| r.transfer == request.id && r.side == side && r.committed())
                    .collect();
                match found.as_slice() {
                    [row] if row.receipt == receipt.txn_id => {}
                    [row] => problems.push(format!(
                        "transfer {}: its {side:?} history row has receipt {:?}, the caller was told {:?}",
                        request.id, row.receipt, receipt.txn_id
                    )),
                    rows => problems.push(format!(
                        "transfer {}: confirmed, but {} {side:?} rows in shard {shard}'s history",
                        request.id,
                        rows.len()
                    )),
                }
            }
        }
    }

    /// History rows on the shards' leaders, and how many of them tell of a transfer whose
    /// in-memory record has retired (what the report shows: retirement really happened).
    pub(super) fn history_counts(&self) -> (u64, u64) {
        let (mut rows_total, mut retired) = (0, 0);
        for (shard, ledger) in self.leader_ledgers() {
            let leader = self
                .replicas_of(shard)
                .into_iter()
                .find(|(_, p)| p.serving)
                .map(|(node, _)| node);
            let Some(rows) = leader.and_then(|n| self.nodes[&n].disk.history_rows(shard).ok())
            else {
                continue;
            };
            rows_total += rows.len() as u64;
            retired += rows
                .iter()
                .filter(|r| match r.side {
                    HistorySide::Payer => ledger.outgoing(&r.transfer).is_none(),
                    HistorySide::Payee => {
                        ledger.incoming(&r.transfer).is_none()
                            && ledger.outgoing(&r.transfer).is_none()
                    }
                })
                .count() as u64;
        }
        (rows_total, retired)
    }
}
