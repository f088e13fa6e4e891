//! The menu file format: TOML, one file per role and language.
//!
//! ```toml
//! role = "customer"
//! language = "en"
//! service_codes = ["*334#"]
//! languages = ["en", "sw"]      # what the `language` input offers, in its order
//! start = "main"
//!
//! [screens.main]
//! choose = "M-PESA"
//! options = ["Send Money -> send_phone", "My Account -> account"]
//!
//! [screens.send_phone]
//! ask = "Enter phone no."
//! input = "phone"            # the value's name fixes its kind
//! next = "send_amount"
//!
//! [screens.send_confirm]
//! confirm = "Send {amount} to {phone.name} {phone}? Fee {fee}\n1. OK\n2. Cancel"
//! next = "send_pin"
//!
//! [screens.send_pin]
//! ask = "Enter M-PESA PIN"
//! input = "pin"
//! do = "send_money"          # a path ends in an action
//!
//! [messages]
//! invalid_entry = "Invalid entry."
//! ```
//! Every fault is reported with its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use tuma_actors::language::Language;

use super::{check, Action, Input, Menu, MenuError, MenuErrors, MenuRole, Message, Screen, Then};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuFile {
    role: Spanned<String>,
    language: Spanned<String>,
    service_codes: Spanned<Vec<String>>,
    #[serde(default)]
    languages: Option<Spanned<Vec<String>>>,
    start: Spanned<String>,
    screens: BTreeMap<String, Spanned<ScreenFile>>,
    messages: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenFile {
    choose: Option<String>,
    options: Option<Vec<String>>,
    ask: Option<String>,
    input: Option<String>,
    confirm: Option<String>,
    next: Option<String>,
    #[serde(rename = "do")]
    action: Option<String>,
}

/// Where a fault is: the 1-based line of a byte offset.
pub(super) struct Lines<'a>(&'a str);

impl Lines<'_> {
    pub(super) fn of(&self, offset: usize) -> usize {
        self.0[..offset.min(self.0.len())].matches('\n').count() + 1
    }
}

/// Parses and checks a menu file; every fault found, each with its line.
pub fn parse_menu(text: &str) -> Result<Menu, MenuErrors> {
    let file: MenuFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| Lines(text).of(s.start));
        MenuErrors(vec![MenuError {
            line,
            message: e.message().to_string(),
        }])
    })?;
    let lines = Lines(text);
    let mut errors = Vec::new();
    let mut fault = |span: std::ops::Range<usize>, message: String| {
        errors.push(MenuError {
            line: Some(lines.of(span.start)),
            message,
        })
    };
    let role = MenuRole::parse(file.role.get_ref());
    if role.is_none() {
        fault(
            file.role.span(),
            format!(
                "unknown role {:?}; expected customer or agent",
                file.role.get_ref()
            ),
        );
    }
    let language = file.language.get_ref();
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        fault(
            file.language.span(),
            format!("language {language:?} is not a 2- or 3-letter lowercase code"),
        );
    }
    if file.service_codes.get_ref().is_empty() {
        fault(file.service_codes.span(), "no service code".into());
    }
    for code in file.service_codes.get_ref() {
        if !is_service_code(code) {
            fault(
                file.service_codes.span(),
                format!("service code {code:?} is not like *334# or *334*1#"),
            );
        }
    }
    let mut languages = Vec::new();
    if let Some(listed) = &file.languages {
        for code in listed.get_ref() {
            match Language::parse(code) {
                Ok(l) => languages.push(l),
                Err(e) => fault(listed.span(), format!("languages: {code:?}: {e}")),
            }
        }
    }
    let mut screens = BTreeMap::new();
    let mut screen_lines = BTreeMap::new();
    for (id, screen) in &file.screens {
        let line = lines.of(screen.span().start);
        screen_lines.insert(id.clone(), line);
        match screen_of(screen.get_ref()) {
            Ok(s) => {
                screens.insert(id.clone(), s);
            }
            Err(message) => errors.push(MenuError {
                line: Some(line),
                message: format!("screen {id}: {message}"),
            }),
        }
    }
    let mut messages = BTreeMap::new();
    let mut message_lines = BTreeMap::new();
    for (key, text) in &file.messages {
        match Message::parse(key) {
            Some(message) => {
                messages.insert(message, text.get_ref().clone());
                message_lines.insert(message, lines.of(text.span().start));
            }
            None => errors.push(MenuError {
                line: Some(lines.of(text.span().start)),
                message: format!("unknown message {key:?}"),
            }),
        }
    }
    let Some(role) = role else {
        return Err(MenuErrors(errors));
    };
    let menu = Menu {
        role,
        language: language.clone(),
        service_codes: file.service_codes.get_ref().clone(),
        languages,
        start: file.start.get_ref().clone(),
        screens,
        messages,
    };
    let places = check::Places {
        start: lines.of(file.start.span().start),
        screens: screen_lines,
        messages: message_lines,
    };
    errors.extend(check::check(&menu, &places));
    if errors.is_empty() {
        Ok(menu)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(MenuErrors(errors))
    }
}

fn is_service_code(code: &str) -> bool {
    let Some(inner) = code.strip_prefix('*').and_then(|c| c.strip_suffix('#')) else {
        return false;
    };
    code.len() <= 20
        && inner
            .split('*')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

fn screen_of(file: &ScreenFile) -> Result<Screen, String> {
    let then = || -> Result<Then, String> {
        match (&file.next, &file.action) {
            (Some(next), None) => Ok(Then::Screen(next.clone())),
            (None, Some(action)) => Action::parse(action).map(Then::Do).ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown action {action:?}; expected one of {}",
                    names.join(", ")
                )
            }),
            _ => Err("needs exactly one of `next` (a screen) or `do` (an action)".into()),
        }
    };
    match (&file.choose, &file.ask, &file.confirm) {
        (Some(text), None, None) => {
            if file.input.is_some() || file.next.is_some() || file.action.is_some() {
                return Err("a `choose` screen has only `options`".into());
            }
            let options = file
                .options
                .as_ref()
                .ok_or("a `choose` screen needs `options`")?
                .iter()
                .map(|option| {
                    let (label, target) = option
                        .split_once("->")
                        .ok_or_else(|| format!("option {option:?} is not \"Label -> screen\""))?;
                    Ok((label.trim().to_string(), target.trim().to_string()))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Screen::Choose {
                text: text.clone(),
                options,
            })
        }
        (None, Some(text), None) => {
            if file.options.is_some() {
                return Err("an `ask` screen has no `options`".into());
            }
            let name = file
                .input
                .as_deref()
                .ok_or("an `ask` screen needs `input`")?;
            let input = Input::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Input::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown input {name:?}; expected one of {}",
                    names.join(", ")
                )
            })?;
            Ok(Screen::Ask {
                text: text.clone(),
                input,
                then: then()?,
            })
        }
        (None, None, Some(text)) => {
            if file.options.is_some() || file.input.is_some() {
                return Err("a `confirm` screen has neither `options` nor `input`".into());
            }
            Ok(Screen::Confirm {
                text: text.clone(),
                then: then()?,
            })
        }
        _ => Err("needs exactly one of `choose`, `ask` or `confirm`".into()),
    }
}
