//! The nodes requests go to: changeable while clients run (a node added, or one about to leave).

use std::sync::{Arc, RwLock};

use crate::sim::SimRng;

#[derive(Clone, Debug)]
pub struct Targets(Arc<RwLock<Vec<String>>>);

impl Targets {
    /// Base URLs (`http://127.0.0.1:8080`); at least one.
    pub fn new(urls: Vec<String>) -> Targets {
        assert!(
            !urls.is_empty(),
            "a load needs at least one node to send to"
        );
        Targets(Arc::new(RwLock::new(urls)))
    }

    /// From now on, requests go to `urls` (ignored if empty: a load always has a node).
    pub fn set(&self, urls: Vec<String>) {
        if !urls.is_empty() {
            *self.0.write().expect("no panics hold this lock") = urls;
        }
    }

    /// A node chosen at random, as a gateway behind a load balancer picks one.
    pub fn pick(&self, rng: &mut SimRng) -> String {
        let urls = self.0.read().expect("no panics hold this lock");
        urls[rng.below(urls.len() as u64) as usize].clone()
    }

    /// The `n`-th node, round robin.
    pub fn nth(&self, n: u64) -> String {
        let urls = self.0.read().expect("no panics hold this lock");
        urls[(n % urls.len() as u64) as usize].clone()
    }

    pub fn all(&self) -> Vec<String> {
        self.0.read().expect("no panics hold this lock").clone()
    }
}
