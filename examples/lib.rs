//! daggr's example pipelines, as a user writes them; each is an `[[example]]` of this
//! package: `cargo run --example quickstart` (offline), `llm_chain` (an OpenAI-compatible
//! server), `seed_flow` (two Gradio Spaces).
