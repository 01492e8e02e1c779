//! Writing to stdout and stderr the way kubectl behaves: when the reader goes away
//! (`kubectl alustan logs x | head -1`), the command ends quietly instead of panicking.
//!
//! Rust ignores `SIGPIPE`, so `println!` panics on a closed pipe (exit 101, "failed printing to
//! stdout"). kubectl (Go) dies silently of the signal; here the process exits 0 without a word,
//! as most Rust command-line tools do (`| head` is a normal way to read a command's start).

use std::io::{self, Write};

/// Writes `args` to stdout and flushes; on a closed pipe the process ends quietly (exit 0).
pub fn stdout(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(error) = out.write_fmt(args).and_then(|()| out.flush()) {
        ended(&error);
    }
}

/// Writes `args` to stderr; a closed stderr ends the process quietly too.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if let Err(error) = err.write_fmt(args).and_then(|()| err.flush()) {
        ended(&error);
    }
}

/// Writes raw bytes to stdout (a generated completion script) with the same rule.
pub fn stdout_bytes(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(error) = out.write_all(bytes).and_then(|()| out.flush()) {
        ended(&error);
    }
}

/// The reader is gone: nothing more can be said, so stop (0 for a closed pipe, else 1).
fn ended(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // stdout itself failed (a full disk, a revoked terminal): say so where it may still be read.
    let _ = writeln!(io::stderr(), "error: writing the output: {error}");
    std::process::exit(1);
}

/// `print!` that ends quietly on a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// `println!` that ends quietly on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that ends quietly on a closed stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
