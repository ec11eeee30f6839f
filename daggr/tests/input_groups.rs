//! Grouped inputs and input hints: how they are declared, checked when the graph is built,
//! and shown in the graph IR (with map and choice nodes' own fields).

use daggr::{each, Cache, Choice, FnNode, Graph, InputHint};

#[test]
fn groups_and_hints_reach_the_pipeline_and_its_ir() {
    let mut g = Graph::new("render").cache(Cache::temporary().unwrap());
    let width = g.input("width", 512u32);
    let height = g.input("height", 512u32);
    let style = g.input("style", "photo".to_string());
    let words = g.input("words", vec!["a".to_string()]);
    g.group_inputs("size", &[width.node_id(), height.node_id()]);
    g.input_hint(&width, InputHint::range(64.0, 2048.0).step(64.0));
    g.input_hint(&style, InputHint::choices(["photo", "sketch"]));
    let area = g.add(
        FnNode::sync("area", |w: u32, h: u32| w * h),
        (width, height),
    );
    g.map(
        FnNode::sync("upper", |w: String| w.to_uppercase()),
        (each(words),),
    );
    g.choose(
        Choice::new("styled", "plain", FnNode::sync("plain", |s: String| s))
            .or("loud", FnNode::sync("loud", |s: String| s.to_uppercase())),
        (style,),
    );
    let pipeline = g.build().unwrap();

    let groups = pipeline.input_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "size");
    assert_eq!(
        groups[0].members,
        [width.node_id().index(), height.node_id().index()]
    );
    assert_eq!(
        pipeline.input_hint(width.node_id().index()),
        Some(InputHint::range(64.0, 2048.0).step(64.0))
    );
    assert_eq!(
        pipeline
            .input_hint(style.node_id().index())
            .unwrap()
            .choices,
        ["photo", "sketch"]
    );
    assert_eq!(pipeline.input_hint(height.node_id().index()), None);
    let _ = area;

    let ir = pipeline.graph_ir();
    let node = |name: &str| ir.nodes.iter().find(|n| n.name == name).unwrap();
    assert_eq!(node("width").group.as_deref(), Some("size"));
    assert_eq!(node("height").group.as_deref(), Some("size"));
    assert_eq!(node("style").group, None);
    assert_eq!(node("upper").kind, "map");
    assert_eq!(node("upper").mapped, ["in0"]);
    assert_eq!(node("upper").inputs[0].ty, "Vec<String>");
    assert_eq!(node("styled").kind, "choice");
    assert_eq!(node("styled").variants, ["plain", "loud"]);
    assert_eq!(node("styled").inputs.last().unwrap().name, "variant");
    // The IR's JSON round-trips (what `cargo daggr graph` and the inspector read).
    let json = ir.to_json();
    assert!(
        json.contains("\"group\":\"size\"") || json.contains("\"group\": \"size\""),
        "{json}"
    );
}

#[test]
fn group_mistakes_are_reported_together_when_built() {
    let mut g = Graph::new("bad groups").cache(Cache::temporary().unwrap());
    let a = g.input("a", 1u32);
    let b = g.input("b", 2u32);
    let sum = g.add(FnNode::sync("sum", |a: u32, b: u32| a + b), (a, b));
    g.group_inputs("pair", &[a.node_id(), b.node_id()]);
    g.group_inputs("pair", &[b.node_id()]);
    g.group_inputs("empty", &[]);
    g.group_inputs("wrong", &[sum.node_id()]);
    g.input_hint(&sum, InputHint::multiline());
    let error = g.build().unwrap_err().to_string();
    for expected in [
        "input group `pair`: the name is used by another group",
        "input group `pair`: input `b` is already in group `pair`",
        "input group `empty`: it has no inputs",
        "input group `wrong`: `sum` is not a pipeline input (made with `Graph::input`)",
        "an input hint is given for `sum`, which is not a pipeline input",
    ] {
        assert!(error.contains(expected), "missing `{expected}` in: {error}");
    }

    let mut other = Graph::new("other");
    let foreign = other.input("x", 1u32);
    let mut g = Graph::new("mine").cache(Cache::temporary().unwrap());
    g.input("y", 1u32);
    g.group_inputs("g", &[foreign.node_id()]);
    let error = g.build().unwrap_err().to_string();
    assert!(
        error.contains("input group `g` names a node of graph `other`"),
        "{error}"
    );
}
