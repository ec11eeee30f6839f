use daggr::fn_node;

type Fallible<T> = Result<T, String>;

#[fn_node]
fn parse(text: String) -> Fallible<u32> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn main() {}
