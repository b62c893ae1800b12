//! Writing to the terminal without ever panicking. `println!`/`eprintln!`
//! panic when the write fails — a closed terminal, a pipe into a `tee` that
//! a Ctrl-C ended — and a launcher that panics half-way through its cleanup
//! leaves the stack behind. When the terminal is gone there is no one left
//! to tell, so a failed write is dropped here, and only here.

use std::io::Write;

/// One line to stderr (progress, warnings, errors).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    if writeln!(std::io::stderr().lock(), "{args}").is_err() {
        // The terminal is gone: nowhere to report it.
    }
}

/// One line to stdout (the banner, mails, `--verbose` logs).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{args}").and_then(|()| out.flush()).is_err() {
        // The terminal is gone: nowhere to report it.
    }
}

/// `eprintln!` that cannot panic.
macro_rules! say {
    ($($arg:tt)*) => { $crate::term::write_err(format_args!($($arg)*)) };
}

/// `println!` that cannot panic.
macro_rules! show {
    ($($arg:tt)*) => { $crate::term::write_out(format_args!($($arg)*)) };
}

pub(crate) use {say, show};
