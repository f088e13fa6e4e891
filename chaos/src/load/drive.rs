//! Pacing: closed loop (N clients, each sending its next request once the last one is
//! answered) or open loop (requests started at a fixed rate, however long answers take).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::gateway::{Answer, Gateway};
use super::order::Request;
use crate::sim::SimRng;

/// What sends one request and reports what it came to: the [`Gateway`] (every channel, with
/// its retry policy), or a leaner client a benchmark brings.
pub trait Sender: Send + Sync + 'static {
    fn send<'a>(
        &'a self,
        request: &'a Request,
        rng: &'a mut SimRng,
    ) -> impl std::future::Future<Output = Answer> + Send + 'a;
}

impl Sender for Gateway {
    fn send<'a>(
        &'a self,
        request: &'a Request,
        rng: &'a mut SimRng,
    ) -> impl std::future::Future<Output = Answer> + Send + 'a {
        Gateway::send(self, request, rng)
    }
}

/// One client's stream of requests: the mix of a load.
pub trait Script: Send + 'static {
    /// This client's next request (`n` counts from 1). `previous` is what its last request
    /// came to (`None` for the first, and always in open loop).
    fn next(&mut self, rng: &mut SimRng, n: u64, previous: Option<&Completed>) -> Request;
}

/// A request and what it came to.
#[derive(Clone, Debug)]
pub struct Completed {
    pub client: usize,
    pub request: Request,
    pub answer: Answer,
    /// When the request was first sent.
    pub sent: Instant,
    /// From the first attempt to the final answer (or giving up).
    pub latency: Duration,
}

/// How requests are paced.
#[derive(Copy, Clone, Debug)]
pub enum Pace {
    /// `clients` clients, each waiting for its answer before sending the next.
    Closed { clients: usize },
    /// `per_second` requests started each second; beyond `in_flight_max` unanswered ones, a
    /// request is not sent and completes as ambiguous ("too many in flight").
    Open {
        per_second: u64,
        in_flight_max: usize,
    },
}

/// When the load stops: at an instant, when told, or whichever comes first.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    told: Arc<AtomicBool>,
    at: Option<Instant>,
}

impl Stop {
    /// Stops only when told ([`Stop::now`]).
    pub fn when_told() -> Stop {
        Stop::default()
    }

    /// Stops at `at` (or earlier, when told).
    pub fn at(at: Instant) -> Stop {
        Stop {
            told: Arc::default(),
            at: Some(at),
        }
    }

    pub fn now(&self) {
        self.told.store(true, Ordering::Relaxed);
    }

    pub fn is_over(&self) -> bool {
        self.told.load(Ordering::Relaxed) || self.at.is_some_and(|at| Instant::now() >= at)
    }
}

/// Runs a load until `stop`: each client follows the script `script_for(client)` and draws
/// from its own generator seeded from `seed`; `sink` sees every completed request (from many
/// tasks at once). Returns once every request in flight has completed.
pub async fn drive<S: Script, G: Sender>(
    gateway: Arc<G>,
    pace: Pace,
    seed: u64,
    mut script_for: impl FnMut(usize) -> S,
    stop: Stop,
    sink: Arc<dyn Fn(Completed) + Send + Sync>,
) {
    match pace {
        Pace::Closed { clients } => {
            let mut tasks = tokio::task::JoinSet::new();
            for client in 0..clients {
                let (gateway, stop, sink) = (gateway.clone(), stop.clone(), sink.clone());
                let mut script = script_for(client);
                let mut rng = SimRng::new(seed.wrapping_mul(7919).wrapping_add(client as u64));
                tasks.spawn(async move {
                    let mut previous: Option<Completed> = None;
                    let mut n = 0u64;
                    while !stop.is_over() {
                        n += 1;
                        let request = script.next(&mut rng, n, previous.as_ref());
                        if request == Request::Skip {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        let done = send_timed(gateway.as_ref(), client, request, &mut rng).await;
                        sink(done.clone());
                        previous = Some(done);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        Pace::Open {
            per_second,
            in_flight_max,
        } => {
            let mut script = script_for(0);
            let mut rng = SimRng::new(seed);
            let interval = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
            let in_flight = Arc::new(tokio::sync::Semaphore::new(in_flight_max.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            let mut next = Instant::now();
            let mut n = 0u64;
            while !stop.is_over() {
                next += interval;
                tokio::time::sleep_until(next.into()).await;
                n += 1;
                let request = script.next(&mut rng, n, None);
                if request == Request::Skip {
                    continue;
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    sink(Completed {
                        client: 0,
                        request,
                        answer: Answer::not_sent("too many in flight"),
                        sent: Instant::now(),
                        latency: Duration::ZERO,
                    });
                    continue;
                };
                // Each request draws its node and retries from its own generator, so the
                // script's draws do not depend on when answers arrive.
                let mut request_rng = SimRng::new(rng.next_u64());
                let (gateway, sink) = (gateway.clone(), sink.clone());
                tasks.spawn(async move {
                    sink(send_timed(gateway.as_ref(), 0, request, &mut request_rng).await);
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Sends one request for `client` and times it from the first attempt to its answer.
pub async fn send_timed<G: Sender>(
    gateway: &G,
    client: usize,
    request: Request,
    rng: &mut SimRng,
) -> Completed {
    let sent = Instant::now();
    let answer = gateway.send(&request, rng).await;
    Completed {
        client,
        request,
        answer,
        sent,
        latency: sent.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::order::{Order, Outcome};
    use super::super::stub_node::StubNode;
    use super::super::targets::Targets;
    use super::*;

    /// Sends transfers; after a confirmed one, asks a balance (so `previous` is seen).
    struct Alternate(usize);

    impl Script for Alternate {
        fn next(&mut self, _: &mut SimRng, n: u64, previous: Option<&Completed>) -> Request {
            match previous.map(|p| &p.request) {
                Some(Request::Transfer { .. }) => Request::Balance {
                    account: "254700000001".into(),
                },
                _ => Request::Transfer {
                    id: format!("t{}-{n}", self.0),
                    order: Order::new("send_money", "254700000001", "254700000002", 100),
                },
            }
        }
    }

    async fn run(pace: Pace) -> Vec<Completed> {
        let node = StubNode::start(vec![(
            200,
            r#"{"status":"confirmed","transaction_id":"UKS7","fee":"0.00","balance":"5.00"}"#,
        )])
        .await;
        let gateway = Gateway::new(Targets::new(vec![node.url.clone()]), Duration::from_secs(5))
            .expect("client");
        let seen: Arc<Mutex<Vec<Completed>>> = Arc::default();
        let sink = {
            let seen = seen.clone();
            Arc::new(move |done: Completed| seen.lock().unwrap().push(done))
        };
        let stop = Stop::at(Instant::now() + Duration::from_millis(300));
        drive(Arc::new(gateway), pace, 1, Alternate, stop, sink).await;
        let seen = seen.lock().unwrap().clone();
        seen
    }

    #[tokio::test]
    async fn closed_loop_clients_follow_their_script_until_stopped() {
        let seen = run(Pace::Closed { clients: 3 }).await;
        for client in 0..3 {
            let mine: Vec<&Completed> = seen.iter().filter(|c| c.client == client).collect();
            assert!(mine.len() >= 2, "client {client} sent {}", mine.len());
            assert!(matches!(mine[0].request, Request::Transfer { .. }));
            assert!(
                matches!(mine[1].request, Request::Balance { .. }),
                "previous seen"
            );
            assert_eq!(mine[1].answer.balance_cents, Some(500));
        }
        assert!(seen.iter().all(|c| c.answer.is_confirmed()));
    }

    #[tokio::test]
    async fn open_loop_starts_requests_at_its_rate_and_stops() {
        let seen = run(Pace::Open {
            per_second: 100,
            in_flight_max: 10,
        })
        .await;
        // 300 ms at 100 a second: about 30 (pacing catches up after a stall), never more.
        assert!((1..=31).contains(&seen.len()), "{} requests", seen.len());
        assert!(seen
            .iter()
            .all(|c| matches!(c.answer.outcome, Outcome::Confirmed { .. })));
    }
}
