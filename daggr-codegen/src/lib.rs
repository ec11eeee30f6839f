//! The logic behind daggr's macros and its `cargo daggr` tool, as an ordinary library:
//! the graph IR and its export formats, the Gradio bindings generator and what the
//! runtime and the tool share about Hugging Face and Gradio apps (always), and with the
//! `macros` feature the parsers, validation and code generation that `daggr-macros`
//! calls.

#![warn(missing_docs)]

pub mod gradio;
pub mod gradio_info;
pub mod ir;

#[cfg(feature = "macros")]
pub mod fn_node;
#[cfg(feature = "macros")]
pub mod options;
#[cfg(feature = "macros")]
pub mod outputs;
#[cfg(feature = "macros")]
pub mod pipeline;
#[cfg(feature = "macros")]
pub mod static_graph;

/// The closest candidate to `name`, when one is close enough to be a likely typo. The
/// "did you mean" of the runtime, the macros and `cargo daggr` alike: one rule, so the
/// three suggest the same names.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}
