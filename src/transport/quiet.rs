//! The quiet point of a bring-up: guests being prepared together upload
//! vmbench, then wait here until every other has uploaded too, so that no
//! upload disturbs a clock probe. Unlike `std::sync::Barrier`, a guest
//! that fails (or whose thread never starts) leaves instead of arriving,
//! and the wait has a deadline: one guest can never hold the others.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest a guest waits here for the others (each of their uploads
/// has its own progress timeout; this bounds them together).
pub const QUIET_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Quiet(Arc<(Mutex<Count>, Condvar)>);

struct Count {
    /// Guests still to arrive or leave.
    pending: usize,
    /// What has been done once for this bring-up: a /tmp swept (by boot
    /// id and device:inode: namespace guests share one), a warning given.
    done: std::collections::HashSet<String>,
}

impl Quiet {
    pub fn new(parties: usize) -> Self {
        Quiet(Arc::new((
            Mutex::new(Count {
                pending: parties,
                done: Default::default(),
            }),
            Condvar::new(),
        )))
    }

    /// True the first time a guest of this bring-up names `what` (a /tmp
    /// to sweep, a warning to give): the others leave it done.
    pub fn once(&self, what: &str) -> bool {
        let (count, _) = &*self.0;
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        count.done.insert(what.to_string())
    }

    /// This guest is done with its upload: waits until every other one
    /// has arrived or left, or until `QUIET_LIMIT`. True when all did.
    pub fn arrive(&self) -> bool {
        self.arrive_within(QUIET_LIMIT)
    }

    fn arrive_within(&self, limit: Duration) -> bool {
        let (count, changed) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        count.pending = count.pending.saturating_sub(1);
        changed.notify_all();
        while count.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = changed
                .wait_timeout(count, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// This guest will not arrive (it failed, or never started): nobody
    /// waits for it.
    pub fn leave(&self) {
        let (count, changed) = &*self.0;
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        count.pending = count.pending.saturating_sub(1);
        changed.notify_all();
    }
}

/// Arrives at the quiet point once, on `arrive`; leaves it when dropped on
/// an early return, so that nobody waits for a guest that failed.
pub struct Arrival<'a>(Option<&'a Quiet>);

impl<'a> Arrival<'a> {
    pub fn new(quiet: &'a Quiet) -> Self {
        Arrival(Some(quiet))
    }

    pub fn arrive(&mut self) {
        if let Some(quiet) = self.0.take() {
            quiet.arrive();
        }
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if let Some(quiet) = self.0.take() {
            quiet.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_leaves_or_never_starts_holds_nobody_up() {
        let quiet = Quiet::new(3);
        let waiting = {
            let quiet = quiet.clone();
            std::thread::spawn(move || quiet.arrive_within(Duration::from_secs(10)))
        };
        // One guest fails before its upload, one thread never started.
        drop(Arrival::new(&quiet));
        quiet.leave();
        let began = Instant::now();
        assert!(waiting.join().expect("no panic"), "released when all left");
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_wait_for_a_guest_that_never_comes_ends_at_its_deadline() {
        let quiet = Quiet::new(2);
        let began = Instant::now();
        assert!(!quiet.arrive_within(Duration::from_millis(200)));
        let waited = began.elapsed();
        println!("waited {waited:?} for a deadline of 200 ms");
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(3));
    }
}
