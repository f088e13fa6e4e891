use super::*;

fn errors_of(text: &str) -> Vec<MenuError> {
    parse_menu(text).expect_err("the menu should be refused").0
}

/// The shipped English customer menu with `from` replaced by `to`.
fn customer_with(from: &str, to: &str) -> String {
    let text = DEFAULT_MENUS[0].1;
    assert!(text.contains(from), "{from:?} is not in the menu");
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn every_shipped_menu_passes_its_checks() {
    for (name, text) in DEFAULT_MENUS {
        let menu = parse_menu(text).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_eq!(menu.name(), name);
        let wanted: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| a.role() == menu.role)
            .collect();
        assert_eq!(
            menu.actions().into_iter().collect::<Vec<_>>(),
            wanted,
            "{name}"
        );
    }
}

#[test]
fn a_screen_too_long_with_the_longest_values_is_refused_at_its_line() {
    let long = "Send {amount} to {phone.name} {phone}? This text goes on and on and on, as a careless edit might, until the screen no longer fits\\nFee {fee}\\n1. Confirm\\n2. Cancel";
    let text = customer_with(
        "Send {amount} to {phone.name} {phone}?\\nFee {fee}\\n1. Confirm\\n2. Cancel",
        long,
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].line,
        Some(line_of(&text, "[screens.send_confirm]"))
    );
    assert!(errors[0].message.contains("characters"), "{}", errors[0]);
}

#[test]
fn a_path_that_never_ends_is_refused() {
    // The PIN screen loops back to the amount instead of sending.
    let text = customer_with("do = \"send_money\"", "next = \"send_amount\"");
    let errors = errors_of(&text);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("send_pin: no path from here ends in an action")),
        "{messages:?}"
    );
}

#[test]
fn a_missing_screen_an_unreached_one_and_an_unknown_action_are_named() {
    let text = customer_with("next = \"send_amount\"", "next = \"send_amout\"");
    let errors = errors_of(&text);
    assert!(errors[0]
        .message
        .contains("\"send_amout\", which is not defined"));
    assert_eq!(errors[0].line, Some(line_of(&text, "[screens.send_phone]")));

    let text = customer_with("\"Send Money -> send_phone\",", "");
    let messages: Vec<String> = errors_of(&text).iter().map(ToString::to_string).collect();
    assert!(messages
        .iter()
        .any(|m| m.contains("screen send_phone is never reached")));

    let text = customer_with("do = \"send_money\"", "do = \"send_monie\"");
    let errors = errors_of(&text);
    let unknown = errors
        .iter()
        .find(|e| e.message.contains("unknown action \"send_monie\""))
        .expect("the unknown action is named");
    assert_eq!(unknown.line, Some(line_of(&text, "[screens.send_pin]")));

    let text = customer_with("do = \"send_money\"", "do = \"agent_deposit\"");
    assert!(errors_of(&text)[0]
        .message
        .contains("not for the customer menu"));
}

#[test]
fn an_action_without_its_values_and_a_value_shown_before_it_is_typed_are_refused() {
    // Airtime's confirmation skips the amount.
    let text = customer_with(
        "[screens.send_phone]\nask = \"Enter phone no.\"\ninput = \"phone\"\nnext = \"send_amount\"",
        "[screens.send_phone]\nask = \"Enter phone no.\"\ninput = \"phone\"\nnext = \"send_confirm\"",
    );
    let messages: Vec<String> = errors_of(&text).iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("{amount} is not collected on every path")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("send_money needs amount")),
        "{messages:?}"
    );

    let text = customer_with("ask = \"Enter old PIN\"", "ask = \"Enter old PIN {pin}\"");
    assert!(errors_of(&text)[0]
        .message
        .contains("is a PIN, never shown"));
}

#[test]
fn messages_are_all_there_known_and_fit() {
    let text = customer_with("cancelled = \"Request cancelled.\"\n", "");
    assert_eq!(
        errors_of(&text)[0].to_string(),
        "message cancelled is missing"
    );

    let text = customer_with("cancelled = ", "canceled = ");
    let messages: Vec<String> = errors_of(&text).iter().map(ToString::to_string).collect();
    assert!(messages
        .iter()
        .any(|m| m.contains("unknown message \"canceled\"")));

    let text = customer_with(
        "balance = \"Your M-PESA balance is {balance}.\"",
        "balance = \"Your M-PESA balance is {amount}.\"",
    );
    let errors = errors_of(&text);
    assert!(errors[0].message.contains("unknown placeholder {amount}"));
    assert_eq!(errors[0].line, Some(line_of(&text, "balance = \"Your")));
}

/// Found by the `menu_file` fuzz target: a menu without its "invalid entry" message panicked
/// while its screens were measured, instead of being refused.
#[test]
fn a_menu_missing_its_invalid_entry_message_is_refused_not_a_panic() {
    let line = DEFAULT_MENUS[0]
        .1
        .lines()
        .find(|l| l.starts_with("invalid_entry = "))
        .expect("the shipped menu has the message");
    let text = customer_with(line, "inlavdei_ntry = \"Invalid entry.\"");
    let messages: Vec<String> = errors_of(&text).iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m == "message invalid_entry is missing"),
        "{messages:?}"
    );
}

#[test]
fn a_file_that_is_not_toml_names_the_line() {
    let text = customer_with("start = \"main\"", "start = main");
    let errors = errors_of(&text);
    assert_eq!(errors[0].line, Some(line_of(&text, "start = main")));
    let text = customer_with(
        "choose = \"M-PESA\"",
        "choose = \"M-PESA\"\ncolour = \"green\"",
    );
    let errors = errors_of(&text);
    assert!(
        errors[0].message.contains("unknown field `colour`"),
        "{}",
        errors[0]
    );
}
