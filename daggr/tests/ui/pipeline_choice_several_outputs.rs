use daggr::{fn_node, pipeline};

#[fn_node]
fn describe(image: String) -> String {
    image
}

#[fn_node(outputs(text, words))]
fn detailed(image: String) -> (String, usize) {
    (image.clone(), image.len())
}

pipeline! {
    struct Flow {
        inputs { image: String = String::new() }
        nodes {
            caption = choose(image) {
                local: describe,
                detailed: detailed,
            };
        }
    }
}

fn main() {}
