//! The business's callback URLs in a chaos run (`/stk/callback`, `/b2c/result`,
//! `/b2c/timeout`): records every callback the nodes post (its path, `X-Tuma-Callback-Id` and
//! body) and answers 200, so the checker can hold each committed payment to exactly one
//! callback.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// A callback as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `X-Tuma-Callback-Id`: stable across a callback's repeats.
    pub id: String,
    pub path: String,
    pub body: Value,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// The running receiver; stops when dropped.
pub struct CallbackReceiver {
    /// `http://<ip>:<port>`: the paths above are under it.
    pub base: String,
    received: Log,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackReceiver {
    /// Listens on `ip` (where the nodes reach the harness), on a free port.
    pub async fn start(ip: IpAddr) -> std::io::Result<CallbackReceiver> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let received: Log = Arc::default();
        let app = Router::new()
            .route("/stk/callback", post(record))
            .route("/b2c/result", post(record))
            .route("/b2c/timeout", post(record))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CallbackReceiver {
            base,
            received,
            task,
        })
    }

    /// Every callback received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .expect("no panics hold this lock")
            .clone()
    }
}

impl Drop for CallbackReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(log): State<Log>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let id = headers
        .get("x-tuma-callback-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    log.lock()
        .expect("no panics hold this lock")
        .push(Received {
            id,
            path: uri.path().to_string(),
            body,
        });
    Json(serde_json::json!({"ResultCode": 0, "ResultDesc": "Success"}))
}
