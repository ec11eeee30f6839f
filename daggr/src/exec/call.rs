//! A pipeline called as a function: named inputs in (JSON), named outputs out (JSON). What
//! the workflow API (`POST /api/call`) and `cargo daggr run` share.
//!
//! The inputs are the pipeline's input nodes, by name. The outputs are its named outputs
//! ([`Graph::name_output`](crate::Graph::name_output)), or else every output port no node
//! reads (named `node`, or `node.port` for a node of several outputs).
//!
//! `cargo daggr run` talks to the user's program through [`RUN_ENV`] and
//! [`RUN_INPUTS_ENV`]: when they are set, [`Graph::build`](crate::Graph::build) runs the
//! pipeline it built on those inputs, writes the [`CallAnswer`] as JSON and exits (0 when
//! every node succeeded, 1 when one failed, 2 for bad inputs).
//!
//! `cargo daggr serve` (and a deployed Space) talks to it through [`SERVE_ENV`],
//! [`SERVE_TOKEN_ENV`] and [`SERVE_API_ONLY_ENV`]: when the first is set,
//! [`Graph::build`](crate::Graph::build) serves the pipeline it built (the workflow API,
//! and the inspector unless API-only) until the process is stopped, then exits. The
//! serving code is the inspector's, a layer above this one: it is found through
//! `SERVE_HOOKS`, a list the linker assembles, so this layer never names it.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{Outcome, Pipeline, RunReport, Scope};
use crate::graph::{Binding, NamedOutput, INPUT_KIND};
use crate::value::PortType;

/// Environment variable of the `cargo daggr run` handshake: the path the answer is written
/// to (`-` for stdout).
pub const RUN_ENV: &str = "DAGGR_RUN";
/// Environment variable of the `cargo daggr run` handshake: the inputs, a JSON object.
pub const RUN_INPUTS_ENV: &str = "DAGGR_RUN_INPUTS";
/// Environment variable of the `cargo daggr run --batch` handshake (the batch variant): the
/// batch to run, a JSON object (`inputs`, the path of a JSON Lines file of input sets;
/// optional `name`, `sheets`, `worker`, `concurrency`, `lease_ms`, `events`: see
/// `daggr::sheet::batch`). With [`RUN_ENV`] set too, [`Graph::build`](crate::Graph::build)
/// runs the pipeline it built over the batch as one of its workers, writes the summary as
/// JSON to [`RUN_ENV`]'s path and exits: 0 when every item is done, 1 when one failed, 2
/// when the batch could not run. Batches are kept in sheets (the `sheets` feature).
pub const RUN_BATCH_ENV: &str = "DAGGR_RUN_BATCH";

/// Batch code a higher layer contributes (sheets keep batches): runs the batch that a
/// [`RUN_BATCH_ENV`] request describes; the answer and the exit status.
pub(crate) type BatchHook = fn(&Pipeline, &str) -> (Json, i32);

/// The batch code linked into this program: the sheets', when the `sheets` feature is on;
/// else none.
#[linkme::distributed_slice]
pub(crate) static BATCH_HOOKS: [BatchHook];

/// Environment variable of the `cargo daggr run --sheet NAME` handshake (with [`RUN_ENV`]
/// and [`RUN_INPUTS_ENV`]): the run happens on the sheet `NAME` of the pipeline (created
/// when absent) in the sheets database `DAGGR_SHEETS_URL` names (else `.daggr/sheets.db`),
/// so its inputs are stored there and the run is in the sheet's history, as a run from the
/// inspector. Sheets are the `sheets` feature's.
pub const RUN_SHEET_ENV: &str = "DAGGR_RUN_SHEET";

/// Sheet code a higher layer contributes: runs the pipeline on the named sheet with the
/// given inputs (their names), decoded on `checked`, a fresh workspace of the pipeline;
/// the answer and the exit status.
pub(crate) type SheetRunHook = fn(
    pipeline: &Pipeline,
    sheet: &str,
    checked: &Pipeline,
    given: &Map<String, Json>,
) -> (CallAnswer, i32);

/// The sheet code linked into this program: the sheets', when the `sheets` feature is on;
/// else none.
#[linkme::distributed_slice]
pub(crate) static SHEET_RUN_HOOKS: [SheetRunHook];

/// Environment variable of the serve handshake (`cargo daggr serve`, a deployed Space): the
/// address to serve the pipeline on, `HOST:PORT` (`127.0.0.1:7860`, `0.0.0.0:7860`). When
/// it is set, [`Graph::build`](crate::Graph::build) serves the pipeline it built until the
/// process is stopped (Ctrl-C, SIGTERM) and then exits, instead of returning it. The port
/// is the inspector's: the next free one when it is taken (the address served is printed).
pub const SERVE_ENV: &str = "DAGGR_SERVE";
/// Environment variable of the serve handshake: the access token, required when
/// [`SERVE_ENV`] is not a loopback address (clients send it as an `X-Daggr-Token` header
/// or a `?token=` query parameter).
pub const SERVE_TOKEN_ENV: &str = "DAGGR_SERVE_TOKEN";
/// Environment variable of the serve handshake: `1` (or `true`, `yes`, `on`) serves the
/// workflow API alone (`POST /api/call`, `GET /api/openapi.json`, the blob routes),
/// without the inspector's page and sheet routes.
pub const SERVE_API_ONLY_ENV: &str = "DAGGR_SERVE_API_ONLY";

/// What the serve handshake asks for.
#[cfg_attr(not(feature = "inspector"), allow(dead_code))]
pub(crate) struct ServeRequest {
    /// Where to listen.
    pub(crate) addr: std::net::SocketAddr,
    /// The token clients must send (always set for a non-loopback address).
    pub(crate) token: Option<String>,
    /// Serve the workflow API without the inspector.
    pub(crate) api_only: bool,
}

/// Serving code a higher layer contributes: serves the pipeline as asked until the process
/// is told to stop.
pub(crate) type ServeHook = fn(&Pipeline, &ServeRequest) -> Result<(), crate::Error>;

/// The serving code linked into this program: the inspector's, when the `inspector` feature
/// is on; else none.
#[linkme::distributed_slice]
pub(crate) static SERVE_HOOKS: [ServeHook];

/// Whether an environment variable's value means "on": `1`, `true`, `yes` or `on`, in any
/// case, spaces around ignored (as `huggingface_hub` reads its switches).
pub(crate) fn is_truthy(value: &str) -> bool {
    ["1", "true", "yes", "on"]
        .iter()
        .any(|t| value.trim().eq_ignore_ascii_case(t))
}

/// Reads the serve handshake's variables: `None` when [`SERVE_ENV`] is unset, an error
/// saying which variable is wrong.
fn serve_request(var: impl Fn(&str) -> Option<String>) -> Option<Result<ServeRequest, String>> {
    let addr = var(SERVE_ENV)?;
    let addr = addr.trim();
    let parsed = match addr.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => addr.parse::<std::net::SocketAddr>(),
    };
    let Ok(addr) = parsed else {
        return Some(Err(format!(
            "{SERVE_ENV}=`{addr}` is not an address: write it as HOST:PORT (127.0.0.1:7860, 0.0.0.0:7860)"
        )));
    };
    let token = var(SERVE_TOKEN_ENV)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if token.is_none() && !addr.ip().is_loopback() {
        return Some(Err(format!(
            "serving on {addr}, which is not a loopback address, needs an access token: set {SERVE_TOKEN_ENV}"
        )));
    }
    let api_only = var(SERVE_API_ONLY_ENV).is_some_and(|v| is_truthy(&v));
    Some(Ok(ServeRequest {
        addr,
        token,
        api_only,
    }))
}

/// One of a pipeline's inputs: an input node.
pub(crate) struct CallInput {
    /// Its name (the input node's).
    pub(crate) name: String,
    /// The input node's own input port, which holds its value.
    pub(crate) port: String,
    /// Its type.
    pub(crate) ty: PortType,
    /// Its node.
    pub(crate) node: usize,
}

/// One of a pipeline's outputs.
pub(crate) struct CallOutput {
    /// Where it is read and under which name.
    pub(crate) at: NamedOutput,
    /// Its type (for the workflow API's schemas).
    #[cfg_attr(not(feature = "inspector"), allow(dead_code))]
    pub(crate) ty: PortType,
}

/// What a call answers.
#[derive(Debug, Default, Serialize)]
pub(crate) struct CallAnswer {
    /// The pipeline's name.
    pub(crate) pipeline: String,
    /// The outputs that were computed, by name.
    pub(crate) outputs: Map<String, Json>,
    /// The outputs that could not be computed.
    pub(crate) missing_outputs: Vec<String>,
    /// The nodes that ran.
    pub(crate) computed: Vec<String>,
    /// The nodes served from the cache.
    pub(crate) cached: Vec<String>,
    /// The nodes that failed, with their error chains.
    pub(crate) failed: Vec<FailedNode>,
    /// How long the run took.
    pub(crate) elapsed_ms: f64,
    /// Why the call did not run (bad inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Results the run computed but could not save (a full disk, an unreachable database),
    /// with why: the outputs are right, but a later run will not find them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) unsaved: Vec<FailedNode>,
    /// The sheet the run is recorded in, when it ran on one (`cargo daggr run --sheet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sheet: Option<SheetUsed>,
}

/// The sheet a run was recorded in.
#[derive(Debug, Serialize)]
pub(crate) struct SheetUsed {
    /// Its name.
    pub(crate) name: String,
    /// Whether this run created it.
    pub(crate) created: bool,
    /// Where the sheets are kept (a path or a URL without its password).
    pub(crate) location: String,
}

/// A node that failed, and why.
#[derive(Debug, Serialize)]
pub(crate) struct FailedNode {
    /// The node.
    pub(crate) node: String,
    /// Its error with the cause chain.
    pub(crate) error: String,
}

impl Pipeline {
    /// The pipeline's inputs (its input nodes), in declaration order.
    pub(crate) fn call_inputs(&self) -> Vec<CallInput> {
        self.nodes()
            .enumerate()
            .filter(|(_, n)| n.spec().kind == INPUT_KIND)
            .map(|(node, n)| {
                let spec = n.spec();
                CallInput {
                    name: spec.name.clone(),
                    port: spec.inputs[0].name.clone(),
                    ty: spec.outputs[0].ty,
                    node,
                }
            })
            .collect()
    }

    /// The pipeline's outputs: the named ones, or else every output port no node reads.
    pub(crate) fn call_outputs(&self) -> Vec<CallOutput> {
        let specs: Vec<_> = self.nodes().map(|n| n.spec()).collect();
        let named = self.named_outputs();
        if !named.is_empty() {
            return named
                .iter()
                .map(|at| CallOutput {
                    ty: specs[at.node].outputs[at.port].ty,
                    at: at.clone(),
                })
                .collect();
        }
        let read: HashSet<(usize, usize)> = self
            .0
            .bindings
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .filter_map(|b| match b {
                Binding::Port { node, port } => Some((*node, *port)),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for (node, spec) in specs.iter().enumerate() {
            if spec.kind == INPUT_KIND {
                continue;
            }
            for (port, p) in spec.outputs.iter().enumerate() {
                if read.contains(&(node, port)) {
                    continue;
                }
                let name = if spec.outputs.len() == 1 {
                    spec.name.clone()
                } else {
                    format!("{}.{}", spec.name, p.name)
                };
                out.push(CallOutput {
                    at: NamedOutput { name, node, port },
                    ty: p.ty,
                });
            }
        }
        out
    }

    /// Sets the inputs `given` (name → JSON value) on this workspace. An unknown name or a
    /// value of the wrong type is an error naming the input (and, for a name, the closest
    /// one and the list).
    pub(crate) fn set_call_inputs(&self, given: &Map<String, Json>) -> Result<(), String> {
        let inputs = self.call_inputs();
        for (name, value) in given {
            let Some(input) = inputs.iter().find(|i| &i.name == name) else {
                let known: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                let hint = daggr_codegen::suggest(name, known.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown input `{name}`{hint} (the inputs: {})",
                    known.join(", ")
                ));
            };
            let wrong = |e: String| {
                format!(
                    "input `{name}` takes a `{}`: {e}",
                    daggr_codegen::ir::short_type_name(input.ty.name())
                )
            };
            let encoded = serde_json::to_vec(value).map_err(|e| wrong(e.to_string()))?;
            let decoded = input
                .ty
                .decode_outside_from_disk(&encoded, self.cache().dir())
                .map_err(|e| wrong(e.to_string()))?;
            self.set_constant_value(input.node, &input.port, decoded)
                .map_err(|e| wrong(e.to_string()))?;
        }
        Ok(())
    }

    /// Runs every node and answers the outputs (a batch's item).
    #[cfg(feature = "sheets")]
    pub(crate) async fn call(&self) -> Result<CallAnswer, crate::Error> {
        let started = Instant::now();
        let report = self.run(Scope::All).await?;
        let mut answer = self.answer(&report)?;
        answer.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(answer)
    }

    /// The answer of a finished run of every node (`report`) on this workspace.
    pub(crate) fn answer(&self, report: &RunReport) -> Result<CallAnswer, crate::Error> {
        let mut answer = CallAnswer {
            pipeline: self.name().to_string(),
            ..CallAnswer::default()
        };
        for out in self.call_outputs() {
            let value = self.result(out.at.node)?.and_then(|r| {
                serde_json::from_slice::<Json>(r.outputs[out.at.port].encoded()).ok()
            });
            match value {
                Some(v) => {
                    answer.outputs.insert(out.at.name, v);
                }
                None => answer.missing_outputs.push(out.at.name),
            }
        }
        for unsaved in report.unsaved() {
            answer.unsaved.push(FailedNode {
                node: unsaved.node.clone(),
                error: format!("not saved to the {}: {}", unsaved.target, unsaved.error),
            });
        }
        let inputs: HashSet<String> = self.call_inputs().into_iter().map(|i| i.name).collect();
        for (node, outcome) in report.outcomes() {
            if inputs.contains(node) {
                continue; // not work
            }
            match outcome {
                Outcome::Computed { .. } => answer.computed.push(node.to_string()),
                Outcome::Cached(_) => answer.cached.push(node.to_string()),
                Outcome::Failed(e) => answer.failed.push(FailedNode {
                    node: node.to_string(),
                    error: crate::node::event::error_chain(e),
                }),
                _ => {}
            }
        }
        Ok(answer)
    }
}

/// If the serve handshake asks for it ([`SERVE_ENV`] is set): serves `pipeline` through the
/// serving code linked in until the process is stopped, then exits (0 after a clean stop, 1
/// when serving failed, 2 for a wrong variable or a program without the `inspector`
/// feature). Serves on a thread of its own, as [`run_if_asked`] runs.
pub(crate) fn serve_if_asked(pipeline: &Pipeline) {
    let Some(request) = serve_request(|name| std::env::var(name).ok()) else {
        return;
    };
    let request = request.unwrap_or_else(|e| {
        eprintln!("daggr: {e}");
        std::process::exit(2);
    });
    let Some(serve) = SERVE_HOOKS.first().copied() else {
        eprintln!(
            "daggr: {SERVE_ENV} is set, but this program was built without daggr's `inspector` feature, which serves pipelines"
        );
        std::process::exit(2);
    };
    let name = pipeline.name().to_string();
    let pipeline = pipeline.clone();
    match std::thread::spawn(move || serve(&pipeline, &request)).join() {
        Ok(Ok(())) => std::process::exit(0),
        Ok(Err(e)) => {
            eprintln!(
                "daggr: serving `{name}` failed: {}",
                crate::node::event::error_chain(&e)
            );
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("daggr: serving `{name}` panicked");
            std::process::exit(1);
        }
    }
}

/// If `cargo daggr run` started this process ([`RUN_ENV`] is set): runs `pipeline` on the
/// inputs of [`RUN_INPUTS_ENV`], writes the answer and exits. Runs on a thread and runtime
/// of its own, so it works whether or not `Graph::build` was called inside a runtime.
pub(crate) fn run_if_asked(pipeline: &Pipeline) {
    let Some(target) = std::env::var_os(RUN_ENV) else {
        return;
    };
    if let Some(request) = std::env::var_os(RUN_BATCH_ENV) {
        let (answer, code) = run_batch_hook(pipeline, request);
        write_answer(&target, &answer, code);
    }
    let pipeline = pipeline.clone();
    let (answer, code) = std::thread::spawn(move || {
        let inputs = std::env::var(RUN_INPUTS_ENV).unwrap_or_else(|_| "{}".into());
        let fail = |error: String| {
            let answer = CallAnswer {
                pipeline: pipeline.name().to_string(),
                error: Some(error),
                ..CallAnswer::default()
            };
            (answer, 2)
        };
        let given: Map<String, Json> = match serde_json::from_str(&inputs) {
            Ok(given) => given,
            Err(e) => return fail(format!("{RUN_INPUTS_ENV} is not a JSON object: {e}")),
        };
        if let Some(sheet) = std::env::var_os(RUN_SHEET_ENV) {
            // Decoded on a fresh workspace first, so bad inputs touch no sheet.
            let checked = pipeline.new_workspace();
            if let Err(e) = checked.set_call_inputs(&given) {
                return fail(e);
            }
            let Some(hook) = SHEET_RUN_HOOKS.first().copied() else {
                return fail(format!(
                    "{RUN_SHEET_ENV} is set, but this program was built without daggr's `sheets` feature, which keeps sheets"
                ));
            };
            return hook(&pipeline, &sheet.to_string_lossy(), &checked, &given);
        }
        if let Err(e) = pipeline.set_call_inputs(&given) {
            return fail(e);
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return fail(format!("starting a runtime: {e}")),
        };
        let started = Instant::now();
        let answer = runtime.block_on(pipeline.run(Scope::All)).and_then(|mut report| {
            // What a later run reuses is on disk before the process exits, and what could
            // not be written is said.
            pipeline.cache().flush();
            pipeline.report_cache_failures(&mut report);
            pipeline.answer(&report)
        });
        match answer {
            Ok(mut answer) => {
                answer.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                let code = if answer.failed.is_empty() && answer.unsaved.is_empty() {
                    0
                } else {
                    1
                };
                (answer, code)
            }
            Err(e) => fail(crate::node::event::error_chain(&e)),
        }
    })
    .join()
    .unwrap_or_else(|_| {
        (
            CallAnswer {
                error: Some("the run panicked".into()),
                ..CallAnswer::default()
            },
            1,
        )
    });
    write_answer(&target, &answer, code);
}

/// Runs the batch a [`RUN_BATCH_ENV`] request describes through the batch code linked in,
/// on a thread of its own (as [`run_if_asked`] runs); an error answer (2) when there is
/// none.
fn run_batch_hook(pipeline: &Pipeline, request: std::ffi::OsString) -> (Json, i32) {
    let fail = |error: String| {
        (
            serde_json::json!({ "pipeline": pipeline.name(), "error": error }),
            2,
        )
    };
    let Some(hook) = BATCH_HOOKS.first().copied() else {
        return fail(format!(
            "{RUN_BATCH_ENV} is set, but this program was built without daggr's `sheets` feature, which keeps batches"
        ));
    };
    let Ok(request) = request.into_string() else {
        return fail(format!("{RUN_BATCH_ENV} is not UTF-8"));
    };
    let pipeline = pipeline.clone();
    std::thread::spawn(move || hook(&pipeline, &request))
        .join()
        .unwrap_or_else(|_| (serde_json::json!({ "error": "the batch panicked" }), 1))
}

/// Writes a handshake's answer (as a line of JSON) where [`RUN_ENV`] says (`-`: stdout) and
/// exits with `code` (3 when the answer could not be written).
fn write_answer(target: &std::ffi::OsStr, answer: &impl Serialize, code: i32) -> ! {
    let text = serde_json::to_string(answer).unwrap_or_default() + "\n";
    let written = if target == "-" {
        use std::io::Write;
        std::io::stdout().write_all(text.as_bytes())
    } else {
        std::fs::write(target, text)
    };
    if let Err(e) = written {
        eprintln!("daggr: could not write the run's answer: {e}");
        std::process::exit(3);
    }
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(vars: &[(&str, &str)]) -> Option<Result<ServeRequest, String>> {
        serve_request(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_serve_handshake_reads_its_variables() {
        assert!(
            request(&[]).is_none(),
            "not asked: the pipeline is returned"
        );
        let r = request(&[(SERVE_ENV, " 127.0.0.1:7860 ")])
            .unwrap()
            .unwrap();
        assert_eq!(r.addr.to_string(), "127.0.0.1:7860");
        assert_eq!((r.token, r.api_only), (None, false));
        let r = request(&[(SERVE_ENV, "localhost:0"), (SERVE_API_ONLY_ENV, "True")])
            .unwrap()
            .unwrap();
        assert_eq!(r.addr.to_string(), "127.0.0.1:0");
        assert!(r.api_only);
        let r = request(&[(SERVE_ENV, "0.0.0.0:7860"), (SERVE_TOKEN_ENV, "s3cret\n")])
            .unwrap()
            .unwrap();
        assert_eq!(r.token.as_deref(), Some("s3cret"));
        assert_eq!(
            request(&[(SERVE_ENV, "0.0.0.0:7860"), (SERVE_TOKEN_ENV, " ")])
                .unwrap()
                .err()
                .unwrap(),
            "serving on 0.0.0.0:7860, which is not a loopback address, needs an access token: set DAGGR_SERVE_TOKEN"
        );
        assert_eq!(
            request(&[(SERVE_ENV, "7860")]).unwrap().err().unwrap(),
            "DAGGR_SERVE=`7860` is not an address: write it as HOST:PORT (127.0.0.1:7860, 0.0.0.0:7860)"
        );
    }
}
