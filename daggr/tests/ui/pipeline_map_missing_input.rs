use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(word: String, mark: String) -> String {
    word.to_uppercase() + &mark
}

pipeline! {
    struct Flow {
        inputs { words: Vec<String> = vec![] }
        nodes {
            loud = shout(word: each(words));
        }
    }
}

fn main() {}
