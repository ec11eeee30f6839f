//! Issue 14 against real Gradio apps: maps of GradioNodes and choices between Gradio apps
//! and a local function.
//!
//! * A map of a text endpoint over 20 items, one of which makes the app raise: 19 results
//!   and one item error naming the item and the app's message (collected, or failing the
//!   node); one item changed → one remote call; reordered → none. The app
//!   (tests/fixtures/gradio/map_app.py) counts the calls it gets and how many ran at once,
//!   so the counts are the server's, and the node's group limit and the pipeline's
//!   concurrency are checked per item where they matter: at the app.
//! * A choice between two Gradio apps and a local `FnNode` with fallback: the selected
//!   app's process is killed and the next variant answers, the result's parts saying which
//!   variant produced it and why the others failed; switching back after a restart is a
//!   cache hit.
//! * A map of an image endpoint over `daggr::Image` values, on two apps: each content is
//!   uploaded once per app (counted by the fault proxy in front of each).
//!
//! Each test starts its own apps: they count calls, so tests running at the same time must
//! not share them.

mod gradio_support;

use std::time::{Duration, Instant};

use daggr::gradio::GradioNode;
use daggr::{
    each, CachePolicy, Choice, Configure, Error, FnNode, Graph, Image, Map, Outcome, Parts,
    Pipeline, Scope,
};
use gradio_support::fault_proxy::{FaultProxy, Seen};
use gradio_support::{pixels, png, temp_cache, GradioApp};
use serde_json::Value as Json;

/// How long map_app.py's counted endpoints sleep per call (its `DELAY`).
const APP_DELAY: Duration = Duration::from_millis(200);

/// A node calling map_app.py's `/shout` (text → capitals; raises on "boom").
fn shout(url: &str) -> GradioNode<(String,), (String,)> {
    GradioNode::new("shout", url)
        .api("/shout")
        .input::<String>("text")
        .output::<String>("shouted")
}

/// What an app running map_app.py was called with since the last take.
#[derive(Debug)]
struct Calls {
    /// The inputs of its `/shout` and `/tag` calls, in arrival order.
    inputs: Vec<String>,
    /// The most of them in flight at once.
    most: u64,
}

/// Takes the calls map_app.py at `url` counted (and starts its count afresh).
async fn take_calls(url: &str) -> Calls {
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("probe").cache(cache);
    let taken = g.add(
        GradioNode::new("take_calls", url)
            .api("/take_calls")
            .output::<Json>("calls")
            .cache_policy(CachePolicy::NeverCache),
        (),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let taken = report.value(&taken).unwrap();
    Calls {
        inputs: serde_json::from_value(taken["inputs"].clone()).unwrap(),
        most: taken["most"].as_u64().unwrap(),
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

fn words(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The error of a failed node in `report`.
fn failure(report: &daggr::RunReport, node: &str) -> std::sync::Arc<Error> {
    match report.outcome(node) {
        Some(Outcome::Failed(e)) => e.clone(),
        other => panic!("`{node}` did not fail: {other:?}"),
    }
}

fn parts_of(pipeline: &Pipeline, node: daggr::NodeId) -> std::sync::Arc<Parts> {
    pipeline
        .result(node)
        .unwrap()
        .expect("a result")
        .parts
        .expect("the parts of a map or a choice evaluated part by part")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_over_twenty_items_reports_the_failing_item_and_calls_once_per_new_item() {
    let app = GradioApp::start("map_app.py");
    let (_dir, cache) = temp_cache();
    let mut items = words("word", 20);
    items[13] = "boom13".into();

    // Failed items collected: one Result per item.
    let mut g = Graph::new("map").cache(cache.clone());
    let words_in = g.input("words", items.clone());
    let shouted = g.add_map(
        Map::new(shout(&app.url)).collect_errors(),
        (each(words_in),),
    );
    let pipeline = g.build().unwrap();
    let started = Instant::now();
    let report = pipeline.run(Scope::All).await.unwrap();
    let first_run = started.elapsed();
    let calls = take_calls(&app.url).await;
    assert_eq!(
        sorted(calls.inputs.clone()),
        sorted(items.clone()),
        "one call per item"
    );
    assert!(
        calls.most > 1,
        "the items ran one after the other: {calls:?}"
    );
    let results = report.value(&shouted).unwrap();
    assert_eq!(results.len(), 20);
    for (i, result) in results.iter().enumerate() {
        if i == 13 {
            let error = result.as_ref().unwrap_err();
            assert_eq!(error.index, 13);
            assert!(
                error.error.contains("refusing to shout 'boom13'")
                    && error
                        .error
                        .contains(&format!("Gradio app at {} /shout", app.url)),
                "{error}"
            );
        } else {
            assert_eq!(result.as_ref().unwrap(), &items[i].to_uppercase());
        }
    }
    let parts = parts_of(&pipeline, shouted.node_id());
    let failed: Vec<usize> = parts.failed_items().map(|(i, _)| i).collect();
    assert_eq!(failed, [13]);
    let Parts::Items(outcomes) = &*parts else {
        panic!("a map's parts are its items: {parts:?}");
    };
    assert_eq!(
        outcomes
            .iter()
            .filter(|i| matches!(i.outcome, Outcome::Computed { .. }))
            .count(),
        19
    );
    eprintln!(
        "20 items, first run: {first_run:?}, at most {} calls at once at the app",
        calls.most
    );

    // The default, failing the node: the 19 good items are the same cache entries (same
    // node, same items), so only the failing one calls the app again.
    let mut g = Graph::new("map, failing").cache(cache.clone());
    let list = g.input("words", items.clone());
    let strict = g.map(shout(&app.url), (each(list),));
    let count = g.add(FnNode::sync("count", |w: Vec<String>| w.len()), (strict,));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(take_calls(&app.url).await.inputs, ["boom13"]);
    let error = failure(&report, "shout");
    match &*error {
        Error::ItemsFailed {
            node,
            total,
            failed,
        } => {
            assert_eq!((node.as_str(), *total), ("shout", 20));
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].index, 13);
            assert!(
                failed[0].error.contains("refusing to shout 'boom13'"),
                "{failed:?}"
            );
        }
        other => panic!("expected ItemsFailed, got {other}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("node `shout`: 1 of 20 items failed: item 13: "),
        "{error}"
    );
    assert_eq!(report.skipped(), ["count"]);
    assert!(report.value(&count).is_err());

    // The failing item fixed: one call, for it.
    items[13] = "fixed13".into();
    pipeline.set_input(&words_in, items.clone()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(take_calls(&app.url).await.inputs, ["fixed13"]);
    let results = report.value(&shouted).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[13].as_ref().unwrap(), "FIXED13");

    // One item of twenty changed: exactly one remote call.
    items[5] = "changed5".into();
    pipeline.set_input(&words_in, items.clone()).unwrap();
    let started = Instant::now();
    let report = pipeline.run(Scope::All).await.unwrap();
    let one_changed = started.elapsed();
    assert_eq!(take_calls(&app.url).await.inputs, ["changed5"]);
    assert_eq!(
        report.value(&shouted).unwrap()[5].as_ref().unwrap(),
        "CHANGED5"
    );

    // Reordered: no call, and the map says it came from the cache.
    items.reverse();
    pipeline.set_input(&words_in, items.clone()).unwrap();
    let started = Instant::now();
    let report = pipeline.run(Scope::All).await.unwrap();
    let reordered = started.elapsed();
    assert_eq!(take_calls(&app.url).await.inputs, Vec::<String>::new());
    assert!(
        matches!(report.outcome("shout"), Some(Outcome::Cached(_))),
        "{:?}",
        report.outcome("shout")
    );
    let results = report.value(&shouted).unwrap();
    let expected: Vec<String> = items.iter().map(|w| w.to_uppercase()).collect();
    let got: Vec<String> = results.iter().map(|r| r.clone().unwrap()).collect();
    assert_eq!(got, expected);
    eprintln!("one item changed: {one_changed:?}; reordered: {reordered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limits_and_the_pipelines_concurrency_apply_to_each_item() {
    let app = GradioApp::start("map_app.py");
    let (_dir, cache) = temp_cache();

    // The node's group, limited to 3: at most 3 calls at the app at once.
    let mut g = Graph::new("grouped")
        .cache(cache.clone())
        .group_limit("gradio", 3);
    let list = g.input("words", words("grouped", 20));
    let grouped = g.map(shout(&app.url).group("gradio"), (each(list),));
    let started = Instant::now();
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.value(&grouped).unwrap().len(), 20);
    let calls = take_calls(&app.url).await;
    assert_eq!(calls.inputs.len(), 20);
    assert_eq!(calls.most, 3, "{calls:?}");
    // 20 calls three at a time: at least 7 rounds of the app's delay.
    assert!(elapsed >= APP_DELAY * 7, "{elapsed:?}");
    eprintln!("group limit 3: 20 items in {elapsed:?}");

    // The pipeline's concurrency, 2: each item takes one of its slots.
    let mut g = Graph::new("narrow").cache(cache.clone()).concurrency(2);
    let list = g.input("words", words("narrow", 8));
    g.map(shout(&app.url), (each(list),));
    g.build().unwrap().run(Scope::All).await.unwrap();
    let calls = take_calls(&app.url).await;
    assert_eq!((calls.inputs.len(), calls.most), (8, 2), "{calls:?}");

    // Neither: the items run side by side, well past the group's 3.
    let mut g = Graph::new("open").cache(cache);
    let list = g.input("words", words("open", 20));
    g.map(shout(&app.url), (each(list),));
    let started = Instant::now();
    g.build().unwrap().run(Scope::All).await.unwrap();
    let elapsed = started.elapsed();
    let calls = take_calls(&app.url).await;
    assert_eq!(calls.inputs.len(), 20);
    assert!(calls.most > 3, "{calls:?}");
    eprintln!(
        "no limit: 20 items in {elapsed:?}, at most {} at once",
        calls.most
    );
}

/// A node calling map_app.py's `/tag` ("<label>: <TEXT>"), quick to give up on a dead app.
fn tag(name: &str, url: &str) -> GradioNode<(String,), (String,)> {
    GradioNode::new(name, url)
        .api("/tag")
        .input::<String>("text")
        .output::<String>("tagged")
        .retries(1, Duration::from_millis(100))
}

/// The variant a choice's result came from, and the variants that failed before it.
fn variant_of(pipeline: &Pipeline, node: daggr::NodeId) -> (String, Vec<(String, String)>) {
    match &*parts_of(pipeline, node) {
        Parts::Variant { used, failed } => (used.clone(), failed.clone()),
        other => panic!("a choice's parts name its variant: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_falls_back_when_its_app_is_stopped_and_switching_back_is_a_cache_hit() {
    let mut a = GradioApp::start_with_env("map_app.py", &[("FIXTURE_LABEL", "a")]);
    let mut b = GradioApp::start_with_env("map_app.py", &[("FIXTURE_LABEL", "b")]);
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("choice").cache(cache);
    let text = g.input("text", "hello".to_string());
    let local = FnNode::sync("local", |t: String| format!("local: {}", t.to_uppercase()));
    let caption = g.choose(
        Choice::new("caption", "a", tag("tag_a", &a.url))
            .or("b", tag("tag_b", &b.url))
            .or("local", local)
            .fallback(),
        (text,),
    );
    let pipeline = g.build().unwrap();

    // The selected app answers.
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "a: HELLO");
    assert_eq!(take_calls(&a.url).await.inputs, ["hello"]);
    assert_eq!(take_calls(&b.url).await.inputs, Vec::<String>::new());
    let (used, failed) = variant_of(&pipeline, caption.node_id());
    assert_eq!((used.as_str(), failed.len()), ("a", 0));

    // Its process stopped, and a new input: the next variant answers, and the result says
    // why `a` did not.
    a.kill();
    pipeline.set_input(&text, "world".to_string()).unwrap();
    let started = Instant::now();
    let report = pipeline.run(Scope::All).await.unwrap();
    let fallback = started.elapsed();
    assert_eq!(*report.value(&caption).unwrap(), "b: WORLD");
    assert_eq!(take_calls(&b.url).await.inputs, ["world"]);
    let (used, failed) = variant_of(&pipeline, caption.node_id());
    assert_eq!(used, "b");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "a");
    assert!(
        failed[0].1.contains(&a.url) && failed[0].1.contains("/tag"),
        "{failed:?}"
    );
    eprintln!(
        "fallback from a stopped app: {fallback:?}; why: {}",
        failed[0].1
    );

    // Again, `a` still down: a result made by a fallback is not reused whole, so `a` is
    // tried again (it may be back); `b`'s result is a cache hit.
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "b: WORLD");
    assert_eq!(take_calls(&b.url).await.inputs, Vec::<String>::new());
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));
    let (used, failed) = variant_of(&pipeline, caption.node_id());
    assert_eq!((used.as_str(), failed.len()), ("b", 1));

    // Both apps down: the local function answers a new input; both failures are
    // recorded, in order.
    b.kill();
    pipeline.set_input(&text, "third".to_string()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "local: THIRD");
    let (used, failed) = variant_of(&pipeline, caption.node_id());
    assert_eq!(used, "local");
    let tried: Vec<&str> = failed.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(tried, ["a", "b"]);
    assert!(failed[1].1.contains(&b.url), "{failed:?}");

    // Both back. Selecting `b` for "world": its result from the fallback is a cache hit.
    a.restart();
    b.restart();
    pipeline.set_input(&text, "world".to_string()).unwrap();
    pipeline.select_variant("caption", "b").unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "b: WORLD");
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));
    assert_eq!(
        variant_of(&pipeline, caption.node_id()),
        ("b".into(), vec![])
    );

    // Switching back to `a` for "hello": the result it made before it was stopped, no call.
    pipeline.set_input(&text, "hello".to_string()).unwrap();
    pipeline.select_variant("caption", "a").unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "a: HELLO");
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));
    assert_eq!(take_calls(&a.url).await.inputs, Vec::<String>::new());
    assert_eq!(take_calls(&b.url).await.inputs, Vec::<String>::new());

    // And the restarted app computes a new input.
    pipeline.set_input(&text, "again".to_string()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "a: AGAIN");
    assert_eq!(take_calls(&a.url).await.inputs, ["again"]);
}

/// The requests of a stretch the proxy saw that uploaded a file, and that submitted a
/// call (`/call/{api}` on Gradio ≥ 6.13, `/queue/join` before).
fn uploads_and_submits(seen: &[Seen]) -> (usize, usize) {
    let route = |s: &Seen| {
        let path = s.path.split('?').next().unwrap_or("").to_string();
        path.strip_prefix("/gradio_api")
            .unwrap_or(&path)
            .to_string()
    };
    let posts = seen.iter().filter(|s| s.method == "POST").map(route);
    posts.fold((0, 0), |(up, sub), r| {
        if r == "/upload" {
            (up + 1, sub)
        } else if r == "/queue/join" || (r.starts_with("/call/") && r.matches('/').count() == 2) {
            (up, sub + 1)
        } else {
            (up, sub)
        }
    })
}

fn invert(name: &str, url: &str) -> GradioNode<(Image,), (Image,)> {
    GradioNode::new(name, url)
        .api("/invert")
        .input::<Image>("img")
        .output::<Image>("inverted")
}

fn solid(rgb: [u8; 3]) -> Image {
    png(4, 3, move |x, _| {
        [rgb[0], rgb[1], rgb[2].wrapping_add(x as u8)]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_of_an_image_endpoint_uploads_each_content_once_per_app() {
    let one = GradioApp::start("image_app.py");
    let two = GradioApp::start("image_app.py");
    let proxy_one = FaultProxy::start(&one.url).await;
    let proxy_two = FaultProxy::start(&two.url).await;
    let (_dir, cache) = temp_cache();
    let (red, green, blue, grey) = (
        solid([200, 10, 10]),
        solid([10, 200, 10]),
        solid([10, 10, 200]),
        solid([90, 90, 90]),
    );
    // Six items, four contents: red and green twice.
    let mut pictures = vec![
        red.clone(),
        green.clone(),
        blue,
        red.clone(),
        green.clone(),
        grey,
    ];
    let mut g = Graph::new("images").cache(cache);
    let list = g.input("pictures", pictures.clone());
    let inverted_one = g.map(invert("invert_one", &proxy_one.url), (each(list),));
    let inverted_two = g.map(invert("invert_two", &proxy_two.url), (each(list),));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let check = |report: &daggr::RunReport, pictures: &[Image]| {
        for out in [&inverted_one, &inverted_two] {
            let inverted = report.value(out).unwrap();
            assert_eq!(inverted.len(), pictures.len());
            for (picture, inverted) in pictures.iter().zip(inverted.iter()) {
                let [r, g, b] = pixels(picture).get_pixel(1, 1).0;
                assert_eq!(
                    pixels(inverted).get_pixel(1, 1).0,
                    [255 - r, 255 - g, 255 - b]
                );
            }
        }
    };
    check(&report, &pictures);
    let (uploads_one, submits_one) = uploads_and_submits(&proxy_one.seen());
    let (uploads_two, submits_two) = uploads_and_submits(&proxy_two.seen());
    eprintln!(
        "6 items, 4 contents: app one {uploads_one} uploads, {submits_one} calls; \
         app two {uploads_two} uploads, {submits_two} calls"
    );
    // One upload per content and app, however many items carry it.
    assert_eq!((uploads_one, uploads_two), (4, 4));
    // Items of the same content have the same key: each distinct item is called once.
    assert_eq!((submits_one, submits_two), (4, 4));

    // One picture changed: one upload and one call per app.
    let (from_one, from_two) = (proxy_one.seen().len(), proxy_two.seen().len());
    pictures[2] = solid([30, 60, 90]);
    pipeline.set_input(&list, pictures.clone()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    check(&report, &pictures);
    assert_eq!(uploads_and_submits(&proxy_one.seen()[from_one..]), (1, 1));
    assert_eq!(uploads_and_submits(&proxy_two.seen()[from_two..]), (1, 1));

    // Reordered: nothing is sent.
    let (from_one, from_two) = (proxy_one.seen().len(), proxy_two.seen().len());
    pictures.reverse();
    pipeline.set_input(&list, pictures.clone()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    check(&report, &pictures);
    assert_eq!(uploads_and_submits(&proxy_one.seen()[from_one..]), (0, 0));
    assert_eq!(uploads_and_submits(&proxy_two.seen()[from_two..]), (0, 0));
}
