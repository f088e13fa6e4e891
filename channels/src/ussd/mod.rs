//! USSD: the menu a feature phone walks after dialling a short code, served to gateways in the
//! Africa's Talking callback convention (form POST `sessionId, serviceCode, phoneNumber,
//! networkCode, text`; answer `CON …` or `END …`).
//!
//! | file | holds |
//! |---|---|
//! | `menu/` | a menu as data: the file format, its checks, placeholders |
//! | `book.rs` | the menus in force: shipped, replaced by those pushed to the cluster |
//! | `walk.rs` | where a session is, replayed from its inputs (pure) |
//! | `sessions.rs` | live sessions: idle timeout, lifetime, bound, metrics |
//! | `answer.rs` | one step: the next screen, or the action and its outcome |
//! | `prompt.rs` | a payment prompt (M-Pesa Express) waiting for the caller, shown before the menu |
//! | `http.rs` | `/ussd/v1/callback` and `/ussd/v1/events` |

mod answer;
pub mod book;
mod http;
pub mod menu;
mod prompt;
pub mod sessions;
pub mod walk;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tuma_actors::account::AccountRef;
use tuma_actors::language::Language;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::tariff::Tariffs;
use tuma_service::{Service, ServiceError};

pub use answer::transfer_id;
pub use book::{MenuBook, Versioned, MENU_DOCUMENT_PREFIX};
pub use http::router;
pub use menu::{parse_menu, Menu, MenuErrors};
pub use sessions::SessionLimits;

use answer::{Caller, Context};
use sessions::{Refusal, SessionState, Sessions};

/// Longest gateway session id, service code and `text` accepted.
const SESSION_ID_LEN_MAX: usize = 128;
const SERVICE_CODE_LEN_MAX: usize = 32;
const TEXT_LEN_MAX: usize = 512;
/// Most inputs in one session.
const INPUTS_MAX: usize = 40;
/// A new session waits at most this long for the caller's language.
const LANGUAGE_READ_WITHIN: Duration = Duration::from_millis(1_000);
/// A new customer session waits at most this long to learn of a payment prompt.
const PROMPT_READ_WITHIN: Duration = Duration::from_millis(1_000);
/// End-of-session reports kept for `GET /admin/v1/ussd/events`.
const EVENTS_KEPT: usize = 1_000;

/// A step as the gateway sends it.
#[derive(Clone, Debug)]
pub struct UssdRequest {
    pub session_id: String,
    pub service_code: String,
    pub phone_number: String,
    pub network_code: String,
    /// Every input so far joined by `*`; empty on the first step.
    pub text: String,
}

/// The answer to a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UssdReply {
    /// A screen that expects input.
    Continue(String),
    /// A final screen.
    End(String),
}

impl UssdReply {
    /// The body the gateway reads: `CON …` or `END …`.
    pub fn body(&self) -> String {
        match self {
            UssdReply::Continue(text) => format!("CON {text}"),
            UssdReply::End(text) => format!("END {text}"),
        }
    }
}

/// Limits and budgets of the USSD channel.
#[derive(Clone, Debug)]
pub struct UssdConfig {
    /// How long the gateway waits for an answer (`--ussd-answer-ms`).
    pub answer_within: Duration,
    pub sessions: SessionLimits,
    /// Sessions start in this language.
    pub default_language: String,
}

impl Default for UssdConfig {
    fn default() -> UssdConfig {
        UssdConfig {
            answer_within: Duration::from_millis(8_000),
            sessions: SessionLimits::default(),
            default_language: "en".into(),
        }
    }
}

/// A gateway's report that a session ended, as received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionEnd {
    pub received_unix_ms: u64,
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Why a menu push was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Invalid(MenuErrors),
    #[error("the file declares menu {declared}, not {named}")]
    Misnamed { named: String, declared: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The USSD channel of one node. Cheap to clone.
#[derive(Clone)]
pub struct Ussd {
    inner: Arc<Inner>,
}

struct Inner {
    service: Service,
    tariffs: Arc<Tariffs>,
    config: UssdConfig,
    book: RwLock<MenuBook>,
    sessions: Sessions,
    ends: Mutex<VecDeque<SessionEnd>>,
}

impl Ussd {
    pub fn new(service: Service, tariffs: Arc<Tariffs>, config: UssdConfig) -> Ussd {
        let inner = Inner {
            book: RwLock::new(MenuBook::shipped(&config.default_language)),
            sessions: Sessions::new(config.sessions.clone()),
            service,
            tariffs,
            config,
            ends: Mutex::new(VecDeque::new()),
        };
        Ussd {
            inner: Arc::new(inner),
        }
    }

    /// Keeps the menus in step with the cluster's and drops timed-out sessions, every second,
    /// for as long as the runtime runs.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let ussd = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                ussd.refresh_menus().await;
                ussd.inner.sessions.sweep(Instant::now());
            }
        })
    }

    /// Loads menus pushed to the cluster that this node does not hold yet.
    pub async fn refresh_menus(&self) {
        let Ok(documents) = self.inner.service.documents().await else {
            return;
        };
        let stored = documents.iter().filter_map(|(name, document)| {
            let menu = name.strip_prefix(MENU_DOCUMENT_PREFIX)?;
            Some((menu, document.version, document.body.as_str()))
        });
        self.inner
            .book
            .write()
            .expect("menu book lock")
            .update(stored);
    }

    /// Checks a menu file and stores it in the cluster as menu `name`; answers its version.
    /// Sessions under way keep the version they started with.
    pub async fn push_menu(&self, name: &str, text: String) -> Result<u64, PushError> {
        let menu = parse_menu(&text).map_err(PushError::Invalid)?;
        if menu.name() != name {
            return Err(PushError::Misnamed {
                named: name.to_string(),
                declared: menu.name(),
            });
        }
        let document = format!("{MENU_DOCUMENT_PREFIX}{name}");
        let version = self.inner.service.put_document(&document, text).await?;
        self.refresh_menus().await;
        Ok(version)
    }

    /// Every menu in force on this node: name and version (0 = shipped).
    pub fn menus(&self) -> Vec<(String, u64)> {
        self.inner.book.read().expect("menu book lock").versions()
    }

    /// The menu in force under `name`.
    pub fn menu(&self, name: &str) -> Option<Versioned> {
        self.inner
            .book
            .read()
            .expect("menu book lock")
            .get(name)
            .cloned()
    }

    pub fn live_sessions(&self) -> usize {
        self.inner.sessions.live()
    }

    /// Records a gateway's end-of-session report and forgets the session.
    pub fn record_end(&self, end: SessionEnd) {
        let session = end.fields.get("sessionId").cloned();
        let phone = end
            .fields
            .get("phoneNumber")
            .and_then(|p| Msisdn::parse(p).ok());
        if let (Some(session), Some(phone)) = (session, phone) {
            self.inner
                .sessions
                .close(&(session, phone.as_str().to_string()));
        }
        let status = end.fields.get("status").cloned().unwrap_or_default();
        metrics::counter!("tuma_ussd_session_ends_reported_total", "status" => status).increment(1);
        let mut ends = self.inner.ends.lock().expect("ends lock");
        if ends.len() == EVENTS_KEPT {
            ends.pop_front();
        }
        ends.push_back(end);
    }

    /// The latest end-of-session reports, oldest first.
    pub fn ends(&self) -> Vec<SessionEnd> {
        self.inner
            .ends
            .lock()
            .expect("ends lock")
            .iter()
            .cloned()
            .collect()
    }

    /// The language the caller's account holds, if it has one and the read answers in time.
    async fn language_of(&self, msisdn: &Msisdn) -> Option<Language> {
        let account = AccountRef::Customer(*msisdn);
        let read = self.inner.service.account(&account);
        match tokio::time::timeout(LANGUAGE_READ_WITHIN, read).await {
            Ok(Ok(Some(account))) => account.language,
            _ => None,
        }
    }

    /// The payment prompt waiting for the caller's answer, if any and the read answers in time.
    /// A session rebuilt on this node (a step re-routed from another) also takes a prompt
    /// already being paid — its payment started in this very session, and paying again
    /// answers that payment's outcome.
    async fn waiting_prompt(
        &self,
        msisdn: &Msisdn,
        rebuilt: bool,
    ) -> Option<tuma_actors::ledger::Prompt> {
        use tuma_actors::ledger::PromptState;
        let read = self.inner.service.waiting_prompt(msisdn);
        match tokio::time::timeout(PROMPT_READ_WITHIN, read).await {
            Ok(Ok(Some(prompt))) => match prompt.state {
                PromptState::Waiting => Some(prompt),
                PromptState::Paying if rebuilt => Some(prompt),
                _ => None,
            },
            _ => None,
        }
    }

    /// Answers one step of a session. Never fails: every fault is a final screen.
    pub async fn step(&self, request: &UssdRequest, source: Option<IpAddr>) -> UssdReply {
        metrics::counter!("tuma_ussd_steps_total").increment(1);
        let begun = Instant::now();
        let Some(msisdn) = Msisdn::parse(&request.phone_number).ok() else {
            return UssdReply::End("Invalid phone number.".into());
        };
        let session_id = request.session_id.trim();
        if session_id.is_empty()
            || session_id.len() > SESSION_ID_LEN_MAX
            || request.service_code.len() > SERVICE_CODE_LEN_MAX
            || request.text.len() > TEXT_LEN_MAX
        {
            return UssdReply::End("Invalid request.".into());
        }
        let inputs: Vec<&str> = if request.text.is_empty() {
            Vec::new()
        } else {
            request.text.split('*').collect()
        };
        let key = (session_id.to_string(), msisdn.as_str().to_string());
        // A new session is shown in the language the caller chose (My Account → Language).
        let new_session = !self.inner.sessions.contains(&key);
        let language = if new_session {
            self.language_of(&msisdn).await
        } else {
            None
        };
        let menu = self
            .inner
            .book
            .read()
            .expect("menu book lock")
            .for_code(&request.service_code, language.as_ref().map(|l| l.as_str()));
        let Some(menu) = menu else {
            return UssdReply::End(format!("Unknown service code {}.", request.service_code));
        };
        let unavailable = menu.menu.message(menu::Message::Unavailable).to_string();
        let expired = menu.menu.message(menu::Message::SessionExpired).to_string();
        if inputs.len() > INPUTS_MAX {
            return UssdReply::End(expired);
        }
        // A customer's payment prompt waiting for them shows before the menu.
        let rebuilt = !inputs.is_empty();
        let prompt = if new_session && menu.menu.role == menu::MenuRole::Customer {
            self.waiting_prompt(&msisdn, rebuilt).await
        } else {
            None
        };
        let entered = self.inner.sessions.enter(key.clone(), begun, rebuilt, || {
            Some(SessionState {
                menu,
                finished: None,
                prompt,
            })
        });
        let session = match entered {
            Ok(Some(session)) => session,
            Ok(None) | Err(Refusal::Full) => return UssdReply::End(unavailable),
            Err(Refusal::Expired) => return UssdReply::End(expired),
        };
        // One step at a time per session: a retried step waits for the first and gets its answer.
        let mut state = session.lock().await;
        if let Some((text, reply)) = &state.finished {
            if *text == request.text {
                return reply.clone();
            }
            return UssdReply::End(expired);
        }
        let caller = Caller {
            msisdn: &msisdn,
            session_id,
            service_code: &request.service_code,
            source,
        };
        // Leave room to send the answer before the gateway gives up.
        let budget = self
            .inner
            .config
            .answer_within
            .saturating_sub(begun.elapsed() + Duration::from_millis(250));
        let ctx = Context {
            service: &self.inner.service,
            tariffs: &self.inner.tariffs,
            transfer_wait: budget.mul_f64(0.75).max(Duration::from_millis(500)),
        };
        let menu = state.menu.menu.clone();
        let prompt = state.prompt.clone();
        let step = std::panic::AssertUnwindSafe(async {
            match prompt.as_ref().map(|p| (p, prompt::asked(&inputs))) {
                None => answer::answer(&ctx, &menu, &caller, &inputs).await,
                Some((_, prompt::Asked::Menu(rest))) => {
                    answer::answer(&ctx, &menu, &caller, rest).await
                }
                Some((prompt, asked)) => prompt::answer(&ctx, &caller, prompt, asked).await,
            }
        });
        let reply = match tokio::time::timeout(budget, step.catch_unwind()).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_panic)) => {
                // The session's step panicked: it ends; the node and other sessions go on.
                metrics::counter!("tuma_ussd_step_panics_total").increment(1);
                tracing::error!(
                    session = session_id,
                    "a USSD step panicked; the session ends"
                );
                drop(state);
                self.inner.sessions.close(&key);
                return UssdReply::End(unavailable);
            }
            // Out of time: whatever was ordered is decided by its deadline; the SMS says how.
            Err(_) => UssdReply::End(menu.message(menu::Message::Received).to_string()),
        };
        if matches!(reply, UssdReply::End(_)) {
            state.finished = Some((request.text.clone(), reply.clone()));
        }
        reply
    }
}
