use daggr::{pipeline, FnNode};

pipeline! {
    struct Flow {
        inputs { name: String = "x".to_string() }
        nodes {
            shout = [FnNode::sync("shout", |a: String| a.to_uppercase())]();
            tail = [FnNode::sync("tail", |a: String| a.len())](name);
        }
    }
}

fn main() {}
