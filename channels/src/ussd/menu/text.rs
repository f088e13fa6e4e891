//! Placeholders in menu texts: `{amount}`, `{phone.name}`, `{fee}`… A text names values by
//! placeholder; a session fills them in when it shows the screen.

use std::collections::BTreeMap;

/// The values a text is filled with, by placeholder name.
pub type Fill = BTreeMap<String, String>;

/// The placeholder names in `text`, in order; an error for an unclosed or empty one.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed {{ in {text:?}"))?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("malformed placeholder in {text:?}"));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray }} in {text:?}"));
    }
    Ok(names)
}

/// `text` with each placeholder replaced by its value (empty when it has none; menus are
/// checked so that every placeholder has one where it is shown).
pub fn fill(text: &str, values: &Fill) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push_str(values.get(name).map_or("", String::as_str));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_filled() {
        let text = "Send {amount} to {phone.name} {phone}?";
        assert_eq!(
            placeholders(text).unwrap(),
            vec!["amount", "phone.name", "phone"]
        );
        let values: Fill = [
            ("amount", "Ksh10.00"),
            ("phone.name", "JANE"),
            ("phone", "0712"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fill(text, &values), "Send Ksh10.00 to JANE 0712?");
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        assert!(placeholders("Send {amount").is_err());
        assert!(placeholders("Send {}").is_err());
        assert!(placeholders("Send amount}").is_err());
        assert!(placeholders("no placeholders").unwrap().is_empty());
    }
}
