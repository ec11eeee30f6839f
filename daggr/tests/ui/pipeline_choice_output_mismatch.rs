use daggr::{fn_node, pipeline};

#[fn_node]
fn describe(image: String) -> String {
    image
}

#[fn_node]
fn measure(image: String) -> usize {
    image.len()
}

pipeline! {
    struct Flow {
        inputs { image: String = String::new() }
        nodes {
            caption = choose(image) {
                local: describe,
                size: measure,
            };
        }
    }
}

fn main() {}
