use daggr::{fn_node, pipeline};

#[fn_node(outputs(words, chars))]
fn stats(text: String) -> (usize, usize) {
    (text.split_whitespace().count(), text.len())
}

#[fn_node(version = "2", timeout = "30s", retries = 2, group = "io")]
async fn fetch(n: usize) -> Result<String, std::io::Error> {
    Ok("x".repeat(n))
}

#[fn_node(cache = "never", inline)]
fn join(a: String, b: usize) -> String {
    format!("{a}{b}")
}

pipeline! {
    pub struct Flow {
        inputs { text: String = "two words".to_string() }
        nodes {
            s = stats(text: text);
            f = fetch(n: s.words);
            j = join(a: f, b: s.chars);
        }
        outputs { joined: String = j, chars: usize = s.chars }
    }
}

fn main() {
    let (_graph, inputs, outputs) = Flow::graph();
    let _ = (inputs.text, outputs.joined, outputs.chars);
}
