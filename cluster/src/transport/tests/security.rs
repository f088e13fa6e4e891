//! Attacks on the transport: a wrong secret, forged and replayed frames, and the session
//! crypto underneath.

use super::*;

/// Collects WARN and ERROR events of the current thread as text.
#[derive(Clone, Default)]
struct WarnLog(Arc<StdMutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for WarnLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// Current-thread runtime (the default), so that the thread-local log capture sees every task.
#[tokio::test]
async fn wrong_secret_is_refused_and_logged() {
    let log = WarnLog::default();
    let _capture = tracing::subscriber::set_default(log.clone());
    let (la, lb) = (listener().await, listener().await);
    let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let (a, mut inbox_a) = start(config(1, addr_a, &[(2, addr_b)], SECRET), la).await;
    let wrong = b"not-the-cluster-secret-at-all!!";
    let (b, mut inbox_b) = start(config(2, addr_b, &[(1, addr_a)], wrong), lb).await;
    for i in 0..10 {
        b.send(1, msg(i)).unwrap();
        a.send(2, msg(i)).unwrap();
    }
    tokio::join!(
        assert_silent(&mut inbox_a, Duration::from_secs(1)),
        assert_silent(&mut inbox_b, Duration::from_secs(1)),
    );
    for stats in [a.stats(), b.stats()] {
        assert!(stats.auth_failures > 0, "{stats:?}");
        assert_eq!(
            (stats.frames_sent, stats.frames_received),
            (0, 0),
            "{stats:?}"
        );
    }
    assert!(!a.is_connected(2) && !b.is_connected(1));
    let lines = log.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("peer authentication failed")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("peer refused our authentication")),
        "{lines:#?}"
    );
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn forged_replayed_and_oversize_frames_are_rejected() {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (node, mut inbox) = start(config(1, addr, &[(2, dead_addr())], SECRET), l).await;

    // A correct-looking hello, then a garbage authentication frame.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&Hello::fresh(2).unwrap().encode())
        .await
        .unwrap();
    let mut reply = [0u8; HELLO_LEN];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(Hello::decode(&reply).unwrap().node_id, 1);
    let mut garbage = 48u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&1u64.to_be_bytes());
    garbage.extend_from_slice(&[0x5a; 40]);
    let _ = s.write_all(&garbage).await;
    expect_closed(&mut s).await;
    eventually("auth failure", || node.stats().auth_failures == 1).await;

    // Not a hello at all.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&[0xff; 200]).await;
    expect_closed(&mut s).await;
    eventually("auth failure", || node.stats().auth_failures == 2).await;

    // An authenticated session, then a frame with one bit flipped.
    let (mut s, mut sealer) = raw_session(addr, 2, SECRET).await;
    s.write_all(&seal(&mut sealer, &[msg(1)])).await.unwrap();
    assert_eq!(seqs(&recv_n(&mut inbox, 1).await, 2), [1]);
    let mut forged = seal(&mut sealer, &[msg(2)]);
    forged[HEADER_LEN + 3] ^= 0x01;
    let _ = s.write_all(&forged).await;
    expect_closed(&mut s).await;
    eventually("rejection", || node.stats().frames_rejected == 1).await;

    // A frame replayed within its connection.
    let (mut s, mut sealer) = raw_session(addr, 2, SECRET).await;
    let frame = seal(&mut sealer, &[msg(3)]);
    s.write_all(&frame).await.unwrap();
    assert_eq!(seqs(&recv_n(&mut inbox, 1).await, 2), [3]);
    let _ = s.write_all(&frame).await;
    expect_closed(&mut s).await;
    eventually("rejection", || node.stats().frames_rejected == 2).await;

    // A skipped counter (a dropped or reordered frame).
    let (mut s, mut sealer) = raw_session(addr, 2, SECRET).await;
    let _skipped = seal(&mut sealer, &[msg(4)]);
    let _ = s.write_all(&seal(&mut sealer, &[msg(5)])).await;
    expect_closed(&mut s).await;
    eventually("rejection", || node.stats().frames_rejected == 3).await;

    // A length over frame_bytes_max.
    let (mut s, _) = raw_session(addr, 2, SECRET).await;
    let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
    expect_closed(&mut s).await;
    eventually("rejection", || node.stats().frames_rejected == 4).await;

    assert_silent(&mut inbox, Duration::from_millis(200)).await;
    let stats = node.stats();
    assert_eq!(
        (
            stats.frames_received,
            stats.auth_failures,
            stats.frames_rejected
        ),
        (2, 2, 4)
    );
    node.shutdown();
}

/// A TCP proxy that records what the client sends on the first connection it forwards.
async fn recording_proxy(target: SocketAddr) -> (SocketAddr, Arc<StdMutex<Vec<u8>>>) {
    let proxy = listener().await;
    let addr = proxy.local_addr().unwrap();
    let record = Arc::new(StdMutex::new(Vec::new()));
    let recorded = record.clone();
    tokio::spawn(async move {
        let (Ok((client, _)), Ok(server)) =
            (proxy.accept().await, TcpStream::connect(target).await)
        else {
            return;
        };
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            recorded.lock().unwrap().extend_from_slice(&buf[..n]);
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (addr, record)
}

#[tokio::test]
async fn recorded_connection_cannot_be_replayed() {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (receiver, mut inbox) = start(config(1, addr, &[(2, dead_addr())], SECRET), l).await;
    let (proxy, record) = recording_proxy(addr).await;
    let ls = listener().await;
    let (sender, _) = start(
        config(2, ls.local_addr().unwrap(), &[(1, proxy)], SECRET),
        ls,
    )
    .await;
    for i in 0..5 {
        sender.send(1, msg(i)).unwrap();
    }
    assert_eq!(seqs(&recv_n(&mut inbox, 5).await, 2), [0, 1, 2, 3, 4]);
    let before = receiver.stats();
    let captured = record.lock().unwrap().clone();
    assert!(
        captured.len() > HELLO_LEN + 52,
        "nothing but the handshake was captured"
    );

    // The whole recorded stream on a new connection: the acceptor's fresh random gives a new key.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&captured).await;
    expect_closed(&mut s).await;
    // The recorded frames after a new hello of our own.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&Hello::fresh(2).unwrap().encode())
        .await
        .unwrap();
    let _ = s.write_all(&captured[HELLO_LEN..]).await;
    expect_closed(&mut s).await;

    eventually("auth failures", || {
        receiver.stats().auth_failures == before.auth_failures + 2
    })
    .await;
    assert_silent(&mut inbox, Duration::from_millis(300)).await;
    assert_eq!(receiver.stats().frames_received, before.frames_received);
    sender.shutdown();
    receiver.shutdown();
}

#[test]
fn session_keys_depend_on_every_input() {
    let (r1, r2) = ([1u8; 32], [2u8; 32]);
    let key = crypto::derive_key(SECRET, &r1, &r2, 7);
    assert_eq!(key, crypto::derive_key(SECRET, &r1, &r2, 7));
    assert_ne!(key, crypto::derive_key(SECRET, &r2, &r1, 7));
    assert_ne!(key, crypto::derive_key(SECRET, &r1, &r2, 8));
    assert_ne!(
        key,
        crypto::derive_key(b"another-cluster-secret", &r1, &r2, 7)
    );
    let hello = Hello::fresh(42).unwrap();
    assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);
    assert_ne!(
        Hello::fresh(42).unwrap().random,
        hello.random,
        "randoms must be fresh"
    );
    let mut bad = hello.encode();
    bad[5] ^= 1;
    assert!(
        Hello::decode(&bad).is_err(),
        "other protocol versions are refused"
    );
}

#[test]
fn large_batches_split_and_round_trip() {
    let key = crypto::derive_key(SECRET, &[3; 32], &[4; 32], 1);
    let (mut sealer, mut opener) = (Sealer::new(&key), crypto::Opener::new(&key));
    let mut batch: Vec<Msg> = (0..100).map(msg).collect();
    batch.insert(
        50,
        Msg {
            seq: 999,
            body: "x".repeat(5_000),
        },
    ); // alone exceeds the bound
    let mut frames = Vec::new();
    let dropped = frame::seal_batch(&mut sealer, &batch, 2_000, &mut frames).unwrap();
    assert_eq!(dropped, 1);
    assert!(frames.len() > 1);
    let mut received = Vec::new();
    for mut wire in frames {
        assert!(wire.len() - 4 <= 2_000);
        let plain = opener.open(&mut wire[4..]).expect("genuine frame opens");
        received.extend(frame::decode_batch::<Msg>(plain).unwrap());
    }
    assert_eq!(
        received.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert!(
        frame::decode_batch::<Msg>(&[0xff; 8]).is_err(),
        "garbage does not decode"
    );
}
