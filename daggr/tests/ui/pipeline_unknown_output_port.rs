use daggr::{fn_node, pipeline};

#[fn_node(outputs(words, chars))]
fn stats(text: String) -> (usize, usize) {
    (text.split_whitespace().count(), text.len())
}

#[fn_node]
fn double(n: usize) -> usize {
    n * 2
}

pipeline! {
    struct Flow {
        inputs { text: String = String::new() }
        nodes {
            s = stats(text: text);
            d = double(n: s.word);
        }
    }
}

fn main() {}
