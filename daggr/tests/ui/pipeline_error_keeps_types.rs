use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { prompt: String = String::new() }
        nodes {
            loud = shout(text: promt);
        }
        outputs { loud: String = loud }
    }
}

fn main() {
    // The pipeline's types and methods are still declared: only the typo above is reported.
    let (_graph, inputs, outputs) = Flow::graph();
    let _ = (inputs.prompt, outputs.loud);
    if let Ok(flow) = Flow::new() {
        let _ = flow.set_prompt("hi".to_string());
    }
}
