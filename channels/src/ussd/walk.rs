//! Where a session is, computed from its inputs alone: the gateway sends every input so far on
//! every step, so any node can replay them over the menu the session uses and land on the same
//! screen with the same values. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use tuma_actors::account::{AgentNumber, Shortcode};
use tuma_actors::language::Language;
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::transfer::ACCOUNT_REFERENCE_LEN_MAX;

use super::menu::{Action, Input, Menu, Screen, Then};

/// The largest amount a caller can type (the ledger's own limits are lower).
pub const AMOUNT_TYPED_MAX_CENTS: i64 = 99_999_900;

/// Longest store number (as registration takes them).
pub const STORE_LEN_MAX: usize = 8;

/// A value a caller typed, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Phone(Msisdn),
    Amount(Money),
    Agent(AgentNumber),
    Store(String),
    Shortcode(Shortcode),
    Account(String),
    Pin(Pin),
    Language(Language),
}

impl Value {
    /// As shown on a screen; PINs never are.
    pub fn shown(&self) -> String {
        match self {
            Value::Phone(m) => m.local(),
            Value::Amount(a) => a.sms(),
            Value::Agent(a) => a.as_str().to_string(),
            Value::Store(s) | Value::Account(s) => s.clone(),
            Value::Shortcode(s) => s.as_str().to_string(),
            Value::Pin(_) => String::new(),
            Value::Language(l) => l.to_string(),
        }
    }
}

/// The values a session collected, by input.
pub type Values = BTreeMap<Input, Value>;

/// Checks what the caller typed for `input` (a language by its number in `languages`).
pub fn parse_input(input: Input, text: &str, languages: &[Language]) -> Option<Value> {
    match input {
        Input::Language => {
            let n: usize = text.parse().ok()?;
            languages
                .get(n.checked_sub(1)?)
                .copied()
                .map(Value::Language)
        }
        Input::Phone => Msisdn::parse(text).ok().map(Value::Phone),
        Input::Amount => {
            let amount = Money::parse(text).ok()?;
            (amount.is_positive() && amount.cents() <= AMOUNT_TYPED_MAX_CENTS)
                .then_some(Value::Amount(amount))
        }
        Input::Agent | Input::MyAgent => AgentNumber::parse(text).ok().map(Value::Agent),
        // As registration takes them: 1 to 8 letters or digits.
        Input::Store => ((1..=STORE_LEN_MAX).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| Value::Store(text.to_string())),
        Input::Business | Input::Till => Shortcode::parse(text).ok().map(Value::Shortcode),
        Input::Account => {
            let fits = !text.trim().is_empty()
                && text.chars().count() <= ACCOUNT_REFERENCE_LEN_MAX
                && !text.chars().any(char::is_control);
            fits.then(|| Value::Account(text.trim().to_string()))
        }
        Input::Pin | Input::NewPin | Input::RepeatPin => Pin::parse(text).ok().map(Value::Pin),
    }
}

/// Where the inputs lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Walked<'m> {
    /// A screen to show (again, after a bad entry, when `invalid`).
    Show {
        screen: &'m str,
        invalid: bool,
        values: Values,
    },
    /// The last input completed the path: run the action.
    Do { action: Action, values: Values },
    /// The last input declined a confirmation.
    Cancelled,
    /// Inputs continue past the end of a path (a gateway that kept a finished session).
    Overrun,
}

/// Replays `inputs` over `menu` from its start screen.
pub fn walk<'m>(menu: &'m Menu, inputs: &[&str]) -> Walked<'m> {
    let mut at = menu.start.as_str();
    let mut values = Values::new();
    let mut invalid = false;
    for (index, &typed) in inputs.iter().enumerate() {
        let last = index + 1 == inputs.len();
        let typed = typed.trim();
        let then = match menu.screen(at) {
            Screen::Choose { options, .. } => typed
                .parse::<usize>()
                .ok()
                .and_then(|n| options.get(n.checked_sub(1)?))
                .map(|(_, next)| Then::Screen(next.clone())),
            Screen::Ask { input, then, .. } => match parse_input(*input, typed, &menu.languages) {
                Some(value) => {
                    values.insert(*input, value);
                    Some(then.clone())
                }
                None => None,
            },
            Screen::Confirm { then, .. } => match typed {
                "1" => Some(then.clone()),
                "2" if last => return Walked::Cancelled,
                "2" => return Walked::Overrun,
                _ => None,
            },
        };
        match then {
            None => invalid = true,
            Some(Then::Screen(next)) => {
                at = menu
                    .screens
                    .get_key_value(&next)
                    .map(|(k, _)| k.as_str())
                    .expect("a checked menu names only its own screens");
                invalid = false;
            }
            Some(Then::Do(action)) if last => return Walked::Do { action, values },
            Some(Then::Do(_)) => return Walked::Overrun,
        }
    }
    Walked::Show {
        screen: at,
        invalid,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ussd::menu::parse_menu;

    fn customer() -> Menu {
        parse_menu(include_str!("../../menus/customer-en.toml")).unwrap()
    }

    #[test]
    fn the_first_step_shows_the_start_screen() {
        let menu = customer();
        assert!(matches!(
            walk(&menu, &[]),
            Walked::Show {
                screen: "main",
                invalid: false,
                ..
            }
        ));
    }

    #[test]
    fn send_money_collects_its_values_and_ends_in_the_action() {
        let menu = customer();
        let at_confirm = walk(&menu, &["1", "0712345678", "500"]);
        let Walked::Show { screen, values, .. } = at_confirm else {
            panic!("{at_confirm:?}")
        };
        assert_eq!(screen, "send_confirm");
        assert_eq!(
            values[&Input::Amount],
            Value::Amount(Money::from_cents(50_000))
        );
        let done = walk(&menu, &["1", "0712345678", "500", "1", "1234"]);
        let Walked::Do { action, values } = done else {
            panic!("{done:?}")
        };
        assert_eq!(action, Action::SendMoney);
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn a_bad_entry_stays_on_its_screen_and_a_good_one_moves_on() {
        let menu = customer();
        let bad = walk(&menu, &["1", "07123"]);
        assert!(matches!(
            bad,
            Walked::Show {
                screen: "send_phone",
                invalid: true,
                ..
            }
        ));
        let retried = walk(&menu, &["1", "07123", "0712345678"]);
        assert!(matches!(
            retried,
            Walked::Show {
                screen: "send_amount",
                invalid: false,
                ..
            }
        ));
        assert!(matches!(
            walk(&menu, &["9"]),
            Walked::Show {
                screen: "main",
                invalid: true,
                ..
            }
        ));
        assert!(matches!(
            walk(&menu, &["1", "0712345678", "0"]),
            Walked::Show {
                screen: "send_amount",
                invalid: true,
                ..
            }
        ));
    }

    #[test]
    fn declining_cancels_and_inputs_past_the_end_overrun() {
        let menu = customer();
        assert_eq!(
            walk(&menu, &["1", "0712345678", "5", "2"]),
            Walked::Cancelled
        );
        assert_eq!(
            walk(&menu, &["1", "0712345678", "5", "2", "1"]),
            Walked::Overrun
        );
        assert_eq!(
            walk(&menu, &["1", "0712345678", "5", "1", "1234", "1"]),
            Walked::Overrun
        );
    }
}
