//! The worker of `tests/batches.rs`: a program with one small pipeline, run by
//! `cargo daggr run --batch` (the batch handshake takes over in `Graph::build`). Its node
//! squares `n` after sleeping `sleep_ms` (standing for a remote call), and fails for 13.
//! Each call of the node is appended to the file `$BATCH_CALLS_LOG` names, when set, so
//! the tests can count node calls across worker processes. The cache is the default one:
//! `$DAGGR_CACHE_DIR` in front of `$DAGGR_CACHE_URL`'s bucket.

use std::io::Write;
use std::time::Duration;

use daggr::{FnNode, Graph};

/// Appends `n` to the calls log, if there is one.
fn log_call(n: u64) {
    let Some(path) = std::env::var_os("BATCH_CALLS_LOG") else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(format!("{n}\n").as_bytes());
    }
}

fn main() -> Result<(), daggr::Error> {
    let mut g = Graph::new("batch_worker");
    let n = g.input("n", 0u64);
    let sleep_ms = g.input("sleep_ms", 0u64);
    let square = g.add(
        FnNode::try_sync("square", |n: u64, sleep_ms: u64| {
            log_call(n);
            std::thread::sleep(Duration::from_millis(sleep_ms));
            if n == 13 {
                return Err("13 is unlucky");
            }
            Ok(n * n)
        }),
        (n, sleep_ms),
    );
    g.name_output("square", &square);
    let _pipeline = g.build()?;
    eprintln!("batch_worker: run it with `cargo daggr run --batch INPUTS.jsonl`");
    Ok(())
}
