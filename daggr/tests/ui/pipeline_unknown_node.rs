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
    }
}

fn main() {}
