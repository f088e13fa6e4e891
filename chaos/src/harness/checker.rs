//! The bank checker: audits during the run, and after healing and quiescence every client
//! answer against the cluster's records and every balance against the confirmed transfers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::callback_judge;
use super::callback_receiver::CallbackReceiver;
use super::cluster::{ChaosCluster, ADMIN_TOKEN};
use super::workload::{Bank, Op};
use crate::load::{parse_cents, Outcome};

/// One audit read during the run.
#[derive(Clone, Debug)]
pub struct AuditSample {
    pub at_ms: u64,
    /// `None` when no node could answer (partitions, kills).
    pub balance_sum_cents: Option<i64>,
    pub in_flight: Option<u64>,
}

/// Reads the audit from any node; checks the books of every shard it reports.
pub async fn audit(cluster: &ChaosCluster, start: usize) -> Option<Value> {
    for i in 0..cluster.size() {
        let id = 1 + (start + i) % cluster.size();
        if !cluster.is_up(id) {
            continue;
        }
        let request = cluster
            .client
            .get(format!("{}/admin/v1/audit", cluster.url(id)))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(3));
        if let Ok(response) = request.send().await {
            if response.status().is_success() {
                return response.json().await.ok();
            }
        }
    }
    None
}

/// Reads the audit every second in the background, so a paused node never stalls the fault loop.
pub struct Auditor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<AuditSample>, Vec<String>)>,
}

impl Auditor {
    pub fn start(urls: Vec<String>, epoch: Instant) -> Auditor {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client");
            let (mut samples, mut violations) = (Vec::new(), Vec::new());
            let mut round = 0usize;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let mut answer: Option<Value> = None;
                for i in 0..urls.len() {
                    let url = &urls[(round + i) % urls.len()];
                    if let Ok(r) = client
                        .get(format!("{url}/admin/v1/audit"))
                        .bearer_auth(ADMIN_TOKEN)
                        .send()
                        .await
                    {
                        if r.status().is_success() {
                            answer = r.json().await.ok();
                            break;
                        }
                    }
                }
                if let Some(audit) = &answer {
                    violations.extend(audit_violations(audit));
                }
                samples.push(AuditSample {
                    at_ms: epoch.elapsed().as_millis() as u64,
                    balance_sum_cents: answer
                        .as_ref()
                        .map(|a| parse_cents(a["totals"]["balance_sum"].as_str().unwrap_or("0"))),
                    in_flight: answer
                        .as_ref()
                        .and_then(|a| a["totals"]["transfers_in_flight"].as_u64()),
                });
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            (samples, violations)
        });
        Auditor { stop, task }
    }

    pub async fn finish(self) -> (Vec<AuditSample>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Violations in one audit: books that do not balance anywhere.
pub fn audit_violations(audit: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if audit["totals"]["balance_sum"] != "0.00" {
        found.push(format!(
            "Σ balances (issuer included) is {} — money created or destroyed",
            audit["totals"]["balance_sum"]
        ));
    }
    for shard in audit["shards"].as_array().into_iter().flatten() {
        let t = &shard["totals"];
        if t["debits_pending"] != t["credits_pending"] || t["debits_posted"] != t["credits_posted"]
        {
            found.push(format!(
                "shard {} books do not balance: {t}",
                shard["shard"]
            ));
        }
    }
    found
}

/// The final verdict on every operation and every balance.
/// After healing, replica moves finish within `MOVES_PATIENCE` and leave every shard on
/// `replicas` distinct active members.
const MOVES_PATIENCE: Duration = Duration::from_secs(90);

async fn membership_checks(cluster: &ChaosCluster) -> Vec<String> {
    let started = Instant::now();
    loop {
        let state = cluster.members().await;
        let settled = state
            .as_ref()
            .is_some_and(|s| s["moves"].as_array().is_some_and(Vec::is_empty));
        if settled || started.elapsed() > MOVES_PATIENCE {
            let Some(state) = state else {
                return vec!["no node answered GET /admin/v1/members".into()];
            };
            if !settled {
                return vec![format!(
                    "replica moves still under way {} s after healing: {}",
                    MOVES_PATIENCE.as_secs(),
                    state["moves"]
                )];
            }
            let active: Vec<u64> = state["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["state"] == "active")
                .filter_map(|m| m["id"].as_u64())
                .collect();
            let replicas = state["replicas_per_shard"].as_u64().unwrap_or(0) as usize;
            let mut violations = Vec::new();
            for (shard, placed) in state["placement"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let nodes: std::collections::BTreeSet<u64> = placed
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                if nodes.len() != replicas || !nodes.iter().all(|n| active.contains(n)) {
                    violations.push(format!(
                        "shard {shard} is placed on {placed} (active members {active:?})"
                    ));
                }
            }
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A shard's clock (the greatest timestamp it applied) may lead this machine's by the skew the
/// clock fault gives (≤ 3 s) and the engine's clock bound, not more: a clock that jumped must
/// never have been stamped on an entry.
const SHARD_CLOCK_AHEAD_MAX_MS: u64 = 5_000;

fn poisoned_clocks(audit: &Value) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    audit["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|shard| {
            let clock = shard["clock_ms"].as_u64()?;
            (clock > now + SHARD_CLOCK_AHEAD_MAX_MS).then(|| {
                format!(
                    "shard {}'s clock is {} s ahead of this machine's: a clock that ran ahead was stamped on its entries",
                    shard["shard"], (clock - now) / 1_000
                )
            })
        })
        .collect()
}

pub async fn final_checks(cluster: &ChaosCluster, bank: &Bank, ops: &[Op]) -> Vec<String> {
    let mut violations = membership_checks(cluster).await;
    let started = Instant::now();
    let quiet = loop {
        match audit(cluster, 0).await {
            Some(a) if a["totals"]["transfers_in_flight"] == 0 => break Some(a),
            _ if started.elapsed() > Duration::from_secs(60) => break None,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let Some(quiet) = quiet else {
        violations.push(
            "transfers still unresolved 60 s after healing (past deadline plus grace)".to_string(),
        );
        return violations;
    };
    violations.extend(audit_violations(&quiet));
    violations.extend(poisoned_clocks(&quiet));
    if quiet["totals"]["clearing_sum"] != "0.00" {
        violations.push(format!(
            "Σ clearing is {} at quiescence",
            quiet["totals"]["clearing_sum"]
        ));
    }
    let mut balances: BTreeMap<String, i64> = bank.funded().into_iter().collect();
    for (n, op) in ops.iter().enumerate() {
        let url = cluster.url(1 + n % cluster.size());
        let answer = loop {
            let request = cluster
                .client
                .get(format!("{url}/v1/transfers/{}?from={}", op.id, op.from))
                .bearer_auth(ADMIN_TOKEN);
            match request.send().await {
                Ok(r) if r.status() == 404 => break None,
                Ok(r) if r.status() == 200 => break r.json::<Value>().await.ok(),
                _ if started.elapsed() > Duration::from_secs(300) => {
                    violations.push(format!("transfer {}: status unreadable", op.id));
                    break None;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let status = answer
            .as_ref()
            .and_then(|a| a["status"].as_str())
            .unwrap_or("absent");
        let committed_fee = match (&op.outcome, status) {
            (Outcome::Confirmed { txn, fee_cents }, "confirmed") => {
                if answer.as_ref().and_then(|a| a["transaction_id"].as_str()) != Some(txn.as_str())
                {
                    violations.push(format!(
                        "transfer {}: confirmed as {txn}, now recorded as {:?}",
                        op.id, answer
                    ));
                }
                // A channel that did not tell the fee (USSD): the recorded one.
                fee_cents.or_else(|| {
                    answer
                        .as_ref()
                        .map(|a| parse_cents(a["fee"].as_str().unwrap_or("0")))
                })
            }
            (Outcome::Confirmed { txn, .. }, other) => {
                violations.push(format!(
                    "transfer {} ({} {} → {}): confirmed to the client as {txn} but is {other}",
                    op.id, op.kind, op.from, op.to
                ));
                None
            }
            (Outcome::Failed(result), "confirmed") => {
                violations.push(format!(
                    "transfer {} ({}): told failed ({result}) but committed",
                    op.id, op.kind
                ));
                None
            }
            (_, "pending") => {
                violations.push(format!(
                    "transfer {}: still pending after quiescence",
                    op.id
                ));
                None
            }
            (Outcome::Ambiguous, "confirmed") => answer
                .as_ref()
                .map(|a| parse_cents(a["fee"].as_str().unwrap_or("0"))),
            _ => None,
        };
        if let Some(fee) = committed_fee {
            apply_effect(&mut balances, op, fee);
        }
    }
    for (account, expected) in &balances {
        let url = cluster.url(1);
        let request = cluster
            .client
            .get(format!("{url}/admin/v1/accounts/{account}"))
            .bearer_auth(ADMIN_TOKEN);
        let actual = match request.send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .map(|a| parse_cents(a["balance"].as_str().unwrap_or("0"))),
            _ => None,
        };
        match actual {
            Some(actual) if actual < 0 => violations.push(format!("account {account}: negative balance {actual} cents")),
            Some(actual) if actual == *expected => {}
            Some(actual) => violations.push(format!("account {account}: balance {actual} cents, but its confirmed transfers add up to {expected}")),
            None => violations.push(format!("account {account}: unreadable")),
        }
    }
    violations
}

/// What a committed operation does to the balances the checker tracks (a top-up's payer is
/// the issuer, which is not tracked; its `from` names the customer only to find its shard).
fn apply_effect(balances: &mut BTreeMap<String, i64>, op: &Op, fee: i64) {
    if op.kind == "float_issue" {
        *balances.entry(op.to.clone()).or_default() += op.amount_cents;
        return;
    }
    *balances.entry(op.from.clone()).or_default() -= op.amount_cents + fee;
    if op.kind != "buy_airtime" {
        *balances.entry(op.to.clone()).or_default() += op.amount_cents;
    }
}

/// A transfer's recorded answer (`GET /v1/transfers/{id}?from=`), from any node, retried for
/// up to 30 s; `None` when no shard knows it or no node answered.
async fn recorded(cluster: &ChaosCluster, op: &Op) -> Option<Value> {
    let started = Instant::now();
    for n in 0.. {
        let url = cluster.url(1 + n % cluster.size());
        let request = cluster
            .client
            .get(format!("{url}/v1/transfers/{}?from={}", op.id, op.from))
            .bearer_auth(ADMIN_TOKEN);
        match request.send().await {
            Ok(r) if r.status() == 404 => return None,
            Ok(r) if r.status() == 200 => return r.json::<Value>().await.ok(),
            _ if started.elapsed() > Duration::from_secs(30) => return None,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// Payout operations the clients could not name by their payment (their order's answer was
/// lost): after healing, each is looked up by the business's key (the admin API), and named by
/// its payment's transfer id if the cluster recorded it.
pub async fn resolve_payouts(cluster: &ChaosCluster, bank: &Bank, ops: &mut [Op]) {
    let shortcode = bank.paybill.trim_start_matches("business:");
    for (n, op) in ops.iter_mut().enumerate() {
        let Some(originator) = op.id.strip_prefix("b2c:") else {
            continue;
        };
        let url = cluster.url(1 + n % cluster.size());
        let answer = cluster
            .client
            .get(format!(
                "{url}/admin/v1/businesses/{shortcode}/payouts/{originator}"
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        let Ok(response) = answer else { continue };
        if let Ok(json) = response.json::<Value>().await {
            if let Some(payment) = json["payment_id"].as_str() {
                op.id = payment.to_string();
            }
        }
    }
}

/// What the business callbacks came to.
pub struct CallbackChecks {
    pub violations: Vec<String>,
    pub express: callback_judge::CallbackTally,
    pub payouts: callback_judge::CallbackTally,
}

/// M-Pesa Express and B2C after healing: what the ledger holds of each request's payment,
/// then the callbacks received (waiting up to 60 s for every paid one's), judged by
/// [`callback_judge::judge`].
pub async fn callback_checks(
    cluster: &ChaosCluster,
    receiver: &CallbackReceiver,
    ops: &[Op],
) -> CallbackChecks {
    let prompts = payments(cluster, ops, "stk:").await;
    let payouts = payments(cluster, ops, "pay:").await;
    // Callbacks go out from the shards' outboxes once leaders are back: give them time.
    let started = Instant::now();
    let received = loop {
        let received = receiver.received();
        let announced: BTreeSet<&str> = received
            .iter()
            .filter_map(|r| callback_judge::stk(r).or_else(|| callback_judge::b2c(r)))
            .map(|a| a.key)
            .collect();
        let all_in = prompts
            .committed
            .keys()
            .chain(payouts.committed.keys())
            .all(|key| announced.contains(key.as_str()));
        if all_in || started.elapsed() > Duration::from_secs(60) {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stk: Vec<_> = received.iter().filter_map(callback_judge::stk).collect();
    let b2c: Vec<_> = received.iter().filter_map(callback_judge::b2c).collect();
    let (mut violations, express) = callback_judge::judge("prompt", &prompts, &stk);
    let (payout_violations, payouts) = callback_judge::judge("payout", &payouts, &b2c);
    violations.extend(payout_violations);
    CallbackChecks {
        violations,
        express,
        payouts,
    }
}

/// What the ledger holds of the operations whose ids start with `prefix` (`stk:` prompts,
/// `pay:` payouts), keyed by the id's rest (CheckoutRequestID, ConversationID).
async fn payments(cluster: &ChaosCluster, ops: &[Op], prefix: &str) -> callback_judge::Ledger {
    let mut ledger = callback_judge::Ledger::default();
    for op in ops.iter().filter(|o| o.id.starts_with(prefix)) {
        let key = op.id.trim_start_matches(prefix).to_string();
        ledger.known.insert(key.clone());
        let Some(answer) = recorded(cluster, op).await else {
            continue;
        };
        if answer["status"] == "confirmed" {
            let txn = answer["transaction_id"].as_str().unwrap_or_default();
            ledger.committed.insert(key, txn.to_string());
        }
    }
    ledger
}
