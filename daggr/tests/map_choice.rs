//! Map and choice nodes with Rust function nodes: per-item caching, concurrency, failures,
//! cancellation; variant selection, switching back, fallback and its provenance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daggr::{
    constant, each, Cache, CacheSource, Choice, Configure, Error, FnNode, Graph, ItemError, Map,
    NodeContext, Outcome, Parts, Scope, Value,
};

/// Counts calls and the most calls in flight at once.
#[derive(Default)]
struct Calls {
    total: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Calls {
    fn enter(&self) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn take(&self) -> usize {
        self.total.swap(0, Ordering::SeqCst)
    }
}

/// `upper` over words, slow enough that items overlap; `bad` words fail.
fn upper(calls: Arc<Calls>) -> FnNode<(String,), String> {
    FnNode::try_sync("upper", move |w: String| {
        calls.enter();
        std::thread::sleep(Duration::from_millis(20));
        calls.leave();
        if w.starts_with("bad") {
            Err(format!("cannot shout `{w}`"))
        } else {
            Ok(w.to_uppercase())
        }
    })
}

fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i}")).collect()
}

#[tokio::test]
async fn each_item_is_cached_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("map").cache(Cache::open(dir.path()).unwrap());
    let list = g.input("words", words(20));
    let loud = g.map(upper(calls.clone()), (each(list),));
    let pipeline = g.build().unwrap();

    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 20);
    assert!(
        calls.most.load(Ordering::SeqCst) > 1,
        "items run concurrently"
    );
    let expected: Vec<String> = words(20).iter().map(|w| w.to_uppercase()).collect();
    assert_eq!(*report.value(&loud).unwrap(), expected);
    let result = pipeline.result(loud.node_id()).unwrap().unwrap();
    match result.parts.as_deref() {
        Some(Parts::Items(items)) => {
            assert_eq!(items.len(), 20);
            assert!(items
                .iter()
                .all(|i| matches!(i.outcome, Outcome::Computed { .. })));
        }
        other => panic!("expected item outcomes, got {other:?}"),
    }

    // One item of twenty changed: one call.
    let mut changed = words(20);
    changed[7] = "seven".into();
    pipeline.set_input(&list, changed.clone()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 1);
    assert_eq!(report.value(&loud).unwrap()[7], "SEVEN");

    // Reordered: no call, and the map reports a cache hit.
    changed.reverse();
    pipeline.set_input(&list, changed.clone()).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 0);
    assert!(matches!(report.outcome("upper"), Some(Outcome::Cached(_))));
    assert_eq!(report.value(&loud).unwrap()[12], "SEVEN");

    // A new process (same cache directory): the whole list is one hit.
    assert!(pipeline.cache().flush().is_empty());
    let mut g = Graph::new("map").cache(Cache::open(dir.path()).unwrap());
    let list = g.input("words", changed);
    let loud = g.map(upper(calls.clone()), (each(list),));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 0);
    assert!(matches!(
        report.outcome("upper"),
        Some(Outcome::Cached(CacheSource::Disk))
    ));
    assert_eq!(report.value(&loud).unwrap().len(), 20);
}

#[tokio::test]
async fn an_item_shares_its_cache_entry_with_the_node_on_its_own() {
    let calls = Arc::new(Calls::default());
    let cache = Cache::temporary().unwrap();
    let mut g = Graph::new("alone").cache(cache.clone());
    g.add(upper(calls.clone()), (constant("w3".to_string()),));
    g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 1);

    let mut g = Graph::new("mapped").cache(cache);
    let list = g.input("words", words(5));
    g.map(upper(calls.clone()), (each(list),));
    g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 4, "w3 was computed by the node on its own");
}

#[tokio::test]
async fn a_failing_item_fails_the_map_after_the_others_are_cached() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("fail").cache(Cache::temporary().unwrap());
    let list = g.input(
        "words",
        vec!["a".to_string(), "bad1".into(), "c".into(), "bad2".into()],
    );
    let loud = g.map(upper(calls.clone()), (each(list),));
    let after = g.add(FnNode::sync("count", |w: Vec<String>| w.len()), (loud,));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 4);
    let Some(Outcome::Failed(error)) = report.outcome("upper") else {
        panic!("the map fails: {:?}", report.outcome("upper"));
    };
    match &**error {
        Error::ItemsFailed {
            node,
            total,
            failed,
        } => {
            assert_eq!(node, "upper");
            assert_eq!(*total, 4);
            let indices: Vec<usize> = failed.iter().map(|f| f.index).collect();
            assert_eq!(indices, [1, 3]);
            assert!(
                failed[0].error.contains("cannot shout `bad1`"),
                "{failed:?}"
            );
        }
        other => panic!("expected ItemsFailed, got {other}"),
    }
    let text = error.to_string();
    assert!(
        text.starts_with("node `upper`: 2 of 4 items failed: item 1: "),
        "{text}"
    );
    assert!(report.skipped().contains(&"count"));
    assert!(report.value(&after).is_err());

    // Rerun: the good items come from the cache, the failed ones are tried again.
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 2);
}

#[tokio::test]
async fn failed_items_can_be_skipped_or_collected() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("modes").cache(Cache::temporary().unwrap());
    let list = g.input("words", vec!["a".to_string(), "bad".into(), "c".into()]);
    let skipped = g.add_map(
        Map::new(upper(calls.clone()))
            .name("skipping")
            .skip_failed(),
        (each(list),),
    );
    let collected = g.add_map(
        Map::new(upper(calls.clone()))
            .name("collecting")
            .collect_errors(),
        (each(list),),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&skipped).unwrap(), ["A", "C"]);
    let collected = report.value(&collected).unwrap();
    assert_eq!(collected[0], Ok("A".to_string()));
    assert_eq!(
        collected[1],
        Err(ItemError {
            index: 1,
            error: "node `upper` failed: cannot shout `bad`".into()
        })
    );
    assert_eq!(collected[2], Ok("C".to_string()));
    let result = pipeline.result(skipped.node_id()).unwrap().unwrap();
    let parts = result.parts.expect("item outcomes");
    let failed: Vec<usize> = parts.failed_items().map(|(i, _)| i).collect();
    assert_eq!(failed, [1]);
    assert!(!parts.is_complete());
    // The two maps share their items' cache entries (same node, same items): the second
    // map may find the first's results, but `bad` fails in each map that tries it.
    assert!(calls.take() >= 4);

    // A partial result is not reused: the failed item is tried again, the rest are hits.
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 2, "`bad` once per map");
    assert_eq!(*report.value(&skipped).unwrap(), ["A", "C"]);
}

#[tokio::test]
async fn lists_are_zipped_and_other_inputs_go_to_every_item() {
    let mut g = Graph::new("zip").cache(Cache::temporary().unwrap());
    let names = g.input("names", vec!["ada".to_string(), "bob".into()]);
    let ages = g.input("ages", vec![36u32, 41]);
    let line = FnNode::sync("line", |name: String, age: u32, sep: String| {
        format!("{name}{sep}{age}")
    });
    let lines = g.map(line, (each(names), each(ages), constant(": ".to_string())));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&lines).unwrap(), ["ada: 36", "bob: 41"]);

    pipeline.set_input(&ages, vec![1, 2, 3]).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    let Some(Outcome::Failed(error)) = report.outcome("line") else {
        panic!("lists of different lengths fail the map");
    };
    let text = daggr::event::error_chain(&**error);
    assert!(text.contains("node `line`"), "{text}");
    // Closures' ports are named by position.
    assert!(text.contains("`in0` has 2, `in1` has 3"), "{text}");

    // An empty list: an empty output, no call.
    pipeline.set_input(&names, vec![]).unwrap();
    pipeline.set_input(&ages, vec![]).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.value(&lines).unwrap().is_empty());
}

#[tokio::test]
async fn a_map_without_a_list_is_refused_when_built() {
    let mut g = Graph::new("nolist").cache(Cache::temporary().unwrap());
    let word = g.input("word", "a".to_string());
    g.map(FnNode::sync("upper", |w: String| w.to_uppercase()), (word,));
    let error = g.build().unwrap_err().to_string();
    assert!(
        error.contains("map `upper` splits none of its inputs"),
        "{error}"
    );
    assert!(error.contains("daggr::each"), "{error}");
}

#[tokio::test]
async fn group_limits_apply_to_each_item() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("group")
        .cache(Cache::temporary().unwrap())
        .group_limit("gpu", 1);
    let list = g.input("words", words(6));
    g.map(upper(calls.clone()).group("gpu"), (each(list),));
    g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 6);
    assert_eq!(calls.most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancelling_a_run_cancels_the_items_in_flight() {
    let started = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (s, c) = (started.clone(), cancelled.clone());
    let slow = FnNode::with_context("slow", move |ctx: NodeContext, w: String| {
        let (s, c) = (s.clone(), c.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = ctx.cancelled() => { c.fetch_add(1, Ordering::SeqCst); }
            }
            Ok::<_, std::io::Error>(w)
        }
    });
    let mut g = Graph::new("cancel").cache(Cache::temporary().unwrap());
    let list = g.input("words", words(4));
    g.map(slow, (each(list),));
    let pipeline = g.build().unwrap();
    let handle = pipeline.spawn(Scope::All);
    while started.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.cancel();
    let report = handle.wait().await.unwrap();
    assert!(report.cancelled);
    assert!(matches!(
        report.outcome("slow"),
        Some(Outcome::Failed(e)) if matches!(**e, Error::Cancelled { .. })
    ));
    // The items' futures were dropped with the run (none ran to its 30 s end), and the map
    // has no result.
    assert!(pipeline
        .result(daggr::NodeRef::from("slow"))
        .unwrap()
        .is_none());
    assert_eq!(
        cancelled.load(Ordering::SeqCst),
        0,
        "dropped, not left running"
    );
}

fn variant(name: &'static str, calls: Arc<Calls>, fails: bool) -> FnNode<(String,), String> {
    FnNode::try_sync(name, move |text: String| {
        calls.enter();
        calls.leave();
        if fails {
            Err(format!("{name} is down"))
        } else {
            Ok(format!("{name}: {text}"))
        }
    })
}

#[tokio::test]
async fn a_choice_runs_the_selected_variant_and_switching_back_is_a_hit() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("choice").cache(Cache::temporary().unwrap());
    let text = g.input("text", "hi".to_string());
    let caption = g.choose(
        Choice::new("caption", "space", variant("space", calls.clone(), false))
            .or("local", variant("local", calls.clone(), false)),
        (text,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "space: hi");
    assert_eq!(calls.take(), 1);
    let result = pipeline.result(caption.node_id()).unwrap().unwrap();
    assert!(matches!(
        result.parts.as_deref(),
        Some(Parts::Variant { used, failed }) if used == "space" && failed.is_empty()
    ));

    let select = |v: &str| pipeline.select_variant("caption", v).unwrap();
    select("local");
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "local: hi");
    assert_eq!(calls.take(), 1);

    select("space");
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "space: hi");
    assert_eq!(calls.take(), 0, "switching back is a cache hit");
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));

    let refused = pipeline.select_variant("caption", "lokal").unwrap_err();
    assert_eq!(
        refused.to_string(),
        "node `caption` has no variant `lokal`; did you mean `local`? (its variants: space, local)"
    );
    // A selection set as a plain constant is checked when the node runs.
    pipeline
        .set_constant_value(
            "caption",
            "variant",
            Value::new("lokal".to_string()).unwrap(),
        )
        .unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    let Some(Outcome::Failed(error)) = report.outcome("caption") else {
        panic!("an unknown variant fails the node");
    };
    assert_eq!(
        error.to_string(),
        "node `caption` has no variant `lokal`; did you mean `local`? (its variants: space, local)"
    );
}

#[tokio::test]
async fn a_failing_selection_falls_back_and_says_so() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("fallback").cache(Cache::temporary().unwrap());
    let text = g.input("text", "hi".to_string());
    let caption = g.choose(
        Choice::new("caption", "space", variant("space", calls.clone(), true))
            .or("mirror", variant("mirror", calls.clone(), true))
            .or("local", variant("local", calls.clone(), false))
            .fallback(),
        (text,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&caption).unwrap(), "local: hi");
    assert_eq!(calls.take(), 3);
    let result = pipeline.result(caption.node_id()).unwrap().unwrap();
    let Some(Parts::Variant { used, failed }) = result.parts.as_deref() else {
        panic!("a choice records its variant");
    };
    assert_eq!(used, "local");
    let tried: Vec<&str> = failed.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(tried, ["space", "mirror"]);
    assert!(failed[0].1.contains("space is down"), "{failed:?}");

    // A fallback result is not reused by key: the selected variant is tried again next run
    // (it may be back), and the fallback's own result is a cache hit.
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        calls.take(),
        2,
        "space and mirror again, local from the cache"
    );

    // Without fallback, the selected variant's failure fails the node.
    let mut g = Graph::new("nofallback").cache(Cache::temporary().unwrap());
    let text = g.input("text", "hi".to_string());
    g.choose(
        Choice::new("caption", "space", variant("space", calls.clone(), true))
            .or("local", variant("local", calls.clone(), false)),
        (text,),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let Some(Outcome::Failed(error)) = report.outcome("caption") else {
        panic!("the selection failed");
    };
    assert_eq!(
        error.to_string(),
        "node `caption`: variant `space` failed: node `space` failed: space is down"
    );
}

#[tokio::test]
async fn a_choice_is_checked_when_built() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("bad choice").cache(Cache::temporary().unwrap());
    let text = g.input("text", "hi".to_string());
    g.choose(
        Choice::new("caption", "space", variant("space", calls.clone(), false))
            .or("space", variant("local", calls.clone(), false))
            .selected("spaec"),
        (text,),
    );
    let error = g.build().unwrap_err().to_string();
    assert!(error.contains("variant `space` is added twice"), "{error}");
    assert!(
        error.contains(
            "the selected variant `spaec` is not one of its variants; did you mean `space`?"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn items_with_the_same_inputs_run_once() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("dupes").cache(Cache::temporary().unwrap());
    let list = g.input(
        "words",
        vec!["a".to_string(), "b".into(), "a".into(), "a".into()],
    );
    let loud = g.map(upper(calls.clone()), (each(list),));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 2, "one call per distinct item");
    assert_eq!(*report.value(&loud).unwrap(), ["A", "B", "A", "A"]);
    let result = pipeline.result(loud.node_id()).unwrap().unwrap();
    let Some(Parts::Items(items)) = result.parts.as_deref() else {
        panic!("item outcomes");
    };
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].key, items[2].key);
}

#[tokio::test]
async fn a_choice_follows_its_variants_cache_policies_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let build = |never: bool, version: &str| {
        let mut g = Graph::new("policies").cache(Cache::open(dir.path()).unwrap());
        let text = g.input("text", "hi".to_string());
        let mut secret = variant("secret", calls.clone(), false).version(version);
        if never {
            secret = secret.cache_policy(daggr::CachePolicy::NeverCache);
        }
        let out = g.choose(
            Choice::new("caption", "secret", secret)
                .or("plain", variant("plain", calls.clone(), false)),
            (text,),
        );
        (g.build().unwrap(), out)
    };

    // A variant that must not be cached is called every run, in this process and the next.
    let (pipeline, _) = build(true, "1");
    pipeline.run(Scope::All).await.unwrap();
    pipeline.run(Scope::All).await.unwrap();
    assert!(pipeline.cache().flush().is_empty());
    let (pipeline, _) = build(true, "1");
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 3);

    // A cached variant: a hit, whose result still says which variant made it; bumping the
    // variant's version recomputes it.
    let (pipeline, out) = build(false, "1");
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 1);
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));
    assert!(pipeline.cache().flush().is_empty());
    let (pipeline, out2) = build(false, "1");
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 0);
    assert!(matches!(
        report.outcome("caption"),
        Some(Outcome::Cached(_))
    ));
    let result = pipeline.result(out2.node_id()).unwrap().unwrap();
    assert!(matches!(
        result.parts.as_deref(),
        Some(Parts::Variant { used, .. }) if used == "secret"
    ));
    let _ = out;
    let (pipeline, _) = build(false, "2");
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        calls.take(),
        1,
        "a new version of the selected variant runs again"
    );
}

#[daggr::fn_node]
fn exclaim(word: String, mark: String) -> String {
    format!("{word}{mark}")
}

#[tokio::test]
async fn a_fn_node_is_mapped_with_the_builder_api() {
    let mut g = Graph::new("fn map").cache(Cache::temporary().unwrap());
    let words = g.input("words", vec!["map".to_string(), "me".into()]);
    let loud = g.map(ExclaimNode::new(), (each(words), constant("!".to_string())));
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&loud).unwrap(), ["map!", "me!"]);
}

/// `stamp` over words: each call answers with the word and the call's number (counted
/// from 1 for each `stamp`), so a call made again gives another value under the same key.
fn stamp(calls: Arc<Calls>) -> FnNode<(String,), String> {
    let seq = AtomicUsize::new(0);
    FnNode::sync("stamp", move |w: String| {
        calls.enter();
        calls.leave();
        format!("{w}#{}", seq.fetch_add(1, Ordering::SeqCst) + 1)
    })
}

/// The item outcomes a map's current result carries.
fn item_outcomes(pipeline: &daggr::Pipeline, node: &str) -> Vec<Outcome> {
    let result = pipeline.result(node).unwrap().expect("a result");
    match result.parts.as_deref() {
        Some(Parts::Items(items)) => items.iter().map(|i| i.outcome.clone()).collect(),
        other => panic!("expected item outcomes, got {other:?}"),
    }
}

#[tokio::test]
async fn one_item_is_computed_again_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("rerun item").cache(Cache::open(dir.path()).unwrap());
    let list = g.input("words", words(20));
    let stamped = g.map(stamp(calls.clone()), (each(list),));
    let joined = g.add(
        FnNode::sync("join", |w: Vec<String>| w.join(" ")),
        (stamped,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 20);
    let before = report.value(&stamped).unwrap();
    let item3_key = match pipeline.result("stamp").unwrap().unwrap().parts.as_deref() {
        Some(Parts::Items(items)) => items[3].key,
        other => panic!("expected item outcomes, got {other:?}"),
    };

    // Item 3 again: one call; the other 19 are cache hits.
    let report = pipeline.run(Scope::item(stamped, 3)).await.unwrap();
    assert_eq!(calls.take(), 1);
    assert!(matches!(
        report.outcome("stamp"),
        Some(Outcome::Computed { .. })
    ));
    assert!(report.outcome("join").is_none(), "the map alone runs");
    let after = report.value(&stamped).unwrap();
    assert_eq!(after[3], "w3#21", "the gathered output has the new item");
    for i in (0..20).filter(|&i| i != 3) {
        assert_eq!(after[i], before[i], "item {i} kept its value");
    }
    let outcomes = item_outcomes(&pipeline, "stamp");
    assert!(matches!(outcomes[3], Outcome::Computed { .. }));
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Cached(_)))
            .count(),
        19
    );
    // The map's output changed: its reader is stale, as after any new result.
    assert!(pipeline.is_stale(joined).unwrap());
    assert_eq!(pipeline.stale_nodes(), ["join"]);
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        calls.take(),
        0,
        "a plain run finds the new item in the cache"
    );
    assert!(pipeline.value(&joined).unwrap().contains("w3#21"));

    // Out of range, or not a map: refused before anything runs, naming the node.
    let runs = pipeline.runs_started();
    let error = pipeline
        .run(Scope::item(stamped, 20))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "map `stamp` has 20 items (items 0 to 19): there is no item 20"
    );
    let error = pipeline
        .run(Scope::item("join", 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("node `join`") && error.contains("not a map"),
        "{error}"
    );
    assert!(matches!(
        pipeline.run(Scope::item("jion", 0)).await,
        Err(Error::UnknownNode { .. })
    ));
    assert_eq!(pipeline.runs_started(), runs);
    assert_eq!(calls.take(), 0);

    // The new value replaced the item's cache entry and the map's, on disk too: a new
    // process finds both (the item at another place in another list).
    assert!(pipeline.cache().flush().is_empty());
    let mut g = Graph::new("rerun item").cache(Cache::open(dir.path()).unwrap());
    let mut moved = words(20);
    moved.swap(3, 0);
    moved.push("new".into());
    let list = g.input("words", moved);
    let stamped = g.map(stamp(calls.clone()), (each(list),));
    let fresh = g.build().unwrap();
    let report = fresh.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 1, "only `new` is computed");
    assert_eq!(report.value(&stamped).unwrap()[0], "w3#21");
    let result = fresh.result("stamp").unwrap().unwrap();
    match result.parts.as_deref() {
        Some(Parts::Items(items)) => {
            assert_eq!(items[0].key, item3_key);
            assert!(matches!(
                items[0].outcome,
                Outcome::Cached(CacheSource::Disk)
            ));
        }
        other => panic!("expected item outcomes, got {other:?}"),
    }
}

#[tokio::test]
async fn duplicate_items_are_computed_again_together() {
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("dup rerun").cache(Cache::temporary().unwrap());
    let list = g.input("words", vec!["a".to_string(), "b".into(), "a".into()]);
    let stamped = g.map(stamp(calls.clone()), (each(list),));
    let pipeline = g.build().unwrap();
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 2);
    // Item 2 has item 0's key: one call, and both get its value.
    let report = pipeline.run(Scope::item(stamped, 2)).await.unwrap();
    assert_eq!(calls.take(), 1);
    let out = report.value(&stamped).unwrap();
    assert_eq!(out[0], out[2]);
    assert_eq!(out[0], "a#3");
}

#[tokio::test]
async fn a_map_found_whole_in_the_cache_still_has_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let build = |calls: Arc<Calls>| {
        let mut g = Graph::new("whole").cache(Cache::open(dir.path()).unwrap());
        let list = g.input("words", words(5));
        g.map(upper(calls), (each(list),));
        g.build().unwrap()
    };
    let pipeline = build(calls.clone());
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 5);
    let keys = |p: &daggr::Pipeline| match p.result("upper").unwrap().unwrap().parts.as_deref() {
        Some(Parts::Items(items)) => items.iter().map(|i| i.key).collect::<Vec<_>>(),
        other => panic!("expected item outcomes, got {other:?}"),
    };
    let computed_keys = keys(&pipeline);

    // The same workspace: its own result, each item a hit with the key it had.
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("upper"),
        Some(Outcome::Cached(CacheSource::Workspace))
    ));
    assert!(item_outcomes(&pipeline, "upper")
        .iter()
        .all(|o| matches!(o, Outcome::Cached(CacheSource::Workspace))));
    assert_eq!(keys(&pipeline), computed_keys);

    // A fresh workspace over the same cache: the whole list is a memory hit, and so is
    // each item.
    let other = pipeline.new_workspace();
    other.run(Scope::All).await.unwrap();
    assert!(item_outcomes(&other, "upper")
        .iter()
        .all(|o| matches!(o, Outcome::Cached(CacheSource::Memory))));
    assert_eq!(keys(&other), computed_keys);

    // A second process: a disk hit, items and keys the same.
    assert!(pipeline.cache().flush().is_empty());
    let again = build(calls.clone());
    let report = again.run(Scope::All).await.unwrap();
    assert_eq!(calls.take(), 0);
    assert!(matches!(
        report.outcome("upper"),
        Some(Outcome::Cached(CacheSource::Disk))
    ));
    let outcomes = item_outcomes(&again, "upper");
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Cached(CacheSource::Disk))));
    assert_eq!(keys(&again), computed_keys);
}

#[cfg(feature = "sheets")]
#[tokio::test]
async fn a_sheet_records_an_item_run_in_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let mut g = Graph::new("sheet item").cache(Cache::open(dir.path().join("cache")).unwrap());
    let list = g.input("words", words(4));
    let stamped = g.map(stamp(calls.clone()), (each(list),));
    let pipeline = g.build().unwrap();
    let store = daggr::sheet::SheetStore::open(dir.path().join("sheets.db")).unwrap();
    let sheet = store.open_or_create(&pipeline, "items").unwrap();
    sheet.run(Scope::All).await.unwrap();
    let report = sheet.run(Scope::item(stamped, 1)).await.unwrap();
    assert!(report.is_success());
    assert_eq!(calls.take(), 5);
    let history = sheet.history("stamp").unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    let newest = history.iter().max_by_key(|e| e.run).unwrap();
    assert_eq!(newest.run, report.run);
    assert!(newest.selected);
    assert_eq!(newest.outputs[0][1], "w1#5");
    match &newest.provenance.parts {
        Some(daggr::sheet::PartsRecord::Items(items)) => {
            let outcomes: Vec<&str> = items.iter().map(|i| i.outcome.as_str()).collect();
            assert_eq!(outcomes[1], "computed");
            assert_eq!(outcomes.iter().filter(|o| **o != "computed").count(), 3);
        }
        other => panic!("expected item records, got {other:?}"),
    }
    // Reopened, the sheet has the new value and its item outcomes.
    drop(sheet);
    let again = store
        .open_sheet(&pipeline.new_workspace(), "items")
        .unwrap();
    assert_eq!(again.pipeline().value(&stamped).unwrap()[1], "w1#5");
}
