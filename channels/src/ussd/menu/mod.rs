//! A USSD menu as data ("downloadable menus"): one file per role and language, parsed and
//! checked before it is used (`file.rs`, `check.rs`), rendered with the values a session
//! collected (`text.rs`). The shipped defaults are in `channels/menus/`.

mod check;
mod file;
mod text;

use std::collections::BTreeMap;
use std::fmt;

use tuma_actors::language::Language;

pub use file::parse_menu;
pub use text::{fill, placeholders, Fill};

/// The most characters a USSD screen shows (the gateways' practical cap).
pub const SCREEN_CHARS_MAX: usize = 182;
/// The most options one screen lists (one keypad digit each).
pub const OPTIONS_MAX: usize = 9;
/// Names shown on a screen are cut to this many characters.
pub const NAME_SHOWN_MAX: usize = 30;

/// Who a menu is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MenuRole {
    Customer,
    Agent,
}

impl MenuRole {
    pub fn name(self) -> &'static str {
        match self {
            MenuRole::Customer => "customer",
            MenuRole::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Option<MenuRole> {
        match text {
            "customer" => Some(MenuRole::Customer),
            "agent" => Some(MenuRole::Agent),
            _ => None,
        }
    }
}

/// One checked menu: every path from `start` ends in an action, every screen fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    pub role: MenuRole,
    /// A language code: `en`, `sw`…
    pub language: String,
    /// The codes customers dial for it (`*334#`).
    pub service_codes: Vec<String>,
    /// The languages the `language` input offers, in the order its screen lists them.
    pub languages: Vec<Language>,
    pub start: String,
    pub screens: BTreeMap<String, Screen>,
    pub messages: BTreeMap<Message, String>,
}

impl Menu {
    /// `customer-en`: the name it is pushed and stored under.
    pub fn name(&self) -> String {
        format!("{}-{}", self.role.name(), self.language)
    }

    pub fn screen(&self, id: &str) -> &Screen {
        &self.screens[id]
    }

    pub fn message(&self, message: Message) -> &str {
        &self.messages[&message]
    }

    /// The tariff of the actions ahead of screen `id` (checked to be one where `{fee}` shows).
    pub fn fee_ahead(&self, id: &str) -> Option<FeeKind> {
        let mut seen = std::collections::BTreeSet::new();
        let mut queue = std::collections::VecDeque::from([id]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            let screen = self.screens.get(id)?;
            if let Some(action) = screen.action() {
                return Some(action.fee());
            }
            queue.extend(screen.next_screens());
        }
        None
    }

    /// The actions its paths end in.
    pub fn actions(&self) -> std::collections::BTreeSet<Action> {
        self.screens.values().filter_map(Screen::action).collect()
    }
}

/// A screen of a menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// A list: the caller types an option's number.
    Choose {
        text: String,
        options: Vec<(String, String)>,
    },
    /// A prompt for one value, saved under `input`'s name.
    Ask {
        text: String,
        input: Input,
        then: Then,
    },
    /// A summary: `1` goes on, `2` cancels.
    Confirm { text: String, then: Then },
}

impl Screen {
    pub fn text(&self) -> &str {
        match self {
            Screen::Choose { text, .. }
            | Screen::Ask { text, .. }
            | Screen::Confirm { text, .. } => text,
        }
    }

    /// What the caller sees: the text, and a choice's numbered options.
    pub fn shown(&self, filled: &str) -> String {
        match self {
            Screen::Choose { options, .. } => {
                let mut shown = filled.to_string();
                for (n, (label, _)) in options.iter().enumerate() {
                    shown.push_str(&format!("\n{}. {label}", n + 1));
                }
                shown
            }
            _ => filled.to_string(),
        }
    }

    /// The screens and action this screen leads to.
    fn leads_to(&self) -> Vec<&Then> {
        match self {
            Screen::Choose { .. } => Vec::new(),
            Screen::Ask { then, .. } | Screen::Confirm { then, .. } => vec![then],
        }
    }

    fn next_screens(&self) -> Vec<&str> {
        match self {
            Screen::Choose { options, .. } => options.iter().map(|(_, s)| s.as_str()).collect(),
            _ => self
                .leads_to()
                .into_iter()
                .filter_map(|t| match t {
                    Then::Screen(s) => Some(s.as_str()),
                    Then::Do(_) => None,
                })
                .collect(),
        }
    }

    fn action(&self) -> Option<Action> {
        self.leads_to().into_iter().find_map(|t| match t {
            Then::Do(a) => Some(*a),
            Then::Screen(_) => None,
        })
    }
}

/// Where a screen goes once answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    Screen(String),
    Do(Action),
}

/// A value a session collects. Its name in the file is its name here, and fixes its kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    /// A phone number (a recipient, the customer an agent deposits for, airtime for another).
    Phone,
    Amount,
    /// The agent a customer withdraws from.
    Agent,
    /// The agent's store number.
    Store,
    /// A paybill number.
    Business,
    /// The account number at a paybill.
    Account,
    /// A till number (Buy Goods).
    Till,
    /// The caller's own agent number (agent menu).
    MyAgent,
    /// The caller's PIN.
    Pin,
    NewPin,
    RepeatPin,
    /// A language, by its number in the menu's `languages`.
    Language,
}

impl Input {
    pub const ALL: [Input; 12] = [
        Input::Phone,
        Input::Amount,
        Input::Agent,
        Input::Store,
        Input::Business,
        Input::Account,
        Input::Till,
        Input::MyAgent,
        Input::Pin,
        Input::NewPin,
        Input::RepeatPin,
        Input::Language,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Input::Phone => "phone",
            Input::Amount => "amount",
            Input::Agent => "agent",
            Input::Store => "store",
            Input::Business => "business",
            Input::Account => "account",
            Input::Till => "till",
            Input::MyAgent => "my_agent",
            Input::Pin => "pin",
            Input::NewPin => "new_pin",
            Input::RepeatPin => "repeat_pin",
            Input::Language => "language",
        }
    }

    pub fn parse(text: &str) -> Option<Input> {
        Input::ALL.into_iter().find(|i| i.name() == text)
    }

    /// A PIN is never shown on a screen.
    pub fn is_secret(self) -> bool {
        matches!(self, Input::Pin | Input::NewPin | Input::RepeatPin)
    }
}

/// What a menu path ends in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    SendMoney,
    Withdraw,
    BuyAirtime,
    PayBill,
    BuyGoods,
    Balance,
    MiniStatement,
    ChangePin,
    AgentDeposit,
    FloatBalance,
    Commission,
    SetLanguage,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::SendMoney,
        Action::Withdraw,
        Action::BuyAirtime,
        Action::PayBill,
        Action::BuyGoods,
        Action::Balance,
        Action::MiniStatement,
        Action::ChangePin,
        Action::AgentDeposit,
        Action::FloatBalance,
        Action::Commission,
        Action::SetLanguage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::SendMoney => "send_money",
            Action::Withdraw => "withdraw",
            Action::BuyAirtime => "buy_airtime",
            Action::PayBill => "pay_bill",
            Action::BuyGoods => "buy_goods",
            Action::Balance => "balance",
            Action::MiniStatement => "mini_statement",
            Action::ChangePin => "change_pin",
            Action::AgentDeposit => "agent_deposit",
            Action::FloatBalance => "float_balance",
            Action::Commission => "commission",
            Action::SetLanguage => "set_language",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == text)
    }

    /// The values every path to this action must have collected.
    pub fn needs(self) -> &'static [Input] {
        use Input::*;
        match self {
            Action::SendMoney => &[Phone, Amount, Pin],
            Action::Withdraw => &[Agent, Store, Amount, Pin],
            Action::BuyAirtime => &[Amount, Pin],
            Action::PayBill => &[Business, Account, Amount, Pin],
            Action::BuyGoods => &[Till, Amount, Pin],
            Action::Balance | Action::MiniStatement => &[Pin],
            Action::ChangePin => &[Pin, NewPin, RepeatPin],
            Action::AgentDeposit => &[MyAgent, Phone, Amount, Pin],
            Action::FloatBalance | Action::Commission => &[MyAgent, Pin],
            Action::SetLanguage => &[Language],
        }
    }

    /// The menu role that may use it.
    pub fn role(self) -> MenuRole {
        match self {
            Action::AgentDeposit | Action::FloatBalance | Action::Commission => MenuRole::Agent,
            _ => MenuRole::Customer,
        }
    }

    /// Which tariff a `{fee}` on the way to this action shows.
    pub fn fee(self) -> FeeKind {
        match self {
            Action::SendMoney => FeeKind::Send,
            Action::Withdraw => FeeKind::Withdrawal,
            _ => FeeKind::Free,
        }
    }
}

/// The tariff a `{fee}` placeholder shows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FeeKind {
    Send,
    Withdrawal,
    Free,
}

/// The final screens and prompts every menu words in its own language.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message {
    /// Put before a screen shown again after a bad entry.
    InvalidEntry,
    Cancelled,
    /// A transfer confirmed: `{receipt}`.
    Confirmed,
    /// A transfer not decided within the gateway's time: the SMS will say.
    Received,
    /// `{balance}`.
    Balance,
    /// `{lines}`: the last five transfers.
    MiniStatement,
    /// `{balance}` of the agent's float.
    FloatBalance,
    /// `{commission}`.
    Commission,
    PinChanged,
    PinsDiffer,
    WrongPin,
    PinLocked,
    InsufficientFunds,
    LimitExceeded,
    BelowMinimum,
    UnknownRecipient,
    UnknownAgent,
    UnknownBusiness,
    WrongStore,
    /// The phone is not the registered phone of the agent number typed.
    NotYourAgent,
    /// The caller has no account.
    NotRegistered,
    NotPermitted,
    /// Too many failed attempts: try later.
    TryLater,
    /// The service could not answer (no leader in time, overload).
    Unavailable,
    /// Any other refusal.
    Failed,
    SessionExpired,
    /// The holder's menus are now in the language chosen.
    LanguageSet,
}

impl Message {
    pub const ALL: [Message; 27] = [
        Message::InvalidEntry,
        Message::Cancelled,
        Message::Confirmed,
        Message::Received,
        Message::Balance,
        Message::MiniStatement,
        Message::FloatBalance,
        Message::Commission,
        Message::PinChanged,
        Message::PinsDiffer,
        Message::WrongPin,
        Message::PinLocked,
        Message::InsufficientFunds,
        Message::LimitExceeded,
        Message::BelowMinimum,
        Message::UnknownRecipient,
        Message::UnknownAgent,
        Message::UnknownBusiness,
        Message::WrongStore,
        Message::NotYourAgent,
        Message::NotRegistered,
        Message::NotPermitted,
        Message::TryLater,
        Message::Unavailable,
        Message::Failed,
        Message::SessionExpired,
        Message::LanguageSet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Message::InvalidEntry => "invalid_entry",
            Message::Cancelled => "cancelled",
            Message::Confirmed => "confirmed",
            Message::Received => "received",
            Message::Balance => "balance",
            Message::MiniStatement => "mini_statement",
            Message::FloatBalance => "float_balance",
            Message::Commission => "commission",
            Message::PinChanged => "pin_changed",
            Message::PinsDiffer => "pins_differ",
            Message::WrongPin => "wrong_pin",
            Message::PinLocked => "pin_locked",
            Message::InsufficientFunds => "insufficient_funds",
            Message::LimitExceeded => "limit_exceeded",
            Message::BelowMinimum => "below_minimum",
            Message::UnknownRecipient => "unknown_recipient",
            Message::UnknownAgent => "unknown_agent",
            Message::UnknownBusiness => "unknown_business",
            Message::WrongStore => "wrong_store",
            Message::NotYourAgent => "not_your_agent",
            Message::NotRegistered => "not_registered",
            Message::NotPermitted => "not_permitted",
            Message::TryLater => "try_later",
            Message::Unavailable => "unavailable",
            Message::Failed => "failed",
            Message::SessionExpired => "session_expired",
            Message::LanguageSet => "language_set",
        }
    }

    pub fn parse(text: &str) -> Option<Message> {
        Message::ALL.into_iter().find(|m| m.name() == text)
    }

    /// The placeholders this message may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Message::Confirmed => &["receipt"],
            Message::Balance | Message::FloatBalance => &["balance"],
            Message::MiniStatement => &["lines"],
            Message::Commission => &["commission"],
            _ => &[],
        }
    }
}

/// Why a menu file was refused: what, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuError {
    /// 1-based line in the file, when the fault has one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for MenuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every fault found in one menu file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MenuErrors(pub Vec<MenuError>);

impl fmt::Display for MenuErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The shipped menus, by name.
pub const DEFAULT_MENUS: [(&str, &str); 4] = [
    (
        "customer-en",
        include_str!("../../../menus/customer-en.toml"),
    ),
    (
        "customer-sw",
        include_str!("../../../menus/customer-sw.toml"),
    ),
    ("agent-en", include_str!("../../../menus/agent-en.toml")),
    ("agent-sw", include_str!("../../../menus/agent-sw.toml")),
];

#[cfg(test)]
mod tests;
