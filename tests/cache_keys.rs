//! Cache keys do not drift between processes: a `HashMap` port value iterates in another
//! order in every process (each one seeds its `RandomState` anew), and its key must not
//! follow. The test re-runs its own binary as child processes that share one cache
//! directory: each prints the key it computed, and the second finds the first one's result
//! on disk.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use daggr::{Cache, CacheSource, FnNode, Graph, Outcome, Scope};

/// Set in a child process: the cache directory it runs against.
const CHILD_ENV: &str = "DAGGR_CACHE_KEYS_CHILD";
/// The child's report line: `<prefix><key hex> <outcome> <iteration order>`.
const REPORT: &str = "daggr-cache-keys-report: ";
const TEST_NAME: &str = "a_hash_map_input_keys_the_same_in_every_process";

/// Many members, so two processes iterating them in one order is out of the question.
fn counts() -> HashMap<String, u32> {
    (0..300).map(|i| (format!("word{i:03}"), i)).collect()
}

struct Run {
    key: String,
    outcome: String,
    /// The first keys of the input, as this process's `HashMap` iterates them.
    order: String,
}

/// Runs the pipeline against the cache at `dir`, in this process.
async fn run_here(dir: &Path) -> Run {
    let cache = Cache::open(dir).unwrap();
    let mut g = Graph::new("cache-keys").cache(cache.clone());
    let input = counts();
    let order = input.keys().take(8).cloned().collect::<Vec<_>>().join(",");
    let counts = g.input("counts", input);
    let total = g.add(
        FnNode::sync("total", |c: HashMap<String, u32>| {
            c.values().map(|v| u64::from(*v)).sum::<u64>()
        }),
        (counts,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&total).unwrap(), (0..300u64).sum::<u64>());
    let outcome = match report.outcome("total").unwrap() {
        Outcome::Computed { .. } => "computed".to_string(),
        Outcome::Cached(CacheSource::Disk) => "disk".to_string(),
        other => format!("{other:?}").replace(' ', "_"),
    };
    let key = pipeline.result("total").unwrap().unwrap().key.to_hex();
    drop(pipeline);
    // The next process must find the result on disk.
    cache.flush();
    Run {
        key,
        outcome,
        order,
    }
}

/// Runs this test alone in a new process of this binary, against the cache at `dir`.
fn run_child(dir: &Path) -> Run {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        // libtest prints `test <name> ... ` before the test's own output, on the same line.
        .find_map(|l| l.split_once(REPORT).map(|(_, report)| report))
        .unwrap_or_else(|| panic!("no report from the child:\n{stdout}"));
    let mut parts = line.split(' ');
    let (Some(key), Some(outcome), Some(order)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("a malformed report: {line}");
    };
    Run {
        key: key.into(),
        outcome: outcome.into(),
        order: order.into(),
    }
}

#[tokio::test]
async fn a_hash_map_input_keys_the_same_in_every_process() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let run = run_here(Path::new(&dir)).await;
        println!("{REPORT}{} {} {}", run.key, run.outcome, run.order);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = run_child(dir.path());
    let second = run_child(dir.path());
    // The parent's own key, against a cache of its own (so it computes rather than reads).
    let parent_dir = tempfile::tempdir().unwrap();
    let parent = run_here(parent_dir.path()).await;

    assert_eq!(first.outcome, "computed");
    assert_eq!(
        second.outcome, "disk",
        "the second process found the first one's result on disk"
    );
    assert_eq!(parent.outcome, "computed");
    assert_eq!(first.key, second.key);
    assert_eq!(first.key, parent.key);
    // The three processes did iterate the map in different orders: what was shown above
    // is that the key does not follow them.
    let orders = [&first.order, &second.order, &parent.order];
    assert!(
        orders[0] != orders[1] || orders[1] != orders[2],
        "three processes iterated 300 keys in one order: {orders:?}"
    );
}
