use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(word: String) -> String {
    word.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { word: String = "one".to_string() }
        nodes {
            loud = shout(word: each(word));
        }
    }
}

fn main() {}
