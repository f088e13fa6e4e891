//! `tuma menus`: USSD menu files offline — check one before pushing it, print a shipped one to
//! start an edit from.

use std::process::ExitCode;

use clap::Subcommand;
use tuma_channels::ussd::menu::DEFAULT_MENUS;
use tuma_channels::ussd::parse_menu;

#[derive(Subcommand, Debug)]
pub enum MenusCommand {
    /// Check a menu file: every screen reached and ending in an action, every screen within
    /// 182 characters with the longest values; each fault with its line. Exit 1 on any.
    Check { file: std::path::PathBuf },
    /// Print a shipped menu (customer-en, customer-sw, agent-en, agent-sw).
    Show { name: String },
}

pub fn run(command: MenusCommand) -> anyhow::Result<ExitCode> {
    match command {
        MenusCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            match parse_menu(&text) {
                Ok(menu) => {
                    println!(
                        "{}: menu {} ok: {} screens, {} actions, service codes {}",
                        file.display(),
                        menu.name(),
                        menu.screens.len(),
                        menu.actions().len(),
                        menu.service_codes.join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for error in &errors.0 {
                        eprintln!("{}: {error}", file.display());
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        MenusCommand::Show { name } => match DEFAULT_MENUS.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let names: Vec<&str> = DEFAULT_MENUS.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "no shipped menu {name:?}; expected one of {}",
                    names.join(", ")
                )
            }
        },
    }
}
