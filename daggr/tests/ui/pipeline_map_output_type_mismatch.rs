use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(word: String) -> String {
    word.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs { words: Vec<String> = vec![] }
        nodes {
            #[map(collect_errors)]
            loud = shout(word: each(words));
        }
        outputs { loud: Vec<String> = loud }
    }
}

fn main() {}
