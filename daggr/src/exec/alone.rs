//! Running one node on its own, with given inputs: how a node is tested without the
//! pipeline it will live in.

use crate::exec::{RunReport, Scope};
use crate::graph::{Graph, IntoSources, TypedNode};
use crate::{Cache, Error};

/// Runs `node` once, alone, with `inputs` (one source per input port, usually
/// [`crate::constant`]s), on a [`Cache::temporary`] so that nothing is reused from or left
/// in any other cache. Returns the node's output handles and the run's report: read the
/// outputs with [`RunReport::value`], which gives the node's error if it failed.
///
/// ```
/// use daggr::{constant, run_alone, FnNode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), daggr::Error> {
/// let scale = FnNode::sync("scale", |x: f64, factor: f64| x * factor);
/// let (out, report) = run_alone(scale, (constant(2.0), constant(21.0))).await?;
/// assert_eq!(*report.value(&out)?, 42.0);
/// # Ok(()) }
/// ```
///
/// An `Err` means the node could not be run at all (an input that does not encode, a
/// temporary directory that cannot be made); a node that runs and fails is reported in
/// the [`RunReport`], named like in any pipeline.
pub async fn run_alone<N: TypedNode>(
    node: N,
    inputs: impl IntoSources<N::Args>,
) -> Result<(N::Handles, RunReport), Error> {
    let name = node.spec().name.clone();
    let mut graph = Graph::new(&name).cache(Cache::temporary()?);
    let outputs = graph.add(node, inputs);
    let pipeline = graph.build()?;
    let report = pipeline.run(Scope::All).await?;
    Ok((outputs, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{constant, FnNode, Outcome};

    #[tokio::test]
    async fn a_node_runs_alone_with_constants_and_reports_its_error() {
        let (out, report) = run_alone(
            FnNode::sync("concat", |a: String, b: String| format!("{a}{b}")),
            (constant("dag".to_string()), constant("gr".to_string())),
        )
        .await
        .unwrap();
        assert_eq!(*report.value(&out).unwrap(), "daggr");
        assert!(matches!(
            report.outcome("concat"),
            Some(Outcome::Computed { .. })
        ));

        let failing = FnNode::try_sync("parse", |s: String| s.parse::<u32>());
        let (out, report) = run_alone(failing, (constant("x".to_string()),))
            .await
            .unwrap();
        let err = report.value(&out).unwrap_err().to_string();
        assert!(
            err.contains("parse") && err.contains("invalid digit"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn each_run_alone_computes_afresh() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..2 {
            let c = calls.clone();
            let node = FnNode::sync("count", move |x: u32| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                x + 1
            });
            let (out, report) = run_alone(node, (constant(1u32),)).await.unwrap();
            assert_eq!(*report.value(&out).unwrap(), 2);
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
