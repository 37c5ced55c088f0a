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
    /// Load K3 (e.g. the old signer's DEV_KEY_SERVICE_MASTER_SECRET) into an attested enclave.
    Provision(sigil::cli::custody::ProvisionArgs),
    /// Copy K3 from one attested enclave to another with the same measurement.
    Replicate(sigil::cli::custody::ReplicateArgs),
    /// Unload an epoch (needs its K3, so it can always be provisioned again).
    Retire(sigil::cli::custody::RetireArgs),
    /// Show an enclave's K3 epochs and sealing state, through an attested session.
    Custody(sigil::cli::custody::Target),
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
        Command::Provision(args) => {
            runtime().and_then(|rt| rt.block_on(sigil::cli::custody::provision(&args))).map(|out| print!("{out}"))
        }
        Command::Replicate(args) => {
            runtime().and_then(|rt| rt.block_on(sigil::cli::custody::replicate(&args))).map(|out| print!("{out}"))
        }
        Command::Retire(args) => {
            runtime().and_then(|rt| rt.block_on(sigil::cli::custody::retire(&args))).map(|out| print!("{out}"))
        }
        Command::Custody(args) => {
            runtime().and_then(|rt| rt.block_on(sigil::cli::custody::status(&args))).map(|out| print!("{out}"))
        }
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
