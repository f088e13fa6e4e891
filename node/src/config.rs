//! `tuma node` configuration: flags, `TUMA_…` environment variables and an optional TOML file
//! (kebab-case keys), in that order of precedence. See `tuma.example.toml`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use tuma_actors::pin::{PinHasher, PinKey};

/// Shortest cluster secret and admin token accepted.
const SECRET_LEN_MIN: usize = 16;

#[derive(Args, Debug, Clone, Default)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = "TUMA_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (1, 2, …), one of --members.
    #[arg(long, env = "TUMA_ID")]
    pub id: Option<u64>,
    /// Data directory (locked while the node runs).
    #[arg(long, env = "TUMA_DATA")]
    pub data: Option<PathBuf>,
    /// Address for peer traffic (defaults to this node's address in --members).
    #[arg(long, env = "TUMA_LISTEN_PEER")]
    pub listen_peer: Option<SocketAddr>,
    /// Address for the HTTP API (default 127.0.0.1:8080).
    #[arg(long, env = "TUMA_LISTEN_HTTP")]
    pub listen_http: Option<SocketAddr>,
    /// Initial members: `1=HOST:PORT,2=HOST:PORT,…` (peer addresses). Not with --join.
    #[arg(long, env = "TUMA_MEMBERS")]
    pub members: Option<String>,
    /// Join a running cluster through any member's HTTP URL (e.g. `http://10.0.0.1:8080`);
    /// the cluster records the node, picks an id if --id is not given, and moves replicas to
    /// it. On later starts the data directory already knows the cluster and this is ignored.
    #[arg(long, env = "TUMA_JOIN")]
    pub join: Option<String>,
    /// Peer address other members use to reach this node (default --listen-peer).
    #[arg(long, env = "TUMA_ADVERTISE_PEER")]
    pub advertise_peer: Option<SocketAddr>,
    /// Most shard replica moves the rebalancer runs at once (default 4).
    #[arg(long, env = "TUMA_REBALANCE_MOVES_MAX")]
    pub rebalance_moves_max: Option<usize>,
    /// The cluster secret (at least 16 characters); prefer --cluster-secret-file.
    #[arg(long, env = "TUMA_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret.
    #[arg(long, env = "TUMA_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Bearer token for /admin/v1 (at least 16 characters).
    #[arg(long, env = "TUMA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Shards (fixed at cluster creation; default 64).
    #[arg(long, env = "TUMA_SHARDS")]
    pub shards: Option<u32>,
    /// Replicas per shard (default 3, or the member count if smaller).
    #[arg(long, env = "TUMA_REPLICAS")]
    pub replicas: Option<usize>,
    /// How new PINs are stored: `keyed` (HMAC-SHA-256 under the PIN key, verified in
    /// microseconds; default) or `argon2` (argon2id, ~20–40 ms of a core per verification).
    #[arg(long, env = "TUMA_PIN_HASH")]
    pub pin_hash: Option<String>,
    /// Log lines as `text` (default) or `json` (one object per line, for log shippers).
    #[arg(long, env = "TUMA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Serve HTTPS with this certificate (PEM, with its chain); needs --tls-key.
    #[arg(long, env = "TUMA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM; readable by its owner only).
    #[arg(long, env = "TUMA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A CA certificate (PEM) to trust when this node calls other members over HTTPS (a
    /// private CA, such as the one `tuma cluster up` makes).
    #[arg(long, env = "TUMA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Float issues above this amount wait for a second caller's approval (maker-checker;
    /// default 1000000.00, `off` for never).
    #[arg(long, env = "TUMA_FLOAT_APPROVAL_ABOVE")]
    pub float_approval_above: Option<String>,
    /// A file holding the PIN key's secret material (the same on every node, outside the data
    /// directory); default: derived from the cluster secret.
    #[arg(long, env = "TUMA_PIN_KEY_FILE")]
    pub pin_key_file: Option<PathBuf>,
    /// Start a new cluster from this backup (`tuma ctl backup --out`): an initial member's first
    /// start, on an empty data directory, with the backup's shard count; every initial member
    /// is given the same backup. Ignored once the data directory holds the cluster.
    #[arg(long, env = "TUMA_RESTORE")]
    pub restore: Option<PathBuf>,
    /// argon2id memory for new PIN hashes, KiB (default 19456).
    #[arg(long, env = "TUMA_PIN_HASH_MEMORY_KIB")]
    pub pin_hash_memory_kib: Option<u32>,
    /// argon2id iterations for new PIN hashes (default 2).
    #[arg(long, env = "TUMA_PIN_HASH_ITERATIONS")]
    pub pin_hash_iterations: Option<u32>,
    /// Checkpoint a shard's ledger (and compact its log) after this many entries (default 20000).
    #[arg(long, env = "TUMA_CHECKPOINT_EVERY_ENTRIES")]
    pub checkpoint_every_entries: Option<u64>,
    /// Log entries kept behind a checkpoint for slow followers (default 2000).
    #[arg(long, env = "TUMA_LOG_KEEP_ENTRIES")]
    pub log_keep_entries: Option<u64>,
    /// A node whose clock differs from its peers' by more than this refuses to lead, and says
    /// so in its log and `/health` (default 500).
    #[arg(long, env = "TUMA_MAX_CLOCK_OFFSET_MS")]
    pub max_clock_offset_ms: Option<u64>,
    /// How long a finished transfer's answer is kept for retries with its request_id
    /// (default 24h); after it the id is refused as `request_id_expired`. Like 90s, 10m, 24h.
    #[arg(long, env = "TUMA_IDEMPOTENCY_WINDOW")]
    pub idempotency_window: Option<String>,
    /// Failed transfer attempts (wrong PIN, unknown or inactive payer, a reused request_id) a
    /// payer may make per minute before further attempts are answered `429` (default 10; 0: no
    /// limit).
    #[arg(long, env = "TUMA_FAILED_ATTEMPTS_PER_PAYER")]
    pub failed_attempts_per_payer: Option<u32>,
    /// Failed transfer attempts per minute from one source address, over all payers (default
    /// 600; 0: no limit). A USSD or SMS gateway sends every customer's attempts from one address.
    #[arg(long, env = "TUMA_FAILED_ATTEMPTS_PER_SOURCE")]
    pub failed_attempts_per_source: Option<u32>,
    /// Calls a minute one source address may make to the public endpoints, on this node
    /// (default 120000; 0: no limit). Gateways send all their customers' calls from one address.
    #[arg(long, env = "TUMA_REQUESTS_PER_SOURCE")]
    pub requests_per_source: Option<u32>,
    /// Calls a minute the app channel takes naming one phone number, on this node (default
    /// 1200; 0: no limit).
    #[arg(long, env = "TUMA_REQUESTS_PER_MSISDN")]
    pub requests_per_msisdn: Option<u32>,
    /// How long the USSD gateway waits for an answer, in ms (default 8000): a transfer not
    /// decided by then is answered "request received, you will get an SMS".
    #[arg(long, env = "TUMA_USSD_ANSWER_MS")]
    pub ussd_answer_ms: Option<u64>,
    /// A USSD session with no step for this long is dropped (default 60s).
    #[arg(long, env = "TUMA_USSD_SESSION_IDLE")]
    pub ussd_session_idle: Option<String>,
    /// A USSD session older than this is ended (default 180s).
    #[arg(long, env = "TUMA_USSD_SESSION_LIFETIME")]
    pub ussd_session_lifetime: Option<String>,
    /// Most live USSD sessions on this node (default 100000).
    #[arg(long, env = "TUMA_USSD_SESSIONS_MAX")]
    pub ussd_sessions_max: Option<usize>,
    /// The language USSD sessions start in: a menu's language code (default en).
    #[arg(long, env = "TUMA_USSD_LANGUAGE")]
    pub ussd_language: Option<String>,
    /// How long a customer has to answer an M-Pesa Express payment prompt before it closes
    /// as unanswered (ResultCode 1037) (default 60s).
    #[arg(long, env = "TUMA_DARAJA_PROMPT_LIFETIME")]
    pub daraja_prompt_lifetime: Option<String>,
    /// How long a business's C2B validation URL has to answer before its registered default
    /// applies (default 5s).
    #[arg(long, env = "TUMA_DARAJA_VALIDATION_TIMEOUT")]
    pub daraja_validation_timeout: Option<String>,
    /// How long a B2C or B2B order may wait for its payment to start before it is closed
    /// unpaid and announced to its QueueTimeOutURL (default 30s).
    #[arg(long, env = "TUMA_DARAJA_PAYOUT_QUEUE_TIMEOUT")]
    pub daraja_payout_queue_timeout: Option<String>,
    /// Sandbox clusters only: offer Daraja's C2B simulate, paying with this PIN (test
    /// customers hold it). Unset (the default), simulate answers 404 as production does.
    #[arg(long, env = "TUMA_DARAJA_SIMULATE_PIN", hide_env_values = true)]
    pub daraja_simulate_pin: Option<String>,
    /// Business API calls one business may make to this node a minute (default 6000; 0: no
    /// limit); past it, Daraja's `500.003.02 Spike Arrest Violation`.
    #[arg(long, env = "TUMA_DARAJA_CALLS_PER_MINUTE")]
    pub daraja_calls_per_minute: Option<u32>,
    /// The only hosts business callbacks may go to, comma-separated (default: any host but
    /// this node's own HTTP listener).
    #[arg(long, env = "TUMA_DARAJA_CALLBACK_HOSTS")]
    pub daraja_callback_hosts: Option<String>,
    /// Where confirmation texts go: `log` (the node log, the default), `kannel` (Kannel's
    /// sendsms interface) or `africastalking` (its messaging API).
    #[arg(long, env = "TUMA_SMS_GATEWAY")]
    pub sms_gateway: Option<String>,
    /// The gateway's base URL: Kannel's smsbox (`http://host:13013`) or Africa's Talking
    /// (`https://api.africastalking.com`, the sandbox's for tests).
    #[arg(long, env = "TUMA_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// Kannel's sendsms username, or the Africa's Talking username.
    #[arg(long, env = "TUMA_SMS_USERNAME")]
    pub sms_username: Option<String>,
    /// Kannel's sendsms password, or the Africa's Talking API key.
    #[arg(long, env = "TUMA_SMS_SECRET", hide_env_values = true)]
    pub sms_secret: Option<String>,
    /// The sender id or short code texts come from.
    #[arg(long, env = "TUMA_SMS_FROM")]
    pub sms_from: Option<String>,
    /// Where Kannel sends delivery reports (default: this node's
    /// `http://<listen-http>/sms/v1/dlr`).
    #[arg(long, env = "TUMA_SMS_DLR_URL")]
    pub sms_dlr_url: Option<String>,
    /// Most texts waiting for the gateway on this node before it stops taking more from the
    /// shards (default 1000000; `tuma_sms_spool_full` says when it is reached).
    #[arg(long, env = "TUMA_SMS_SPOOL_MAX")]
    pub sms_spool_max: Option<usize>,
    /// The engine's limits and timers (Raft ticks, queues, snapshot streams, protocol pacing).
    #[command(flatten)]
    pub engine: crate::engine_tuning::EngineTuning,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Enable test-only fault hooks (never in production).
    #[arg(long, hide = true)]
    pub enable_test_hooks: bool,
    /// Skew this node's clock by this many ms (chaos tests).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    /// Plant a fault for checker tests: `ack-before-decide`, `presume-abort-early`,
    /// `destroy-on-placement-change` (checker tests only).
    #[arg(long, hide = true)]
    pub plant_fault: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data: Option<PathBuf>,
    listen_peer: Option<SocketAddr>,
    listen_http: Option<SocketAddr>,
    members: Option<String>,
    join: Option<String>,
    advertise_peer: Option<SocketAddr>,
    rebalance_moves_max: Option<usize>,
    cluster_secret: Option<String>,
    cluster_secret_file: Option<PathBuf>,
    admin_token: Option<String>,
    shards: Option<u32>,
    replicas: Option<usize>,
    pin_hash: Option<String>,
    log_format: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    float_approval_above: Option<String>,
    pin_key_file: Option<PathBuf>,
    pin_hash_memory_kib: Option<u32>,
    pin_hash_iterations: Option<u32>,
    checkpoint_every_entries: Option<u64>,
    log_keep_entries: Option<u64>,
    max_clock_offset_ms: Option<u64>,
    idempotency_window: Option<String>,
    failed_attempts_per_payer: Option<u32>,
    failed_attempts_per_source: Option<u32>,
    requests_per_source: Option<u32>,
    requests_per_msisdn: Option<u32>,
    ussd_answer_ms: Option<u64>,
    ussd_session_idle: Option<String>,
    ussd_session_lifetime: Option<String>,
    ussd_sessions_max: Option<usize>,
    ussd_language: Option<String>,
    daraja_prompt_lifetime: Option<String>,
    daraja_validation_timeout: Option<String>,
    daraja_payout_queue_timeout: Option<String>,
    daraja_simulate_pin: Option<String>,
    daraja_calls_per_minute: Option<u32>,
    daraja_callback_hosts: Option<String>,
    sms_gateway: Option<String>,
    sms_gateway_url: Option<String>,
    sms_username: Option<String>,
    sms_secret: Option<String>,
    sms_from: Option<String>,
    sms_dlr_url: Option<String>,
    sms_spool_max: Option<usize>,
    /// The `[engine]` table: the engine's limits and timers.
    #[serde(default)]
    engine: crate::engine_tuning::EngineTuning,
}

/// Bounds of `--idempotency-window`: a second (tests, soaks) to thirty days.
const IDEMPOTENCY_WINDOW_MS_MIN: u64 = 1_000;
const IDEMPOTENCY_WINDOW_MS_MAX: u64 = 30 * 86_400_000;

/// How log lines are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line (time, level, target, span fields, message, fields).
    Json,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id; `0` when joining without --id (the cluster assigns one).
    pub id: u64,
    pub log_format: LogFormat,
    /// HTTPS on the HTTP listener (plain HTTP when `None`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The CA trusted for calls to other members.
    pub tls_ca: Option<PathBuf>,
    /// Float issues above this wait for a second caller's approval (`None`: never).
    pub float_approval_above: Option<tuma_actors::money::Money>,
    /// The backup a new cluster starts from.
    pub restore: Option<PathBuf>,
    pub data: PathBuf,
    pub listen_peer: SocketAddr,
    pub listen_http: SocketAddr,
    /// The initial members (empty when joining).
    pub members: BTreeMap<u64, SocketAddr>,
    /// The member URL to join through, for a node that is not an initial member.
    pub join: Option<String>,
    pub advertise_peer: SocketAddr,
    pub rebalance_moves_max: usize,
    pub secret: Vec<u8>,
    pub admin_token: String,
    pub shards: u32,
    pub replicas: usize,
    pub hasher: PinHasher,
    pub test_hooks: bool,
    pub checkpoint_every_entries: u64,
    pub log_keep_entries: u64,
    pub max_clock_offset_ms: u64,
    pub idempotency_window_ms: u64,
    pub attempt_limits: tuma_service::AttemptLimits,
    pub request_limits: crate::http::request_limits::RequestLimits,
    /// The engine's limits and timers given (unset ones keep the engine's defaults).
    pub engine: crate::engine_tuning::EngineTuning,
    pub ussd: tuma_channels::ussd::UssdConfig,
    pub sms: tuma_channels::sms::SmsConfig,
    pub daraja: tuma_daraja::DarajaConfig,
    pub clock_offset_ms: i64,
    pub planted_fault: Option<tuma_cluster::engine::EngineFault>,
}

/// Parses `1=HOST:PORT,2=HOST:PORT`.
pub fn parse_members(text: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let mut members = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, address) = part
            .split_once('=')
            .with_context(|| format!("member {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("member id {id:?} is not a number"))?;
        if id == 0 {
            bail!("member ids start at 1");
        }
        let address = address
            .trim()
            .to_socket_addrs()
            .with_context(|| format!("member {id} address {address:?} is not HOST:PORT"))?
            .next()
            .with_context(|| format!("member {id} address {address:?} does not resolve"))?;
        if members.insert(id, address).is_some() {
            bail!("member {id} is listed twice");
        }
    }
    if members.is_empty() {
        bail!("--members is empty");
    }
    Ok(members)
}

impl NodeArgs {
    /// Merges flags/environment over the file over defaults, and validates.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let ussd = self.ussd_config(&file)?;
        let daraja = self.daraja_config(&file)?;
        let sms = self.sms_config(&file, self.listen_http.or(file.listen_http))?;
        let data = self
            .data
            .clone()
            .or(file.data)
            .context("--data is required")?;
        let join = self.join.clone().or(file.join);
        let members_text = self.members.clone().or(file.members);
        let (id, members, listen_peer, own_peer) = match (&join, members_text) {
            (Some(_), Some(_)) => bail!("--join and --members exclude each other: an initial member lists the members, a new node joins"),
            (None, None) => bail!("--members is required (or --join to add this node to a running cluster)"),
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--join {url:?} is not an http:// URL of a member");
                }
                let listen_peer = self
                    .listen_peer
                    .or(file.listen_peer)
                    .context("--listen-peer is required with --join")?;
                let id = self.id.or(file.id).unwrap_or(0);
                (id, BTreeMap::new(), listen_peer, listen_peer)
            }
            (None, Some(text)) => {
                let id = self.id.or(file.id).context("--id is required")?;
                let members = parse_members(&text)?;
                let Some(own) = members.get(&id) else {
                    bail!("--id {id} is not among --members")
                };
                let listen_peer = self.listen_peer.or(file.listen_peer).unwrap_or(*own);
                let own = *own;
                (id, members, listen_peer, own)
            }
        };
        let advertise_peer = self
            .advertise_peer
            .or(file.advertise_peer)
            .unwrap_or(own_peer);
        if advertise_peer.ip().is_unspecified() {
            bail!(
                "peer address {advertise_peer} cannot be reached by others; set --advertise-peer"
            );
        }
        let rebalance_moves_max = self
            .rebalance_moves_max
            .or(file.rebalance_moves_max)
            .unwrap_or(4);
        if !(1..=64).contains(&rebalance_moves_max) {
            bail!("--rebalance-moves-max must be 1..=64");
        }
        let listen_http = self
            .listen_http
            .or(file.listen_http)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("static"));
        let secret = match (
            self.cluster_secret.clone().or(file.cluster_secret),
            self.cluster_secret_file
                .clone()
                .or(file.cluster_secret_file),
        ) {
            (Some(secret), _) => secret,
            (None, Some(path)) => {
                crate::tls::check_secret_file(&path).context("--cluster-secret-file")?;
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim()
                    .to_string()
            }
            (None, None) => bail!("--cluster-secret or --cluster-secret-file is required"),
        };
        if secret.len() < SECRET_LEN_MIN {
            bail!("the cluster secret must be at least {SECRET_LEN_MIN} characters");
        }
        let admin_token = self
            .admin_token
            .clone()
            .or(file.admin_token)
            .context("--admin-token is required")?;
        if admin_token.len() < SECRET_LEN_MIN {
            bail!("the admin token must be at least {SECRET_LEN_MIN} characters");
        }
        let shards = self.shards.or(file.shards).unwrap_or(64);
        if tuma_actors::ShardMap::new(shards).is_none() {
            bail!(
                "--shards must be 1..={}",
                tuma_actors::account::SHARD_COUNT_MAX
            );
        }
        let replicas = self
            .replicas
            .or(file.replicas)
            .unwrap_or_else(|| members.len().clamp(1, 3));
        if replicas == 0 || (join.is_none() && replicas > members.len()) {
            bail!(
                "--replicas must be 1..={} (the number of members)",
                members.len()
            );
        }
        let memory = self
            .pin_hash_memory_kib
            .or(file.pin_hash_memory_kib)
            .unwrap_or(19_456);
        let iterations = self
            .pin_hash_iterations
            .or(file.pin_hash_iterations)
            .unwrap_or(2);
        let keyed_new = match self.pin_hash.clone().or(file.pin_hash).as_deref() {
            None | Some("keyed") => true,
            Some("argon2") => false,
            Some(other) => bail!("--pin-hash {other:?} is not `keyed` or `argon2`"),
        };
        let pin_secret = match self.pin_key_file.clone().or(file.pin_key_file) {
            Some(path) => {
                crate::tls::check_secret_file(&path).context("--pin-key-file")?;
                let material =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if material.trim_ascii().len() < SECRET_LEN_MIN {
                    bail!("the PIN key file must hold at least {SECRET_LEN_MIN} bytes");
                }
                material.trim_ascii().to_vec()
            }
            None => secret.as_bytes().to_vec(),
        };
        let hasher = PinHasher::new(memory, iterations)
            .map_err(|e| anyhow::anyhow!("PIN hash parameters: {e}"))?
            .keyed(PinKey::derive(&pin_secret), keyed_new);
        let checkpoint_every_entries = self
            .checkpoint_every_entries
            .or(file.checkpoint_every_entries)
            .unwrap_or(20_000);
        let log_keep_entries = self
            .log_keep_entries
            .or(file.log_keep_entries)
            .unwrap_or(2_000);
        if checkpoint_every_entries == 0 {
            bail!("--checkpoint-every-entries must be positive");
        }
        let max_clock_offset_ms = self
            .max_clock_offset_ms
            .or(file.max_clock_offset_ms)
            .unwrap_or(500);
        if max_clock_offset_ms == 0 {
            bail!("--max-clock-offset-ms must be positive");
        }
        let engine = self.engine.clone().or(file.engine.clone());
        {
            // The engine's own validation, on the configuration this node would start with.
            let mut probe = tuma_cluster::engine::EngineConfig::new(
                id.max(1),
                members.clone(),
                shards,
                replicas,
            );
            probe.bootstrap = join.is_none();
            probe.checkpoint_every_entries = checkpoint_every_entries;
            probe.log_keep_entries = log_keep_entries;
            probe.max_clock_offset_ms = max_clock_offset_ms;
            engine.apply(&mut probe);
            probe
                .validate()
                .map_err(|e| anyhow::anyhow!("engine settings: {e}"))?;
        }
        let idempotency_window_ms =
            match self.idempotency_window.clone().or(file.idempotency_window) {
                None => tuma_cluster::engine::IDEMPOTENCY_WINDOW_MS_DEFAULT,
                Some(text) => {
                    crate::duration::parse("idempotency-window", &text)?.as_millis() as u64
                }
            };
        if !(IDEMPOTENCY_WINDOW_MS_MIN..=IDEMPOTENCY_WINDOW_MS_MAX).contains(&idempotency_window_ms)
        {
            bail!("--idempotency-window must be 1s..=30d");
        }
        let defaults = tuma_service::AttemptLimits::default();
        let attempt_limits = tuma_service::AttemptLimits {
            per_payer_per_minute: self
                .failed_attempts_per_payer
                .or(file.failed_attempts_per_payer)
                .unwrap_or(defaults.per_payer_per_minute),
            per_source_per_minute: self
                .failed_attempts_per_source
                .or(file.failed_attempts_per_source)
                .unwrap_or(defaults.per_source_per_minute),
            tracked_max: defaults.tracked_max,
        };
        let request_defaults = crate::http::request_limits::RequestLimits::default();
        let request_limits = crate::http::request_limits::RequestLimits {
            per_source_per_minute: self
                .requests_per_source
                .or(file.requests_per_source)
                .unwrap_or(request_defaults.per_source_per_minute),
            per_msisdn_per_minute: self
                .requests_per_msisdn
                .or(file.requests_per_msisdn)
                .unwrap_or(request_defaults.per_msisdn_per_minute),
        };
        let log_format = match self.log_format.clone().or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("--log-format {other:?} is not `text` or `json`"),
        };
        let tls = match (
            self.tls_cert.clone().or(file.tls_cert),
            self.tls_key.clone().or(file.tls_key),
        ) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                if !cert.is_file() {
                    bail!("--tls-cert {} is not a file", cert.display());
                }
                crate::tls::check_secret_file(&key).context("--tls-key")?;
                Some(crate::tls::TlsFiles { cert, key })
            }
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let tls_ca = self.tls_ca.clone().or(file.tls_ca);
        if let Some(ca) = &tls_ca {
            if !ca.is_file() {
                bail!("--tls-ca {} is not a file", ca.display());
            }
        }
        let float_approval_above = match self
            .float_approval_above
            .clone()
            .or(file.float_approval_above)
            .as_deref()
        {
            None => Some(tuma_actors::money::Money::from_shillings(1_000_000)),
            Some("off") => None,
            Some(text) => Some(
                tuma_actors::money::Money::parse(text)
                    .map_err(|e| anyhow::anyhow!("--float-approval-above {text:?}: {e}"))?,
            ),
        };
        if let Some(dir) = &self.restore {
            if self.join.is_some() {
                bail!("--restore starts a new cluster's initial members; a joining node takes its shards from the cluster (drop --join or --restore)");
            }
            let fingerprint =
                crate::restore::secrets_fingerprint(secret.as_bytes(), hasher.key_id());
            crate::restore::check_manifest(dir, shards, &fingerprint)?;
        }
        Ok(NodeConfig {
            id,
            log_format,
            tls,
            tls_ca,
            float_approval_above,
            restore: self.restore.clone(),
            data,
            listen_peer,
            listen_http,
            members,
            join,
            advertise_peer,
            rebalance_moves_max,
            secret: secret.into_bytes(),
            admin_token,
            shards,
            replicas,
            hasher,
            test_hooks: self.enable_test_hooks,
            checkpoint_every_entries,
            log_keep_entries,
            max_clock_offset_ms,
            idempotency_window_ms,
            attempt_limits,
            request_limits,
            engine,
            ussd,
            sms,
            daraja,
            clock_offset_ms: self.clock_offset_ms.unwrap_or(0),
            planted_fault: match self.plant_fault.as_deref() {
                None => None,
                Some(name) => match tuma_cluster::engine::EngineFault::parse(name) {
                    Some(fault) => Some(fault),
                    None => bail!("unknown planted fault {name:?}"),
                },
            },
        })
    }
}

/// Bounds of the USSD settings.
const USSD_ANSWER_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=60_000;
const USSD_SESSION_SECS_RANGE: std::ops::RangeInclusive<u64> = 5..=3_600;
/// How long an M-Pesa Express prompt may wait for its customer, in seconds.
const DARAJA_PROMPT_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=600;

impl NodeArgs {
    fn sms_config(
        &self,
        file: &FileConfig,
        listen_http: Option<SocketAddr>,
    ) -> anyhow::Result<tuma_channels::sms::SmsConfig> {
        use tuma_channels::sms::{Gateway, SmsConfig};
        let pick =
            |flag: &Option<String>, from_file: &Option<String>| flag.clone().or(from_file.clone());
        let url = pick(&self.sms_gateway_url, &file.sms_gateway_url);
        let username = pick(&self.sms_username, &file.sms_username);
        let secret = pick(&self.sms_secret, &file.sms_secret);
        let from = pick(&self.sms_from, &file.sms_from);
        let need = |what: &str, value: Option<String>| {
            value.ok_or_else(|| anyhow::anyhow!("--sms-gateway needs --{what}"))
        };
        let gateway = match pick(&self.sms_gateway, &file.sms_gateway).as_deref() {
            None | Some("log") => Gateway::Log,
            Some("kannel") => Gateway::Kannel {
                url: need("sms-gateway-url", url)?,
                username: need("sms-username", username)?,
                password: need("sms-secret", secret)?,
                from,
                dlr_url: pick(&self.sms_dlr_url, &file.sms_dlr_url)
                    .or_else(|| listen_http.map(|a| format!("http://{a}/sms/v1/dlr"))),
            },
            Some("africastalking") => Gateway::AfricasTalking {
                url: need("sms-gateway-url", url)?,
                username: need("sms-username", username)?,
                api_key: need("sms-secret", secret)?,
                from,
            },
            Some(other) => {
                bail!("--sms-gateway must be log, kannel or africastalking, not {other:?}")
            }
        };
        let mut sms = SmsConfig {
            gateway,
            ..SmsConfig::default()
        };
        if let Some(max) = self.sms_spool_max.or(file.sms_spool_max) {
            if max == 0 {
                bail!("--sms-spool-max must be at least 1");
            }
            sms.spool_max = max;
        }
        Ok(sms)
    }

    fn daraja_config(&self, file: &FileConfig) -> anyhow::Result<tuma_daraja::DarajaConfig> {
        let mut daraja = tuma_daraja::DarajaConfig::default();
        let lifetime = self
            .daraja_prompt_lifetime
            .clone()
            .or(file.daraja_prompt_lifetime.clone());
        if let Some(text) = lifetime {
            let lifetime = crate::duration::parse("daraja-prompt-lifetime", &text)?;
            if !DARAJA_PROMPT_SECS_RANGE.contains(&lifetime.as_secs()) {
                bail!("--daraja-prompt-lifetime must be 1s..=10m");
            }
            daraja.prompt_lifetime = lifetime;
        }
        let timeout = self
            .daraja_validation_timeout
            .clone()
            .or(file.daraja_validation_timeout.clone());
        if let Some(text) = timeout {
            let timeout = crate::duration::parse("daraja-validation-timeout", &text)?;
            if !(1..=30).contains(&timeout.as_secs()) {
                bail!("--daraja-validation-timeout must be 1s..=30s");
            }
            daraja.validation_timeout = timeout;
        }
        let queue_timeout = self
            .daraja_payout_queue_timeout
            .clone()
            .or(file.daraja_payout_queue_timeout.clone());
        if let Some(text) = queue_timeout {
            let timeout = crate::duration::parse("daraja-payout-queue-timeout", &text)?;
            if !(5..=600).contains(&timeout.as_secs()) {
                bail!("--daraja-payout-queue-timeout must be 5s..=10m");
            }
            daraja.payout_queue_timeout = timeout;
        }
        let simulate_pin = self
            .daraja_simulate_pin
            .clone()
            .or(file.daraja_simulate_pin.clone());
        if let Some(text) = simulate_pin {
            let pin = tuma_actors::pin::Pin::parse(&text)
                .map_err(|e| anyhow::anyhow!("--daraja-simulate-pin: {e}"))?;
            daraja.simulate_pin = Some(pin);
        }
        if let Some(calls) = self
            .daraja_calls_per_minute
            .or(file.daraja_calls_per_minute)
        {
            daraja.calls_per_minute = calls;
        }
        let hosts = self
            .daraja_callback_hosts
            .clone()
            .or(file.daraja_callback_hosts.clone());
        if let Some(hosts) = hosts {
            let hosts: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(String::from)
                .collect();
            if hosts.is_empty() {
                bail!("--daraja-callback-hosts names no host");
            }
            daraja.urls = tuma_daraja::CallbackUrls::allowing(hosts);
        }
        Ok(daraja)
    }

    fn ussd_config(&self, file: &FileConfig) -> anyhow::Result<tuma_channels::ussd::UssdConfig> {
        let mut ussd = tuma_channels::ussd::UssdConfig::default();
        if let Some(ms) = self.ussd_answer_ms.or(file.ussd_answer_ms) {
            if !USSD_ANSWER_MS_RANGE.contains(&ms) {
                bail!("--ussd-answer-ms must be 1000..=60000");
            }
            ussd.answer_within = std::time::Duration::from_millis(ms);
        }
        let seconds =
            |flag: &str, text: Option<String>| -> anyhow::Result<Option<std::time::Duration>> {
                let Some(text) = text else { return Ok(None) };
                let duration = crate::duration::parse(flag, &text)?;
                if !USSD_SESSION_SECS_RANGE.contains(&duration.as_secs()) {
                    bail!("--{flag} must be 5s..=1h");
                }
                Ok(Some(duration))
            };
        let idle = self
            .ussd_session_idle
            .clone()
            .or(file.ussd_session_idle.clone());
        if let Some(idle) = seconds("ussd-session-idle", idle)? {
            ussd.sessions.idle = idle;
        }
        let lifetime = self
            .ussd_session_lifetime
            .clone()
            .or(file.ussd_session_lifetime.clone());
        if let Some(lifetime) = seconds("ussd-session-lifetime", lifetime)? {
            ussd.sessions.lifetime = lifetime;
        }
        if let Some(max) = self.ussd_sessions_max.or(file.ussd_sessions_max) {
            if max == 0 {
                bail!("--ussd-sessions-max must be at least 1");
            }
            ussd.sessions.live_max = max;
        }
        if let Some(language) = self.ussd_language.clone().or(file.ussd_language.clone()) {
            ussd.default_language = language;
        }
        Ok(ussd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> NodeArgs {
        NodeArgs {
            id: Some(1),
            data: Some("/tmp/x".into()),
            members: Some("1=127.0.0.1:7001,2=127.0.0.1:7002".into()),
            cluster_secret: Some("0123456789abcdef".into()),
            admin_token: Some("token-token-token".into()),
            ..NodeArgs::default()
        }
    }

    #[test]
    fn resolves_defaults_and_refuses_bad_values() {
        let config = args().resolve().unwrap();
        assert_eq!(config.listen_peer, "127.0.0.1:7001".parse().unwrap());
        assert_eq!((config.shards, config.replicas), (64, 2));
        for bad in [
            NodeArgs {
                id: Some(3),
                ..args()
            },
            NodeArgs {
                cluster_secret: Some("short".into()),
                ..args()
            },
            NodeArgs {
                members: Some("1=127.0.0.1:7001,1=127.0.0.1:7002".into()),
                ..args()
            },
            NodeArgs {
                members: Some("x=1".into()),
                ..args()
            },
            NodeArgs {
                replicas: Some(3),
                ..args()
            },
            NodeArgs {
                shards: Some(0),
                ..args()
            },
            NodeArgs {
                admin_token: None,
                ..args()
            },
            NodeArgs {
                ussd_answer_ms: Some(100),
                ..args()
            },
            NodeArgs {
                ussd_session_idle: Some("1s".into()),
                ..args()
            },
            NodeArgs {
                sms_gateway: Some("kannel".into()),
                ..args()
            },
            NodeArgs {
                sms_gateway: Some("pigeon".into()),
                ..args()
            },
            NodeArgs {
                sms_spool_max: Some(0),
                ..args()
            },
            NodeArgs {
                log_format: Some("xml".into()),
                ..args()
            },
        ] {
            assert!(bad.resolve().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn https_needs_a_certificate_and_a_private_key() {
        let dir = std::env::temp_dir().join(format!("tuma-config-tls-{}", std::process::id()));
        let tls = crate::tls::local_ca(&dir, 1).unwrap();
        let files = &tls.nodes[0];
        let served = NodeArgs {
            tls_cert: Some(files.cert.clone()),
            tls_key: Some(files.key.clone()),
            tls_ca: Some(tls.ca_cert.clone()),
            ..args()
        };
        assert!(served.clone().resolve().unwrap().tls.is_some());
        let half = NodeArgs {
            tls_key: None,
            ..served.clone()
        };
        assert!(half
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("go together"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let open_key = served.resolve().unwrap_err();
        assert!(
            format!("{open_key:#}").contains("chmod 600"),
            "{open_key:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_kannel_gateway_reports_to_this_node_unless_told_otherwise() {
        let kannel = NodeArgs {
            sms_gateway: Some("kannel".into()),
            sms_gateway_url: Some("http://127.0.0.1:13013".into()),
            sms_username: Some("tuma".into()),
            sms_secret: Some("secret".into()),
            listen_http: Some("127.0.0.1:8085".parse().unwrap()),
            ..args()
        };
        let config = kannel.resolve().unwrap();
        match config.sms.gateway {
            tuma_channels::sms::Gateway::Kannel { dlr_url, .. } => {
                assert_eq!(dlr_url.as_deref(), Some("http://127.0.0.1:8085/sms/v1/dlr"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config.ussd.answer_within,
            std::time::Duration::from_millis(8_000)
        );
    }

    #[test]
    fn engine_limits_come_from_flags_over_the_files_engine_table_and_are_validated() {
        use crate::engine_tuning::EngineTuning;
        let dir = std::env::temp_dir().join(format!("tuma-engine-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tuma.toml");
        std::fs::write(
            &file,
            "[engine]\nraft-tick-ms = 50\nraft-election-ticks = 20\nsnapshot-window-chunks = 2\n",
        )
        .unwrap();
        let given = NodeArgs {
            config: Some(file.clone()),
            engine: EngineTuning {
                raft_election_ticks: Some(30),
                ..EngineTuning::default()
            },
            ..args()
        };
        let config = given.resolve().unwrap();
        let mut engine = tuma_cluster::engine::EngineConfig::new(1, config.members.clone(), 4, 2);
        config.engine.apply(&mut engine);
        assert_eq!(engine.tick_ms, 50, "from the file");
        assert_eq!(engine.election_ticks, 30, "the flag wins");
        assert_eq!(engine.snapshot_streams.window_chunks, 2);
        assert_eq!(engine.heartbeat_ticks, 2, "unset: the engine's default");
        for (bad, why) in [
            (
                EngineTuning {
                    raft_heartbeat_ticks: Some(40),
                    ..EngineTuning::default()
                },
                "election_ticks > heartbeat_ticks",
            ),
            (
                EngineTuning {
                    engine_input_queue_max: Some(0),
                    ..EngineTuning::default()
                },
                "input queue",
            ),
            (
                EngineTuning {
                    snapshot_chunk_bytes: Some(64 << 20),
                    ..EngineTuning::default()
                },
                "per chunk",
            ),
            (
                EngineTuning {
                    driver_inquiry_grace_ms: Some(1),
                    ..EngineTuning::default()
                },
                "inquiry grace",
            ),
        ] {
            let error = NodeArgs {
                engine: bad,
                ..args()
            }
            .resolve()
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("engine settings") && error.contains(why),
                "{why}: {error}"
            );
        }
        std::fs::write(&file, "[engine]\nraft-tick = 50\n").unwrap();
        let error = NodeArgs {
            config: Some(file),
            ..args()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{error:#}").contains("raft-tick"), "{error:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_joining_node_needs_a_url_and_a_peer_address_and_no_members() {
        let joining = NodeArgs {
            id: None,
            members: None,
            join: Some("http://127.0.0.1:8080".into()),
            listen_peer: Some("127.0.0.1:7004".parse().unwrap()),
            ..args()
        };
        let config = joining.resolve().unwrap();
        assert_eq!(config.id, 0, "the cluster picks the id");
        assert!(config.members.is_empty());
        assert_eq!(config.advertise_peer, "127.0.0.1:7004".parse().unwrap());
        for (bad, why) in [
            (
                NodeArgs {
                    members: args().members,
                    ..joining.clone()
                },
                "exclude",
            ),
            (
                NodeArgs {
                    listen_peer: None,
                    ..joining.clone()
                },
                "--listen-peer",
            ),
            (
                NodeArgs {
                    join: Some("10.0.0.1:8080".into()),
                    ..joining.clone()
                },
                "URL",
            ),
            (
                NodeArgs {
                    listen_peer: Some("0.0.0.0:7004".parse().unwrap()),
                    ..joining.clone()
                },
                "--advertise-peer",
            ),
            (
                NodeArgs {
                    rebalance_moves_max: Some(0),
                    ..joining.clone()
                },
                "rebalance",
            ),
        ] {
            let error = bad.resolve().unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }

    #[test]
    fn the_file_fills_what_flags_leave() {
        let path = std::env::temp_dir().join(format!("tuma-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "shards = 8\nlisten-http = \"127.0.0.1:9999\"\nreplicas = 1\n",
        )
        .unwrap();
        let config = NodeArgs {
            config: Some(path.clone()),
            replicas: Some(2),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.shards, 8);
        assert_eq!(config.replicas, 2, "flags win over the file");
        assert_eq!(config.listen_http, "127.0.0.1:9999".parse().unwrap());
        std::fs::write(&path, "shardz = 8\n").unwrap();
        assert!(
            NodeArgs {
                config: Some(path.clone()),
                ..args()
            }
            .resolve()
            .is_err(),
            "unknown keys are refused"
        );
        std::fs::remove_file(path).unwrap();
    }
}
