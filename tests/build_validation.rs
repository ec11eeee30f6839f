//! Graph validation: every problem is reported at build time, naming the node and port.

use daggr::{constant, Cache, Error, FnNode, Graph, Node, NodeSpec, PortSpec, Scope, Value};

fn cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    (dir, cache)
}

/// A node built at run time: `inputs` u64 ports summed into one u64 output.
fn sum_node(name: &str, inputs: &[&str]) -> impl Node {
    FnNodeDyn {
        spec: NodeSpec {
            name: name.into(),
            kind: "fn",
            identity: "sum".into(),
            code_fingerprint: String::new(),
            params: serde_json::Value::Null,
            inputs: inputs.iter().map(|p| PortSpec::new::<u64>(*p)).collect(),
            outputs: vec![PortSpec::new::<u64>("sum")],
            config: Default::default(),
        },
    }
}

struct FnNodeDyn {
    spec: NodeSpec,
}

impl Node for FnNodeDyn {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }
    fn run(
        &self,
        _ctx: daggr::NodeContext,
        inputs: daggr::Inputs,
    ) -> futures::future::BoxFuture<'static, Result<Vec<Value>, daggr::BoxError>> {
        let mut total = 0u64;
        for i in 0..inputs.len() {
            total += inputs.get::<u64>(i).unwrap();
        }
        Box::pin(async move { Ok(vec![Value::new(total)?]) })
    }
}

#[test]
fn duplicate_node_names_are_rejected() {
    let mut g = Graph::new("dup");
    let a = g.input("a", 1u64);
    g.add(FnNode::sync("twice", |x: u64| x * 2), (a,));
    g.add(FnNode::sync("twice", |x: u64| x * 3), (a,));
    let err = g.build().unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateNode { name } if name == "twice"),
        "{err}"
    );
}

#[test]
fn unconnected_required_input_names_node_and_port() {
    let (_d, cache) = cache();
    let mut g = Graph::new("unconnected").cache(cache);
    g.add_dyn(sum_node("total", &["left", "right"]));
    let err = g.build().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`total.left`") && text.contains("`total.right`"),
        "{text}"
    );
    assert!(matches!(err, Error::Invalid(ref all) if all.len() == 2));
}

#[test]
fn runtime_type_mismatch_names_both_ends_and_types() {
    let mut g = Graph::new("mismatch");
    let text = g.add(FnNode::sync("text", || "hi".to_string()), ());
    let total = g.add_dyn(sum_node("total", &["x"]));
    let err = g
        .connect_dyn(text.node_id(), "output", total, "x")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`text.output`") && msg.contains("alloc::string::String"),
        "{msg}"
    );
    assert!(msg.contains("`total.x`") && msg.contains("u64"), "{msg}");
}

#[test]
fn unknown_port_and_node_suggest_the_closest_name() {
    let mut g = Graph::new("typo");
    let a = g.add_dyn(sum_node("source", &[]));
    let b = g.add_dyn(sum_node("sink", &["value"]));
    let err = g.connect_dyn(a, "sum", b, "valeu").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`sink` has no input port `valeu`") && msg.contains("did you mean `value`"),
        "{msg}"
    );
    let err = g.node_id("sorce").unwrap_err();
    assert!(err.to_string().contains("did you mean `source`"), "{err}");
}

#[test]
fn cycles_are_rejected_naming_the_loop() {
    let mut g = Graph::new("cycle");
    let a = g.add_dyn(sum_node("a", &["x"]));
    let b = g.add_dyn(sum_node("b", &["x"]));
    let c = g.add_dyn(sum_node("c", &["x"]));
    g.connect_dyn(a, "sum", b, "x").unwrap();
    g.connect_dyn(b, "sum", c, "x").unwrap();
    g.connect_dyn(c, "sum", a, "x").unwrap();
    let err = g.build().unwrap_err();
    assert_eq!(err.to_string(), "the graph has a cycle: a -> b -> c -> a");
}

#[test]
fn an_input_cannot_be_wired_twice() {
    let mut g = Graph::new("twice");
    let a = g.add_dyn(sum_node("a", &[]));
    let b = g.add_dyn(sum_node("b", &["x"]));
    g.connect_dyn(a, "sum", b, "x").unwrap();
    let err = g.connect_dyn(a, "sum", b, "x").unwrap_err();
    assert!(
        matches!(err, Error::InputWiredTwice { ref node, ref port } if node == "b" && port == "x")
    );
}

#[tokio::test]
async fn a_graph_assembled_at_run_time_runs_and_gives_typed_handles() {
    let (_d, cache) = cache();
    let mut g = Graph::new("dynamic").cache(cache);
    let a = g.add_dyn(sum_node("a", &["x", "y"]));
    let b = g.add_dyn(sum_node("b", &["x"]));
    g.set_constant_value(a, "x", Value::new(2u64).unwrap())
        .unwrap();
    g.set_constant_value(a, "y", Value::new(40u64).unwrap())
        .unwrap();
    g.connect_dyn(a, "sum", b, "x").unwrap();
    assert!(g
        .set_constant_value(b, "x", Value::new("no".to_string()).unwrap())
        .is_err());
    let out = g.output::<u64>(b, "sum").unwrap();
    assert!(g.output::<String>(b, "sum").is_err());
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), 42);
}

#[test]
fn constants_that_cannot_be_encoded_are_reported_at_build() {
    use std::collections::HashMap;
    let mut g = Graph::new("codec");
    // JSON maps need string keys: a map keyed by a tuple cannot be encoded.
    let bad: HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    g.add(
        FnNode::sync("count", |m: HashMap<(u8, u8), u8>| m.len()),
        (constant(bad),),
    );
    let err = g.build().unwrap_err();
    assert!(err.to_string().contains("port `count.in0`"), "{err}");
}

#[test]
fn a_handle_from_another_graph_is_an_error_naming_both_graphs() {
    let mut first = Graph::new("first");
    let big = first.input("big", 200u64);
    let mut second = Graph::new("second");
    let _small = second.input("small", 14u64);
    // `big` is node 0 of `first`; at index 0 of `second` sits `small`: wiring it must not
    // read `small`.
    second.add(FnNode::sync("double", |x: u64| x * 2), (big,));
    let err = second.build().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`double.in0`")
            && text.contains("graph `second`")
            && text.contains("graph `first`"),
        "{text}"
    );
    // The handle still works in its own graph.
    first.add(FnNode::sync("double", |x: u64| x * 2), (big,));
    first.build().unwrap();
}

#[test]
fn node_ids_from_another_graph_are_refused() {
    let mut first = Graph::new("first");
    let a = first.add_dyn(sum_node("a", &[]));
    let mut second = Graph::new("second");
    let b = second.add_dyn(sum_node("b", &["x"]));
    for err in [
        second.connect_dyn(a, "sum", b, "x").unwrap_err(),
        second.set_constant(a, "x", 1u64).unwrap_err(),
        second.output::<u64>(a, "sum").map(|_| ()).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            text.contains("graph `first`") && text.contains("graph `second`"),
            "{text}"
        );
    }
    let handle = first.output::<u64>(a, "sum").unwrap();
    assert_eq!(handle.graph_id(), first.id());
    assert_ne!(first.id(), second.id());
}

mod fallible {
    //! `Err` fails a `#[fn_node]` node whatever the error type, and through a `Result` alias.
    use daggr::{fn_node, Error, Graph, Scope};

    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot read the count")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[fn_node]
    fn count(text: String) -> Result<u64> {
        Ok(text.parse().map_err(Outer)?)
    }

    struct Shown;
    impl std::fmt::Display for Shown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("shown only")
        }
    }

    #[fn_node]
    fn display_only(x: u64) -> std::result::Result<u64, Shown> {
        if x > 0 {
            Ok(x)
        } else {
            Err(Shown)
        }
    }

    /// The errors of the two nodes (`None` for one with a value).
    async fn failure(text: &str) -> (Option<Error>, Option<Error>) {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Graph::new("fallible").cache(daggr::Cache::open(dir.path()).unwrap());
        let text = g.input("text", text.to_string());
        let n = g.add(CountNode::new(), CountNode::inputs().text(text).finish());
        let checked = g.add(
            DisplayOnlyNode::new(),
            DisplayOnlyNode::inputs().x(n.output).finish(),
        );
        let report = g.build().unwrap().run(Scope::All).await.unwrap();
        (
            report.value(&n.output).err(),
            report.value(&checked.output).err(),
        )
    }

    #[tokio::test]
    async fn err_of_an_aliased_result_fails_the_node_with_its_source_chain() {
        let err = failure("many").await.0.expect("`count` fails");
        let text = format!("{err}");
        assert!(text.contains("cannot read the count"), "{text}");
        let mut chain = String::new();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!("{s} / "));
            source = s.source();
        }
        assert!(
            chain.contains("invalid digit") || text.contains("invalid digit"),
            "the cause is kept: {text} / {chain}"
        );
        let err = failure("0").await.1.expect("`display_only` fails");
        assert!(format!("{err}").contains("shown only"), "{err}");
    }
}

/// A handle of one graph given to another pipeline, its report or its scopes is refused
/// with an error naming both graphs: never taken for this graph's node of the same index
/// (or an index out of range, which used to panic).
#[tokio::test]
async fn handles_of_another_graph_are_refused_everywhere() {
    let (_d, cache) = cache();
    let mut small = Graph::new("small").cache(cache.clone());
    let x = small.input("x", 1u64);
    let small = small.build().unwrap();

    let mut big = Graph::new("big").cache(cache);
    let a = big.input("a", 2u64);
    let b = big.input("b", 3u64);
    let sum = big.add(FnNode::sync("sum", |a: u64, b: u64| a + b), (a, b));
    let big = big.build().unwrap();

    // `b` (index 1) does not exist in `small`; `a` (index 0) would be `x` there.
    for handle in [&a, &b] {
        let err = small.set_input(handle, 9).unwrap_err();
        assert!(matches!(err, Error::ForeignHandle { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("Pipeline::set_input"), "{text}");
        assert!(text.contains("graph `big`"), "{text}");
        assert!(text.contains("belongs to `small`"), "{text}");
    }
    let report = small.run(Scope::All).await.unwrap();
    let err = report.value(&sum).unwrap_err();
    assert!(matches!(err, Error::ForeignHandle { .. }), "{err}");
    assert!(err.to_string().contains("RunReport::value"), "{err}");
    let err = small.run(Scope::to(sum)).await.unwrap_err();
    assert!(matches!(err, Error::ForeignHandle { .. }), "{err}");
    let err = big.run(Scope::only(x)).await.unwrap_err();
    assert!(err.to_string().contains("graph `small`"), "{err}");
    // Its own handles still work.
    small.set_input(&x, 5).unwrap();
    let report = big.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&sum).unwrap(), 5);
}
