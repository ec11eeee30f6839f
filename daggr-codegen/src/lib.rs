//! The logic behind daggr's macros and its `cargo daggr` tool, as an ordinary library:
//! the graph IR and its export formats and the Gradio bindings generator (always), and
//! with the `macros` feature the parsers, validation and code generation that
//! `daggr-macros` calls.

#![warn(missing_docs)]

pub mod gradio;
pub mod ir;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod fetch;
#[cfg(feature = "macros")]
pub mod fn_node;
#[cfg(feature = "macros")]
pub mod options;
#[cfg(feature = "macros")]
pub mod outputs;
#[cfg(feature = "macros")]
pub mod pipeline;
