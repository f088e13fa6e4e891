//! A stand-in for an SMS gateway's HTTP interface (Kannel's `sendsms`, Africa's Talking's
//! messaging API) or a business's callback receiver: it records every request and answers what
//! the test sets, so tests can take the gateway down and bring it back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the gateway received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Query and form fields, decoded.
    pub fields: BTreeMap<String, String>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body as sent.
    pub body: String,
    /// What it answered.
    pub answered: u16,
}

/// How the gateway answers while up.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// `202 0: Accepted for delivery`.
    Kannel,
    /// `201` with an Africa's Talking JSON body, message ids `ATXid_<n>`.
    AfricasTalking,
    /// A business's callback URL: `200 {"ResultCode":0,"ResultDesc":"Success"}`.
    CallbackReceiver,
}

/// The running gateway; stops with the test process.
pub struct FakeGateway {
    pub url: String,
    up: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    /// An answer that replaces the style's: status, body, and a delay before it.
    answer: Arc<Mutex<Option<(u16, String, Duration)>>>,
}

impl FakeGateway {
    pub fn start(style: Style) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer: Arc<Mutex<Option<(u16, String, Duration)>>> = Arc::default();
        let (up_for_thread, received_for_thread) = (up.clone(), received.clone());
        let answer_for_thread = answer.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let up = up_for_thread.load(Ordering::SeqCst);
                let answer = answer_for_thread.lock().unwrap().clone();
                let received = received_for_thread.clone();
                let delayed = answer.as_ref().is_some_and(|(_, _, d)| !d.is_zero());
                let serve_one = move || {
                    if let Some(request) = serve(stream, style, up, answer, &received) {
                        received.lock().unwrap().push(request);
                    }
                };
                // A delayed answer on a thread of its own holds up no other request; the
                // rest are served in order (the message ids count what came before).
                if delayed {
                    std::thread::spawn(serve_one);
                } else {
                    serve_one();
                }
            }
        });
        FakeGateway {
            url,
            up,
            received,
            answer,
        }
    }

    /// Answers every request with this status and body, after `delay`, until set again
    /// (`None`: the style's answer).
    pub fn set_answer(&self, answer: Option<(u16, &str, Duration)>) {
        *self.answer.lock().unwrap() = answer.map(|(s, b, d)| (s, b.to_string(), d));
    }

    /// Answers 503 to everything while down.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    style: Style,
    up: bool,
    answer: Option<(u16, String, Duration)>,
    received: &Mutex<Vec<Received>>,
) -> Option<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut fields = decode_pairs(query);
    fields.extend(decode_pairs(&String::from_utf8_lossy(&body)));
    let sent_before = received.lock().unwrap().len();
    let (status, answer) = match (up, style, answer) {
        (false, _, _) => (503, "gateway down".to_string()),
        (true, _, Some((status, body, delay))) => {
            std::thread::sleep(delay);
            (status, body)
        }
        (true, Style::Kannel, None) => (202, "0: Accepted for delivery".to_string()),
        (true, Style::AfricasTalking, None) => (
            201,
            format!(
                r#"{{"SMSMessageData":{{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{{"statusCode":101,"number":"{}","status":"Success","cost":"KES 0.8000","messageId":"ATXid_{sent_before}"}}]}}}}"#,
                fields.get("to").cloned().unwrap_or_default()
            ),
        ),
        (true, Style::CallbackReceiver, None) => (
            200,
            r#"{"ResultCode":0,"ResultDesc":"Success"}"#.to_string(),
        ),
    };
    let mut stream = stream;
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes());
    Some(Received {
        method,
        path: path.to_string(),
        fields,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: status,
    })
}

/// `a=1&b=x%20y` decoded.
fn decode_pairs(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
