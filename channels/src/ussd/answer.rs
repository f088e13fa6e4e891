//! One step of a session: replay the inputs over the session's menu, check what was typed
//! against the accounts it names, and answer the next screen — or, at the end of a path, run
//! the action on the typed node API and answer its outcome.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tuma_actors::account::{AccountRef, AgentNumber, Shortcode};
use tuma_actors::calendar::CivilTime;
use tuma_actors::ledger::Account;
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::outcome::ResultCode;
use tuma_actors::pin::Pin;
use tuma_actors::roles::Role;
use tuma_actors::tariff::Tariffs;
use tuma_actors::transfer::{TransferId, TransferKind};
use tuma_service::{Service, ServiceError, StatementLine, TransferOrder, TransferOutcome};

use super::menu::{fill, placeholders, Action, FeeKind, Fill, Input, Menu, Message};
use super::menu::{NAME_SHOWN_MAX, SCREEN_CHARS_MAX};
use super::walk::{walk, Value, Values, Walked};
use super::UssdReply;

/// Who is dialling, in which session.
pub struct Caller<'a> {
    pub msisdn: &'a Msisdn,
    pub session_id: &'a str,
    pub service_code: &'a str,
    /// The gateway's address, for the failed-attempt budget.
    pub source: Option<IpAddr>,
}

/// What a step needs from the node.
pub struct Context<'a> {
    pub service: &'a Service,
    pub tariffs: &'a Tariffs,
    /// How long a transfer may take to be decided before the screen says "you will get an SMS".
    pub transfer_wait: Duration,
}

/// An answer in the menu's words.
enum Said {
    Screen(String),
    End(Message, Fill),
}

impl Said {
    fn end(message: Message) -> Said {
        Said::End(message, Fill::new())
    }
}

/// The answer to a step whose inputs so far are `inputs`.
pub async fn answer(
    ctx: &Context<'_>,
    menu: &Menu,
    caller: &Caller<'_>,
    inputs: &[&str],
) -> UssdReply {
    let said = match walk(menu, inputs) {
        Walked::Show {
            screen,
            invalid,
            values,
        } => match show(ctx, menu, caller, screen, &values).await {
            Ok(text) if invalid => {
                Said::Screen(format!("{}\n{text}", menu.message(Message::InvalidEntry)))
            }
            Ok(text) => Said::Screen(text),
            Err(message) => Said::end(message),
        },
        Walked::Do { action, values } => {
            match vet(ctx, caller, &values, &mut Lookups::default()).await {
                Ok(()) => act(ctx, caller, action, &values, inputs).await,
                Err(message) => Said::end(message),
            }
        }
        Walked::Cancelled => Said::end(Message::Cancelled),
        Walked::Overrun => Said::end(Message::SessionExpired),
    };
    match said {
        Said::Screen(text) => UssdReply::Continue(clip(text)),
        Said::End(message, values) => UssdReply::End(clip(fill(menu.message(message), &values))),
    }
}

/// Menus are checked to fit; this only guards values longer than the checks assumed.
fn clip(text: String) -> String {
    if text.chars().count() <= SCREEN_CHARS_MAX {
        text
    } else {
        text.chars().take(SCREEN_CHARS_MAX).collect()
    }
}

/// Accounts read during one step, by reference.
#[derive(Default)]
struct Lookups(BTreeMap<AccountRef, Option<Account>>);

impl Lookups {
    async fn get(
        &mut self,
        service: &Service,
        account: AccountRef,
    ) -> Result<Option<&Account>, Message> {
        if !self.0.contains_key(&account) {
            let found = service
                .account(&account)
                .await
                .map_err(|_| Message::Unavailable)?;
            self.0.insert(account.clone(), found);
        }
        Ok(self.0[&account].as_ref())
    }
}

/// Checks the accounts the typed values name: an agent number typed in the agent menu must be
/// this phone's, an agent's store number must be that agent's.
async fn vet(
    ctx: &Context<'_>,
    caller: &Caller<'_>,
    values: &Values,
    lookups: &mut Lookups,
) -> Result<(), Message> {
    if let Some(Value::Agent(mine)) = values.get(&Input::MyAgent) {
        let agent = lookups
            .get(ctx.service, AccountRef::Agent(mine.clone()))
            .await?
            .ok_or(Message::UnknownAgent)?;
        if agent.phone.as_ref() != Some(caller.msisdn) {
            return Err(Message::NotYourAgent);
        }
    }
    if let Some(Value::Agent(number)) = values.get(&Input::Agent) {
        let agent = lookups
            .get(ctx.service, AccountRef::Agent(number.clone()))
            .await?
            .ok_or(Message::UnknownAgent)?;
        if let Some(Value::Store(store)) = values.get(&Input::Store) {
            if agent.store_number() != Some(store.as_str()) {
                return Err(Message::WrongStore);
            }
        }
    }
    Ok(())
}

/// The screen's text with its placeholders filled (names looked up, the fee priced).
async fn show(
    ctx: &Context<'_>,
    menu: &Menu,
    caller: &Caller<'_>,
    id: &str,
    values: &Values,
) -> Result<String, Message> {
    let mut lookups = Lookups::default();
    vet(ctx, caller, values, &mut lookups).await?;
    let screen = menu.screen(id);
    let mut filled = Fill::new();
    for name in placeholders(screen.text()).unwrap_or_default() {
        let value = match name.strip_suffix(".name") {
            Some(value) => {
                let input = Input::parse(value).ok_or(Message::Failed)?;
                let (account, unknown) = account_named(input, values).ok_or(Message::Failed)?;
                let found = lookups.get(ctx.service, account).await?.ok_or(unknown)?;
                found.name.chars().take(NAME_SHOWN_MAX).collect()
            }
            None if name == "fee" => {
                let amount = amount_of(values).ok_or(Message::Failed)?;
                let fee = match menu.fee_ahead(id) {
                    Some(FeeKind::Send) => ctx.tariffs.send_fee(amount),
                    Some(FeeKind::Withdrawal) => ctx.tariffs.withdrawal_fee(amount),
                    Some(FeeKind::Free) | None => Some(Money::ZERO),
                };
                fee.ok_or(Message::LimitExceeded)?.sms()
            }
            None => Input::parse(name)
                .and_then(|input| values.get(&input))
                .map(Value::shown)
                .unwrap_or_default(),
        };
        filled.insert(name.to_string(), value);
    }
    Ok(screen.shown(&fill(screen.text(), &filled)))
}

/// The account a value names, and the message when it does not exist.
fn account_named(input: Input, values: &Values) -> Option<(AccountRef, Message)> {
    match (input, values.get(&input)?) {
        (Input::Phone, Value::Phone(m)) => {
            Some((AccountRef::Customer(*m), Message::UnknownRecipient))
        }
        (Input::Agent | Input::MyAgent, Value::Agent(a)) => {
            Some((AccountRef::Agent(a.clone()), Message::UnknownAgent))
        }
        (Input::Business | Input::Till, Value::Shortcode(s)) => {
            Some((AccountRef::Business(s.clone()), Message::UnknownBusiness))
        }
        _ => None,
    }
}

fn amount_of(values: &Values) -> Option<Money> {
    match values.get(&Input::Amount)? {
        Value::Amount(a) => Some(*a),
        _ => None,
    }
}

fn phone_of(values: &Values) -> Option<Msisdn> {
    match values.get(&Input::Phone)? {
        Value::Phone(m) => Some(*m),
        _ => None,
    }
}

fn agent_of(values: &Values, input: Input) -> Option<AgentNumber> {
    match values.get(&input)? {
        Value::Agent(a) => Some(a.clone()),
        _ => None,
    }
}

fn shortcode_of(values: &Values, input: Input) -> Option<Shortcode> {
    match values.get(&input)? {
        Value::Shortcode(s) => Some(s.clone()),
        _ => None,
    }
}

fn pin_of(values: &Values, input: Input) -> Option<Pin> {
    match values.get(&input)? {
        Value::Pin(p) => Some(p.clone()),
        _ => None,
    }
}

/// The idempotency key of the transfer a session's path orders: the same code, phone, session
/// and inputs (the last — the PIN — aside) give the same key on any node, so a retried or
/// re-routed last step never orders a second transfer.
pub fn transfer_id(
    service_code: &str,
    msisdn: &Msisdn,
    session_id: &str,
    inputs: &[&str],
) -> TransferId {
    let mut digest = Sha256::new();
    for part in [service_code, msisdn.as_str(), session_id] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let before_last = inputs.len().saturating_sub(1);
    digest.update(inputs[..before_last].join("*").as_bytes());
    let hex: String = digest
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    TransferId::parse(&format!("ussd-{hex}")).expect("a hex key is a valid transfer id")
}

/// Runs the action a path ended in.
async fn act(
    ctx: &Context<'_>,
    caller: &Caller<'_>,
    action: Action,
    values: &Values,
    inputs: &[&str],
) -> Said {
    let me = AccountRef::Customer(*caller.msisdn);
    let pin = pin_of(values, Input::Pin);
    let order = |kind, from, to, account_reference| {
        Some(TransferOrder {
            id: transfer_id(
                caller.service_code,
                caller.msisdn,
                caller.session_id,
                inputs,
            ),
            kind,
            from,
            to,
            amount: amount_of(values)?,
            account_reference,
            pin: pin.clone(),
            wait: ctx.transfer_wait,
            initiator: if kind == TransferKind::CashIn {
                Role::Agent
            } else {
                Role::Customer
            },
        })
    };
    let my_agent = agent_of(values, Input::MyAgent).map(AccountRef::Agent);
    let order = match action {
        Action::SendMoney => order(
            TransferKind::SendMoney,
            me.clone(),
            AccountRef::Customer(phone_of(values).unwrap_or(*caller.msisdn)),
            None,
        ),
        Action::Withdraw => agent_of(values, Input::Agent).and_then(|agent| {
            order(
                TransferKind::CashOut,
                me.clone(),
                AccountRef::Agent(agent),
                None,
            )
        }),
        Action::BuyAirtime => order(
            TransferKind::BuyAirtime,
            me.clone(),
            AccountRef::Customer(phone_of(values).unwrap_or(*caller.msisdn)),
            None,
        ),
        Action::PayBill => shortcode_of(values, Input::Business).and_then(|business| {
            let reference = match values.get(&Input::Account) {
                Some(Value::Account(r)) => Some(r.clone()),
                _ => None,
            };
            order(
                TransferKind::PayBill,
                me.clone(),
                AccountRef::Business(business),
                reference,
            )
        }),
        Action::BuyGoods => shortcode_of(values, Input::Till).and_then(|till| {
            order(
                TransferKind::BuyGoods,
                me.clone(),
                AccountRef::Business(till),
                None,
            )
        }),
        Action::AgentDeposit => my_agent.clone().and_then(|agent| {
            let customer = AccountRef::Customer(phone_of(values)?);
            order(TransferKind::CashIn, agent, customer, None)
        }),
        Action::Balance
        | Action::MiniStatement
        | Action::ChangePin
        | Action::FloatBalance
        | Action::Commission
        | Action::SetLanguage => None,
    };
    if let Some(order) = order {
        return transfer(ctx, caller, action, order).await;
    }
    if action == Action::SetLanguage {
        let Some(Value::Language(language)) = values.get(&Input::Language) else {
            return Said::end(Message::Failed);
        };
        return match ctx.service.set_language(&me, *language).await {
            Ok(()) => Said::end(Message::LanguageSet),
            Err(error) => Said::end(refusal(action, &error)),
        };
    }
    let Some(pin) = pin else {
        return Said::end(Message::Failed);
    };
    let outcome = match action {
        Action::Balance => ctx
            .service
            .balance(&me, pin)
            .await
            .map(|b| Said::End(Message::Balance, one("balance", b.balance().sms()))),
        Action::FloatBalance => match &my_agent {
            Some(agent) => ctx
                .service
                .balance(agent, pin)
                .await
                .map(|b| Said::End(Message::FloatBalance, one("balance", b.balance().sms()))),
            None => return Said::end(Message::Failed),
        },
        Action::Commission => match &my_agent {
            Some(agent) => commission(ctx.service, agent, pin).await,
            None => return Said::end(Message::Failed),
        },
        Action::MiniStatement => ctx
            .service
            .statement(&me, pin, 5, None)
            .await
            .map(|lines| Said::End(Message::MiniStatement, one("lines", statement(&lines)))),
        Action::ChangePin => {
            let (Some(new), Some(repeat)) = (
                pin_of(values, Input::NewPin),
                pin_of(values, Input::RepeatPin),
            ) else {
                return Said::end(Message::Failed);
            };
            if new != repeat {
                return Said::end(Message::PinsDiffer);
            }
            ctx.service
                .change_pin(&me, pin, new)
                .await
                .map(|()| Said::end(Message::PinChanged))
        }
        _ => return Said::end(Message::Failed),
    };
    outcome.unwrap_or_else(|error| Said::end(refusal(action, &error)))
}

async fn commission(service: &Service, agent: &AccountRef, pin: Pin) -> Result<Said, ServiceError> {
    service.authenticate(agent, pin).await?;
    let earned = service
        .account(agent)
        .await?
        .and_then(|a| a.extras.map(|e| e.commission_earned))
        .unwrap_or(Money::ZERO);
    Ok(Said::End(
        Message::Commission,
        one("commission", earned.sms()),
    ))
}

fn one(name: &str, value: String) -> Fill {
    Fill::from([(name.to_string(), value)])
}

/// The mini statement's lines: `UBG6U6NN6A 16/12 -250.00`.
fn statement(lines: &[StatementLine]) -> String {
    lines
        .iter()
        .map(|line| {
            let when = CivilTime::from_unix_ms(line.completed_ms);
            let amount = Money::from_cents(line.amount_cents);
            let sign = if amount.is_negative() { "-" } else { "+" };
            let magnitude = Money::from_cents(line.amount_cents.abs()).grouped();
            format!(
                "{} {}/{} {sign}{magnitude}",
                line.receipt.as_deref().unwrap_or("-"),
                when.day,
                when.month
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn transfer(
    ctx: &Context<'_>,
    caller: &Caller<'_>,
    action: Action,
    order: TransferOrder,
) -> Said {
    match ctx.service.transfer_from(order, caller.source).await {
        Ok(TransferOutcome::Decided { receipt, .. }) if receipt.result.is_success() => {
            let txn = receipt.txn_id.map(|t| t.to_string()).unwrap_or_default();
            Said::End(Message::Confirmed, one("receipt", txn))
        }
        Ok(TransferOutcome::Decided { receipt, .. }) => {
            Said::end(refusal(action, &ServiceError::Refused(receipt.result)))
        }
        // Not decided in time, or no answer: it may still happen; the SMS will say.
        Ok(TransferOutcome::Undecided { .. }) | Err(ServiceError::Unavailable(_)) => {
            Said::end(Message::Received)
        }
        Err(error) => Said::end(refusal(action, &error)),
    }
}

/// The screen for a refusal.
fn refusal(action: Action, error: &ServiceError) -> Message {
    use ResultCode::*;
    let code = match error {
        ServiceError::Refused(code) => *code,
        ServiceError::TooManyAttempts { .. } => return Message::TryLater,
        ServiceError::Unavailable(_) => return Message::Unavailable,
        ServiceError::Invalid { .. } | ServiceError::NotFound(_) | ServiceError::Conflict(_) => {
            return Message::Failed
        }
    };
    match code {
        InsufficientFunds => Message::InsufficientFunds,
        LimitExceeded | DailyLimitExceeded | BalanceLimitExceeded | AmountOutsideTariff => {
            Message::LimitExceeded
        }
        AmountBelowMinimum => Message::BelowMinimum,
        WrongPin => Message::WrongPin,
        PinLocked => Message::PinLocked,
        UnknownAccount if action.role() == super::menu::MenuRole::Agent => Message::UnknownAgent,
        UnknownAccount => Message::NotRegistered,
        UnknownPayee => match action {
            Action::Withdraw => Message::UnknownAgent,
            Action::PayBill | Action::BuyGoods => Message::UnknownBusiness,
            _ => Message::UnknownRecipient,
        },
        NotPermitted | AccountInactive | SameAccount | NoPin => Message::NotPermitted,
        Overloaded => Message::Unavailable,
        _ => Message::Failed,
    }
}
