//! `cargo daggr deploy` end to end, offline: the Space's scaffold for a project outside
//! this workspace, checked file by file; the command its Dockerfile runs, run as is on
//! this machine (the built binary with the Dockerfile's variables and the Space secret),
//! answering the API; and the upload against a stand-in of the Hub's API (a small HTTP
//! server on 127.0.0.1 that records what it receives), including where the token went.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;

use cargo_daggr_bin::{test_target_dir, workspace};

/// Variables that must not reach the commands from the test's environment.
const CLEARED: [&str; 8] = [
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "DAGGR_SERVE",
    "DAGGR_SERVE_TOKEN",
    "DAGGR_SERVE_API_ONLY",
    "DAGGR_CACHE_DIR",
    "DAGGR_SHEETS_URL",
];

const HELLO: &str = r#"//! A pipeline to deploy.
use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(text: String, times: u32) -> String {
    vec![text.to_uppercase(); times as usize].join(" ")
}

pipeline! {
    pub struct Hello {
        inputs {
            text: String = "hello".to_string(),
            times: u32 = 2,
        }
        nodes {
            loud = shout(text: text, times: times);
        }
        outputs {
            loud: String = loud,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Hello::new()?;
    let report = flow.run().await?;
    println!("{}", report.value(&flow.outputs.loud)?);
    Ok(())
}
"#;

/// A project of its own (not a member of this workspace) with an example pipeline, a
/// `.gitignore`d directory, local daggr state and build output that must not be shipped.
fn project(dir: &Path) -> PathBuf {
    let root = dir.join("space-demo");
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let daggr = workspace().join("daggr");
    write(
        "Cargo.toml",
        &format!(
            "[package]\nname = \"space-demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\ndaggr = {{ path = {:?} }}\ntokio = {{ version = \"1.47\", features = [\"macros\", \"rt-multi-thread\"] }}\n\n\
             [workspace]\n",
            daggr.display().to_string()
        ),
    );
    // The workspace's lock file: the same versions, nothing to resolve anew.
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    write("src/lib.rs", "//! The demo's library.\n");
    write("examples/hello.rs", HELLO);
    write("README.md", "# The project's own README\n");
    write("notes/deploying.txt", "shipped with the project\n");
    write(".gitignore", "/secret-data/\n");
    write("secret-data/big.bin", "not for the Space\n");
    write(".daggr/cache/stale", "local state\n");
    write("target/debug/junk", "build output\n");
    root
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cargo daggr deploy --example hello` for `root`, writing to `dir`, with `envs`.
fn deploy(root: &Path, dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(cargo_daggr_bin::binary());
    command
        .args(["daggr", "deploy", "--example", "hello", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(test_target_dir())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .current_dir(root);
    for var in CLEARED {
        command.env_remove(var);
    }
    // No token file either: the token is only ever the one a test gives.
    let home = root.parent().unwrap().join("home");
    command
        .env("HF_HOME", &home)
        .env("HF_TOKEN_PATH", home.join("token"));
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Every file under `dir`, by path relative to it (with `/`).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                let name: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.insert(name.join("/"), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The last stage of a Dockerfile: its `ENV` variables and its `CMD`.
fn run_stage(dockerfile: &str) -> (Vec<(String, String)>, Vec<String>) {
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    let mut env = Vec::new();
    let mut cmd = Vec::new();
    for line in last.lines() {
        if let Some(vars) = line.strip_prefix("ENV ") {
            for pair in vars.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap();
                env.push((k.to_string(), v.to_string()));
            }
        } else if let Some(array) = line.strip_prefix("CMD ") {
            cmd = serde_json::from_str(array).unwrap();
        }
    }
    (env, cmd)
}

#[tokio::test]
async fn the_scaffold_is_complete_and_the_command_it_runs_answers_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let root = project(tmp.path());
    let space = tmp.path().join("space");
    let out = deploy(&root, &space, &["--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains(
            "cargo daggr: warning: `space-demo` depends on `daggr` by a path outside the project"
        ),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "cargo daggr: wrote the Space for `Hello` to {} (6 project files, a Dockerfile and README.md)",
            space.display()
        )),
        "{said}"
    );

    // File by file: the project as git sees it, then the Space's own two files.
    let written = files(&space);
    let names: Vec<&str> = written.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            ".gitignore",
            "Cargo.lock",
            "Cargo.toml",
            "Dockerfile",
            "README.md",
            "examples/hello.rs",
            "notes/deploying.txt",
            "src/lib.rs",
        ]
    );
    for name in names
        .iter()
        .filter(|n| !["Dockerfile", "README.md"].contains(n))
    {
        assert_eq!(
            written[*name],
            std::fs::read(root.join(name)).unwrap(),
            "{name} is the project's"
        );
    }

    let readme = text(&written["README.md"]);
    let front: Vec<&str> = readme.split("---\n").nth(1).unwrap().lines().collect();
    assert_eq!(
        front,
        [
            "title: hello",
            "emoji: 🧩",
            "colorFrom: indigo",
            "colorTo: gray",
            "sdk: docker",
            "app_port: 7860",
            "pinned: false",
        ]
    );
    assert!(readme.contains("\n# Hello\n"), "{readme}");
    assert!(
        readme.contains("- `text` (`String`)\n- `times` (`u32`)"),
        "{readme}"
    );
    assert!(readme.contains("- `loud` (`String`)"), "{readme}");
    assert!(
        readme.contains("https://OWNER-hello.hf.space/api/call"),
        "{readme}"
    );
    assert!(
        readme.contains("Space secret `DAGGR_SERVE_TOKEN`"),
        "{readme}"
    );

    let dockerfile = text(&written["Dockerfile"]);
    let lines: Vec<&str> = dockerfile.lines().collect();
    assert!(lines[0].starts_with(
        "# Written by `cargo daggr deploy`: builds the example `hello` of package `space-demo`"
    ));
    let from: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "two stages: {dockerfile}");
    assert!(
        from[0].starts_with("FROM rust:1.") && from[0].ends_with("-bookworm AS build"),
        "{}",
        from[0]
    );
    assert_eq!(*from[1], "FROM debian:bookworm-slim");
    assert!(lines.contains(&"COPY . ."));
    assert!(lines.contains(&"RUN cargo build --release --locked -p space-demo --example hello \\"));
    assert!(lines.contains(&" && cp /src/target/release/examples/hello /tmp/pipeline"));
    assert!(lines.contains(&"USER user"));
    assert!(lines.contains(&"COPY --from=build --chown=user /tmp/pipeline /home/user/app/hello"));
    assert!(lines.contains(&"EXPOSE 7860"));
    let (env, cmd) = run_stage(&dockerfile);
    assert_eq!(cmd, ["/home/user/app/hello"]);
    assert!(
        env.contains(&("DAGGR_SERVE".into(), "0.0.0.0:7860".into())),
        "{env:?}"
    );

    // The command the Dockerfile runs, as is: the binary built here, the stage's
    // variables, and the Space secret. Its working directory stands for WORKDIR.
    let exe = test_target_dir().join("debug/examples/hello");
    let workdir = tmp.path().join("app");
    std::fs::create_dir_all(&workdir).unwrap();
    let run = |secret: Option<&str>| {
        let mut command = Command::new(&exe);
        command
            .current_dir(&workdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in CLEARED {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(secret) = secret {
            command.env("DAGGR_SERVE_TOKEN", secret);
        }
        command.spawn().unwrap()
    };
    // Without the secret the app refuses to start, and says why.
    let out = run(None).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("needs an access token: set DAGGR_SERVE_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    let mut server = run(Some("space-secret"));
    let stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    let mut stdout = stdout;
    stdout.read_line(&mut first).unwrap();
    let url = first
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("announced: {first}"))
        .to_string();
    assert!(first.contains("(bound to 0.0.0.0:"), "{first}");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/api/call"))
        .header("x-daggr-token", "space-secret")
        .json(&json!({ "inputs": { "text": "space", "times": 3 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["outputs"]["loud"], "SPACE SPACE SPACE", "{answer}");
    let refused = client
        .post(format!("{url}/api/call"))
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "no token, no call");
    let page = client
        .get(format!("{url}/?token=space-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the inspector is served too");
    server.kill().unwrap();
    server.wait().unwrap();

    // Written again over its own scaffold; a directory of something else is refused.
    let out = deploy(&root, &space, &["--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(files(&space), written);
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("mine.txt"), "keep").unwrap();
    let out = deploy(&root, &other, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not empty and was not written by `cargo daggr deploy`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("mine.txt")).unwrap(),
        "keep"
    );
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

type Answer = Box<dyn Fn(&Received) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A recording HTTP server on 127.0.0.1: each request is answered by `answer` (status,
/// extra headers, JSON body) and kept.
fn stand_in(answer: Answer) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = first.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Received {
                method,
                path,
                headers,
                body,
            };
            let (status, extra, text) = answer(&request);
            log.lock().unwrap().push(request);
            let mut response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                text.len()
            );
            for (k, v) in extra {
                response.push_str(&format!("{k}: {v}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&text);
            let mut stream = stream;
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn the_upload_creates_the_space_and_commits_the_scaffold_sending_the_token_to_the_hub_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = project(tmp.path());
    let space = tmp.path().join("space");
    // Somewhere else: named in the Hub's answers, never to be asked.
    let (elsewhere, elsewhere_seen) = stand_in(Box::new(|_| (200, vec![], "{}".into())));
    let link = format!("{elsewhere}/spaces/me/space-demo");
    let (hub, seen) = stand_in(Box::new(move |r| {
        let ok = |body: Value| (200, vec![], body.to_string());
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/whoami-v2") => ok(json!({ "name": "me", "type": "user" })),
            ("POST", "/api/repos/create") => ok(json!({ "url": link })),
            ("POST", "/api/spaces/me/space-demo/preupload/main") => {
                let asked: Value = serde_json::from_slice(&r.body).unwrap();
                let files: Vec<Value> = asked["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| json!({ "path": f["path"], "uploadMode": "regular", "shouldIgnore": false }))
                    .collect();
                ok(json!({ "files": files }))
            }
            ("POST", "/api/spaces/me/space-demo/commit/main") => {
                ok(json!({ "commitOid": "0123abcd", "commitUrl": link }))
            }
            _ => (404, vec![], json!({ "error": "Not Found" }).to_string()),
        }
    }));
    let token = "hf_standin_write_token".to_string();
    let out = deploy(
        &root,
        &space,
        &["--name", "space-demo", "--private"],
        &[("HF_TOKEN", token.clone()), ("HF_ENDPOINT", hub.clone())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.starts_with(&format!(
            "created the Space {hub}/spaces/me/space-demo and uploaded 8 files\n"
        )),
        "{said}"
    );
    let secret = said
        .lines()
        .find_map(|l| l.strip_prefix("its access token, kept as the Space secret DAGGR_SERVE_TOKEN (send it as the X-Daggr-Token header): "))
        .expect("the access token is told once")
        .to_string();
    assert_eq!(secret.len(), 32);

    let seen = seen.lock().unwrap().clone();
    let asked: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        asked,
        [
            "GET /api/whoami-v2",
            "POST /api/repos/create",
            "POST /api/spaces/me/space-demo/preupload/main",
            "POST /api/spaces/me/space-demo/commit/main",
        ]
    );
    for request in &seen {
        assert_eq!(
            request.headers.get("authorization"),
            Some(&format!("Bearer {token}")),
            "{} {}",
            request.method,
            request.path
        );
    }
    assert!(
        elsewhere_seen.lock().unwrap().is_empty(),
        "the token went to the Hub only"
    );

    // The Space: Docker, private, with the access token as its secret.
    let created: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(created["type"], "space");
    assert_eq!(created["name"], "space-demo");
    assert_eq!(created["organization"], "me");
    assert_eq!(created["sdk"], "docker");
    assert_eq!(created["private"], true);
    assert_eq!(created["secrets"][0]["key"], "DAGGR_SERVE_TOKEN");
    assert_eq!(created["secrets"][0]["value"], secret.as_str());

    // The commit: a header, then every file of the scaffold, byte for byte.
    let commit = &seen[3];
    assert_eq!(
        commit.headers.get("content-type").map(String::as_str),
        Some("application/x-ndjson")
    );
    let lines: Vec<Value> = text(&commit.body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["key"], "header");
    assert_eq!(
        lines[0]["value"]["summary"],
        "Deploy Hello with cargo daggr"
    );
    let engine = base64::engine::general_purpose::STANDARD;
    let committed: BTreeMap<String, Vec<u8>> = lines[1..]
        .iter()
        .map(|line| {
            assert_eq!(line["key"], "file");
            assert_eq!(line["value"]["encoding"], "base64");
            let bytes = engine
                .decode(line["value"]["content"].as_str().unwrap())
                .unwrap();
            (line["value"]["path"].as_str().unwrap().to_string(), bytes)
        })
        .collect();
    assert_eq!(committed, files(&space));
    let readme = text(&committed["README.md"]);
    assert!(
        readme.contains("https://me-space-demo.hf.space/api/call"),
        "the README names the Space's host: {readme}"
    );
    let preupload: Value = serde_json::from_slice(&seen[2].body).unwrap();
    let listed: Vec<&str> = preupload["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        committed.keys().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn redirects_are_not_followed_and_plain_http_hubs_get_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let root = project(tmp.path());
    let space = tmp.path().join("space");
    let (elsewhere, elsewhere_seen) = stand_in(Box::new(|_| (200, vec![], "{}".into())));
    let location = format!("{elsewhere}/api/spaces/me/space-demo/preupload/main");
    // The Space exists (409), and the Hub sends the upload elsewhere.
    let (hub, seen) = stand_in(Box::new(move |r| match r.path.as_str() {
        "/api/repos/create" => (
            409,
            vec![],
            json!({ "error": "You already created this space repo" }).to_string(),
        ),
        _ => (
            307,
            vec![("location".into(), location.clone())],
            "{}".into(),
        ),
    }));
    let token = "hf_standin_write_token".to_string();
    let out = deploy(
        &root,
        &space,
        &["--name", "me/space-demo"],
        &[("HF_TOKEN", token.clone()), ("HF_ENDPOINT", hub.clone())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().last().unwrap(),
        format!("error: preparing the upload to me/space-demo: the Hub answered 307 (a redirect, not followed: the token goes to {hub} only)")
    );
    let asked: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        asked,
        [
            "POST /api/repos/create",
            "POST /api/spaces/me/space-demo/preupload/main"
        ],
        "no whoami: the owner was given"
    );
    assert!(elsewhere_seen.lock().unwrap().is_empty());

    // A Hub over plain http elsewhere than this machine: refused before any request.
    let out = deploy(
        &root,
        &space,
        &["--name", "me/space-demo"],
        &[
            ("HF_TOKEN", token),
            ("HF_ENDPOINT", "http://hub.invalid".to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with("error: the Hub URL `http://hub.invalid` (HF_ENDPOINT) is not https: the token would cross the network in clear (plain http is only for a Hub on this machine)\n"),
        "{}",
        text(&out.stderr)
    );
}
