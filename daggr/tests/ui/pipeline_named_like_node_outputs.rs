use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    pub struct ShoutNodeOutputs {
        inputs { text: String = "hi".to_string() }
        nodes {
            loud = shout(text: text);
        }
    }
}

fn main() {}
