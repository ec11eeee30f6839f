//! `cargo daggr`: print a daggr pipeline's graph (by building the target and asking it,
//! or by reading its sources), run it headless, serve it (`serve`) or deploy it to a
//! Docker Space (`deploy`), list and collect the project's sheets and cache (`sheets`,
//! `cache`), and generate typed bindings for Gradio apps. Cargo runs this binary as
//! `cargo-daggr daggr …`.

mod admin;
mod app;
mod batch;
mod build;
mod cli;
mod codegen;
mod deploy;
mod error;
mod graph;
mod run;
mod serve;

use clap::Parser;

fn main() {
    if let Err(e) = cli::run(cli::Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
