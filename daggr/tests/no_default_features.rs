//! What a user of Rust function nodes alone gets with `default-features = false` (no HTTP
//! client, HTTP server or SQLite): `#[fn_node]`, `pipeline!`, the builder API and the disk
//! cache. Compiled in every build, so CI's `--no-default-features` run covers it; nothing
//! here names a feature-gated item.

use daggr::{fn_node, pipeline, Cache, FnNode, Graph, Scope};

#[fn_node]
fn words(text: String) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

#[fn_node(outputs(count, longest))]
fn stats(words: Vec<String>) -> (usize, String) {
    let longest = words.iter().max_by_key(|w| w.len()).cloned();
    (words.len(), longest.unwrap_or_default())
}

pipeline! {
    /// Counts words and finds the longest.
    pub struct WordStats {
        inputs {
            text: String = "rust functions only".to_string(),
        }
        nodes {
            split = words(text: text);
            summary = stats(words: split);
        }
        outputs {
            count: usize = summary.count,
            longest: String = summary.longest,
        }
    }
}

#[tokio::test]
async fn a_pipeline_of_fn_nodes_runs_and_caches_on_disk() -> Result<(), daggr::Error> {
    let dir = tempfile::tempdir().unwrap();

    let flow = WordStats::build(Cache::open(dir.path())?)?;
    let report = flow.run().await?;
    assert_eq!(*report.value(&flow.outputs.count)?, 3);
    assert_eq!(*report.value(&flow.outputs.longest)?, "functions");
    for node in ["split", "summary"] {
        assert!(report.computed().contains(&node), "{:?}", report.computed());
    }

    // A new pipeline over the same directory (dropping the first writes its queued
    // results): everything comes from the disk cache.
    drop(flow);
    let again = WordStats::build(Cache::open(dir.path())?)?;
    let report = again.run().await?;
    assert_eq!(*report.value(&again.outputs.longest)?, "functions");
    for node in ["split", "summary"] {
        assert!(
            report.cached().contains(&node),
            "{:?}",
            report.outcomes().collect::<Vec<_>>()
        );
    }

    again.set_text("a considerably longer sentence".to_string())?;
    let report = again.run().await?;
    assert_eq!(*report.value(&again.outputs.count)?, 4);
    assert_eq!(*report.value(&again.outputs.longest)?, "considerably");
    Ok(())
}

#[tokio::test]
async fn the_builder_api_runs_closures() -> Result<(), daggr::Error> {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("builder");
    let text = g.input("text", "one two three".to_string());
    let count = g.add(
        FnNode::sync("count", |t: String| t.split_whitespace().count()),
        (text,),
    );
    let doubled = g.add(
        FnNode::from_async("double", |n: usize| async move { n * 2 }),
        (count,),
    );
    let pipeline = g.cache(Cache::open(dir.path())?).build()?;
    let report = pipeline.run(Scope::All).await?;
    assert_eq!(*report.value(&doubled)?, 6);
    Ok(())
}

/// `launch()` exists on every `pipeline!` type; without the inspector it says which
/// feature is missing instead of serving.
#[cfg(not(feature = "inspector"))]
#[tokio::test]
async fn launch_without_the_inspector_names_the_feature() {
    let flow = WordStats::build(Cache::temporary().unwrap()).unwrap();
    let error = flow.launch().await.unwrap_err();
    assert!(
        matches!(
            error,
            daggr::Error::FeatureDisabled {
                feature: "inspector",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("`inspector` feature"), "{message}");
    assert!(message.contains("Cargo.toml"), "{message}");
}
