use daggr::{fn_node, pipeline};

#[fn_node(outputs(upper, lower))]
fn cases(word: String) -> (String, String) {
    (word.to_uppercase(), word.to_lowercase())
}

pipeline! {
    struct Flow {
        inputs { words: Vec<String> = vec![] }
        nodes {
            both = cases(word: each(words));
        }
    }
}

fn main() {}
