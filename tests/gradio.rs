//! GradioNode against real Gradio apps: the fixture apps of tests/fixtures/gradio, run on
//! 127.0.0.1 by the gradio pinned in scripts/setup/gradio.sh. Faults Gradio cannot
//! produce itself (a 500, a cut stream, a silent stream) come from the fault proxy in
//! tests/gradio_support/fault_proxy.rs, in front of the real app.

mod gradio_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use daggr::gradio::{GradioNode, Protocol};
use daggr::hf::HfToken;
use daggr::{
    constant, Cache, CachePolicy, CacheSource, Configure, Error, Event, File, FnNode, Graph, Image,
    Outcome, Scope,
};
use gradio_support::fault_proxy::{Fault, FaultProxy};
use gradio_support::{pixels, png, shared, temp_cache, upper, GradioApp};
use serde::{Deserialize, Serialize};
use serde_json::json;

fn text_app() -> String {
    shared("text_app.py")
}

fn image_app() -> String {
    shared("image_app.py")
}

/// The route a call of `api` is submitted on (what the fault proxy intercepts).
fn submit_path(api: &str) -> String {
    if gradio_support::calls_by_default() {
        format!("/call/{api}")
    } else {
        "/queue/join".into()
    }
}

/// The route a call's events stream on.
fn stream_path(api: &str) -> String {
    if gradio_support::calls_by_default() {
        format!("/call/{api}/")
    } else {
        "/queue/data".into()
    }
}

fn submits(proxy: &FaultProxy, api: &str) -> usize {
    let path = submit_path(api);
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path.contains(&path))
        .count()
}

/// The error text of a node whose connection check fails.
async fn connect_error<A: daggr::ArgTuple, O: daggr::gradio::OutputTuple>(
    node: GradioNode<A, O>,
) -> String {
    match node.connect().await {
        Ok(_) => panic!("the connection check passed"),
        Err(e) => e.to_string(),
    }
}

/// The error a failed node reported in `report`.
fn error_of(report: &daggr::RunReport, node: &str) -> String {
    match report.outcome(node) {
        Some(Outcome::Failed(e)) => e.to_string(),
        other => panic!("`{node}` did not fail: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_text_then_the_cache_answers() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("upper").cache(cache);
    let text = g.input("text", "hello gradio".to_string());
    let node = upper(&url).connect().await.unwrap();
    let (major, minor) = gradio_support::gradio_version();
    eprintln!("fixtures run on Gradio {}", node.gradio_version().unwrap());
    assert!(node
        .gradio_version()
        .unwrap()
        .starts_with(&format!("{major}.{minor}.")));
    let out = g.add(node, (text,));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&out).unwrap(), "HELLO GRADIO");
    assert!(matches!(
        report.outcome("upper"),
        Some(Outcome::Computed { .. })
    ));
    let again = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(again.outcome("upper"), Some(Outcome::Cached(_))));
    pipeline.set_input(&text, "changed".to_string()).unwrap();
    let third = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*third.value(&out).unwrap(), "CHANGED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_inputs_and_outputs_defaults_and_fixed_parameters() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("combine").cache(cache);
    let (doubled, joined) = g.add(
        GradioNode::new("combine", &url)
            .api("/combine")
            .input::<f64>("x")
            .input::<String>("label")
            .output::<f64>("doubled")
            .output::<String>("joined"),
        (constant(21.0), constant("answer".to_string())),
    );
    // `label` fixed, `x` left to its default (1).
    let only_label = g.add(
        GradioNode::new("defaulted", &url)
            .api("combine")
            .param("label", json!("only-label"))
            .skip_output()
            .output::<String>("joined"),
        (),
    );
    // A checkbox and a dropdown as inputs, the slider at its default (5).
    let flags = g.add(
        GradioNode::new("flags", &url)
            .api("/flags")
            .input::<bool>("on")
            .input::<String>("choice")
            .output::<String>("text"),
        (constant(true), constant("blue".to_string())),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&doubled).unwrap(), 42.0);
    assert_eq!(*report.value(&joined).unwrap(), "answer:21");
    assert_eq!(*report.value(&only_label).unwrap(), "only-label:1");
    assert_eq!(
        *report.value(&flags).unwrap(),
        "on=True level=5 choice=blue"
    );
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    name: String,
    sizes: Vec<u32>,
    nested: std::collections::BTreeMap<String, bool>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serde_values_travel_as_json() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let value = Settings {
        name: "x".into(),
        sizes: vec![1, 2, 3],
        nested: [("a".to_string(), true)].into_iter().collect(),
    };
    let mut g = Graph::new("json").cache(cache);
    let out = g.add(
        GradioNode::new("echo", &url)
            .api("/echo_json")
            .input::<Settings>("value")
            .output::<Settings>("same"),
        (constant(value.clone()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_streams_progress_and_partial_outputs_on_both_routes() {
    let url = text_app();
    for protocol in [Protocol::Auto, Protocol::Call] {
        let (_d, cache) = temp_cache();
        let mut g = Graph::new("count").cache(cache);
        let out = g.add(
            GradioNode::new("count", &url)
                .api("/count")
                .protocol(protocol)
                .input::<String>("prefix")
                .input::<f64>("n")
                .output::<String>("ticks"),
            (constant("t".to_string()), constant(4.0)),
        );
        let pipeline = g.build().unwrap();
        let mut events = pipeline.subscribe();
        let partials = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = partials.clone();
        let listener = tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                match e {
                    Event::NodePartial { value, .. } => seen.lock().unwrap().push(value),
                    Event::RunFinished { .. } => break,
                    _ => {}
                }
            }
        });
        let report = pipeline.run(Scope::All).await.unwrap();
        assert_eq!(*report.value(&out).unwrap(), "t0 t1 t2 t3", "{protocol:?}");
        let _ = tokio::time::timeout(Duration::from_secs(5), listener).await;
        let partials = partials.lock().unwrap().clone();
        assert!(partials.len() >= 3, "{protocol:?}: {partials:?}");
        assert_eq!(partials[0], json!({"ticks": "t0"}), "{protocol:?}");
        // Queue-protocol updates after the first are diffs: applied, they give full values.
        assert_eq!(partials[1], json!({"ticks": "t0 t1"}), "{protocol:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_error_and_exceptions_reach_the_error_with_their_text() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("errors").cache(cache);
    let text = g.input("text", "boom".to_string());
    g.add(
        GradioNode::new("fail", &url)
            .api("/fail")
            .input::<String>("text")
            .output::<String>("out"),
        (text,),
    );
    g.add(
        GradioNode::new("crash", &url)
            .api("/crash")
            .input::<String>("text")
            .output::<String>("out"),
        (text,),
    );
    g.add(
        GradioNode::new("fail_call", &url)
            .api("/fail")
            .protocol(Protocol::Call)
            .input::<String>("text")
            .output::<String>("out"),
        (text,),
    );
    let fine = g.add(upper(&url), (text,));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    let fail = error_of(&report, "fail");
    assert_eq!(
        fail,
        format!("node `fail` failed: Gradio app at {url} /fail: fixture failure for input 'boom'")
    );
    let crash = error_of(&report, "crash");
    assert!(
        crash.contains("plain exception for input 'boom'"),
        "{crash}"
    );
    // On /call, Gradio < 6.13 sends `data: null`: the error says so instead of inventing
    // text; newer servers send the text.
    let call = error_of(&report, "fail_call");
    let expected = if gradio_support::calls_by_default() {
        "fixture failure for input 'boom'"
    } else {
        "sends no message on /call"
    };
    assert!(
        call.contains("node `fail_call`") && call.contains("/fail") && call.contains(expected),
        "{call}"
    );
    assert_eq!(*report.value(&fine).unwrap(), "BOOM");
    // Failures are not cached: they run again.
    let again = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(again.outcome("fail"), Some(Outcome::Failed(_))));
    assert!(matches!(again.outcome("upper"), Some(Outcome::Cached(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_and_parameter_names_are_checked_with_did_you_mean() {
    let url = text_app();
    let err = connect_error(upper(&url).api("/uper")).await;
    assert!(
        err.contains("no endpoint `/uper`; did you mean `/upper`?"),
        "{err}"
    );
    assert!(err.contains("node `upper`") && err.contains(&url), "{err}");

    let err = connect_error(
        GradioNode::new("n", &url)
            .api("/upper")
            .input::<String>("txt")
            .output::<String>("o"),
    )
    .await;
    assert!(
        err.contains("no parameter `txt`") && err.contains("did you mean `text`?"),
        "{err}"
    );

    let err = connect_error(
        GradioNode::new("n", &url)
            .api("/combine")
            .input::<f64>("x")
            .output::<f64>("o"),
    )
    .await;
    assert!(
        err.contains("parameter `label` of /combine has no default"),
        "{err}"
    );

    let err = connect_error(
        GradioNode::new("n", &url)
            .api("/upper")
            .input::<Image>("text")
            .output::<String>("o"),
    )
    .await;
    assert!(err.contains("takes no file"), "{err}");

    let err = connect_error(
        GradioNode::new("n", &url)
            .api("/combine")
            .input::<String>("label")
            .output::<f64>("doubled")
            .output::<String>("joined")
            .output::<String>("extra"),
    )
    .await;
    assert!(
        err.contains(
            "/combine returns 2 value(s) (doubled, joined), but the node declares 3 output(s)"
        ),
        "{err}"
    );

    // Unchecked at the first run too: the node fails with the same message.
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("v").cache(cache);
    g.add(upper(&url).api("/uppr"), (constant("x".to_string()),));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(error_of(&report, "upper").contains("did you mean `/upper`?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_chain_across_apps_by_download_and_reupload() {
    let text = text_app();
    let first = image_app();
    let second = GradioApp::start("image_app.py");
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("images").cache(cache);
    let prompt = g.input("prompt", "a red fox".to_string());
    let loud = g.add(upper(&text), (prompt,));
    let drawn = g.add(
        GradioNode::new("draw", &first)
            .api("/draw")
            .input::<String>("prompt")
            .input::<f64>("size")
            .output::<Image>("image"),
        (loud, constant(16.0)),
    );
    let inverted = g.add(
        GradioNode::new("invert", &second.url)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted"),
        (drawn,),
    );
    let (dims, mean) = g.add(
        GradioNode::new("stats", &second.url)
            .api("/stats")
            .input::<Image>("img")
            .output::<String>("dims")
            .output::<f64>("mean"),
        (inverted,),
    );
    let checked = g.add(
        FnNode::sync("check", |a: Image, b: Image| {
            let (a, b) = (pixels(&a), pixels(&b));
            a.dimensions() == b.dimensions()
                && a.pixels()
                    .zip(b.pixels())
                    .all(|(p, q)| (0..3).all(|c| p[c] == 255 - q[c]))
        }),
        (drawn, inverted),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let image = report.value(&drawn).unwrap();
    assert_eq!(image.mime(), "image/png");
    assert_eq!(pixels(&image).dimensions(), (16, 16));
    assert!(
        *report.value(&checked).unwrap(),
        "the second app inverted the first's image"
    );
    assert_eq!(*report.value(&dims).unwrap(), "16x16");
    assert!(*report.value(&mean).unwrap() >= 0.0);
    // Rerun: every Gradio node comes from the cache (media keyed by content).
    let again = pipeline.run(Scope::All).await.unwrap();
    for node in ["upper", "draw", "invert", "stats"] {
        assert!(
            matches!(again.outcome(node), Some(Outcome::Cached(_))),
            "{node}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_inputs_key_the_cache_by_content_and_files_and_galleries_work() {
    let url = image_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("media").cache(cache);
    let picture = g.input(
        "picture",
        png(4, 2, |x, y| [x as u8 * 60, y as u8 * 100, 7]),
    );
    let inverted = g.add(
        GradioNode::new("invert", &url)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted"),
        (picture,),
    );
    let note = File::named(b"hello note".to_vec(), "text/plain", "note.txt");
    let (desc, reversed) = g.add(
        GradioNode::new("file_info", &url)
            .api("/file_info")
            .input::<File>("path")
            .output::<String>("desc")
            .output::<File>("reversed"),
        (constant(note),),
    );
    let gallery = g.add(
        GradioNode::new("gallery", &url)
            .api("/gallery")
            .input::<String>("prompt")
            .input::<f64>("n")
            .output::<Vec<Image>>("images"),
        (constant("g".to_string()), constant(3.0)),
    );
    // A gallery output, downloaded, goes back up as a gallery input.
    let sizes = g.add(
        GradioNode::new("contact", &url)
            .api("/contact")
            .input::<Vec<Image>>("items")
            .output::<String>("sizes"),
        (&gallery,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(
        pixels(&report.value(&inverted).unwrap()).get_pixel(1, 1).0,
        [195, 155, 248]
    );
    assert_eq!(*report.value(&desc).unwrap(), "note.txt:10");
    let reversed = report.value(&reversed).unwrap();
    assert_eq!(reversed.bytes(), b"eton olleh");
    assert_eq!(reversed.name(), Some("reversed_note.txt"));
    let images = report.value(&gallery).unwrap();
    assert_eq!(images.len(), 3);
    assert!(images.iter().all(|i| pixels(i).dimensions() == (8, 8)));
    assert_eq!(*report.value(&sizes).unwrap(), "8x8,8x8,8x8");
    pipeline
        .set_input(&picture, png(4, 2, |_, _| [1, 2, 3]))
        .unwrap();
    let changed = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        changed.outcome("invert"),
        Some(Outcome::Computed { .. })
    ));
    assert_eq!(
        pixels(&changed.value(&inverted).unwrap()).get_pixel(0, 0).0,
        [254, 253, 252]
    );
}

/// How many /slow calls of the app at `url` ran to the end.
async fn slow_finished(url: &str) -> f64 {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("probe").cache(cache);
    let n = g.add(
        GradioNode::new("slow_finished", url)
            .api("/slow_finished")
            .output::<f64>("finished")
            .cache_policy(CachePolicy::NeverCache),
        (),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    *report.value(&n).unwrap()
}

fn slow(url: &str, name: &str) -> GradioNode<(String, f64), (String,)> {
    GradioNode::new(name, url)
        .api("/slow")
        .input::<String>("text")
        .input::<f64>("seconds")
        .output::<String>("out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_timing_out_cancels_the_remote_job() {
    let app = GradioApp::start("text_app.py");
    for protocol in [Protocol::Auto, Protocol::Call] {
        // Cancel the run.
        let (_d, cache) = temp_cache();
        let mut g = Graph::new("cancel").cache(cache);
        g.add(
            slow(&app.url, "slow").protocol(protocol),
            (constant("c".to_string()), constant(2.0)),
        );
        let pipeline = g.build().unwrap();
        let handle = pipeline.spawn(Scope::All);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = Instant::now();
        handle.cancel();
        let report = handle.wait().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "cancel took {:?}",
            started.elapsed()
        );
        assert!(!report.is_success());
        // A node timeout.
        let (_d, cache) = temp_cache();
        let mut g = Graph::new("timeout").cache(cache);
        g.add(
            slow(&app.url, "slow")
                .protocol(protocol)
                .timeout(Duration::from_millis(800)),
            (constant("t".to_string()), constant(2.0)),
        );
        let report = g.build().unwrap().run(Scope::All).await.unwrap();
        let err = error_of(&report, "slow");
        assert!(err.contains("timed out"), "{err}");
        // Had either job run on, it would have finished by now.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            slow_finished(&app.url).await,
            0.0,
            "{protocol:?}: a remote job ran to the end"
        );
    }
    // A job that is not cancelled does finish (the counter works).
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("finish").cache(cache);
    g.add(
        slow(&app.url, "slow"),
        (constant("f".to_string()), constant(0.1)),
    );
    assert!(g
        .build()
        .unwrap()
        .run(Scope::All)
        .await
        .unwrap()
        .is_success());
    assert_eq!(slow_finished(&app.url).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_fails_its_branch_only_and_the_cache_stays_intact() {
    let shared_url = text_app();
    let mut app = GradioApp::start("text_app.py");
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("killed").cache(cache);
    let text = g.input("text", "kill".to_string());
    let healthy = g.add(upper(&shared_url), (text,));
    let doomed = g.add(
        slow(&app.url, "doomed").retries(1, Duration::from_millis(100)),
        (text, constant(3.0)),
    );
    let after = g.add(FnNode::sync("after", |s: String| s.len()), (doomed,));
    let pipeline = g.build().unwrap();
    let handle = pipeline.spawn(Scope::All);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.kill();
    let report = handle.wait().await.unwrap();
    let err = error_of(&report, "doomed");
    assert!(
        err.starts_with(&format!(
            "node `doomed` failed: Gradio app at {} /slow",
            app.url
        )) && (err.contains("connection broke") || err.contains("stream ended")),
        "{err}"
    );
    assert_eq!(*report.value(&healthy).unwrap(), "KILL");
    assert_eq!(report.skipped(), ["after"]);
    // While it is down, calls fail to connect (after the retries) with a clear error.
    let report = pipeline.run(Scope::All).await.unwrap();
    let err = error_of(&report, "doomed");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(matches!(report.outcome("upper"), Some(Outcome::Cached(_))));
    // Back up on the same port: the failed branch computes, the rest is still cached.
    app.restart();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert!(matches!(report.outcome("upper"), Some(Outcome::Cached(_))));
    assert!(matches!(
        report.outcome("doomed"),
        Some(Outcome::Computed { .. })
    ));
    assert_eq!(*report.value(&after).unwrap(), "slept 3s for kill".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_when_it_persists_reported_with_the_servers_text() {
    let url = text_app();
    let proxy = FaultProxy::start(&url).await;
    // Two 500s and a 429, then the real app: the retries get through.
    for (status, retry_after) in [(500, None), (502, None), (429, Some("0.1".to_string()))] {
        proxy.inject(Fault::Status {
            path: submit_path("upper"),
            status,
            body: "fault proxy: injected failure".into(),
            retry_after,
            times: 1,
        });
    }
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("retry").cache(cache);
    let out = g.add(
        upper(&proxy.url).retries(3, Duration::from_millis(50)),
        (constant("retry me".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&out).unwrap(), "RETRY ME");
    assert_eq!(submits(&proxy, "upper"), 4);

    // A 500 that persists: the error carries status and text; the other branch is fine
    // and the failed node has no cached result.
    proxy.inject(Fault::Status {
        path: submit_path("upper"),
        status: 500,
        body: "fault proxy: injected failure".into(),
        retry_after: None,
        times: 100,
    });
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("persist").cache(cache);
    let text = g.input("text", "x".to_string());
    g.add(
        upper(&proxy.url).retries(2, Duration::from_millis(20)),
        (text,),
    );
    let fine = g.add(
        GradioNode::new("direct", &url)
            .api("/upper")
            .input::<String>("text")
            .output::<String>("upper"),
        (text,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        error_of(&report, "upper"),
        format!(
            "node `upper` failed: Gradio app at {} /upper answered HTTP 500: fault proxy: injected failure",
            proxy.url
        )
    );
    assert_eq!(*report.value(&fine).unwrap(), "X");
    proxy.clear();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("upper"),
        Some(Outcome::Computed { .. })
    ));
    assert!(matches!(report.outcome("direct"), Some(Outcome::Cached(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_api_is_a_plain_text_500_and_a_non_gradio_url_a_404() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("unknown").cache(cache);
    // Unvalidated and on /call: the server's own 500 text comes back.
    g.add(
        upper(&url)
            .api("/nosuch")
            .validate(false)
            .protocol(Protocol::Call)
            .retries(0, Duration::ZERO),
        (constant("x".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = error_of(&report, "upper");
    // Gradio 5 sends the traceback's last line, Gradio 4 and 6 a bare "Internal Server Error".
    let text = if gradio_support::gradio_version().0 == 5 {
        "Could not infer function index for API name: nosuch"
    } else {
        "Internal Server Error"
    };
    assert!(
        err.contains("/nosuch answered HTTP 500") && err.contains(text),
        "{err}"
    );
    // Not a Gradio app at all (a 404 on /config), connecting fails at once.
    let proxy = FaultProxy::start(&url).await;
    proxy.inject(Fault::Status {
        path: "/config".into(),
        status: 404,
        body: r#"{"detail":"Not Found"}"#.into(),
        retry_after: None,
        times: 1,
    });
    let err = connect_error(upper(&proxy.url)).await;
    assert_eq!(
        err,
        format!(
            "node `upper` failed: Gradio app at {} /upper answered HTTP 404: /config: Not Found (is this a Gradio app?)",
            proxy.url
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_way_and_a_silent_stream_are_clear_errors() {
    let url = text_app();
    let proxy = FaultProxy::start(&url).await;
    for (protocol, path) in [
        (Protocol::Auto, stream_path("count")),
        (Protocol::Call, "/call/count/".to_string()),
    ] {
        proxy.inject(Fault::CutStream {
            path,
            after_events: 2,
        });
        let (_d, cache) = temp_cache();
        let mut g = Graph::new("cut").cache(cache);
        let text = g.input("text", "cut".to_string());
        g.add(
            GradioNode::new("count", &proxy.url)
                .api("/count")
                .protocol(protocol)
                .input::<String>("prefix")
                .input::<f64>("n")
                .output::<String>("ticks"),
            (text, constant(6.0)),
        );
        let other = g.add(upper(&url), (text,));
        let report = g.build().unwrap().run(Scope::All).await.unwrap();
        let err = error_of(&report, "count");
        assert!(
            err.contains(&format!("Gradio app at {} /count", proxy.url))
                && (err.contains("connection broke") || err.contains("stream ended")),
            "{protocol:?}: {err}"
        );
        assert_eq!(*report.value(&other).unwrap(), "CUT");
        proxy.clear();
    }
    // A stream that stays open and silent: the read timeout ends it.
    proxy.inject(Fault::Silent {
        path: stream_path("upper"),
    });
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("silent").cache(cache);
    g.add(
        upper(&proxy.url).read_timeout(Duration::from_millis(1500)),
        (constant("s".to_string()),),
    );
    let started = Instant::now();
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = error_of(&report, "upper");
    assert!(err.contains("no data for 1.5s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_goes_to_other_hosts() {
    let url = text_app();
    let proxy = FaultProxy::start(&url).await;
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("token").cache(cache);
    let out = g.add(
        upper(&proxy.url).token(HfToken::new("hf_never_send_me")),
        (constant("t".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), "T");
    let seen = proxy.seen();
    assert!(seen.len() >= 4, "{seen:?}");
    for s in &seen {
        for (k, v) in &s.headers {
            assert!(
                !v.contains("hf_never_send_me"),
                "{} {}: header {k} carried the token",
                s.method,
                s.path
            );
        }
    }
}

/// A stand-in for the Hub's Space API (`/api/spaces/{id}`), which the tests cannot
/// reach: it answers with a host (the real local app) and a revision.
async fn hub_standin(
    host: String,
    sha: Arc<std::sync::Mutex<String>>,
    stage: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/api/spaces/{owner}/{name}",
        axum::routing::get(move || {
            let host = host.clone();
            let sha = sha.lock().unwrap().clone();
            async move {
                axum::Json(json!({"id": "fixtures/text-app", "sha": sha, "host": host, "runtime": {"stage": stage}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (
        url,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_ids_resolve_through_the_hub_and_the_revision_keys_the_cache() {
    let url = text_app();
    let sha = Arc::new(std::sync::Mutex::new("rev-one".to_string()));
    let (hub, hub_task) = hub_standin(url.clone(), sha.clone(), "RUNNING").await;
    let (_d, cache) = temp_cache();
    let build = |cache: Cache, node: GradioNode<(String,), (String,)>| {
        let mut g = Graph::new("space").cache(cache);
        let out = g.add(node, (constant("space".to_string()),));
        (g.build().unwrap(), out)
    };
    let node = || {
        GradioNode::new("upper", "fixtures/text-app")
            .hub(&hub)
            .api("/upper")
            .input::<String>("text")
            .output::<String>("upper")
    };
    let connected = node().connect().await.unwrap();
    assert_eq!(connected.known_revision(), Some("rev-one"));
    assert_eq!(connected.connected_url().as_deref(), Some(url.as_str()));
    let (pipeline, out) = build(cache.clone(), connected);
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), "SPACE");
    let (pipeline, _) = build(cache.clone(), node().connect().await.unwrap());
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    // A new revision of the Space is a new key.
    *sha.lock().unwrap() = "rev-two".into();
    let (pipeline, _) = build(cache.clone(), node().connect().await.unwrap());
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Computed { .. })
    ));
    // A node that connects at its first run asks the Hub for the revision before the
    // look-up: the same revision is the same key as a connected node's...
    let (pipeline, _) = build(cache.clone(), node());
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    // ...and a new revision recomputes it, then the rerun is the workspace's own result.
    *sha.lock().unwrap() = "rev-three".into();
    let (pipeline, _) = build(cache.clone(), node());
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Computed { .. })
    ));
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Cached(CacheSource::Workspace))
    ));
    // A pinned revision keys the same way, without asking the Hub.
    let (pipeline, _) = build(cache.clone(), node().revision("rev-three"));
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    // Offline (the Hub gone), the last revision it gave still keys the node: the result
    // computed online is found.
    hub_task.abort();
    let _ = hub_task.await;
    let (pipeline, _) = build(cache.clone(), node());
    assert!(matches!(
        pipeline.run(Scope::All).await.unwrap().outcome("upper"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    // A paused Space is refused with the Hub's reason.
    let (paused_hub, _t2) = hub_standin(url.clone(), sha.clone(), "PAUSED").await;
    let err = connect_error(node().hub(&paused_hub)).await;
    assert!(
        err.contains("Space fixtures/text-app") && err.contains("PAUSED"),
        "{err}"
    );
}

// ---------- run_locally ----------

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=daggr",
            "-c",
            "user.email=daggr@example.invalid",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

const LOCAL_APP: &str = r#"import gradio as gr

def reverse(text):
    return text[::-1]

demo = gr.Interface(reverse, gr.Textbox(label="text"), gr.Textbox(label="reversed"), api_name="reverse")

if __name__ == "__main__":
    demo.launch()
"#;

fn count_logs(dir: &std::path::Path, prefix: &str) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().unwrap() != "venv" && p.file_name().unwrap() != "repo" {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_locally_from_a_git_repository() {
    let version = std::process::Command::new(gradio_support::python())
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('gradio'))",
        ])
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout)
        .unwrap()
        .trim()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("space");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("app.py"), LOCAL_APP).unwrap();
    // The Space's Python is this machine's python3 (so the venv builds from the
    // wheelhouse), written as Spaces do: quoted, with a comment and loose spacing.
    let python3 = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    let python3 = String::from_utf8(python3.stdout)
        .unwrap()
        .trim()
        .to_string();
    let readme = |python: &str| {
        format!(
            "---\ntitle: Reverse\nsdk: gradio\nsdk_version: {version}\napp_file: app.py\n\
             python_version :  \"{python}\"  # the Space's Python\n---\n# Reverse\n"
        )
    };
    std::fs::write(repo.join("README.md"), readme(&python3)).unwrap();
    // One Debian package installed wherever dpkg-query runs (dpkg itself), one that
    // exists nowhere: run_locally names the missing one and installs nothing.
    std::fs::write(
        repo.join("packages.txt"),
        "dpkg\ndaggr-no-such-package  # missing\n",
    )
    .unwrap();
    let has_dpkg = std::process::Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_ok();
    // Already satisfied by gradio's own dependencies: nothing new to download.
    // Gradio 4.44 only runs today with these pins (see the protocol reference).
    let pins = if gradio_support::gradio_version().0 == 4 {
        "huggingface_hub<1.0\npydantic==2.10.6\nfastapi==0.115.6\n"
    } else {
        ""
    };
    std::fs::write(repo.join("requirements.txt"), format!("{pins}pillow\n")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "app"]);
    let git_url = format!("file://{}", repo.display());
    let spaces = work.path().join("spaces");
    let pip_args = gradio_support::wheelhouse_args();
    let node = || {
        GradioNode::new("reverse", "fixtures/reverse")
            .api("/reverse")
            .input::<String>("text")
            .output::<String>("reversed")
            .run_locally_from(&git_url)
            .local_dir(&spaces)
            .local_fallback(false)
            .local_timeout(Duration::from_secs(120))
            .local_pip_args(pip_args.clone())
    };
    let head = |repo: &std::path::Path| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    let started = Instant::now();
    let connected = node().connect().await.unwrap();
    let first_start = started.elapsed();
    let local_url = connected.connected_url().unwrap().to_string();
    assert!(local_url.starts_with("http://127.0.0.1:"), "{local_url}");
    assert_eq!(connected.known_revision(), Some(head(&repo).as_str()));
    let log = connected.local_log().unwrap();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("local").cache(cache.clone());
    let out = g.add(connected, (constant("local space".to_string()),));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&out).unwrap(), "ecaps lacol");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("Running on local URL"), "{log_text}");
    // The venv's Python is the one asked for, so nothing is said about it; the missing
    // package is named, the installed one is not.
    assert!(
        log_text.contains(&format!("with Python {python3}.")),
        "{log_text}"
    );
    assert!(!log_text.contains("asks for Python"), "{log_text}");
    let packages = log_text
        .lines()
        .find(|l| l.starts_with("# warning: packages.txt"))
        .unwrap_or_else(|| panic!("no packages.txt warning in {log_text}"));
    assert!(packages.contains("daggr-no-such-package"), "{packages}");
    if has_dpkg {
        assert!(packages.contains("not installed"), "{packages}");
        assert!(!packages.contains("dpkg "), "{packages}");
    }
    // The app stops with the pipeline.
    drop(pipeline);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        reqwest::get(format!("{local_url}/config")).await.is_err(),
        "the local app outlived its node"
    );
    assert_eq!(count_logs(&spaces, "install-"), 1);
    // The install log starts each step with its command line (extra pip arguments too).
    let install = walk(&spaces)
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("install-")
        })
        .unwrap();
    let install = std::fs::read_to_string(install).unwrap();
    assert!(
        install.contains(&format!("\"gradio=={version}\"")),
        "{install}"
    );
    for arg in &pip_args {
        assert!(
            install.contains(arg.as_str()),
            "{arg} missing from the pip command: {install}"
        );
    }

    // Again, lazily (no connect, no preflight): clone and venv reused (no install), and
    // the key made before the first run (the git URL's HEAD) is the one `connect` made,
    // so the cache answers.
    let started = Instant::now();
    let mut g = Graph::new("local").cache(cache.clone());
    g.add(node(), (constant("local space".to_string()),));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(
        matches!(report.outcome("reverse"), Some(Outcome::Cached(_))),
        "{:?}",
        report.outcome("reverse")
    );
    assert_eq!(
        count_logs(&spaces, "install-"),
        1,
        "the venv was reinstalled"
    );
    let second_start = started.elapsed();
    assert!(
        second_start < first_start,
        "reuse: {second_start:?} vs first {first_start:?}"
    );

    // New requirements: reinstalled. New code: a new revision, computed afresh.
    std::fs::write(
        repo.join("requirements.txt"),
        format!("{pins}pillow\nnumpy\n"),
    )
    .unwrap();
    std::fs::write(
        repo.join("app.py"),
        LOCAL_APP.replace("text[::-1]", "text[::-1].upper()"),
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "louder"]);
    let mut g = Graph::new("local").cache(cache.clone());
    let node2 = node().connect().await.unwrap();
    assert_eq!(node2.known_revision(), Some(head(&repo).as_str()));
    let out = g.add(node2, (constant("local space".to_string()),));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&out).unwrap(), "ECAPS LACOL");
    assert_eq!(
        count_logs(&spaces, "install-"),
        2,
        "changed requirements reinstall"
    );

    // An app that cannot start, asking for a Python this machine lacks: the venv is
    // python3's again (same version, so reused), and the error names what is missing.
    std::fs::write(repo.join("README.md"), readme("2.0")).unwrap();
    std::fs::write(repo.join("app.py"), "raise SystemExit(3)\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "broken"]);
    let err = connect_error(node()).await;
    assert!(err.contains("the app exited"), "{err}");
    assert!(err.contains("this may be why"), "{err}");
    assert!(err.contains("daggr-no-such-package"), "{err}");
    assert!(
        err.contains("asks for Python 2.0") && err.contains("the venv uses python3 ("),
        "{err}"
    );
    assert_eq!(
        count_logs(&spaces, "install-"),
        2,
        "the same Python rebuilt the venv"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_local_start_falls_back_or_fails_as_asked() {
    let url = text_app();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("broken");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "---\nsdk: docker\n---\n").unwrap();
    std::fs::write(repo.join("app.py"), "raise SystemExit(3)\n").unwrap();
    let node = || {
        upper(&url)
            .run_locally_from(repo.to_str().unwrap())
            .local_dir(work.path().join("spaces"))
    };
    // No fallback: the error says why.
    let err = connect_error(node().local_fallback(false)).await;
    assert!(
        err.contains("run_locally") && err.contains("sdk: docker"),
        "{err}"
    );
    // Fallback: the remote app (here the shared one) answers, with a warning.
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("fallback").cache(cache);
    let out = g.add(node(), (constant("fallback".to_string()),));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), "FALLBACK");
    // The decision stays in the node's log, with the reason.
    let result = pipeline.result("upper").unwrap().unwrap();
    let lines: Vec<&str> = result.logs.lines.iter().map(|l| l.line.as_str()).collect();
    assert!(
        lines.iter().any(
            |l| l.contains("run_locally failed; using the remote") && l.contains("sdk: docker")
        ),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gradio_nodes_fit_in_pipeline_macro_nodes() {
    use daggr::pipeline;
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(text_app);
    fn url() -> &'static str {
        URL.get().unwrap()
    }
    pipeline! {
        struct Shout {
            inputs {
                text: String = "macro".to_string(),
            }
            nodes {
                loud = [GradioNode::new("loud", url()).api("/upper").input::<String>("text").output::<String>("upper")](text);
                both = [GradioNode::new("both", url()).api("/combine").input::<f64>("x").input::<String>("label").output::<f64>("doubled").output::<String>("joined")](2.5, loud);
            }
            outputs {
                joined: String = both.1,
            }
        }
    }
    let (_d, cache) = temp_cache();
    let flow = Shout::build(cache).unwrap();
    flow.preflight().await.unwrap();
    let report = flow.run().await.unwrap();
    assert_eq!(*report.value(&flow.outputs.joined).unwrap(), "MACRO:2.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_every_run_of_a_node() {
    let url = text_app();
    let proxy = FaultProxy::start(&url).await;
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("many").cache(cache);
    let node = upper(&proxy.url).cache_policy(CachePolicy::NeverCache);
    let out = g.add(node, (constant("a".to_string()),));
    let pipeline = g.build().unwrap();
    for _ in 0..5 {
        assert_eq!(
            *pipeline.run(Scope::All).await.unwrap().value(&out).unwrap(),
            "A"
        );
    }
    let seen = proxy.seen();
    assert_eq!(
        seen.iter().filter(|s| s.path == "/config").count(),
        1,
        "config read once per node"
    );
    assert_eq!(submits(&proxy, "upper"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_checks_every_node_before_any_runs_and_keeps_the_connections() {
    let url = text_app();
    let proxy = FaultProxy::start(&url).await;
    let (_d, cache) = temp_cache();
    // A chain whose first step would run long before the second's mistakes showed.
    let mut g = Graph::new("preflight").cache(cache.clone());
    let slow_step = g.add(
        slow(&proxy.url, "first"),
        (constant("x".to_string()), constant(30.0)),
    );
    let wrong_api = g.add(upper(&proxy.url).api("/uper"), (slow_step,));
    g.add(
        GradioNode::new("wrong_port", &proxy.url)
            .api("/upper")
            .input::<String>("txt")
            .output::<String>("o"),
        (wrong_api,),
    );
    let err = g.build().unwrap().preflight().await.unwrap_err();
    let Error::Invalid(problems) = &err else {
        panic!("two problems, not {err:?}")
    };
    let nodes: Vec<_> = problems.iter().map(|e| e.node().unwrap()).collect();
    assert_eq!(nodes, ["upper", "wrong_port"], "in node order: {err}");
    let text = err.to_string();
    assert!(text.contains("did you mean `/upper`?"), "{text}");
    assert!(text.contains("did you mean `text`?"), "{text}");
    assert_eq!(submits(&proxy, "slow"), 0, "the slow first step never ran");
    let configs = || proxy.seen().iter().filter(|s| s.path == "/config").count();
    assert_eq!(
        configs(),
        1,
        "the three nodes connected, sharing one connection to the app"
    );

    // One mistake is returned as it is.
    let mut g = Graph::new("one").cache(cache.clone());
    g.add(upper(&url).api("/uper"), (constant("x".to_string()),));
    let err = g.build().unwrap().preflight().await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");

    // A sound pipeline passes, and its runs use the connection preflight made.
    let mut g = Graph::new("sound").cache(cache);
    let out = g.add(upper(&proxy.url), (constant("ok".to_string()),));
    let pipeline = g.build().unwrap();
    pipeline.preflight().await.unwrap();
    assert_eq!(
        configs(),
        2,
        "preflight read /config (the first pipeline, and its connection, are gone)"
    );
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), "OK");
    assert_eq!(configs(), 2, "the run connected no second time");
}

// ---------- issue 12: stale or detached remote work ----------

/// The node for the app of a `run_locally_from(dir)` test: `/reverse` of LOCAL_APP.
fn local_reverse(
    dir: &std::path::Path,
    spaces: &std::path::Path,
) -> GradioNode<(String,), (String,)> {
    GradioNode::new("reverse", "fixtures/reverse")
        .api("/reverse")
        .input::<String>("text")
        .output::<String>("reversed")
        .run_locally_from(dir.to_str().unwrap())
        .local_dir(spaces)
        .local_fallback(false)
        .local_timeout(Duration::from_secs(120))
        .local_pip_args(gradio_support::wheelhouse_args())
}

/// Writes a Space for LOCAL_APP into `dir`: README (this Gradio, this python3),
/// requirements (Gradio 4.44's pins) and `app.py` with `reverse` returning `body`.
fn write_local_space(dir: &std::path::Path, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let python3 = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    let python3 = String::from_utf8(python3.stdout)
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(
        dir.join("README.md"),
        format!(
            "---\ntitle: Reverse\nsdk: gradio\nsdk_version: {}\napp_file: app.py\npython_version: \"{python3}\"\n---\n",
            gradio_support::gradio_version_string()
        ),
    )
    .unwrap();
    let pins = if gradio_support::gradio_version().0 == 4 {
        "huggingface_hub<1.0\npydantic==2.10.6\nfastapi==0.115.6\n"
    } else {
        ""
    };
    std::fs::write(dir.join("requirements.txt"), pins).unwrap();
    set_reverse(dir, body);
}

fn set_reverse(dir: &std::path::Path, body: &str) {
    std::fs::write(dir.join("app.py"), LOCAL_APP.replace("text[::-1]", body)).unwrap();
}

/// Issue 12.1: a node running its app locally from a directory is keyed by the code as it
/// is at each run, connected lazily or by preflight. Before, a lazy node asked the Hub
/// for the (here unknown) Space's revision, got none, and served the old result from the
/// disk cache after the app was edited.
///
/// A plain directory is keyed by a hash of its files (what the app writes, venvs and
/// logs left out); once it is a git repository, by its commit and a hash of its
/// uncommitted changes. An edit between two runs of the same pipeline starts the app
/// again, so the new key is computed by the new code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_locally_keys_the_cache_by_the_apps_code_at_each_run() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("space");
    let spaces = work.path().join("spaces");
    write_local_space(&dir, "text[::-1]");
    let (_d, cache) = temp_cache();
    let input = || constant("local space".to_string());
    // A fresh pipeline, run lazily: (outcome, value).
    let fresh = |preflight: bool| {
        let (cache, dir, spaces) = (cache.clone(), dir.clone(), spaces.clone());
        async move {
            let mut g = Graph::new("local").cache(cache);
            let out = g.add(local_reverse(&dir, &spaces), (input(),));
            let pipeline = g.build().unwrap();
            if preflight {
                pipeline.preflight().await.unwrap();
            }
            let report = pipeline.run(Scope::All).await.unwrap();
            assert!(report.is_success(), "{:?}", report.errors());
            let outcome = report.outcome("reverse").cloned().unwrap();
            (outcome, report.value(&out).unwrap().to_string())
        }
    };
    let computed = |o: &Outcome| matches!(o, Outcome::Computed { .. });
    let cached = |o: &Outcome| matches!(o, Outcome::Cached(_));

    // A plain directory, lazily.
    let (o, v) = fresh(false).await;
    assert!(computed(&o) && v == "ecaps lacol", "{o:?} {v}");
    // What running and installing writes beside the code changes nothing.
    std::fs::create_dir_all(dir.join("__pycache__")).unwrap();
    std::fs::write(dir.join("__pycache__/app.cpython-3.pyc"), "x").unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs/run.log"), "x").unwrap();
    let (o, _) = fresh(false).await;
    assert!(cached(&o), "unchanged, lazily: {o:?}");
    let (o, _) = fresh(true).await;
    assert!(
        cached(&o),
        "unchanged, preflight: the same key as lazily: {o:?}"
    );

    // Edited between two runs of one pipeline: recomputed by the edited code.
    let mut g = Graph::new("local").cache(cache.clone());
    let out = g.add(local_reverse(&dir, &spaces), (input(),));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(cached(report.outcome("reverse").unwrap()));
    set_reverse(&dir, "text[::-1].upper()");
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert!(computed(report.outcome("reverse").unwrap()));
    assert_eq!(*report.value(&out).unwrap(), "ECAPS LACOL");
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(
        cached(report.outcome("reverse").unwrap()),
        "unchanged again"
    );
    drop(pipeline);
    let (o, v) = fresh(false).await;
    assert!(cached(&o) && v == "ECAPS LACOL", "{o:?} {v}");

    // A git repository: committed, then edited without committing, then committed.
    std::fs::write(dir.join(".gitignore"), "__pycache__/\nlogs/\n.gradio/\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "louder"]);
    set_reverse(&dir, "text[::-1] + '!'");
    let (o, v) = fresh(false).await;
    assert!(
        computed(&o) && v == "ecaps lacol!",
        "uncommitted edit: {o:?} {v}"
    );
    let (o, _) = fresh(false).await;
    assert!(cached(&o), "the same uncommitted edit: {o:?}");
    set_reverse(&dir, "text[::-1] + '?'");
    let (o, v) = fresh(false).await;
    assert!(
        computed(&o) && v == "ecaps lacol?",
        "another uncommitted edit: {o:?} {v}"
    );
    git(&dir, &["commit", "-q", "-am", "asking"]);
    set_reverse(&dir, "text[::-1] + '.'");
    git(&dir, &["commit", "-q", "-am", "stating"]);
    let (o, v) = fresh(true).await;
    assert!(
        computed(&o) && v == "ecaps lacol.",
        "a new commit: {o:?} {v}"
    );
    let (o, _) = fresh(false).await;
    assert!(cached(&o), "the commit, unchanged: {o:?}");
    // A new untracked file is code too.
    std::fs::write(dir.join("helper.py"), "X = 1\n").unwrap();
    let (o, _) = fresh(false).await;
    assert!(computed(&o), "an untracked file: {o:?}");
}

/// Issue 12.2: dropping a `RunHandle` cancels its run and the run's remote job, as
/// dropping the future of `run` does. Before, the job ran on to its end with no cancel
/// sent, and on an endpoint with Gradio's default concurrency of 1 the next call waited
/// behind it and timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_handle_cancels_its_remote_job_and_frees_the_queue() {
    let app = GradioApp::start("text_app.py");
    let slow_one = |name: &str| slow(&app.url, name).api("/slow_one");
    for protocol in [Protocol::Auto, Protocol::Call] {
        let (_d, cache) = temp_cache();
        let mut g = Graph::new("held").cache(cache);
        g.add(
            slow_one("held").protocol(protocol),
            (constant(format!("{protocol:?}")), constant(4.0)),
        );
        let pipeline = g.build().unwrap();
        let mut events = pipeline.subscribe();
        let handle = pipeline.spawn(Scope::All);
        loop {
            if let Ok(Event::NodeStarted { name, .. }) = events.recv().await {
                if &*name == "held" {
                    break;
                }
            }
        }
        // The job is submitted and running on the app.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        drop(handle);
        // The next call is not queued behind the dropped one (which had ~3 s to go).
        let started = Instant::now();
        let (_d2, cache) = temp_cache();
        let mut g = Graph::new("next").cache(cache);
        let out = g.add(
            slow_one("next")
                .protocol(protocol)
                .timeout(Duration::from_secs(2)),
            (constant("next".to_string()), constant(0.1)),
        );
        let report = g.build().unwrap().run(Scope::All).await.unwrap();
        assert!(report.is_success(), "{protocol:?}: {:?}", report.errors());
        assert_eq!(*report.value(&out).unwrap(), "slept 0.1s for next");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // Had a dropped job run on, it would have finished by now: only the two next calls did.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        slow_finished(&app.url).await,
        2.0,
        "a dropped run's job ran to its end"
    );

    // A detached run goes on: its job finishes on the app.
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("detached").cache(cache);
    g.add(
        slow_one("detached"),
        (constant("d".to_string()), constant(0.5)),
    );
    let pipeline = g.build().unwrap();
    pipeline.spawn(Scope::All).detach();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        slow_finished(&app.url).await,
        3.0,
        "the detached run's job finished"
    );
}

/// Issue 12.3: preflight (and the first run's connection) checks the declared outputs'
/// count and every port's Rust type against `/info` (Number and Slider take numbers,
/// Textbox text, Checkbox bools, JSON anything), all problems in one error naming the
/// node, the app's URL, the endpoint and each port. Before, an extra output on the
/// one-output `/upper` passed preflight and failed at run time, and a `String` was sent
/// to `/combine`'s Number `x`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_checks_output_count_and_port_types_against_info() {
    let url = text_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("types").cache(cache.clone());
    g.add(
        GradioNode::new("extra", &url)
            .api("/upper")
            .input::<f64>("text")
            .output::<String>("upper")
            .output::<String>("extra"),
        (constant(1.0),),
    );
    g.add(
        GradioNode::new("numbers", &url)
            .api("/combine")
            .input::<String>("x")
            .input::<String>("label")
            .output::<bool>("doubled")
            .output::<String>("joined"),
        (constant("2".to_string()), constant("l".to_string())),
    );
    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Any {
        on: bool,
    }
    // Sound ones: Checkbox, Slider, Dropdown; JSON takes a serde type; Option<f64> a number.
    g.add(
        GradioNode::new("flags", &url)
            .api("/flags")
            .input::<bool>("on")
            .input::<Option<f64>>("level")
            .input::<String>("choice")
            .output::<String>("text"),
        (
            constant(true),
            constant(Some(2.0)),
            constant("red".to_string()),
        ),
    );
    g.add(
        GradioNode::new("json", &url)
            .api("/echo_json")
            .input::<Any>("value")
            .output::<Any>("same"),
        (constant(Any { on: true }),),
    );
    let pipeline = g.build().unwrap();
    let err = pipeline.preflight().await.unwrap_err();
    let Error::Invalid(problems) = &err else {
        panic!("two nodes' problems, not {err:?}")
    };
    let nodes: Vec<_> = problems.iter().map(|e| e.node().unwrap()).collect();
    assert_eq!(nodes, ["extra", "numbers"], "{err}");
    let extra = problems[0].to_string();
    for part in [
        "node `extra`",
        url.as_str(),
        "/upper",
        "2 problems",
        "input `text` is declared as f64 (a number), but parameter `text` of /upper is a Textbox and takes text: declare it as String",
        "/upper returns 1 value(s) (upper), but the node declares 2 output(s); no value for `extra` (value 1)",
    ] {
        assert!(extra.contains(part), "`{part}` missing from: {extra}");
    }
    let numbers = problems[1].to_string();
    for part in [
        "node `numbers`",
        url.as_str(),
        "/combine",
        "input `x` is declared as String (text), but parameter `x` of /combine is a Number and takes a number",
        "output `doubled` is declared as bool (a bool), but return value 0 of /combine is a Number giving a number",
    ] {
        assert!(numbers.contains(part), "`{part}` missing from: {numbers}");
    }
    assert!(
        !numbers.contains("`label`") && !numbers.contains("`joined`"),
        "{numbers}"
    );

    // Unchecked until the first run, a lazy node fails with the same message there, and
    // never calls the app.
    let mut g = Graph::new("lazy").cache(cache.clone());
    g.add(
        GradioNode::new("numbers", &url)
            .api("/combine")
            .input::<String>("x")
            .input::<String>("label")
            .output::<f64>("doubled"),
        (constant("2".to_string()), constant("l".to_string())),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let lazy = error_of(&report, "numbers");
    assert!(
        lazy.contains("parameter `x` of /combine is a Number") && lazy.contains(&url),
        "{lazy}"
    );

    // Unchecked (validate(false)), the result's count is found wrong at run time: that
    // error names the app's URL too.
    let mut g = Graph::new("late").cache(cache);
    g.add(
        GradioNode::new("late", &url)
            .api("/upper")
            .validate(false)
            .input::<String>("text")
            .output::<String>("upper")
            .output::<String>("extra"),
        (constant("x".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let late = error_of(&report, "late");
    assert!(
        late.contains("wrong number of outputs") && late.contains(&url) && late.contains("`extra`"),
        "{late}"
    );
}
