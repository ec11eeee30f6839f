use daggr::{pipeline, FnNode};

pipeline! {
    struct Flow {
        inputs { numbers: Vec<u32> = vec![1, 2] }
        nodes {
            loud = [FnNode::sync("shout", |w: String, mark: String| w + &mark)](each(numbers), "!");
        }
    }
}

fn main() {}
