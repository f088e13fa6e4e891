//! The bench's lean load generator: what a client costs should not be what the benchmark
//! measures. Keep-alive HTTP/1.1 connections kept per node (one request at a time on each),
//! each request rendered into a single buffer and written in one call, each answer read with a
//! minimal parser (status line, `Content-Length`, body). One attempt per request, as the bench
//! measures the cluster rather than a gateway's patience.
//!
//! [`Route::Leader`] sends each transfer to the node that leads its payer's shard (as a client
//! that knows the cluster's layout would, and labelled so in the results); [`Route::Any`] picks a
//! node at random, as a telco gateway behind a load balancer does.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tuma_actors::{AccountRef, ShardMap};
use tuma_chaos::load::{parse_cents, Answer, Outcome, Request, Sender};
use tuma_chaos::sim::SimRng;

/// Where each request goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A node at random.
    Any,
    /// The leader of the payer's shard (balances: of the account's shard).
    Leader,
}

impl Route {
    pub fn parse(name: &str) -> Option<Route> {
        match name {
            "any" => Some(Route::Any),
            "leader" => Some(Route::Leader),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Any => "any",
            Route::Leader => "leader",
        }
    }
}

/// Most bytes of an answer's head or body: the API's answers are a few hundred bytes.
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Idle connections kept per node (more are closed after use).
const IDLE_PER_NODE_MAX: usize = 4_096;

type Connection = BufReader<TcpStream>;

/// A reused connection the node had closed: nothing of an answer came.
fn is_stale(error: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        error.kind(),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
    )
}

/// One node: its address and idle connections.
struct Node {
    addr: SocketAddr,
    host: String,
    idle: Mutex<Vec<Connection>>,
}

/// The lean client (cheap to share: every client task holds the same one).
pub struct LeanClient {
    nodes: Vec<Node>,
    route: Route,
    /// The cluster's shards and the node (index into `nodes`) that leads each, as last read
    /// (none before the first read: requests then go to a node at random).
    leaders: RwLock<Option<(ShardMap, Vec<Option<usize>>)>>,
    pin: String,
    deadline_ms: u64,
    timeout: Duration,
}

impl LeanClient {
    /// A client of the nodes at `urls` (`http://HOST:PORT`).
    pub fn new(
        urls: &[String],
        route: Route,
        pin: &str,
        deadline_ms: u64,
        timeout: Duration,
    ) -> Result<LeanClient, String> {
        let nodes = urls
            .iter()
            .map(|url| {
                let host = url
                    .strip_prefix("http://")
                    .ok_or_else(|| format!("{url}: the lean client speaks plain http:// only (use --client gateway)"))?
                    .trim_end_matches('/')
                    .to_string();
                let addr = host
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{url}: not IP:PORT ({e})"))?;
                Ok(Node {
                    addr,
                    host,
                    idle: Mutex::new(Vec::new()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if nodes.is_empty() {
            return Err("no nodes to send to".into());
        }
        Ok(LeanClient {
            leaders: RwLock::new(None),
            nodes,
            route,
            pin: pin.to_string(),
            deadline_ms,
            timeout,
        })
    }

    pub fn route(&self) -> Route {
        self.route
    }

    /// Reads which node leads each shard from `/admin/v1/cluster` of the first node that
    /// answers (nodes are matched by their HTTP address); returns the shards with a leader.
    pub async fn refresh_leaders(&self, admin_token: &str) -> usize {
        for index in 0..self.nodes.len() {
            let head = format!(
                "GET /admin/v1/cluster HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin_token}\r\n\r\n",
                self.nodes[index].host
            );
            let Ok((200, body)) = self.exchange(index, head.as_bytes()).await else {
                continue;
            };
            let Ok(cluster) = serde_json::from_slice::<Value>(&body) else {
                continue;
            };
            let node_index = |id: u64| -> Option<usize> {
                let member = cluster["cluster"]["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["id"].as_u64() == Some(id))?;
                let http = member["http_addr"].as_str()?;
                self.nodes.iter().position(|n| n.host == http)
            };
            let Some(map) = cluster["shard_count"]
                .as_u64()
                .and_then(|n| ShardMap::new(u32::try_from(n).ok()?))
            else {
                continue;
            };
            let mut leaders = vec![None; map.shard_count() as usize];
            for shard in cluster["shards"].as_array().into_iter().flatten() {
                let (Some(number), Some(leader)) =
                    (shard["shard"].as_u64(), shard["leader"].as_u64())
                else {
                    continue;
                };
                if let Some(slot) = leaders.get_mut(number as usize) {
                    *slot = node_index(leader);
                }
            }
            let known = leaders.iter().flatten().count();
            *self.leaders.write().expect("no panics hold this lock") = Some((map, leaders));
            return known;
        }
        0
    }

    /// The node for a request about `account` (the payer, or the account read).
    fn node_for(&self, account: &str, rng: &mut SimRng) -> usize {
        if self.route == Route::Leader {
            let known = self.leaders.read().expect("no panics hold this lock");
            if let (Ok(account), Some((map, leaders))) =
                (AccountRef::parse(account), known.as_ref())
            {
                if let Some(Some(node)) = leaders.get(map.shard_of(&account) as usize) {
                    return *node;
                }
            }
        }
        rng.below(self.nodes.len() as u64) as usize
    }

    /// Sends one rendered request to node `index` on an idle connection (or a new one) and
    /// reads its answer: the status and the body. An idle connection the node closed meanwhile
    /// fails before any answer: the request goes once more on a new connection (transfers
    /// carry their idempotency key, so a second delivery cannot move money twice).
    async fn exchange(&self, index: usize, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let node = &self.nodes[index];
        let idle = node.idle.lock().expect("no panics hold this lock").pop();
        let answer = match idle {
            Some(connection) => match self.exchange_on(connection, request).await {
                Err(error) if is_stale(&error) => self.exchange_new(node, request).await,
                other => other,
            },
            None => self.exchange_new(node, request).await,
        }?;
        let (answer, connection) = answer;
        let mut idle = node.idle.lock().expect("no panics hold this lock");
        if answer.keep_alive && idle.len() < IDLE_PER_NODE_MAX {
            idle.push(connection);
        }
        Ok((answer.status, answer.body))
    }

    async fn exchange_new(
        &self,
        node: &Node,
        request: &[u8],
    ) -> io::Result<(RawAnswer, Connection)> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(node.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no connection in time"))??;
        stream.set_nodelay(true)?;
        self.exchange_on(BufReader::with_capacity(8 * 1024, stream), request)
            .await
    }

    async fn exchange_on(
        &self,
        mut connection: Connection,
        request: &[u8],
    ) -> io::Result<(RawAnswer, Connection)> {
        let answer = tokio::time::timeout(self.timeout, async {
            connection.get_mut().write_all(request).await?;
            read_answer(&mut connection).await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))??;
        Ok((answer, connection))
    }

    async fn transfer(
        &self,
        id: &str,
        order: &tuma_chaos::load::Order,
        rng: &mut SimRng,
    ) -> Answer {
        let index = self.node_for(&order.from, rng);
        let body = order.body(id, &self.pin, self.deadline_ms).to_string();
        let request = format!(
            "POST /v1/transfers HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.nodes[index].host,
            body.len()
        );
        let mut answer = new_answer(id);
        match self.exchange(index, request.as_bytes()).await {
            Err(error) => answer.last_error = Some(format!("{}: {error}", self.nodes[index].host)),
            Ok((status, body)) => {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                match status {
                    200 => {
                        answer.server_retries = json["retries"].as_u64().unwrap_or(0);
                        answer.outcome = Outcome::of_answer(&json);
                    }
                    400..=499 if status != 429 => {
                        let result = json["result"]
                            .as_str()
                            .map_or_else(|| format!("HTTP {status}"), str::to_string);
                        answer.outcome = Outcome::Failed(result);
                    }
                    _ => answer.last_error = Some(format!("HTTP {status} {json}")),
                }
            }
        }
        answer
    }

    async fn balance(&self, account: &str, rng: &mut SimRng) -> Answer {
        let index = self.node_for(account, rng);
        let request = format!(
            "GET /v1/accounts/{account}/balance HTTP/1.1\r\nHost: {}\r\nX-Tuma-Pin: {}\r\n\r\n",
            self.nodes[index].host, self.pin
        );
        let mut answer = new_answer("");
        match self.exchange(index, request.as_bytes()).await {
            Err(error) => answer.last_error = Some(error.to_string()),
            Ok((200, body)) => {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                answer.balance_cents = json["balance"].as_str().map(parse_cents);
                answer.outcome = Outcome::Confirmed {
                    txn: String::new(),
                    fee_cents: None,
                };
            }
            Ok((status, _)) if (400..500).contains(&status) && status != 429 => {
                answer.outcome = Outcome::Failed(format!("HTTP {status}"));
            }
            Ok((status, body)) => {
                answer.last_error =
                    Some(format!("HTTP {status} {}", String::from_utf8_lossy(&body)))
            }
        }
        answer
    }
}

/// One attempt, not yet answered.
fn new_answer(id: &str) -> Answer {
    Answer {
        attempts: 1,
        ..Answer::new(id, Outcome::Ambiguous)
    }
}

impl Sender for LeanClient {
    async fn send<'a>(&'a self, request: &'a Request, rng: &'a mut SimRng) -> Answer {
        match request {
            Request::Transfer { id, order } => self.transfer(id, order, rng).await,
            Request::Balance { account } => self.balance(account, rng).await,
            // The bench's workloads send transfers and balance reads only.
            _ => Answer::not_sent("the lean client sends transfers and balance reads only"),
        }
    }
}

/// An answer as read off the connection.
struct RawAnswer {
    status: u16,
    body: Vec<u8>,
    keep_alive: bool,
}

/// Reads one HTTP/1.1 answer: the status line, the headers (only `Content-Length` and
/// `Connection: close` matter), and a body of exactly the announced length.
async fn read_answer<R: tokio::io::AsyncBufRead + Unpin>(input: &mut R) -> io::Result<RawAnswer> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut line = String::new();
    if input.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("not an HTTP/1.1 status line"))?;
    let mut length = None;
    let mut keep_alive = true;
    let mut head_bytes = line.len();
    loop {
        line.clear();
        let read = input.read_line(&mut line).await?;
        head_bytes += read;
        if read == 0 || head_bytes > ANSWER_BYTES_MAX {
            return Err(invalid("the answer's head never ended"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("a header without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| invalid("Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked answers are not read by the lean client"));
        }
    }
    let length = length.unwrap_or(0);
    if length > ANSWER_BYTES_MAX {
        return Err(invalid("the answer's body is too large"));
    }
    let mut body = vec![0; length];
    input.read_exact(&mut body).await?;
    Ok(RawAnswer {
        status,
        body,
        keep_alive,
    })
}

/// Keeps the leader map fresh while a run lasts (leaders move: balancing, elections).
pub fn spawn_leader_refresh(
    client: Arc<LeanClient>,
    admin_token: String,
    until: std::time::Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.refresh_leaders(&admin_token).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> io::Result<RawAnswer> {
        let mut input = BufReader::new(bytes);
        read_answer(&mut input).await
    }

    #[tokio::test]
    async fn answers_are_read_by_their_length_and_kept_alive_unless_closed() {
        let answer = read(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}extra")
            .await
            .unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice(), answer.keep_alive),
            (200, &b"{}"[..], true)
        );
        let closed = read(
            b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!((closed.status, closed.keep_alive), (429, false));
    }

    #[tokio::test]
    async fn malformed_answers_are_errors_not_guesses() {
        for bad in [
            &b""[..],
            b"HTTP/1.0 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
        ] {
            assert!(
                read(bad).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_plain_ip_and_port_urls_are_taken() {
        let ok = LeanClient::new(
            &["http://127.0.0.1:8080".into()],
            Route::Leader,
            "1234",
            1,
            Duration::from_secs(1),
        );
        assert!(ok.is_ok());
        for bad in [
            "https://127.0.0.1:8080",
            "http://localhost:8080",
            "127.0.0.1:8080",
        ] {
            let client =
                LeanClient::new(&[bad.into()], Route::Any, "1234", 1, Duration::from_secs(1));
            assert!(client.is_err(), "{bad}");
        }
        assert!(LeanClient::new(&[], Route::Any, "1234", 1, Duration::from_secs(1)).is_err());
    }
}
