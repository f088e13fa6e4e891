//! Live USSD sessions on this node: one entry per session (its menu version, when it started,
//! when it last moved, its final answer), with an idle timeout, a total lifetime and a bound
//! on how many are live. A session is not replicated: a step that lands on another node
//! rebuilds it there from the inputs the gateway sends on every step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::book::Versioned;
use super::UssdReply;

/// Limits on sessions.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// A session with no step for this long is dropped.
    pub idle: Duration,
    /// A session older than this is ended, whatever it is doing.
    pub lifetime: Duration,
    /// Most live sessions on this node; more are answered "unavailable".
    pub live_max: usize,
}

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(180),
            live_max: 100_000,
        }
    }
}

/// A session: the gateway's id and the caller's phone (the same id from another phone is
/// another session).
pub type SessionKey = (String, String);

/// What a session keeps between steps.
#[derive(Debug)]
pub struct SessionState {
    /// The menu version it started with, kept even if the menu is reloaded meanwhile.
    pub menu: Versioned,
    /// The final answer and the input that produced it: a retried last step gets it again.
    pub finished: Option<(String, UssdReply)>,
    /// The payment prompt that was waiting for the caller when the session started: its
    /// screens come before the menu's (`prompt.rs`).
    pub prompt: Option<tuma_actors::ledger::Prompt>,
}

struct Entry {
    started: Instant,
    last_step: Instant,
    state: Arc<tokio::sync::Mutex<SessionState>>,
}

/// Why no session could be had.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Past its lifetime: the caller must dial again.
    Expired,
    /// Too many live sessions on this node.
    Full,
}

/// The live sessions.
pub struct Sessions {
    live: Mutex<HashMap<SessionKey, Entry>>,
    limits: SessionLimits,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            live: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// The session for `key`, opened with `open()` if there is none (`rebuilt` says whether
    /// it was opened mid-path, i.e. its earlier steps went to another node or it timed out).
    pub fn enter(
        &self,
        key: SessionKey,
        now: Instant,
        rebuilt: bool,
        open: impl FnOnce() -> Option<SessionState>,
    ) -> Result<Option<Arc<tokio::sync::Mutex<SessionState>>>, Refusal> {
        let mut live = self.live.lock().expect("sessions lock");
        if let Some(entry) = live.get_mut(&key) {
            if now.duration_since(entry.started) > self.limits.lifetime {
                live.remove(&key);
                metrics::counter!("tuma_ussd_sessions_timed_out_total", "reason" => "lifetime")
                    .increment(1);
                metrics::gauge!("tuma_ussd_sessions_live").set(live.len() as f64);
                return Err(Refusal::Expired);
            }
            entry.last_step = now;
            return Ok(Some(entry.state.clone()));
        }
        if live.len() >= self.limits.live_max {
            metrics::counter!("tuma_ussd_sessions_refused_total").increment(1);
            return Err(Refusal::Full);
        }
        let Some(state) = open() else {
            return Ok(None);
        };
        let state = Arc::new(tokio::sync::Mutex::new(state));
        let entry = Entry {
            started: now,
            last_step: now,
            state: state.clone(),
        };
        live.insert(key, entry);
        metrics::counter!("tuma_ussd_sessions_started_total").increment(1);
        if rebuilt {
            metrics::counter!("tuma_ussd_sessions_rebuilt_total").increment(1);
        }
        metrics::gauge!("tuma_ussd_sessions_live").set(live.len() as f64);
        Ok(Some(state))
    }

    /// Is there a live session under `key`?
    pub fn contains(&self, key: &SessionKey) -> bool {
        self.live.lock().expect("sessions lock").contains_key(key)
    }

    /// Forgets a session (the gateway reported its end, or its step failed).
    pub fn close(&self, key: &SessionKey) {
        let mut live = self.live.lock().expect("sessions lock");
        live.remove(key);
        metrics::gauge!("tuma_ussd_sessions_live").set(live.len() as f64);
    }

    /// Drops sessions idle or older than their lifetime; answers how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut live = self.live.lock().expect("sessions lock");
        let before = live.len();
        live.retain(|_, entry| {
            if now.duration_since(entry.started) > self.limits.lifetime {
                metrics::counter!("tuma_ussd_sessions_timed_out_total", "reason" => "lifetime")
                    .increment(1);
                false
            } else if now.duration_since(entry.last_step) > self.limits.idle {
                metrics::counter!("tuma_ussd_sessions_timed_out_total", "reason" => "idle")
                    .increment(1);
                false
            } else {
                true
            }
        });
        metrics::gauge!("tuma_ussd_sessions_live").set(live.len() as f64);
        before - live.len()
    }

    pub fn live(&self) -> usize {
        self.live.lock().expect("sessions lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ussd::book::MenuBook;

    fn state() -> SessionState {
        SessionState {
            menu: MenuBook::shipped("en").for_code("*334#", None).unwrap(),
            finished: None,
            prompt: None,
        }
    }

    fn key(id: &str) -> SessionKey {
        (id.to_string(), "254700000001".to_string())
    }

    #[test]
    fn sessions_time_out_when_idle_or_too_old_and_are_bounded() {
        let limits = SessionLimits {
            idle: Duration::from_secs(10),
            lifetime: Duration::from_secs(30),
            live_max: 2,
        };
        let sessions = Sessions::new(limits);
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        assert!(sessions
            .enter(key("a"), s(0), false, || Some(state()))
            .unwrap()
            .is_some());
        assert!(sessions
            .enter(key("b"), s(0), false, || Some(state()))
            .unwrap()
            .is_some());
        assert_eq!(
            sessions
                .enter(key("c"), s(0), false, || Some(state()))
                .unwrap_err(),
            Refusal::Full
        );
        // "a" keeps moving; "b" goes idle.
        for t in [8, 16, 24] {
            sessions.enter(key("a"), s(t), false, || None).unwrap();
        }
        assert_eq!(sessions.sweep(s(25)), 1);
        assert_eq!(sessions.live(), 1);
        // Past its lifetime "a" is ended even though it moves.
        assert_eq!(
            sessions.enter(key("a"), s(31), false, || None).unwrap_err(),
            Refusal::Expired
        );
        assert_eq!(sessions.live(), 0);
    }

    #[test]
    fn a_session_is_kept_per_gateway_id_and_phone() {
        let sessions = Sessions::new(SessionLimits::default());
        let now = Instant::now();
        let first = sessions
            .enter(key("a"), now, false, || Some(state()))
            .unwrap()
            .unwrap();
        let again = sessions
            .enter(key("a"), now, false, || None)
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other_phone = ("a".to_string(), "254700000002".to_string());
        assert!(sessions
            .enter(other_phone, now, false, || None)
            .unwrap()
            .is_none());
    }
}
