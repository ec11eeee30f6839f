//! The node kinds: Rust functions ([`fn_node`]), Gradio apps ([`gradio`]), inference
//! endpoints ([`inference`]), and what the remote kinds share (Hugging Face rules in
//! [`hf`], HTTP helpers in `http`). They build on the node contract, the graph and the
//! executor, and never name sheets or the inspector.

pub mod fn_node;
pub mod gradio;
pub mod hf;
pub(crate) mod http;
pub mod inference;
