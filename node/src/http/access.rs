//! Who may call which admin endpoint. A caller is the bootstrap key (`--admin-token`: every
//! permission, meant to create the scoped keys and then be put away) or a scoped key of the
//! cluster's key ring (`tuma_service::keys`) with one role. The table below is the whole
//! policy; every admin handler names its permission when it authorizes.
//!
//! | permission | operator | care | auditor |
//! |---|---|---|---|
//! | `Members` (join, remove) | ✓ | | |
//! | `Float` (issue; approve or decline another caller's large issue) | ✓ | | |
//! | `Register` (customers, agents, businesses, bulk) | ✓ | | |
//! | `ConfigureBusinesses` (initiators) | ✓ | | |
//! | `PushMenus` | ✓ | | |
//! | `ReadCluster` (cluster state, members, menus, SMS and USSD records) | ✓ | | ✓ |
//! | `ReadAudit` (the money audit, float requests) | ✓ | | ✓ |
//! | `ResetPins` (unlock, reset) | | ✓ | |
//! | `Reverse` (reversals, reversal requests approved or declined, business wallet moves) | | ✓ | |
//! | `ReadAccounts` (accounts, statements, receipts, reversal requests, payout orders) | | ✓ | ✓ |
//! | `ReadKeys` | | | ✓ |
//! | `ReadAuditLog` (who did what: the audit trail) | | | ✓ |
//! | `Backup` (pause intake, read every shard's state and history, the documents) | ✓ | | |
//! | `ManageKeys`, `TestHooks` | bootstrap key only | | |

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use tuma_service::keys::{KeyDigester, KeyRing, KeyRole};
use tuma_service::Service;

use super::error::ApiError;
use super::ApiState;

/// How often each node rereads the key ring (a revocation reaches it within this plus the meta
/// group's replication).
const REFRESH_EVERY: Duration = Duration::from_millis(250);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    Members,
    Float,
    Register,
    ConfigureBusinesses,
    PushMenus,
    ReadCluster,
    ReadAudit,
    ResetPins,
    Reverse,
    ReadAccounts,
    ReadKeys,
    ReadAuditLog,
    Backup,
    ManageKeys,
    TestHooks,
}

/// Whether a key of `role` has `permission` (the table in the module docs).
pub fn allows(role: KeyRole, permission: Permission) -> bool {
    use Permission::*;
    match role {
        KeyRole::Operator => matches!(
            permission,
            Members
                | Float
                | Register
                | ConfigureBusinesses
                | PushMenus
                | ReadCluster
                | ReadAudit
                | Backup
        ),
        KeyRole::Care => matches!(permission, ResetPins | Reverse | ReadAccounts),
        KeyRole::Auditor => matches!(
            permission,
            ReadCluster | ReadAudit | ReadAccounts | ReadKeys | ReadAuditLog
        ),
    }
}

/// Who made an authorized call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Bootstrap,
    Key { id: String, role: KeyRole },
}

impl Caller {
    /// How the caller is named in records (`bootstrap`, `key:<id>`).
    pub fn name(&self) -> String {
        match self {
            Caller::Bootstrap => "bootstrap".to_string(),
            Caller::Key { id, .. } => format!("key:{id}"),
        }
    }
}

/// The bootstrap token and this node's copy of the key ring.
pub struct Access {
    bootstrap: Arc<str>,
    pub digester: KeyDigester,
    ring: RwLock<KeyRing>,
}

impl Access {
    pub fn new(bootstrap_token: &str, cluster_secret: &[u8]) -> Access {
        Access {
            bootstrap: bootstrap_token.into(),
            digester: KeyDigester::derive(cluster_secret),
            ring: RwLock::new(KeyRing::default()),
        }
    }

    /// The bootstrap token (for this node's own calls to other members).
    pub fn bootstrap_token(&self) -> &str {
        &self.bootstrap
    }

    /// Rereads the key ring from this node's cluster state.
    pub async fn refresh(&self, service: &Service) {
        if let Ok((ring, _)) = service.key_ring().await {
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        }
    }

    /// Keeps the key ring current for as long as the runtime runs.
    pub fn spawn_refresh(self: &Arc<Self>, service: Service) {
        let access = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            loop {
                tick.tick().await;
                access.refresh(&service).await;
            }
        });
    }

    /// The caller a bearer token names, if any.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        if constant_time_eq(token.as_bytes(), self.bootstrap.as_bytes()) {
            return Some(Caller::Bootstrap);
        }
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        ring.check(&self.digester, token).map(|record| Caller::Key {
            id: record.id.clone(),
            role: record.role,
        })
    }
}

fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The caller of an admin endpoint that needs `permission`: 401 without a key this cluster
/// knows (or a revoked one), 403 with a key whose role lacks the permission.
pub fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<Caller, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let caller = state
        .access
        .caller(token)
        .ok_or_else(ApiError::unauthorized)?;
    let allowed = match &caller {
        Caller::Bootstrap => true,
        Caller::Key { role, .. } => allows(*role, permission),
    };
    if allowed {
        Ok(caller)
    } else {
        Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!("this key's role may not do this ({permission:?})"),
            field: None,
            code: None,
            retry_after_s: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_split_the_duties() {
        let can = |role, permission| allows(role, permission);
        // Nobody but the bootstrap key manages keys or plants faults.
        for role in KeyRole::ALL {
            assert!(!can(role, Permission::ManageKeys));
            assert!(!can(role, Permission::TestHooks));
        }
        // Who issues e-money cannot reset PINs or reverse, and the other way round.
        assert!(can(KeyRole::Operator, Permission::Float));
        assert!(!can(KeyRole::Operator, Permission::ResetPins));
        assert!(!can(KeyRole::Operator, Permission::Reverse));
        assert!(can(KeyRole::Care, Permission::ResetPins));
        assert!(!can(KeyRole::Care, Permission::Float));
        // The auditor changes nothing.
        let changes = [
            Permission::Members,
            Permission::Float,
            Permission::Register,
            Permission::ConfigureBusinesses,
            Permission::PushMenus,
            Permission::ResetPins,
            Permission::Reverse,
        ];
        assert!(changes.iter().all(|p| !can(KeyRole::Auditor, *p)));
        assert!(can(KeyRole::Auditor, Permission::ReadAudit));
    }
}
