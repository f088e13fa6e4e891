//! `tuma ctl keys …`: the cluster's scoped API keys (with the bootstrap `--admin-token`; an
//! auditor's key may list them).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Every key: id, role, label, created, revoked (never a secret).
    List,
    /// A new key for a role; prints it once (the cluster keeps only a digest).
    Create {
        /// operator (members, float, registrations, business configuration, menus), care (PIN
        /// unlock and reset, reversals, statements) or auditor (read-only).
        #[arg(long)]
        role: String,
        /// Who holds it ("care desk 4").
        #[arg(long)]
        label: String,
    },
    /// A new key with the old one's role and label; the old one stops working within a second.
    Rotate { id: String },
    /// The key stops working on every node within a second (it stays listed as revoked).
    Revoke { id: String },
}

pub async fn keys(node: &str, token: &str, command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let client = crate::ctl_cmd::http_client(Duration::from_secs(20))?;
    let base = format!("{}/admin/v1/keys", node.trim_end_matches('/'));
    let request = match command {
        KeysCommand::List => client.get(&base),
        KeysCommand::Create { role, label } => client
            .post(&base)
            .json(&serde_json::json!({ "role": role, "label": label })),
        KeysCommand::Rotate { id } => client.post(format!("{base}/{id}/rotate")),
        KeysCommand::Revoke { id } => client.delete(format!("{base}/{id}")),
    };
    let body = match crate::ctl_cmd::admin_call(request, node, token).await? {
        Ok(body) => body,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match command {
        KeysCommand::List => {
            println!("{:<10} {:<9} {:<8} label", "id", "role", "state");
            for key in body["keys"].as_array().into_iter().flatten() {
                let state = if key["active"] == true {
                    "active"
                } else {
                    "revoked"
                };
                println!(
                    "{:<10} {:<9} {:<8} {}",
                    key["id"].as_str().unwrap_or("?"),
                    key["role"].as_str().unwrap_or("?"),
                    state,
                    key["label"].as_str().unwrap_or("")
                );
            }
        }
        KeysCommand::Create { .. } | KeysCommand::Rotate { .. } => {
            eprintln!(
                "key {} ({}, {}) created; it is shown only now:",
                body["id"].as_str().unwrap_or("?"),
                body["role"].as_str().unwrap_or("?"),
                body["label"].as_str().unwrap_or("")
            );
            println!("{}", body["key"].as_str().unwrap_or(""));
        }
        KeysCommand::Revoke { id } => println!("key {id} revoked"),
    }
    Ok(ExitCode::SUCCESS)
}
