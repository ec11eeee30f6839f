use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(word: String) -> String {
    word.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { numbers: Vec<u32> = vec![1, 2] }
        nodes {
            loud = shout(word: each(numbers));
        }
    }
}

fn main() {}
