//! daggr's end-to-end suites, one `[[test]]` target each (real Gradio apps, a real
//! OpenAI-compatible server, a real browser, the `cargo daggr` tool); their shared
//! harnesses are modules beside them (`gradio_support/`, `common/`).
