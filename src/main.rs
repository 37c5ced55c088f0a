//! The `sigil` command-line tool.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sigil", version, about = "sigil: a TEE-ready enclave signer for agentKeys-style brokers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify an evidence file against a policy and print what it proves.
    Verify(sigil::cli::VerifyArgs),
    /// Handshake with a live signer (fresh nonce), verify its evidence, print the summary.
    Attest(sigil::cli::AttestArgs),
    /// Print a policy pinning exactly what a known-good build's evidence shows.
    Policy(sigil::cli::PolicyArgs),
    /// Run a complete signer on localhost (HTTPS + simulated enclave); needs `--features sim`.
    #[cfg(feature = "sim")]
    Dev(sigil::dev::DevArgs),
    /// Run a complete signer on localhost (HTTPS + simulated enclave); needs `--features sim`.
    #[cfg(not(feature = "sim"))]
    Dev,
}

fn main() -> ExitCode {
    sigil_enclave::runtime::init_logging();
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start runtime: {e}"))
    };
    let result = match cli.command {
        Command::Verify(args) => sigil::cli::verify(&args).map(|out| print!("{out}")),
        Command::Attest(args) => {
            runtime().and_then(|rt| rt.block_on(sigil::cli::attest(&args))).map(|out| print!("{out}"))
        }
        Command::Policy(args) => sigil::cli::policy_from(&args).map(|out| print!("{out}")),
        #[cfg(feature = "sim")]
        Command::Dev(args) => runtime().and_then(|rt| rt.block_on(sigil::dev::run(args))),
        #[cfg(not(feature = "sim"))]
        Command::Dev => Err("`sigil dev` runs the simulated enclave: rebuild with `--features sim`".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sigil: {msg}");
            ExitCode::from(2)
        }
    }
}
