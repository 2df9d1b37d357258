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

/// A value with an SI prefix and three significant digits: 812, 1.23k, 45.6M.
pub fn si(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, prefix) = if magnitude >= 1e12 {
        (value / 1e12, "T")
    } else if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let digits = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{prefix}")
}

pub fn bytes_rate(value: f64) -> String {
    format!("{}/s", bytes(value))
}

/// An amount of bytes: `2.82GB`.
pub fn bytes(value: f64) -> String {
    format!("{}B", si(value))
}

/// A byte rate in bits, short for a chart's axis: `160Mb`.
pub fn bits(bytes_per_second: f64) -> String {
    format!("{}b", si(bytes_per_second * 8.0))
}

pub fn figure(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{} {unit}", si(v)))
}

/// A phase's start skew as jitter ± clock uncertainty (the ± left out
/// where every copy ran on this host's own clock, or where a recording
/// predates it).
pub fn skew_with_clock(skew_ms: Option<f64>, clock_ms: Option<f64>) -> String {
    let Some(ms) = skew_ms else {
        return "—".into();
    };
    let jitter = skew_text(Some((ms * 1e6) as Nanos));
    match clock_ms {
        Some(c) if c > 0.0 => format!("{jitter}±{}", skew_text(Some((c * 1e6) as Nanos))),
        // On this host's own clock, or recorded before vmbench kept it.
        _ => jitter,
    }
}

fn skew_text(skew: Option<Nanos>) -> String {
    match skew {
        Some(ns) if ns < 1_000_000 => format!("{:.0}µs", ns as f64 / 1e3),
        Some(ns) => format!("{:.1}ms", ns as f64 / 1e6),
        None => "—".into(),
    }
}

/// A replay speed: `4×`, `0.25×`.
pub fn speed(speed: f64) -> String {
    if speed >= 1.0 {
        format!("{speed:.0}×")
    } else {
        format!("{speed}×")
    }
}

/// A network rate in bit/s, as links are rated.
pub fn bits_rate(bytes_per_second: f64) -> String {
    format!("{}bit/s", si(bytes_per_second * 8.0))
}
