use daggr::{fn_node, pipeline};

#[fn_node]
fn count(text: String) -> usize {
    text.len()
}

#[fn_node]
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { text: String = String::new() }
        nodes {
            n = count(text: text);
            loud = shout(text: n);
        }
    }
}

fn main() {}
