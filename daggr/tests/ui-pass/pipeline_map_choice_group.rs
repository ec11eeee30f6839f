//! `pipeline!` with maps (a `#[fn_node]` and a `[node]`, failed items collected or
//! skipped), a choice (a `#[fn_node]` variant and a `[node]` variant, switched at run time,
//! with fallback) and grouped inputs: it compiles without warnings and computes what it says.
#![deny(warnings)]
use daggr::{fn_node, pipeline, Cache, FnNode, ItemError};

#[fn_node]
fn shout(word: String, mark: String) -> String {
    word.to_uppercase() + &mark
}

#[fn_node]
fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

#[fn_node]
fn join(words: Vec<String>, width: u32, height: u32) -> String {
    format!("{}@{width}x{height}", words.join(" "))
}

#[fn_node]
fn broken(text: String) -> Result<String, String> {
    Err(format!("cannot title `{text}`"))
}

pipeline! {
    pub struct Shouting {
        inputs {
            words: Vec<String> = vec!["map".to_string(), "each".to_string()],
            numbers: Vec<String> = vec!["1".to_string(), "x".to_string(), "3".to_string()],
            group size { width: u32 = 512, height: u32 = 256 }
            mark: String = "!".to_string(),
        }
        nodes {
            /// Every word, shouted.
            loud = shout(word: each(words), mark: mark);
            #[map(collect_errors)]
            parsed = parse(text: each(numbers));
            #[map(skip_failed)]
            valid = parse(text: each(numbers));
            lengths = [FnNode::sync("len", |w: String, plus: usize| w.len() + plus)](each(loud), 1);
            line = join(words: loud, width: width, height: height);
            #[choice(selected = lower, fallback)]
            title = choose(line) {
                first: broken,
                lower: [FnNode::sync("lower", |t: String| t.to_lowercase())],
            };
        }
        outputs {
            loud: Vec<String> = loud,
            parsed: Vec<Result<u32, ItemError>> = parsed,
            valid: Vec<u32> = valid,
            lengths: Vec<usize> = lengths,
            title: String = title,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), daggr::Error> {
    let flow = Shouting::build(Cache::temporary()?)?;
    let report = flow.run().await?;
    assert_eq!(*report.value(&flow.outputs.loud)?, ["MAP!", "EACH!"]);
    let parsed = report.value(&flow.outputs.parsed)?;
    assert_eq!(parsed[0], Ok(1));
    assert_eq!(parsed[1].as_ref().unwrap_err().index, 1);
    assert_eq!(parsed[2], Ok(3));
    assert_eq!(*report.value(&flow.outputs.valid)?, [1, 3]);
    assert_eq!(*report.value(&flow.outputs.lengths)?, [5, 6]);
    assert_eq!(*report.value(&flow.outputs.title)?, "map! each!@512x256");

    // The other variant fails; with fallback, `lower` answers.
    flow.pipeline.select_variant("title", "first")?;
    let report = flow.run().await?;
    assert_eq!(*report.value(&flow.outputs.title)?, "map! each!@512x256");

    // The grouped inputs are one group, and each stays its own input.
    let groups = flow.pipeline.input_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "size");
    assert_eq!(groups[0].members.len(), 2);
    flow.set_width(64)?;
    flow.set_words(vec!["one".to_string()])?;
    let report = flow.run().await?;
    assert_eq!(*report.value(&flow.outputs.title)?, "one!@64x256");
    assert_eq!(*report.value(&flow.outputs.lengths)?, [5]);

    let ir = Shouting::graph_ir();
    let kind = |name: &str| {
        ir.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap()
            .kind
            .clone()
    };
    assert_eq!(
        (kind("loud"), kind("title")),
        ("map".to_string(), "choice".to_string())
    );
    Ok(())
}
