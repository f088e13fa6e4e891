//! `tuma ctl audit-log`: the cluster's audit trail as JSON lines, newest first — one page, or
//! every record (`--all`, paging with the cursor each page ends at) for an export.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::ctl_cmd::{admin_call, http_client};

#[derive(Args, Debug)]
pub struct AuditLogArgs {
    /// Records a page (1 to 1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Start after this cursor (the `next` an earlier page ended with).
    #[arg(long)]
    after: Option<String>,
    /// Every record, page after page (an export).
    #[arg(long)]
    all: bool,
}

pub async fn audit_log(node: &str, token: &str, args: &AuditLogArgs) -> anyhow::Result<ExitCode> {
    let client = http_client(Duration::from_secs(30))?;
    let url = format!("{}/admin/v1/audit-log", node.trim_end_matches('/'));
    let mut after = args.after.clone();
    let mut out = std::io::stdout().lock();
    let mut written = 0usize;
    loop {
        let mut query = vec![("limit", args.limit.to_string())];
        if let Some(cursor) = &after {
            query.push(("after", cursor.clone()));
        }
        let page = match admin_call(client.get(&url).query(&query), node, token).await? {
            Ok(page) => page,
            Err(reason) => {
                eprintln!("{reason}");
                return Ok(ExitCode::FAILURE);
            }
        };
        for record in page["records"].as_array().into_iter().flatten() {
            writeln!(out, "{record}").context("writing the records")?;
            written += 1;
        }
        after = page["next"].as_str().map(str::to_string);
        match (&after, args.all) {
            (Some(_), true) => continue,
            (Some(next), false) => eprintln!("{written} records; more after --after {next}"),
            (None, _) => eprintln!("{written} records; no more"),
        }
        return Ok(ExitCode::SUCCESS);
    }
}
