//! Every kind of source `pipeline!` accepts, and the generated methods; a leaf node that no
//! output reads compiles without warnings.
#![deny(warnings)]
use daggr::{fn_node, pipeline, FnNode};

#[fn_node]
fn mix(text: String, seed: u64, times: u32, sep: String) -> String {
    format!("{seed}").repeat(times as usize) + &sep + &text
}

pipeline! {
    /// Documented.
    pub struct Sources {
        inputs {
            text: String = "x".to_string(),
            times: u32 = 2,
        }
        nodes {
            upper = [FnNode::sync("upper", |t: String| t.to_uppercase())](text);
            m = mix(text: upper, seed: daggr::random_seed(), times: times, sep: { "-".repeat(2) });
            n = mix(text: m, seed: 7, times: 1, sep: "/");
            leaf = mix(text: n, seed: { 1 + 1 }, times: 1, sep: "");
        }
        outputs {
            first: String = m,
            last: String = n,
        }
    }
}

fn main() {
    let (_graph, inputs, outputs) = Sources::graph();
    let _ = (inputs.text, inputs.times, outputs.first, outputs.last);
    let _ = Sources::graph_json;
    let _ = Sources::set_times;
    assert_eq!(Sources::NAME, "Sources");
}
