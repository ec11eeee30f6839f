//! `cargo daggr sheets …`, `cargo daggr cache …` (`stats`, `gc`, `push`) and
//! `cargo daggr serve` end to end: the
//! real binary against a project directory whose `.daggr/` real runs filled (sheets
//! stored through the library, and a headless run no sheet refers to), checked against
//! what the library itself reports; and `serve --api-only` on the workspace's quickstart
//! example, called over HTTP and stopped by killing the process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use daggr::sheet::SheetStore;
use daggr::{Cache, FnNode, Graph, Image, Output as Port, Pipeline, Scope};
use serde_json::{json, Value};

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;
#[path = "common/postgres_server.rs"]
mod postgres_server;

use cargo_daggr_bin::{test_target_dir, workspace};

/// The runtime's variables, which must not leak from the test's environment into the
/// project the commands are pointed at.
const RUNTIME_VARS: [&str; 5] = [
    "DAGGR_CACHE_DIR",
    "DAGGR_CACHE_URL",
    "DAGGR_SHEETS_URL",
    "DAGGR_SHEETS_DB",
    "DAGGR_SERVE",
];

/// `cargo daggr ARGS` run in `dir`.
fn cargo_daggr(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(cargo_daggr_bin::binary());
    command.arg("daggr").args(args).current_dir(dir);
    for var in RUNTIME_VARS {
        command.env_remove(var);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cargo daggr ARGS --json` in `dir`: its answer.
fn json_of(dir: &Path, args: &[&str]) -> Value {
    let out = cargo_daggr(dir, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stdout)))
}

/// A pipeline of two nodes: `shout` upper-cases the text, `badge` makes an image (a media
/// blob in the cache) of it.
fn badges(cache: &Cache) -> (Pipeline, Port<String>) {
    let mut g = Graph::new("Badges").cache(cache.clone());
    let text = g.input("text", "hello".to_string());
    let loud = g.add(FnNode::sync("shout", |t: String| t.to_uppercase()), (text,));
    g.add(
        FnNode::sync("badge", |t: String| {
            Image::new(t.repeat(40).into_bytes(), "image/png")
        }),
        (loud,),
    );
    (g.build().unwrap(), text)
}

/// Fills `project/.daggr/`: sheets `default` (one run) and `experiment` (two runs, so two
/// history entries per node) of pipeline `Badges`, and a run without a sheet whose
/// results no sheet refers to.
async fn fill(project: &Path) {
    let cache = Cache::open(project.join(".daggr/cache")).unwrap();
    let store = SheetStore::open(project.join(".daggr/sheets.db")).unwrap();
    fill_in(&store, &cache).await;
}

async fn fill_in(store: &SheetStore, cache: &Cache) {
    let (pipeline, text) = badges(cache);
    let default = store.create(&pipeline, "default").unwrap();
    default.run(Scope::All).await.unwrap();
    let experiment = store.create(&pipeline, "experiment").unwrap();
    for value in ["world", "world, again"] {
        experiment.set_input(&text, value.to_string()).unwrap();
        experiment.run(Scope::All).await.unwrap();
    }
    pipeline.set_input(&text, "no sheet".to_string()).unwrap();
    pipeline.run(Scope::All).await.unwrap();
    cache.flush();
    store.flush();
}

#[tokio::test]
async fn sheets_and_cache_commands_report_what_the_library_does() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"badges\"\nversion = \"0.0.0\"\n",
    )
    .unwrap();
    fill(root).await;
    let store = SheetStore::open(root.join(".daggr/sheets.db")).unwrap();
    let cache = Cache::open(root.join(".daggr/cache")).unwrap();
    let db = root.join(".daggr/sheets.db").display().to_string();

    // `list`: every sheet, with the library's counts and sizes.
    let listed = json_of(root, &["sheets", "list", "--json"]);
    assert_eq!(listed["database"], db.as_str());
    let expected: Vec<Value> = store
        .inventory()
        .unwrap()
        .iter()
        .map(|(info, usage)| {
            json!({
                "pipeline": info.pipeline, "name": info.name, "id": info.id,
                "created_ms": info.created_ms, "updated_ms": info.updated_ms,
                "inputs": usage.inputs, "results": usage.results,
                "failures": usage.failures, "bytes": usage.bytes,
            })
        })
        .collect();
    assert_eq!(listed["sheets"], json!(expected));
    let experiment = &listed["sheets"][1];
    assert_eq!(experiment["name"], "experiment");
    assert_eq!(
        experiment["results"], 6,
        "two runs of three nodes (the input too)"
    );
    assert_eq!(experiment["inputs"], 1);
    assert!(experiment["bytes"].as_u64().unwrap() > 0);

    // The same project named by --manifest-path, from elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let manifest = root.join("Cargo.toml");
    let again = json_of(
        elsewhere.path(),
        &[
            "sheets",
            "list",
            "--json",
            "--manifest-path",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(again["sheets"], listed["sheets"]);

    let out = cargo_daggr(root, &["sheets", "list"]);
    let shown = text(&out.stdout);
    assert!(shown.contains(&format!("sheets in {db}")), "{shown}");
    assert!(
        shown.contains("Badges    experiment  1       6        0"),
        "{shown}"
    );
    assert!(shown.contains("2 sheet(s), 9 result(s), "), "{shown}");

    // `show`: the inputs and each node's results.
    let out = cargo_daggr(root, &["sheets", "show", "experiment"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with(&format!(
            "sheet `experiment` of pipeline `Badges` (id {}) in {db}",
            experiment["id"]
        )),
        "{shown}"
    );
    assert!(shown.contains("  text.value = \"world, again\""), "{shown}");
    assert!(shown.contains("  shout  2        0       #"), "{shown}");

    // An unknown sheet: the closest name, and the list.
    let out = cargo_daggr(root, &["sheets", "show", "experimnet"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: no sheet `experimnet` in {db}; did you mean `experiment`? (the sheets: default, experiment)")
    );

    // `export`: the library's record of the sheet, where it is.
    let file = root.join("experiment.json");
    let out = cargo_daggr(
        root,
        &[
            "sheets",
            "export",
            "experiment",
            "--format",
            "json",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // Through text, as the export went: floats read back alike.
    let record = serde_json::to_string(&store.read_sheet("Badges", "experiment").unwrap());
    let mut record: Value = serde_json::from_str(&record.unwrap()).unwrap();
    record["database"] = json!(db);
    assert_eq!(exported, record);
    assert_eq!(exported["history"]["badge"].as_array().unwrap().len(), 2);
    assert_eq!(exported["inputs"][0]["value"], "world, again");

    // `cache stats`: the library's numbers.
    let stats = cache.stats().unwrap();
    let shown = json_of(root, &["cache", "stats", "--json"]);
    assert_eq!(shown["entries"], stats.entries);
    assert_eq!(shown["content_files"], stats.content_files);
    assert_eq!(shown["content_bytes"], stats.content_bytes);
    assert_eq!(shown["log_bytes"], stats.log_bytes);
    assert_eq!(
        stats.entries, 12,
        "the input, shout and badge for four texts: {stats:?}"
    );

    // `cache gc --dry-run`: what the library would remove, and nothing removed.
    let planned = store.gc_cache_dry_run(&cache).unwrap();
    assert_eq!(planned.removed_entries, 3, "the run without a sheet");
    let dry = json_of(root, &["cache", "gc", "--dry-run", "--json"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["sheets"], 2);
    assert_eq!(dry["removed_entries"], planned.removed_entries);
    assert_eq!(dry["removed_files"], planned.removed_files);
    assert_eq!(dry["freed_bytes"], planned.freed_bytes);
    assert_eq!(cache.stats().unwrap(), stats, "a dry run removes nothing");

    // `cache gc`: removes what no sheet refers to, keeps the sheets whole.
    let out = cargo_daggr(root, &["cache", "gc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.starts_with(&format!(
            "removed 3 result(s) and {} file(s), freed ",
            planned.removed_files
        )),
        "{said}"
    );
    assert!(said.contains("kept what the 2 sheet(s) in"), "{said}");
    let after = cache.stats().unwrap();
    assert_eq!(after.entries, 9);
    assert!(after.content_bytes < stats.content_bytes, "{after:?}");
    cache.clear_memory();
    let (pipeline, _) = badges(&cache);
    let sheet = store.open_sheet(&pipeline, "experiment").unwrap();
    assert!(sheet.skipped().is_empty(), "{:?}", sheet.skipped());
    let image = sheet.result("badge").unwrap().expect("the current result");
    let image = image.outputs[0].downcast::<Image>().unwrap();
    assert!(image.bytes().starts_with(b"WORLD, AGAIN"));
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(
        report.computed().is_empty(),
        "nothing the sheet needs was removed"
    );

    // `delete`: the sheet goes; its results become garbage.
    let out = cargo_daggr(root, &["sheets", "delete", "default"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("deleted sheet `default` of `Badges` (3 results, 0 failed, "),
        "{}",
        text(&out.stdout)
    );
    let listed = json_of(root, &["sheets", "list", "--json"]);
    assert_eq!(listed["sheets"].as_array().unwrap().len(), 1);
    let dry = json_of(root, &["cache", "gc", "--dry-run", "--json"]);
    assert_eq!(dry["removed_entries"], 3, "default's results: {dry}");
    let planned = store.gc_cache_dry_run(&cache).unwrap();
    assert_eq!(dry["removed_files"], planned.removed_files);
    assert_eq!(dry["freed_bytes"], planned.freed_bytes);
    let out = cargo_daggr(root, &["sheets", "delete", "default"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no sheet `default` in"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn sheets_in_postgresql_are_listed_shown_and_kept_by_gc() {
    let server = postgres_server::shared();
    let url = server.url(&server.create_database());
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let cache = Cache::open(root.join(".daggr/cache")).unwrap();
    let store = SheetStore::open_url(&url).unwrap();
    fill_in(&store, &cache).await;

    // Named by the flag, and by the runtime's variable.
    let by_flag = json_of(root, &["sheets", "list", "--json", "--sheets", &url]);
    let mut command = Command::new(cargo_daggr_bin::binary());
    command
        .args(["daggr", "sheets", "list", "--json"])
        .current_dir(root);
    for var in RUNTIME_VARS {
        command.env_remove(var);
    }
    let out = command.env("DAGGR_SHEETS_URL", &url).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let by_env: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_flag, by_env);
    assert_eq!(by_flag["database"], store.location());
    let inventory = store.inventory().unwrap();
    let listed = by_flag["sheets"].as_array().unwrap();
    assert_eq!(listed.len(), inventory.len());
    for ((info, usage), shown) in inventory.iter().zip(listed) {
        assert_eq!(shown["name"], info.name.as_str());
        assert_eq!(shown["results"], usage.results);
        assert_eq!(shown["inputs"], usage.inputs);
        assert_eq!(shown["bytes"], usage.bytes);
    }
    // The same sizes as the same rows in SQLite.
    let sqlite = tempfile::tempdir().unwrap();
    fill(sqlite.path()).await;
    let local = SheetStore::open(sqlite.path().join(".daggr/sheets.db")).unwrap();
    let counts = |list: Vec<(daggr::sheet::SheetInfo, daggr::sheet::SheetUsage)>| {
        list.into_iter()
            .map(|(i, u)| (i.name, u.inputs, u.results, u.failures))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(inventory), counts(local.inventory().unwrap()));

    let out = cargo_daggr(root, &["sheets", "show", "experiment", "--sheets", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("  text.value = \"world, again\""),
        "{}",
        text(&out.stdout)
    );
    let dry = json_of(
        root,
        &["cache", "gc", "--dry-run", "--json", "--sheets", &url],
    );
    assert_eq!(dry["sheets"], 2);
    assert_eq!(
        dry["removed_entries"],
        store.gc_cache_dry_run(&cache).unwrap().removed_entries
    );
    assert_eq!(dry["removed_entries"], 3, "the run without a sheet");
}

#[test]
fn a_project_without_daggr_state_is_read_not_created() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let daggr_dir = empty.path().join(".daggr");
    let out = cargo_daggr(empty.path(), &["sheets", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "no sheets: there is no sheets database at {}\n",
            daggr_dir.join("sheets.db").display()
        )
    );
    let out = cargo_daggr(empty.path(), &["sheets", "show", "default"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("there is no sheets database at"),
        "{}",
        text(&out.stderr)
    );
    let out = cargo_daggr(empty.path(), &["cache", "stats"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("no cache at "));
    let out = cargo_daggr(empty.path(), &["cache", "gc", "--dry-run"]);
    assert!(out.status.success());
    assert!(!daggr_dir.exists(), "nothing was created");
}

/// `cargo daggr cache push`: what the local directory holds goes to the shared store
/// (here a directory, `file://`, the same `object_store` path as a bucket), once.
#[tokio::test]
async fn cache_push_uploads_what_the_shared_store_lacks_once() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let cache = Cache::open(root.join(".daggr/cache")).unwrap();
    let (pipeline, _) = badges(&cache);
    pipeline.run(Scope::All).await.unwrap();
    cache.flush();
    let entries = cache.stats().unwrap().entries;
    assert_eq!(entries, 3, "the input and two nodes");

    // No shared store configured: refused, naming how to give one.
    let out = cargo_daggr(root, &["cache", "push"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no shared store to push to: give --cache-url"),
        "{}",
        text(&out.stderr)
    );

    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}/team", shared.path().display());
    let pushed = json_of(root, &["cache", "push", "--cache-url", &url, "--json"]);
    assert_eq!(pushed["uploaded"], 3, "{pushed}");
    assert_eq!(pushed["already_there"], 0, "{pushed}");
    assert_eq!(pushed["failed"], json!([]), "{pushed}");
    let objects = |dir: &str| {
        std::fs::read_dir(shared.path().join("team").join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(objects("records"), 3);
    assert!(
        shared.path().join("team/blobs/sha256").is_dir(),
        "the image"
    );

    let out = cargo_daggr(root, &["cache", "push", "--cache-url", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("pushed 0 result(s) (0 B) from "),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("; 3 already there"));
}

/// Reads the child's stdout on a thread, line by line, into a channel.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (up to 10 minutes: the first build of the example) for the line announcing the
/// server: the URL it serves on.
fn served_url(lines: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(600))
            .expect("the server announces itself");
        if let Some(rest) = line.strip_prefix("daggr: serving `") {
            let url = rest.split(" on ").nth(1).unwrap();
            return url.split_whitespace().next().unwrap().to_string();
        }
    }
}

#[tokio::test]
async fn serve_api_only_answers_calls_and_stops_with_the_process() {
    let project = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = Command::new(cargo_daggr_bin::binary());
    command
        .args(["daggr", "serve", "--example", "quickstart", "--api-only"])
        .args(["--addr", &addr, "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(test_target_dir())
        .current_dir(project.path())
        .stdout(Stdio::piped());
    for var in RUNTIME_VARS {
        command.env_remove(var);
    }
    command.env("DAGGR_CACHE_DIR", project.path().join("cache"));
    let mut child = command.spawn().unwrap();
    let lines = lines_of(&mut child);
    let url = served_url(&lines);
    assert_eq!(url, format!("http://{addr}"));

    let client = reqwest::Client::new();
    let call = || async {
        let response = client
            .post(format!("{url}/api/call"))
            .json(&json!({ "inputs": { "width": 48, "height": 32, "sigma": 3.0 } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let first = call().await;
    assert!(
        !first["outputs"]["caption"].as_str().unwrap().is_empty(),
        "{first}"
    );
    assert_eq!(first["computed"].as_array().unwrap().len(), 5, "{first}");
    let again = call().await;
    assert_eq!(again["computed"], json!([]), "from the cache: {again}");
    assert_eq!(again["outputs"], first["outputs"]);

    let openapi: Value = client
        .get(format!("{url}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    // API only: no page, no sheets.
    for path in ["/", "/api/sheets"] {
        let response = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }

    // The program replaced `cargo daggr serve`: killing it stops the server.
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = client
        .get(format!("{url}/api/openapi.json"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(gone.is_err(), "the server stopped");

    // The handshake's own checks, on the example cargo daggr built.
    let exe = test_target_dir().join("debug/examples/quickstart");
    for (vars, says) in [
        (
            vec![("DAGGR_SERVE", "0.0.0.0:0")],
            "daggr: serving on 0.0.0.0:0, which is not a loopback address, needs an access token: set DAGGR_SERVE_TOKEN",
        ),
        (
            vec![("DAGGR_SERVE", "anywhere")],
            "daggr: DAGGR_SERVE=`anywhere` is not an address: write it as HOST:PORT (127.0.0.1:7860, 0.0.0.0:7860)",
        ),
    ] {
        let mut command = Command::new(&exe);
        command.current_dir(project.path()).envs(vars);
        command.env_remove("DAGGR_SERVE_TOKEN");
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}
