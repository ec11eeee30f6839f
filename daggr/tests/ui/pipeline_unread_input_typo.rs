use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs {
            text: String = "hi".to_string(),
        }
        nodes {
            loud = shout(text: txt);
        }
    }
}

fn main() {}
