//! [`GradioNode`]: Gradio apps (Hugging Face Spaces or any URL) as typed nodes.
//!
//! ```no_run
//! use daggr::{Graph, GradioNode, Scope};
//! # #[tokio::main] async fn main() -> Result<(), daggr::Error> {
//! let mut g = Graph::new("shout");
//! let text = g.input("text", "hello".to_string());
//! let upper = g.add(
//!     GradioNode::new("upper", "http://127.0.0.1:7860")
//!         .api("/upper")
//!         .input::<String>("text")
//!         .output::<String>("upper"),
//!     (text,),
//! );
//! let report = g.build()?.run(Scope::All).await?;
//! println!("{}", report.value(&upper)?);
//! # Ok(()) }
//! ```
//!
//! # Versions
//!
//! The tests run against real Gradio 5.50.0, 4.44.1 (no API prefix, queue protocol, quoted
//! error texts) and 6.31.0 (`/call` with error texts), each pinned in its own venv by
//! `scripts/setup/gradio.sh`; `scripts/test.sh` runs the Gradio tests once per version
//! (`DAGGR_GRADIO_PYTHON` points the harness at a venv's Python).
//!
//! # In `pipeline!`
//!
//! A Gradio node is a bracketed node expression, wired positionally; with several
//! outputs its handles are a tuple, so a source names one as `node.0`, `node.1`:
//!
//! ```text
//! nodes {
//!     loud = [GradioNode::new("loud", URL).api("/upper").input::<String>("text").output::<String>("upper")](text);
//!     both = [GradioNode::new("both", URL).api("/combine").input::<f64>("x").input::<String>("label")
//!             .output::<f64>("doubled").output::<String>("joined")](2.5, loud);
//! }
//! outputs { joined: String = both.1 }
//! ```
//!
//! which expands to `let both = graph.add(GradioNode::new(…)…, (constant(2.5), SoleOutput::sole_output(&loud)));`.
//!
//! # How a call goes
//!
//! * **Connecting** (first run, or [`GradioNode::connect`]): a Space id is resolved
//!   through the Hub (`/api/spaces/{id}`: host and revision; then `/host`; then the
//!   `*.hf.space` subdomain rule). `GET /config` gives the version and the API prefix
//!   (`/gradio_api` on Gradio 5 and 6, none on 4); `GET {prefix}/info` the endpoints,
//!   against which the node's endpoint and port names are checked, with "did you mean".
//! * **One connection per app**: the nodes of a process that call the same app (base
//!   URL) with the same credentials (HF token, login) and HTTP client settings share one
//!   connection ([`GradioClient`]) for as long as one of them lives, so a pipeline's
//!   nodes and its preflight read `/config` and `/info` once between them, and a media
//!   value is uploaded once per app and content, its server path reused by later runs.
//!   When a call that sent such a path fails because the app lost the file (its error
//!   says so, or `GET {prefix}/app_id` shows a new run of the app: it restarted), the
//!   file goes up again and the call is made once more; a restarted app's description
//!   is read again, once, and the nodes' ports checked against it. The login session
//!   stays each node's own.
//! * **Calling**: `POST {prefix}/call/{api}` and its event stream on Gradio ≥ 6.13; the
//!   queue protocol (`/queue/join`, `/queue/data`) on older servers, the only way they
//!   give the text of an error ([`Protocol`] overrides the choice). A generator's updates
//!   become node progress and partial outputs; the final `complete` event the outputs.
//! * **Files**: media inputs are uploaded (`POST {prefix}/upload`) and sent as FileData
//!   (`meta._type = "gradio.FileData"`); file outputs are downloaded
//!   (`GET {prefix}/file={path}`) into [`crate::Image`], [`crate::Audio`],
//!   [`crate::Video`] or [`crate::File`] values, so chaining two apps always downloads
//!   and re-uploads (Gradio refuses loopback URLs as inputs).
//! * **Failures**: requests that cannot connect or answer 5xx or 429 are retried with
//!   backoff; a result stream may be silent for at most the read timeout (60 s, four
//!   heartbeats); every error is an [`crate::Error::Remote`] naming the node, the Space,
//!   the endpoint and the server's own message (the `gr.Error` text, a plain-text 500,
//!   a 404). Cancelling the run, or the node's timeout, cancels the remote job.
//! * **Auth**: the Hugging Face token ([`crate::kinds::hf::HfToken::from_env`]) is sent only to
//!   Hugging Face hosts (`huggingface.co`, `*.hf.space`: to Spaces as
//!   `X-HF-Authorization`, as gradio_client does), never elsewhere, never logged. An
//!   app launched with Gradio's own login (`auth=(user, password)`) is called with
//!   [`GradioNode::auth`]: `POST /login` (at the root on Gradio 4, 5 and 6) before
//!   `/config`, its session cookies (`access-token-…`) on every later request to the
//!   app's origin, and one new login when a request answers 401 or 403.
//!
//! # run_locally
//!
//! [`GradioNode::run_locally`] (or [`GradioNode::run_locally_from`] a directory or git
//! URL) runs the Space on this machine; see the `local` module's steps: clone, venv with
//! `gradio==<sdk_version>` and `requirements.txt`, launch on a free loopback port, wait.
//! Unlike the Python original, it heeds what pip cannot install: the venv is made with
//! the README's `python_version` when a matching interpreter is on PATH (`python3.10`,
//! or `python3` if it is that version; [`GradioNode::local_python`] names one), and the
//! Debian packages of `packages.txt` are checked with `dpkg-query`, never installed. A
//! wrong Python or a missing package is a warning (tracing and the app's log, see
//! [`GradioNode::local_log`]) and is repeated in the error if the app then fails.
//! Clones and venvs are reused, logs kept under `$DAGGR_SPACES_DIR` (default
//! `~/.cache/daggr/spaces`), and the app stops when the node is dropped. A failed step
//! falls back to the remote Space with a warning, or is an error with
//! [`GradioNode::local_fallback`]`(false)` or `DAGGR_LOCAL_NO_FALLBACK=1`.

mod client;
mod local;
mod node;
mod space;
mod sse;

pub use client::{ClientOptions, GradioClient, Login, Protocol, Update};
// Where an app lives and which Hub resolves Space ids ([`GradioClient::connect_target`],
// [`GradioNode::hub`]); defined once, in `daggr::hf::hub`, shared with `cargo daggr`.
pub use crate::kinds::hf::hub::{Target, DEFAULT_HUB, HUB_ENV};
// What `/info` says, read as `cargo daggr codegen gradio` reads it.
pub use daggr_codegen::gradio_info::{EndpointInfo, ParamInfo, ReturnInfo};
pub use local::{LOCAL_TIMEOUT_ENV, NO_FALLBACK_ENV, SPACES_DIR_ENV};
pub use node::{Append, GradioNode, OutputTuple};
