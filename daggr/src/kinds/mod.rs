//! The node kinds: Rust functions ([`fn_node`]), Gradio apps ([`gradio`]), inference
//! endpoints ([`inference`]), and what the remote kinds share (Hugging Face rules in
//! [`hf`], HTTP helpers in `http`). They build on the node contract, the graph and the
//! executor, and never name sheets or the inspector.

pub mod fn_node;
#[cfg(feature = "gradio")]
pub mod gradio;
#[cfg(any(feature = "gradio", feature = "inference"))]
pub mod hf;
#[cfg(any(feature = "gradio", feature = "inference"))]
// Shared: with one remote kind only, the parts only the other uses are unused.
#[cfg_attr(not(all(feature = "gradio", feature = "inference")), allow(dead_code))]
pub(crate) mod http;
#[cfg(feature = "inference")]
pub mod inference;
