//! One identity/role model: what each role may do is data, checked in one place.
//!
//! Accounts that hold money have an [`AccountKind`]; people acting on the system have a [`Role`].
//! [`TRANSFER_RULES`] says, per transfer kind, which account kinds may pay and be paid and who may
//! start it; [`ACTION_RULES`] says which roles may take each non-transfer action.

use serde::{Deserialize, Serialize};

use crate::transfer::TransferKind;

/// What kind of account holds the money.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Customer,
    Agent,
    Paybill,
    Till,
    System,
}

impl AccountKind {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Agent => "agent",
            AccountKind::Paybill => "paybill",
            AccountKind::Till => "till",
            AccountKind::System => "system",
        }
    }

    /// Customers are the accounts the regulator's daily and balance limits apply to.
    pub fn has_customer_limits(self) -> bool {
        self == AccountKind::Customer
    }
}

/// Who is acting.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Agent,
    /// Serves at an agent's store on the agent's float, with their own PIN.
    AgentAssistant,
    Business,
    /// Registers customers and agents in the field.
    FieldOfficer,
    /// Customer care: approves reversals, unlocks and resets PINs.
    Care,
    /// Runs the platform: issues float, registers businesses.
    Operator,
}

/// Non-transfer actions that need a permission check.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    RegisterCustomer,
    RegisterAgent,
    RegisterBusiness,
    ApproveReversal,
    UnlockPin,
    ResetPin,
    ChangeOwnPin,
    ViewOwnBalance,
    ViewAnyAccount,
    ViewAudit,
}

/// Who may take each action.
pub const ACTION_RULES: &[(Action, &[Role])] = &[
    (
        Action::RegisterCustomer,
        &[Role::FieldOfficer, Role::Agent, Role::Operator],
    ),
    (Action::RegisterAgent, &[Role::FieldOfficer, Role::Operator]),
    (Action::RegisterBusiness, &[Role::Operator]),
    (Action::ApproveReversal, &[Role::Care]),
    (Action::UnlockPin, &[Role::Care]),
    (Action::ResetPin, &[Role::Care]),
    (
        Action::ChangeOwnPin,
        &[
            Role::Customer,
            Role::Agent,
            Role::AgentAssistant,
            Role::Business,
        ],
    ),
    (
        Action::ViewOwnBalance,
        &[
            Role::Customer,
            Role::Agent,
            Role::AgentAssistant,
            Role::Business,
        ],
    ),
    (Action::ViewAnyAccount, &[Role::Care, Role::Operator]),
    (Action::ViewAudit, &[Role::Operator]),
];

/// One row of the transfer table.
#[derive(Debug)]
pub struct TransferRule {
    pub kind: TransferKind,
    /// Account kinds that may pay.
    pub payers: &'static [AccountKind],
    /// Account kinds that may be paid (for airtime: the phone topped up).
    pub payees: &'static [AccountKind],
    /// Roles that may start it.
    pub initiators: &'static [Role],
    /// The payer's PIN must be verified.
    pub needs_pin: bool,
    /// The per-transaction maximum applies.
    pub per_transaction_limit: bool,
}

const PEOPLE: &[AccountKind] = &[AccountKind::Customer];
const BUSINESSES: &[AccountKind] = &[AccountKind::Paybill, AccountKind::Till];
const HOLDERS: &[AccountKind] = &[
    AccountKind::Customer,
    AccountKind::Agent,
    AccountKind::Paybill,
    AccountKind::Till,
];

/// Per transfer kind: who pays, who is paid, who starts it.
pub const TRANSFER_RULES: [TransferRule; 10] = [
    rule(
        TransferKind::SendMoney,
        PEOPLE,
        PEOPLE,
        &[Role::Customer],
        true,
        true,
    ),
    rule(
        TransferKind::CashIn,
        &[AccountKind::Agent],
        PEOPLE,
        &[Role::Agent, Role::AgentAssistant],
        true,
        true,
    ),
    rule(
        TransferKind::CashOut,
        PEOPLE,
        &[AccountKind::Agent],
        &[Role::Customer],
        true,
        true,
    ),
    rule(
        TransferKind::PayBill,
        PEOPLE,
        &[AccountKind::Paybill],
        &[Role::Customer],
        true,
        true,
    ),
    rule(
        TransferKind::BuyGoods,
        PEOPLE,
        &[AccountKind::Till],
        &[Role::Customer],
        true,
        true,
    ),
    rule(
        TransferKind::BuyAirtime,
        PEOPLE,
        PEOPLE,
        &[Role::Customer],
        true,
        true,
    ),
    rule(
        TransferKind::BusinessToCustomer,
        BUSINESSES,
        PEOPLE,
        &[Role::Business],
        false,
        true,
    ),
    rule(
        TransferKind::BusinessToBusiness,
        BUSINESSES,
        BUSINESSES,
        &[Role::Business],
        false,
        false,
    ),
    rule(
        TransferKind::Reversal,
        HOLDERS,
        HOLDERS,
        // A business reverses a payment it received (Daraja's reversal API): the payer check
        // keeps a business's reversals to its own account, the reversal check to the payment.
        &[Role::Care, Role::Business],
        false,
        false,
    ),
    rule(
        TransferKind::FloatIssue,
        &[AccountKind::System],
        HOLDERS,
        &[Role::Operator],
        false,
        false,
    ),
];

const fn rule(
    kind: TransferKind,
    payers: &'static [AccountKind],
    payees: &'static [AccountKind],
    initiators: &'static [Role],
    needs_pin: bool,
    per_transaction_limit: bool,
) -> TransferRule {
    TransferRule {
        kind,
        payers,
        payees,
        initiators,
        needs_pin,
        per_transaction_limit,
    }
}

/// The rule for a kind.
pub fn transfer_rule(kind: TransferKind) -> &'static TransferRule {
    TRANSFER_RULES
        .iter()
        .find(|r| r.kind == kind)
        .expect("TRANSFER_RULES covers every TransferKind (tested)")
}

/// May `role` take `action`?
pub fn may(role: Role, action: Action) -> bool {
    ACTION_RULES
        .iter()
        .any(|(a, roles)| *a == action && roles.contains(&role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_rule() {
        for kind in TransferKind::ALL {
            assert_eq!(
                TRANSFER_RULES.iter().filter(|r| r.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn permissions_table() {
        assert!(may(Role::Care, Action::ApproveReversal));
        assert!(!may(Role::Customer, Action::ApproveReversal));
        assert!(may(Role::Care, Action::UnlockPin));
        assert!(!may(Role::Agent, Action::ResetPin));
        assert!(may(Role::Operator, Action::RegisterBusiness));
        assert!(!may(Role::FieldOfficer, Action::RegisterBusiness));
        assert!(may(Role::FieldOfficer, Action::RegisterCustomer));
    }

    #[test]
    fn transfer_rules_encode_the_product() {
        let cash_out = transfer_rule(TransferKind::CashOut);
        assert!(cash_out.payees.contains(&AccountKind::Agent));
        assert!(!cash_out.payers.contains(&AccountKind::Agent));
        assert!(transfer_rule(TransferKind::CashIn)
            .initiators
            .contains(&Role::AgentAssistant));
        assert!(!transfer_rule(TransferKind::Reversal).needs_pin);
        assert!(transfer_rule(TransferKind::FloatIssue).payers == [AccountKind::System]);
    }
}
