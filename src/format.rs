//! Numbers and times as people read them, shared by every front end.

use crate::event::Nanos;

/// Session time as mm:ss, or h:mm:ss past the first hour.
pub fn clock(t: Nanos) -> String {
    let s = t / 1_000_000_000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}
