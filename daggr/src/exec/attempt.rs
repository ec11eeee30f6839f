//! One attempt-by-attempt evaluation of a node, shared by the executor (whole nodes) and
//! the composite nodes' parts (a map's items, a choice's variants): the key a node has for
//! its inputs, its attempts with timeout and retries, and the check of what it returned.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::Outcome;
use crate::cache::{KeyPreimage, KEY_SCHEMA_VERSION};
use crate::error::Error;
use crate::node::event::{error_chain, Event};
use crate::node::{Inputs, Node, NodeContext};
use crate::value::{ContentHash, Value};

/// A running node's attempts, counted by its task and read by the executor when the node
/// fails, or when a cancelled run drops the task.
#[derive(Default)]
pub(super) struct Attempts {
    started: AtomicU32,
    first_started_at: OnceLock<Instant>,
}

impl Attempts {
    /// An attempt starts: its number, 1 for the first.
    fn start(&self) -> u32 {
        self.first_started_at.get_or_init(Instant::now);
        self.started.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }

    /// Time since the first attempt started (zero before it).
    pub(super) fn elapsed(&self) -> Duration {
        self.first_started_at
            .get()
            .map_or(Duration::ZERO, Instant::elapsed)
    }
}

/// Runs a node with its timeout and retry policy, and checks what it returned.
pub(super) async fn execute(
    node: Arc<dyn Node>,
    ctx: NodeContext,
    inputs: Inputs,
    tries: Arc<Attempts>,
    span: tracing::Span,
    part: bool,
) -> Result<(Arc<[Value]>, Outcome), Error> {
    let spec = node.spec();
    let name = spec.name.clone();
    let retry = &spec.config.retry;
    let attempts = retry.retries.saturating_add(1);
    loop {
        let attempt = tries.start();
        span.record("attempt", attempt);
        // A part (a map's item, a choice's variant) is not the node starting again: the
        // composite node announced itself once.
        if !part {
            ctx.events.send(Event::NodeStarted {
                run: ctx.run,
                node: ctx.index,
                name: ctx.node.clone(),
                attempt,
            });
        }
        let started = Instant::now();
        let call = node.run(
            ctx.clone(),
            Inputs {
                node: inputs.node.clone(),
                values: inputs.values.clone(),
                names: inputs.names.clone(),
            },
        );
        let result = match spec.config.timeout {
            Some(after) => match tokio::time::timeout(after, call).await {
                Ok(r) => r.map_err(|source| node_error(&name, source)),
                Err(_) => {
                    ctx.log.write(format!(
                        "attempt {attempt} of {attempts} timed out after {after:?}"
                    ));
                    Err(Error::Timeout {
                        node: name.clone(),
                        after,
                    })
                }
            },
            None => call.await.map_err(|source| node_error(&name, source)),
        };
        let error = match result {
            Ok(values) => {
                check_outputs(spec, &values)?;
                return Ok((
                    values.into(),
                    Outcome::Computed {
                        elapsed: started.elapsed(),
                        attempts: attempt,
                    },
                ));
            }
            Err(e) => e,
        };
        if attempt > retry.retries {
            return Err(error);
        }
        let delay = retry.delay(attempt);
        let error = error_chain(&error);
        ctx.log.write(format!(
            "attempt {attempt} of {attempts} failed, retrying in {delay:?}: {error}"
        ));
        if !part {
            ctx.events.send(Event::NodeRetrying {
                run: ctx.run,
                node: ctx.index,
                name: ctx.node.clone(),
                attempt,
                error,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: name }),
        }
    }
}

/// What node `spec` is keyed by when it runs on `inputs` with code fingerprint `code`.
pub(super) fn preimage_of(
    spec: &crate::node::NodeSpec,
    code: String,
    inputs: &[Value],
) -> KeyPreimage {
    let hashes: Vec<ContentHash> = inputs.iter().map(Value::hash).collect();
    preimage_of_hashes(spec, code, &hashes)
}

/// [`preimage_of`] from the inputs' content hashes (all a kept result has of them).
pub(super) fn preimage_of_hashes(
    spec: &crate::node::NodeSpec,
    code: String,
    inputs: &[ContentHash],
) -> KeyPreimage {
    KeyPreimage {
        schema: KEY_SCHEMA_VERSION,
        identity: format!("{}:{}", spec.kind, spec.identity),
        code,
        version: spec.config.version.clone(),
        params: spec.params.clone(),
        inputs: spec
            .inputs
            .iter()
            .zip(inputs)
            .map(|(p, h)| (p.name.clone(), *h))
            .collect(),
        outputs: spec
            .outputs
            .iter()
            .map(|p| p.ty.name().to_string())
            .collect(),
    }
}

/// A node's error: as it is when it is already a daggr error naming the node (a remote
/// failure, say), else wrapped with the node's name.
fn node_error(name: &str, source: crate::error::BoxError) -> Error {
    match source.downcast::<Error>() {
        Ok(e) if e.node() == Some(name) => *e,
        Ok(e) => Error::NodeFailed {
            node: name.to_string(),
            source: e,
        },
        Err(source) => Error::NodeFailed {
            node: name.to_string(),
            source,
        },
    }
}

fn check_outputs(spec: &crate::node::NodeSpec, values: &[Value]) -> Result<(), Error> {
    if values.len() != spec.outputs.len() {
        return Err(Error::NodeFailed {
            node: spec.name.clone(),
            source: format!(
                "returned {} outputs, but declares {}",
                values.len(),
                spec.outputs.len()
            )
            .into(),
        });
    }
    for (port, value) in spec.outputs.iter().zip(values) {
        if !port.ty.same_as(&value.port_type()) {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: port.name.clone(),
                expected: port.ty.name(),
                found: value.port_type().name(),
            });
        }
    }
    Ok(())
}
