//! A payment prompt (M-Pesa Express) waiting for the caller shows first when they dial the
//! customer menu: "Pay <business> Ksh<amount> for <reference>? 1. Pay 2. Decline 0. Main menu".
//! Paying asks for the PIN and runs the payment the prompt asked for (`Service::accept_prompt`,
//! at most once: its id is the prompt's); declining closes the prompt; `0` goes on to the menu
//! with the inputs after it. The session remembers the prompt it started with, so every later
//! step (on any node: a rebuilt session looks the prompt up again) answers the same screens.

use tuma_actors::ledger::Prompt;
use tuma_actors::pin::Pin;
use tuma_service::{ServiceError, TransferOutcome};

use super::answer::{Caller, Context};
use super::menu::NAME_SHOWN_MAX;
use super::UssdReply;

/// What the inputs so far ask of a prompt session (pure).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Asked<'a> {
    /// The prompt's first screen.
    Offer,
    /// "1": the PIN is next.
    Pin,
    /// "1*PIN": pay.
    Pay(&'a str),
    /// "2": decline.
    Decline,
    /// "0…": the menu, with the inputs after the `0`.
    Menu(&'a [&'a str]),
    /// Anything else.
    Invalid,
}

/// Reads the inputs of a session that started with a prompt.
pub(super) fn asked<'a>(inputs: &'a [&'a str]) -> Asked<'a> {
    match inputs {
        [] => Asked::Offer,
        ["1"] => Asked::Pin,
        ["1", pin] => Asked::Pay(pin),
        ["2"] => Asked::Decline,
        ["0", rest @ ..] => Asked::Menu(rest),
        _ => Asked::Invalid,
    }
}

fn shown_name(prompt: &Prompt) -> String {
    prompt
        .request
        .business_name
        .chars()
        .take(NAME_SHOWN_MAX)
        .collect()
}

/// The offer screen.
pub(super) fn offer(prompt: &Prompt) -> String {
    let request = &prompt.request;
    format!(
        "Pay {} Ksh{} for account {}?\n1. Pay\n2. Decline\n0. Main menu",
        shown_name(prompt),
        request.amount.to_decimal_string(),
        request.account_reference
    )
}

/// The answer to a step of a prompt session that does not go on to the menu.
pub(super) async fn answer(
    ctx: &Context<'_>,
    caller: &Caller<'_>,
    prompt: &Prompt,
    asked: Asked<'_>,
) -> UssdReply {
    let name = shown_name(prompt);
    let amount = prompt.request.amount.to_decimal_string();
    match asked {
        Asked::Offer => UssdReply::Continue(offer(prompt)),
        Asked::Pin => {
            UssdReply::Continue(format!("Enter your M-PESA PIN to pay {name} Ksh{amount}:"))
        }
        Asked::Pay(pin) => {
            let Ok(pin) = Pin::parse(pin) else {
                return UssdReply::End("Wrong PIN format. Dial again to pay.".into());
            };
            match ctx.service.accept_prompt(prompt, pin, caller.source).await {
                Ok(TransferOutcome::Decided { receipt, .. }) if receipt.result.is_success() => {
                    let txn = receipt.txn_id.map(|t| t.to_string()).unwrap_or_default();
                    UssdReply::End(format!(
                        "{txn} Confirmed. Ksh{amount} paid to {name}. You will get an SMS."
                    ))
                }
                Ok(TransferOutcome::Decided { receipt, .. }) => {
                    UssdReply::End(receipt.result.description().to_string())
                }
                Ok(TransferOutcome::Undecided { .. }) => UssdReply::End(
                    "Request received. You will get an SMS when it completes.".into(),
                ),
                Err(ServiceError::Refused(code)) => UssdReply::End(code.description().to_string()),
                Err(error) => UssdReply::End(error.to_string()),
            }
        }
        Asked::Decline => {
            match ctx
                .service
                .decline_prompt(&prompt.request.checkout_id, *caller.msisdn)
                .await
            {
                Ok(()) => UssdReply::End(format!("You declined the payment request from {name}.")),
                Err(ServiceError::Refused(code)) => UssdReply::End(code.description().to_string()),
                Err(error) => UssdReply::End(error.to_string()),
            }
        }
        Asked::Invalid => UssdReply::End("Invalid choice. Dial again.".into()),
        Asked::Menu(_) => unreachable!("the menu answers menu steps"),
    }
}

#[cfg(test)]
mod tests {
    use tuma_actors::account::Shortcode;
    use tuma_actors::ledger::{PromptRequest, PromptState};
    use tuma_actors::money::Money;
    use tuma_actors::msisdn::Msisdn;
    use tuma_actors::transfer::TransferKind;

    use super::*;

    #[test]
    fn inputs_choose_pay_with_a_pin_decline_or_the_menu() {
        assert_eq!(asked(&[]), Asked::Offer);
        assert_eq!(asked(&["1"]), Asked::Pin);
        assert_eq!(asked(&["1", "1234"]), Asked::Pay("1234"));
        assert_eq!(asked(&["2"]), Asked::Decline);
        assert_eq!(asked(&["0"]), Asked::Menu(&[]));
        assert_eq!(asked(&["0", "1", "2"]), Asked::Menu(&["1", "2"]));
        assert_eq!(asked(&["3"]), Asked::Invalid);
        assert_eq!(asked(&["2", "1"]), Asked::Invalid);
        assert_eq!(asked(&["1", "1234", "9"]), Asked::Invalid);
    }

    #[test]
    fn the_offer_names_the_business_amount_and_reference_within_a_screen() {
        let prompt = Prompt {
            request: PromptRequest {
                checkout_id: "ws_CO_1".into(),
                merchant_request_id: "m".into(),
                customer: Msisdn::parse("254700000001").unwrap(),
                business: Shortcode::parse("888880").unwrap(),
                business_name: "A business name far longer than any screen shows".into(),
                kind: TransferKind::PayBill,
                amount: Money::from_cents(10_000),
                account_reference: "INV-7".into(),
                callback_url: "http://x/cb".into(),
                expires_ms: 1,
            },
            opened_ms: 0,
            state: PromptState::Waiting,
        };
        let text = offer(&prompt);
        assert!(
            text.starts_with("Pay A business name far longer tha Ksh100.00 for account INV-7?"),
            "{text}"
        );
        assert!(text.chars().count() <= super::super::menu::SCREEN_CHARS_MAX);
    }
}
