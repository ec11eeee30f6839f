use daggr::pipeline;

// No `#[fn_node]`: there is no `ShoutNode` to put in a pipeline.
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { prompt: String = String::new() }
        nodes {
            loud = shout(text: prompt);
        }
    }
}

fn main() {}
