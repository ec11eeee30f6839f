use daggr::{fn_node, pipeline};

#[fn_node]
fn count(text: String) -> usize {
    text.len()
}

pipeline! {
    struct Flow {
        inputs { text: String = String::new() }
        nodes {
            n = count(text: text);
        }
        outputs { n: String = n }
    }
}

fn main() {}
