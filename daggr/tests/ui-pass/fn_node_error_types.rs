//! Every common error type fails the node: `Box<dyn Error>` (also `+ Send + Sync`), any
//! `std::error::Error`, `String`, any `Display`, and a `Result` alias named `Result`.
use daggr::fn_node;

#[fn_node]
fn boxed(x: u32) -> Result<u32, Box<dyn std::error::Error>> {
    Ok(x)
}

#[fn_node]
fn boxed_send(x: u32) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(x)
}

#[fn_node]
fn io(path: String) -> std::io::Result<u64> {
    std::fs::metadata(path).map(|m| m.len())
}

#[fn_node]
fn text(x: u32) -> Result<u32, String> {
    Ok(x)
}

struct Shown;

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shown")
    }
}

#[fn_node]
fn display_only(x: u32) -> Result<u32, Shown> {
    Ok(x)
}

mod app {
    pub type Result<T> = std::result::Result<T, std::num::ParseIntError>;
}

#[fn_node]
async fn aliased(text: String) -> app::Result<i64> {
    text.parse()
}

fn main() {
    let _ = (
        BoxedNode::new(),
        BoxedSendNode::new(),
        IoNode::new(),
        TextNode::new(),
        DisplayOnlyNode::new(),
        AliasedNode::new(),
    );
}
