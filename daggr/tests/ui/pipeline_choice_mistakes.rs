use daggr::{fn_node, pipeline};

#[fn_node]
fn describe(image: String) -> String {
    image
}

#[fn_node]
fn caption(image: String) -> String {
    image
}

pipeline! {
    struct Flow {
        inputs { image: String = String::new() }
        nodes {
            #[choice(selected = locl, fallbak)]
            a = choose(image) {
                local: describe,
                local: caption,
            };
            b = choose(image: image) {
                remote: caption(image: image),
            };
            #[choice(fallback)]
            c = caption(image: image);
            d = chose(image) { x: caption };
        }
    }
}

fn main() {}
