//! `launch()` in a real child process: it prints its URL, takes the next free port when
//! its port is taken, honours DAGGR_PORT, serves, and stops cleanly on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use daggr::inspector::LaunchOptions;
use daggr::{Cache, FnNode, Graph};

const CHILD_ENV: &str = "DAGGR_LAUNCH_CHILD";

/// Entry point of the child process (ignored unless run by the test below).
#[test]
#[ignore]
fn launch_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut g = Graph::new("launched").cache(Cache::open(dir.join("cache")).unwrap());
        let x = g.input("x", 2u64);
        g.add(FnNode::sync("double", |x: u64| x * 2), (x,));
        let pipeline = g.build().unwrap();
        pipeline
            .launch_with(LaunchOptions {
                open_browser: false,
                sheets_db: Some(dir.join("sheets.db")),
                ..LaunchOptions::default()
            })
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_takes_the_next_free_port_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // Occupy a port, then ask the child for that port: it must take the next free one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "launch_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .env("DAGGR_PORT", port.to_string())
        .env("CI", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the child printed its URL").unwrap();
        // libtest may print "test … ... " on the same line first.
        if let Some(at) = line.find("daggr inspector: ") {
            let rest = &line[at + "daggr inspector: ".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let served: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert!(
        served > port && served <= port + 100,
        "took {served} after {port}"
    );
    let graph: serde_json::Value = reqwest::get(format!("{url}api/graph"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(graph["name"], "launched");
    drop(taken);

    // Ctrl-C: a clean exit, with the goodbye line.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    for line in lines.by_ref() {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}, output {rest}");
    assert!(rest.contains("daggr inspector stopped"), "{rest}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        reqwest::get(format!("{url}api/graph")).await.is_err(),
        "the port is closed"
    );
}
