//! `tuma node`: wires storage, transport, engine and the HTTP API (joining a running cluster
//! first with `--join`), and shuts down cleanly on SIGTERM or Ctrl-C: hand leaderships to other
//! nodes, stop accepting requests, let in-flight ones finish, let the engine apply and flush
//! what it has, exit 0.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tuma_actors::tariff::Tariffs;
use tuma_cluster::engine::{Engine, EngineConfig, EngineEnv, EngineFatal, SystemClock};
use tuma_cluster::storage::{DiskStore, LogStore};
use tuma_cluster::transport::{Transport, TransportConfig};

use crate::config::{NodeArgs, NodeConfig};
use crate::{http, join};

/// Tries to record this node's HTTP address, a second apart.
const ADVERTISE_ATTEMPTS: usize = 120;

/// How long a stopping node waits for other nodes to take over its leaderships.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    if args.check_config {
        println!(
            "config ok: node {} of {} members, {} shards × {} replicas, data {}, peer {}, http {}",
            config.id,
            config.members.len(),
            config.shards,
            config.replicas,
            config.data.display(),
            config.listen_peer,
            config.listen_http
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::init_tracing_as(config.log_format);
    // Written when this function returns (a clean stop), by call site: bytes live at the
    // heap's peak and at the end (view with dhat's dh_view.html).
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::builder()
        .file_name(format!("dhat-heap-{}.json", std::process::id()))
        .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(mut config: NodeConfig) -> anyhow::Result<()> {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let store = DiskStore::open(&config.data)
        .with_context(|| format!("opening {}", config.data.display()))?;
    if let Some(url) = config.join.clone() {
        let known = store.identity()?;
        join::join(&url, &mut config, known).await?;
    }
    let (peer_tx, mut peer_rx) = tokio::sync::mpsc::channel(65_536);
    let transport_config = TransportConfig::new(
        config.id,
        config.listen_peer,
        config.members.clone(),
        config.secret.clone(),
    );
    let transport = Transport::start(transport_config, peer_tx)
        .await
        .context("starting the peer transport")?;
    let mut engine_config = EngineConfig::new(
        config.id,
        config.members.clone(),
        config.shards,
        config.replicas,
    );
    engine_config.bootstrap = config.join.is_none();
    if let Some(dir) = &config.restore {
        // `config` checked the backup's manifest (shards, secrets) when it was resolved.
        engine_config.restore = crate::restore::image(dir, &store, config.shards)?;
    }
    engine_config.plan_limits.moves_max = config.rebalance_moves_max;
    let tariffs = Arc::new(Tariffs::kenya_default());
    engine_config.tariffs = tariffs.clone();
    engine_config.checkpoint_every_entries = config.checkpoint_every_entries;
    engine_config.log_keep_entries = config.log_keep_entries;
    engine_config.max_clock_offset_ms = config.max_clock_offset_ms;
    engine_config.idempotency_window_ms = config.idempotency_window_ms;
    engine_config.test_hooks = config.test_hooks;
    engine_config.planted_fault = config.planted_fault;
    engine_config.pin_hasher = config.hasher.clone();
    config.engine.apply(&mut engine_config);
    // Confirmation texts are taken by the SMS channel below, not written to the log by the engine.
    engine_config.sms_delivery = tuma_cluster::engine::SmsDelivery::External;
    let clock_offset = Arc::new(AtomicI64::new(config.clock_offset_ms));
    let clock = SystemClock::with_offset(clock_offset.clone());
    let env = EngineEnv::production(Box::new(store), transport.clone(), clock);
    let (handle, engine_thread) = Engine::start(engine_config, env)?;
    let engine_ended = watch_engine(engine_thread);
    let peers = handle.clone();
    tokio::spawn(async move {
        while let Some((from, frame)) = peer_rx.recv().await {
            if !peers.peer(from, frame) {
                metrics::counter!("tuma_engine_inputs_dropped_total").increment(1);
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(config.listen_http)
        .await
        .with_context(|| format!("binding {}", config.listen_http))?;
    tracing::info!(node = config.id, http = %listener.local_addr()?, peer = %transport.local_addr(), "node serving");
    let service = tuma_service::Service::new(handle.clone(), config.hasher.clone())
        .with_attempt_limits(config.attempt_limits);
    let http_addr = advertised_http(listener.local_addr()?, config.advertise_peer);
    tokio::spawn(advertise_http(
        service.clone(),
        config.id,
        config.advertise_peer,
        http_addr,
    ));
    let ussd = tuma_channels::ussd::Ussd::new(service.clone(), tariffs, config.ussd.clone());
    ussd.spawn_upkeep();
    let sms = tuma_channels::sms::Sms::open(
        service.clone(),
        &config.data.join("sms"),
        config.sms.clone(),
    )
    .context("opening the SMS spool")?;
    sms.spawn();
    tracing::info!(gateway = sms.gateway().name(), "SMS channel sending");
    let daraja = tuma_daraja::Daraja::new(
        service.clone(),
        &config.secret,
        listener.local_addr()?,
        config.daraja.clone(),
    );
    daraja.spawn();
    let access = Arc::new(http::access::Access::new(
        &config.admin_token,
        &config.secret,
    ));
    access.spawn_refresh(service.clone());
    let mut state = http::ApiState::new(
        service,
        ussd,
        sms,
        daraja,
        access,
        config.test_hooks,
        prometheus,
    );
    if config.test_hooks {
        state.clock_offset = Some(clock_offset);
    }
    state.member_client = crate::tls::client(config.tls_ca.as_deref(), MEMBER_CALL_TIMEOUT)?;
    state.float_approval_above = config.float_approval_above;
    state.request_limiter = Arc::new(http::request_limits::RequestLimiter::new(
        config.request_limits,
    ));
    state.secrets_fingerprint =
        crate::restore::secrets_fingerprint(&config.secret, config.hasher.key_id());
    if config.tls.is_some() {
        state.member_scheme = "https";
    }
    let leaving = handle.clone();
    let stop = async move {
        shutdown_signal().await;
        // Hand every leadership to another node first, so a restart fails no request.
        match leaving.leave(LEAVE_TIMEOUT).await {
            Some(0) => tracing::info!("no leaderships left on this node"),
            still => tracing::warn!(
                ?still,
                "stopping while still leading (no caught-up voter took over in time)"
            ),
        }
    };
    // Handlers see the caller's address: failed attempts are budgeted per source.
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match &config.tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("HTTP server")?,
        Some(files) => {
            let tls = crate::tls::server_config(files).await?;
            let handle = axum_server::Handle::new();
            let stopping = handle.clone();
            tokio::spawn(async move {
                stop.await;
                stopping.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)
                .handle(handle)
                .serve(app)
                .await
                .context("HTTPS server")?;
        }
    }
    tracing::info!("HTTP stopped; stopping the engine");
    handle.shutdown();
    match engine_ended.await {
        Ok(Ok(Ok(()))) => {
            tracing::info!("node stopped cleanly");
            Ok(())
        }
        Ok(Ok(Err(fatal))) => Err(anyhow::anyhow!("the engine stopped: {fatal}")),
        Ok(Err(_)) | Err(_) => Err(anyhow::anyhow!("the engine thread panicked")),
    }
}

/// Longest a call to another member's HTTP API may take (gathering what it holds).
const MEMBER_CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where other nodes reach this node's HTTP API: the bound address, on the advertised peer
/// host when bound to every interface.
fn advertised_http(bound: SocketAddr, advertise_peer: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        SocketAddr::new(advertise_peer.ip(), bound.port())
    } else {
        bound
    }
}

/// What this node must record of where it serves, given the cluster's record of it
/// (`(peer, http)` addresses as this node's cluster state holds them).
#[derive(Debug, PartialEq, Eq)]
enum AddressUpdate {
    /// The record is right.
    None,
    /// Only the HTTP address (a `Join` with its own peer address).
    Http,
    /// The peer address too (`Readdress`): it holds its data and serves elsewhere now (a pod
    /// rescheduled), and every member must reach it there. Only then: a harness that gives
    /// every node its own view of the others' addresses (chaos's link proxies) keeps its views.
    Readdress,
}

fn address_update(
    known: Option<(SocketAddr, Option<SocketAddr>)>,
    peer: SocketAddr,
    http: SocketAddr,
) -> AddressUpdate {
    match known {
        Some((at, served)) if at == peer && served == Some(http) => AddressUpdate::None,
        Some((at, _)) if at == peer => AddressUpdate::Http,
        _ => AddressUpdate::Readdress,
    }
}

/// Records this node's HTTP address in the cluster state (joining again with its own peer
/// address), so other nodes can gather what it holds for operators (the texts it sent).
async fn advertise_http(
    service: tuma_service::Service,
    id: u64,
    peer: SocketAddr,
    http: SocketAddr,
) {
    for _ in 0..ADVERTISE_ATTEMPTS {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let known = service
            .cluster_state()
            .await
            .ok()
            .and_then(|meta| meta.members.get(&id).map(|m| (m.peer_addr, m.http_addr)));
        let recorded = match address_update(known, peer, http) {
            AddressUpdate::None => return,
            AddressUpdate::Http => service.join(Some(id), peer, Some(http)).await,
            AddressUpdate::Readdress => service.readdress(id, peer, Some(http)).await,
        };
        if let Err(error) = recorded {
            tracing::debug!(%error, "addresses not recorded yet");
        }
    }
    tracing::warn!(%http, "could not record this node's HTTP address in the cluster state");
}

/// Watches the engine thread. If it ends on its own — a fatal storage error or a panic — the
/// process exits at once with status 70 (logged): HTTP and the peer listener must never stay
/// up with no engine behind them. After a requested shutdown its result goes to the caller.
fn watch_engine(
    engine: std::thread::JoinHandle<Result<(), EngineFatal>>,
) -> tokio::sync::oneshot::Receiver<std::thread::Result<Result<(), EngineFatal>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tuma-engine-watch".into())
        .spawn(move || {
            let result = engine.join();
            match &result {
                Ok(Ok(())) => {}
                Ok(Err(fatal)) => {
                    tracing::error!(error = %fatal, "the engine stopped; exiting");
                    std::process::exit(70);
                }
                Err(_) => {
                    tracing::error!("the engine thread panicked; exiting");
                    std::process::exit(70);
                }
            }
            let _ = tx.send(result);
        })
        .expect("spawning the engine watcher");
    rx
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_readdresses_itself_only_when_its_record_names_another_peer_address() {
        let (peer, http) = (
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:8081".parse().unwrap(),
        );
        let elsewhere = "127.0.0.1:7999".parse().unwrap();
        assert_eq!(
            address_update(Some((peer, Some(http))), peer, http),
            AddressUpdate::None
        );
        // Its peer address as recorded (a node's own view under link proxies is always this):
        // only the HTTP address, never a replicated rewrite of where others reach it.
        assert_eq!(
            address_update(Some((peer, None)), peer, http),
            AddressUpdate::Http
        );
        assert_eq!(
            address_update(Some((peer, Some(elsewhere))), peer, http),
            AddressUpdate::Http
        );
        assert_eq!(
            address_update(Some((elsewhere, Some(http))), peer, http),
            AddressUpdate::Readdress
        );
        assert_eq!(address_update(None, peer, http), AddressUpdate::Readdress);
    }
}
