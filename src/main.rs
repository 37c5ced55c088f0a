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
    let result = match cli.command {
        #[cfg(feature = "sim")]
        Command::Dev(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start runtime: {e}"))
            .and_then(|rt| rt.block_on(sigil::dev::run(args))),
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
