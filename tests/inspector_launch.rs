//! `launch()` in a real child process: it prints its URL, takes the next free port when
//! its port is taken, honours DAGGR_PORT, serves, and stops cleanly on Ctrl-C (SIGINT); off
//! loopback (`DAGGR_HOST=0.0.0.0`) the token guards it and any `Host` is served, or only
//! those in `DAGGR_ALLOWED_HOSTS`.

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

/// Starts the child with `env`, returns it, its URL and the rest of its output.
fn spawn_child(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "launch_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("CI", "1")
        .env_remove("DAGGR_HOST")
        .env_remove("DAGGR_ALLOWED_HOSTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the child printed its URL").unwrap();
        if let Some(at) = line.find("daggr inspector: ") {
            let rest = &line[at + "daggr inspector: ".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    (child, url, lines)
}

/// `GET /api/graph` on `port` with this `Host` (and token header, if any): the status.
async fn graph_status(port: u16, host: &str, token: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let token = token.map_or(String::new(), |t| format!("x-daggr-token: {t}\r\n"));
    let request =
        format!("GET /api/graph HTTP/1.1\r\nHost: {host}\r\n{token}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `DAGGR_HOST=0.0.0.0`: a token is printed, and with it a request addressed to the
/// machine's LAN address (any `Host`) is served, without it refused; `DAGGR_ALLOWED_HOSTS`
/// narrows the hosts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_token_protects_and_any_host_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url, _lines) = spawn_child(
        dir.path(),
        &[("DAGGR_HOST", "0.0.0.0"), ("DAGGR_PORT", "0")],
    );
    let token = url
        .split("?token=")
        .nth(1)
        .expect("a token in the URL")
        .to_string();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let lan = format!("192.168.1.23:{port}");
    let lan_status = graph_status(port, &lan, Some(&token)).await;
    let without = graph_status(port, &lan, None).await;
    let by_name = graph_status(port, "workstation.lan", Some(&token)).await;
    stop(child);
    assert_eq!(lan_status, 200, "the LAN address with the token");
    assert_eq!(without, 401, "the LAN address without the token");
    assert_eq!(by_name, 200, "a host name with the token");

    let dir = tempfile::tempdir().unwrap();
    let (child, url, _lines) = spawn_child(
        dir.path(),
        &[
            ("DAGGR_HOST", "0.0.0.0"),
            ("DAGGR_PORT", "0"),
            ("DAGGR_ALLOWED_HOSTS", "workstation.lan, 10.0.0.5"),
        ],
    );
    let token = url.split("?token=").nth(1).unwrap().to_string();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let listed = graph_status(port, &format!("workstation.lan:{port}"), Some(&token)).await;
    let listed_ip = graph_status(port, &format!("10.0.0.5:{port}"), Some(&token)).await;
    let unlisted = graph_status(port, &format!("192.168.1.23:{port}"), Some(&token)).await;
    let served = graph_status(port, &format!("127.0.0.1:{port}"), Some(&token)).await;
    stop(child);
    assert_eq!((listed, listed_ip, served), (200, 200, 200));
    assert_eq!(unlisted, 403, "not in DAGGR_ALLOWED_HOSTS");
}
