//! The checks a menu passes before it is used: every screen is reached, every path ends in an
//! action that has the values it needs, every placeholder has a value where it is shown, and
//! every screen fits in [`SCREEN_CHARS_MAX`] with the longest values filled in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::text::{fill, placeholders, Fill};
use super::{
    FeeKind, Input, Menu, MenuError, Message, Screen, NAME_SHOWN_MAX, OPTIONS_MAX, SCREEN_CHARS_MAX,
};

/// The mini statement's most lines, and each line's most characters
/// (`UBG6U6NN6A 16/12 -250,000.00`).
pub const STATEMENT_LINES: usize = 5;
pub const STATEMENT_LINE_CHARS_MAX: usize = 28;

/// The file lines of what a menu names, for the errors.
pub(super) struct Places {
    pub start: usize,
    pub screens: BTreeMap<String, usize>,
    pub messages: BTreeMap<Message, usize>,
}

/// Values whose screen name is `<value>.name` (an account looked up to show who it is).
const NAMED: [Input; 5] = [
    Input::Phone,
    Input::Agent,
    Input::Business,
    Input::Till,
    Input::MyAgent,
];

/// The longest text a placeholder can stand for.
pub fn longest(name: &str) -> String {
    match name {
        "phone" => "0712345678".into(),
        "amount" => "Ksh999,999.00".into(),
        "agent" | "my_agent" | "store" | "business" | "till" => "12345678".into(),
        "account" => "A".repeat(tuma_actors::transfer::ACCOUNT_REFERENCE_LEN_MAX),
        "fee" => "Ksh9,999.00".into(),
        "receipt" => "UBG6U6NN6A".into(),
        "balance" | "commission" => "Ksh999,999,999.00".into(),
        "language" => "kik".into(),
        "lines" => vec!["L".repeat(STATEMENT_LINE_CHARS_MAX); STATEMENT_LINES].join("\n"),
        n if n.ends_with(".name") => "W".repeat(NAME_SHOWN_MAX),
        _ => String::new(),
    }
}

fn longest_fill(names: &[&str]) -> Fill {
    names.iter().map(|n| (n.to_string(), longest(n))).collect()
}

pub(super) fn check(menu: &Menu, places: &Places) -> Vec<MenuError> {
    let mut errors = Vec::new();
    let at = |id: &str| places.screens.get(id).copied();
    let mut fault = |line: Option<usize>, message: String| errors.push(MenuError { line, message });

    if !menu.screens.contains_key(&menu.start) {
        fault(
            Some(places.start),
            format!("start screen {:?} is not defined", menu.start),
        );
    }
    // Structure of each screen.
    for (id, screen) in &menu.screens {
        if let Screen::Choose { options, .. } = screen {
            if options.is_empty() || options.len() > OPTIONS_MAX {
                fault(
                    at(id),
                    format!("screen {id}: a choice lists 1 to {OPTIONS_MAX} options"),
                );
            }
        }
        for next in screen.next_screens() {
            if !menu.screens.contains_key(next) {
                fault(
                    at(id),
                    format!("screen {id}: leads to {next:?}, which is not defined"),
                );
            }
        }
        if let Screen::Ask {
            input: Input::Language,
            ..
        } = screen
        {
            if menu.languages.is_empty() {
                fault(
                    at(id),
                    format!("screen {id}: asks for a language, but the menu lists no `languages`"),
                );
            }
        }
        if let Some(action) = screen.action() {
            if action.role() != menu.role {
                fault(
                    at(id),
                    format!(
                        "screen {id}: action {} is not for the {} menu",
                        action.name(),
                        menu.role.name()
                    ),
                );
            }
        }
    }
    let faults_so_far = errors.len();
    let mut fault = |line: Option<usize>, message: String| errors.push(MenuError { line, message });
    if faults_so_far == 0 {
        let graph = Graph::new(menu);
        for id in menu.screens.keys() {
            if !graph.reached.contains(id.as_str()) {
                fault(
                    at(id),
                    format!("screen {id} is never reached from {:?}", menu.start),
                );
            } else if !graph.ends.contains(id.as_str()) {
                fault(
                    at(id),
                    format!("screen {id}: no path from here ends in an action"),
                );
            }
        }
        for (id, screen) in &menu.screens {
            if !graph.reached.contains(id.as_str()) {
                continue;
            }
            let before = &graph.collected[id.as_str()];
            let mut after = before.clone();
            if let Screen::Ask { input, .. } = screen {
                after.insert(*input);
            }
            if let Some(action) = screen.action() {
                let missing: Vec<&str> = action
                    .needs()
                    .iter()
                    .filter(|i| !after.contains(i))
                    .map(|i| i.name())
                    .collect();
                if !missing.is_empty() {
                    fault(
                        at(id),
                        format!(
                            "screen {id}: action {} needs {} on every path to it",
                            action.name(),
                            missing.join(", ")
                        ),
                    );
                }
            }
            let names = match placeholders(screen.text()) {
                Ok(names) => names,
                Err(e) => {
                    fault(at(id), format!("screen {id}: {e}"));
                    continue;
                }
            };
            for name in &names {
                if let Err(e) = placeholder_known(name, before, &graph.fees_ahead(id)) {
                    fault(at(id), format!("screen {id}: {{{name}}} {e}"));
                }
            }
            let filled = fill(screen.text(), &longest_fill(&names));
            let shown = screen.shown(&filled);
            // A missing message is reported below; the screen is measured without it.
            let invalid_entry = menu.messages.get(&Message::InvalidEntry);
            let again = format!("{}\n{shown}", invalid_entry.map_or("", String::as_str));
            let chars = again.chars().count();
            if chars > SCREEN_CHARS_MAX {
                fault(
                    at(id),
                    format!(
                        "screen {id}: {chars} characters with the longest values (shown again after a bad entry); at most {SCREEN_CHARS_MAX}"
                    ),
                );
            }
        }
    }
    for message in Message::ALL {
        let line = places.messages.get(&message).copied();
        let Some(text) = menu.messages.get(&message) else {
            fault(None, format!("message {} is missing", message.name()));
            continue;
        };
        let names = match placeholders(text) {
            Ok(names) => names,
            Err(e) => {
                fault(line, format!("message {}: {e}", message.name()));
                continue;
            }
        };
        for name in &names {
            if !message.placeholders().contains(name) {
                fault(
                    line,
                    format!(
                        "message {}: unknown placeholder {{{name}}} (it may use: {})",
                        message.name(),
                        message.placeholders().join(", ")
                    ),
                );
            }
        }
        let chars = fill(text, &longest_fill(&names)).chars().count();
        if chars > SCREEN_CHARS_MAX {
            fault(
                line,
                format!(
                    "message {}: {chars} characters with the longest values; at most {SCREEN_CHARS_MAX}",
                    message.name()
                ),
            );
        }
    }
    errors
}

/// Is `{name}` fillable on a screen reached with `collected`, with `fees` ahead of it?
fn placeholder_known(
    name: &str,
    collected: &BTreeSet<Input>,
    fees: &BTreeSet<FeeKindKey>,
) -> Result<(), String> {
    if name == "fee" {
        return match fees.len() {
            1 => Ok(()),
            0 => Err("is shown where no action lies ahead".into()),
            _ => Err("is ambiguous: the actions ahead have different tariffs".into()),
        };
    }
    let (value, looked_up) = match name.strip_suffix(".name") {
        Some(value) => (value, true),
        None => (name, false),
    };
    let input = Input::parse(value).ok_or("is not a value, a name or the fee")?;
    if input.is_secret() {
        return Err("is a PIN, never shown".into());
    }
    if looked_up && !NAMED.contains(&input) {
        return Err("names no account".into());
    }
    if !collected.contains(&input) {
        return Err("is not collected on every path to this screen".into());
    }
    Ok(())
}

/// A fee kind as an ordered key.
type FeeKindKey = u8;

fn fee_key(kind: FeeKind) -> FeeKindKey {
    match kind {
        FeeKind::Send => 0,
        FeeKind::Withdrawal => 1,
        FeeKind::Free => 2,
    }
}

/// The menu as a graph of screens.
struct Graph<'m> {
    menu: &'m Menu,
    /// Screens reached from the start.
    reached: BTreeSet<&'m str>,
    /// Screens from which an action can be reached.
    ends: BTreeSet<&'m str>,
    /// The values collected on every path from the start to each reached screen.
    collected: BTreeMap<&'m str, BTreeSet<Input>>,
}

impl<'m> Graph<'m> {
    fn new(menu: &'m Menu) -> Graph<'m> {
        let mut reached = BTreeSet::new();
        let mut queue = VecDeque::from([menu.start.as_str()]);
        while let Some(id) = queue.pop_front() {
            if reached.insert(id) {
                queue.extend(menu.screen(id).next_screens());
            }
        }
        let mut ends: BTreeSet<&str> = menu
            .screens
            .iter()
            .filter(|(_, s)| s.action().is_some())
            .map(|(id, _)| id.as_str())
            .collect();
        loop {
            let grown: Vec<&str> = menu
                .screens
                .iter()
                .filter(|(id, s)| {
                    !ends.contains(id.as_str()) && s.next_screens().iter().any(|n| ends.contains(n))
                })
                .map(|(id, _)| id.as_str())
                .collect();
            if grown.is_empty() {
                break;
            }
            ends.extend(grown);
        }
        // Values collected on every path: the meet over predecessors, to a fixed point.
        let all: BTreeSet<Input> = Input::ALL.into_iter().collect();
        let mut collected: BTreeMap<&str, BTreeSet<Input>> =
            reached.iter().map(|id| (*id, all.clone())).collect();
        collected.insert(menu.start.as_str(), BTreeSet::new());
        let mut changed = true;
        while changed {
            changed = false;
            for id in &reached {
                let screen = menu.screen(id);
                let mut out = collected[id].clone();
                if let Screen::Ask { input, .. } = screen {
                    out.insert(*input);
                }
                for next in screen.next_screens() {
                    let meet: BTreeSet<Input> =
                        collected[next].intersection(&out).copied().collect();
                    if meet != collected[next] && next != menu.start {
                        collected.insert(next, meet);
                        changed = true;
                    }
                }
            }
        }
        Graph {
            menu,
            reached,
            ends,
            collected,
        }
    }

    /// The tariffs of the actions reachable from `id`.
    fn fees_ahead(&self, id: &str) -> BTreeSet<FeeKindKey> {
        let mut seen = BTreeSet::new();
        let mut fees = BTreeSet::new();
        let mut queue = VecDeque::from([id]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            let screen = self.menu.screen(id);
            if let Some(action) = screen.action() {
                fees.insert(fee_key(action.fee()));
            }
            queue.extend(screen.next_screens());
        }
        fees
    }
}
