use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(text: String) -> String {
    text.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs {
            text: String = "hi".to_string(),
            style: String = "loud".to_string(),
            times: u32 = 2,
        }
        nodes {
            loud = shout(text: text);
        }
        outputs {
            loud: String = loud,
        }
    }
}

fn main() {}
