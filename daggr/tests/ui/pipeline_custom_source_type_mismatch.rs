use daggr::{pipeline, FnNode};

pipeline! {
    struct Flow {
        inputs { name: String = "x".to_string() }
        nodes {
            combine = [FnNode::sync("combine", |a: String, b: f64| format!("{a}{b}"))](name, name);
        }
    }
}

fn main() {}
