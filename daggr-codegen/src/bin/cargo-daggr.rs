//! `cargo daggr`: see `daggr_codegen::cli`.

use clap::Parser;

fn main() {
    if let Err(e) = daggr_codegen::cli::run(daggr_codegen::cli::Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
