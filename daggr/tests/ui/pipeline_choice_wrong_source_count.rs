use daggr::{fn_node, pipeline};

#[fn_node]
fn describe(image: String) -> String {
    image
}

pipeline! {
    struct Flow {
        inputs { image: String = String::new() }
        nodes {
            caption = choose(image, image) {
                local: describe,
            };
        }
    }
}

fn main() {}
