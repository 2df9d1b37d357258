//! Writing to stderr without panicking when its reader is gone.

/// Output to stderr that a gone reader (a closed terminal, `| tee` ended by
/// the same Ctrl-C) cannot turn into a panic: a session must still wind
/// down and close its recording.
#[macro_export]
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

#[macro_export]
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
