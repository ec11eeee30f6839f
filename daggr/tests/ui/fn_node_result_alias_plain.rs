use daggr::fn_node;

type Checked = Result<Vec<String>, String>;

#[fn_node]
fn words(text: String) -> Checked {
    if text.is_empty() {
        Err("no text".to_string())
    } else {
        Ok(text.split(' ').map(str::to_string).collect())
    }
}

fn main() {}
