//! The queue the engine's worker threads share (PIN verification, history reads): each worker
//! takes the next job; the engine hands jobs over with `try_send` on the bounded sender, so a
//! full queue is the engine's to answer.

use std::sync::mpsc::Receiver;
use std::sync::Mutex;

/// One receiver shared by a pool's workers.
pub(super) type SharedQueue<T> = Mutex<Receiver<T>>;

/// The next job for a worker; `None` once the engine dropped the sender (the worker ends).
pub(super) fn next_job<T>(queue: &SharedQueue<T>) -> Option<T> {
    let queue = queue.lock().ok()?;
    queue.recv().ok()
}
