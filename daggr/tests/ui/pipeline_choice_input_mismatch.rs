use daggr::{fn_node, pipeline, FnNode};

#[fn_node]
fn describe(image: String) -> String {
    image
}

pipeline! {
    struct Flow {
        inputs { image: String = String::new() }
        nodes {
            caption = choose(image) {
                local: describe,
                counted: [FnNode::sync("counted", |n: u64| n.to_string())],
            };
        }
    }
}

fn main() {}
