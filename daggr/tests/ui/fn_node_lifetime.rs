use std::borrow::Cow;

use daggr::fn_node;

#[fn_node]
fn shout<'a>(text: Cow<'a, str>) -> String {
    text.to_uppercase()
}

fn main() {}
