//! `cargo daggr`: print a daggr pipeline's graph (by building the target and asking it,
//! or by reading its sources) and generate typed bindings for Gradio apps. Cargo runs
//! this binary as `cargo-daggr daggr …`.

mod app;
mod cli;

use clap::Parser;

fn main() {
    if let Err(e) = cli::run(cli::Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
