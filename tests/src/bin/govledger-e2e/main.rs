//! `govledger-e2e`: the load generator and the checker of the fault-injection runs in
//! `testnet/e2e/` (see `testnet/README.md`).
//!
//! ```text
//! govledger-e2e load  --nodes URL,URL… --key FILE… --acks-out FILE [--stats-out FILE]
//!                     [--stop-file FILE] [--duration-secs N] [--cycles-per-batch N]
//!                     [--drain-secs N] [--stall-secs N] [--pause-ms N] [--tag TEXT]
//! govledger-e2e check --nodes URL,URL… [--names A,B…] --genesis FILE --acks FILE…
//!                     [--byzantine DEPT] [--converge-secs N] [--out FILE]
//! ```
//!
//! `load` writes records of every kind (one worker per client key) and appends the id of
//! every transaction a node acknowledged as committed to `--acks-out`, one hex id a line.
//! `check` asserts what must hold after any fault: agreement on every common height, every
//! acknowledged id exactly once in every node's chain, no id twice, and evidence only
//! against the byzantine department (if any). Exit code 0 only if every check passed.

mod args;
mod check;
mod load;

use std::process::ExitCode;

const USAGE: &str = "usage:
  govledger-e2e load  --nodes URL,URL... --key FILE [--key FILE]... --acks-out FILE
                      [--stats-out FILE] [--stop-file FILE] [--duration-secs N]
                      [--cycles-per-batch N] [--drain-secs N] [--stall-secs N]
                      [--pause-ms N] [--tag TEXT]
  govledger-e2e check --nodes URL,URL... [--names A,B...] --genesis FILE --acks FILE...
                      [--byzantine DEPT] [--converge-secs N] [--out FILE]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    };
    let result = match cmd.as_str() {
        "load" => args::Args::parse(rest)
            .and_then(|a| load::LoadOptions::from_args(&a))
            .and_then(|o| load::run(&o)),
        "check" => args::Args::parse(rest)
            .and_then(|a| check::CheckOptions::from_args(&a))
            .and_then(|o| check::run(&o)),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("govledger-e2e {cmd}: {e}");
            ExitCode::from(1)
        }
    }
}
