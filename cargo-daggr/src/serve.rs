//! `cargo daggr serve`: builds a pipeline target and runs it with the serve handshake
//! variables ([`daggr::SERVE_ENV`], [`daggr::SERVE_TOKEN_ENV`],
//! [`daggr::SERVE_API_ONLY_ENV`]), so that the first pipeline it builds is served (the
//! workflow API, and the inspector unless `--api-only`) instead of returned.
//!
//! Before that, the target is asked for its graph (the `graph` handshake), so a target that
//! builds no pipeline is a clear error rather than a program that runs as usual. On Unix
//! the built program then replaces this process (as `cargo run` does): stopping
//! `cargo daggr serve` stops the server.

use std::net::SocketAddr;
use std::process::Command;

use clap::Args;

use daggr::{SERVE_API_ONLY_ENV, SERVE_ENV, SERVE_TOKEN_ENV};

use crate::build::{ask_graph, build_target, choose_target, BuildArgs};
use crate::error::CliError;

/// `cargo daggr serve` arguments.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// The address to serve on, `HOST:PORT` (`0.0.0.0:7860` for every interface, which
    /// needs a token). When the port is taken the next free one is used, and printed.
    #[arg(long, default_value = "127.0.0.1:7860", value_name = "HOST:PORT")]
    pub addr: String,
    /// Serve the workflow API alone (`POST /api/call`, `GET /api/openapi.json`, the blob
    /// routes), without the inspector.
    #[arg(long)]
    pub api_only: bool,
    /// The token clients must send (`X-Daggr-Token` header, or `?token=`). Default:
    /// `$DAGGR_SERVE_TOKEN`; for a non-loopback address without either, one is generated
    /// and printed.
    #[arg(long)]
    pub token: Option<String>,
    /// Which target to build and how.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Reads `HOST:PORT` (`localhost:PORT` is loopback).
pub fn parse_addr(addr: &str) -> Result<SocketAddr, CliError> {
    let addr = addr.trim();
    let parsed = match addr.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => addr.parse(),
    };
    parsed.map_err(|_| {
        CliError::Input(format!(
            "`--addr {addr}` is not an address: write it as HOST:PORT (127.0.0.1:7860, 0.0.0.0:7860)"
        ))
    })
}

/// A random token: 16 bytes, as hex.
pub fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `cargo daggr serve`: builds, checks that the target builds a pipeline, serves it.
pub fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let addr = parse_addr(&args.addr)?;
    let mut token = args.token.clone().or_else(|| {
        std::env::var(SERVE_TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    if token.is_none() && !addr.ip().is_loopback() {
        let fresh = random_token();
        eprintln!(
            "cargo daggr: serving on {addr}, which is not a loopback address, needs a token; clients send this one (X-Daggr-Token header, or ?token=): {fresh}"
        );
        token = Some(fresh);
    }
    let build = choose_target(&args.build)?;
    let (name, exe) = build_target(&build)?;
    let ir = ask_graph(&name, &exe, build.timeout)?;
    eprintln!(
        "cargo daggr: serving `{}`, the first pipeline the target `{name}` builds",
        ir.graph.name
    );
    let mut command = Command::new(&exe);
    command.env(SERVE_ENV, addr.to_string());
    match &token {
        Some(token) => command.env(SERVE_TOKEN_ENV, token),
        None => command.env_remove(SERVE_TOKEN_ENV),
    };
    if args.api_only {
        command.env(SERVE_API_ONLY_ENV, "1");
    } else {
        command.env_remove(SERVE_API_ONLY_ENV);
    }
    // The other handshakes would stop the program before it serves.
    command
        .env_remove(daggr::RUN_ENV)
        .env_remove(daggr::EXPORT_GRAPH_ENV);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Only returns when the program could not be started.
        let error = command.exec();
        Err(CliError::Io(format!("running {}: {error}", exe.display())))
    }
    #[cfg(not(unix))]
    {
        let status = command
            .status()
            .map_err(|e| CliError::Io(format!("running {}: {e}", exe.display())))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_the_runtime_reads_them() {
        assert_eq!(
            parse_addr("127.0.0.1:7860").unwrap().to_string(),
            "127.0.0.1:7860"
        );
        assert_eq!(
            parse_addr("localhost:8000").unwrap().to_string(),
            "127.0.0.1:8000"
        );
        assert!(parse_addr("[::1]:7860").unwrap().ip().is_loopback());
        assert_eq!(
            parse_addr("7860").unwrap_err().to_string(),
            "`--addr 7860` is not an address: write it as HOST:PORT (127.0.0.1:7860, 0.0.0.0:7860)"
        );
        assert_eq!(random_token().len(), 32);
        assert_ne!(random_token(), random_token());
    }
}
