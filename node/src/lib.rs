//! The `tuma` binary's parts, as a library: the node's wiring, its HTTP API, and the
//! operator commands (`cluster`, `ctl`, `bench`, `chaos`, `sim`, `menus`). `main.rs` only
//! parses the command line and hands off. A library so that the fuzz targets reach the HTTP
//! API's request parsing (`http::fuzzing`).

pub mod bench_cmd;
pub mod chaos_cmd;
pub mod cluster_cmd;
pub mod config;
pub mod ctl_audit_log;
pub mod ctl_backup;
pub mod ctl_cmd;
pub mod ctl_keys;
pub mod duration;
pub mod engine_tuning;
pub mod http;
pub mod join;
pub mod menus_cmd;
pub mod node_cmd;
pub mod restore;
pub mod sim_cmd;
pub mod tls;

/// Logs to stderr; `TUMA_LOG` (or `RUST_LOG`) sets the filter (default `info`).
pub fn init_tracing() {
    init_tracing_as(config::LogFormat::Text);
}

/// Log lines to standard error, filtered by `TUMA_LOG` (or `RUST_LOG`; default `info`).
pub fn init_tracing_as(format: config::LogFormat) {
    let filter = std::env::var("TUMA_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
