//! The menus in force: the shipped ones, replaced by those pushed to the cluster (stored as
//! the cluster's documents `menu/<role>-<language>`, so every node serves the same version).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::menu::{parse_menu, Menu, MenuRole, DEFAULT_MENUS};

/// The prefix of a menu's document name.
pub const MENU_DOCUMENT_PREFIX: &str = "menu/";

/// A menu and the version it was stored as (0: shipped with the binary).
#[derive(Clone, Debug)]
pub struct Versioned {
    pub version: u64,
    pub menu: Arc<Menu>,
}

/// Every menu this node serves, by name (`customer-en`).
#[derive(Clone, Debug)]
pub struct MenuBook {
    menus: BTreeMap<String, Versioned>,
    default_language: String,
}

impl MenuBook {
    /// The shipped menus; sessions start in `default_language` unless asked otherwise.
    pub fn shipped(default_language: &str) -> MenuBook {
        let menus = DEFAULT_MENUS
            .iter()
            .map(|(name, text)| {
                let menu = parse_menu(text).expect("the shipped menus pass their checks");
                let versioned = Versioned {
                    version: 0,
                    menu: Arc::new(menu),
                };
                (name.to_string(), versioned)
            })
            .collect();
        MenuBook {
            menus,
            default_language: default_language.to_string(),
        }
    }

    /// Takes in stored menus newer than the ones held: `(name, version, text)`. A stored menu
    /// that fails its checks here (a node of an older build) is skipped and logged.
    pub fn update<'a>(&mut self, stored: impl IntoIterator<Item = (&'a str, u64, &'a str)>) {
        for (name, version, text) in stored {
            if self.menus.get(name).is_some_and(|m| m.version >= version) {
                continue;
            }
            match parse_menu(text) {
                Ok(menu) if menu.name() == name => {
                    tracing::info!(menu = name, version, "USSD menu loaded");
                    let menu = Arc::new(menu);
                    self.menus
                        .insert(name.to_string(), Versioned { version, menu });
                }
                Ok(menu) => tracing::error!(
                    stored = name,
                    declared = menu.name(),
                    "a stored USSD menu declares another role or language; kept the previous one"
                ),
                Err(errors) => tracing::error!(
                    menu = name,
                    version,
                    %errors,
                    "a stored USSD menu fails this node's checks; kept the previous one"
                ),
            }
        }
    }

    /// The menu for a dialled code in `language` (else the default language, else any).
    pub fn for_code(&self, service_code: &str, language: Option<&str>) -> Option<Versioned> {
        let role = self.role_of(service_code)?;
        let wanted = [language, Some(self.default_language.as_str())];
        wanted
            .into_iter()
            .flatten()
            .find_map(|lang| self.menus.get(&format!("{}-{lang}", role.name())))
            .or_else(|| self.menus.values().find(|m| m.menu.role == role))
            .cloned()
    }

    fn role_of(&self, service_code: &str) -> Option<MenuRole> {
        self.menus
            .values()
            .find(|m| m.menu.service_codes.iter().any(|c| c == service_code))
            .map(|m| m.menu.role)
    }

    /// Every menu's name and version.
    pub fn versions(&self) -> Vec<(String, u64)> {
        self.menus
            .iter()
            .map(|(name, m)| (name.clone(), m.version))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Versioned> {
        self.menus.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_pick_the_role_and_languages_fall_back_to_the_default() {
        let book = MenuBook::shipped("en");
        let customer = book.for_code("*334#", None).unwrap();
        assert_eq!(customer.menu.name(), "customer-en");
        assert_eq!(
            book.for_code("*334#", Some("sw")).unwrap().menu.name(),
            "customer-sw"
        );
        assert_eq!(
            book.for_code("*334#", Some("fr")).unwrap().menu.name(),
            "customer-en"
        );
        assert_eq!(
            book.for_code("*335#", None).unwrap().menu.name(),
            "agent-en"
        );
        assert!(book.for_code("*999#", None).is_none());
    }

    #[test]
    fn newer_stored_menus_replace_older_ones_and_bad_ones_are_skipped() {
        let mut book = MenuBook::shipped("en");
        let text = DEFAULT_MENUS[0].1.replace("\"M-PESA\"", "\"TUMA\"");
        book.update([("customer-en", 2, text.as_str())]);
        assert_eq!(book.get("customer-en").unwrap().version, 2);
        // An older version and a broken one leave version 2 in force.
        book.update([("customer-en", 1, DEFAULT_MENUS[0].1)]);
        book.update([("customer-en", 3, "role = \"customer\"")]);
        // A menu stored under another menu's name is refused.
        book.update([("customer-en", 4, DEFAULT_MENUS[1].1)]);
        let in_force = book.get("customer-en").unwrap();
        assert_eq!(in_force.version, 2);
        assert!(matches!(
            in_force.menu.screen("main"),
            super::super::menu::Screen::Choose { text, .. } if text == "TUMA"
        ));
    }
}
