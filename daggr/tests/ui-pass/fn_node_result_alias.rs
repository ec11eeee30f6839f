//! A `Result` behind an alias is decided by its type, not its spelling: the port carries
//! the `Result`'s `T` and `Err` fails the node with the error's text (and source chain).
//! A plain type behind an alias stays one output. The run below checks both.
use daggr::{fn_node, pipeline, Outputs};
use serde::{Deserialize, Serialize};

type Fallible<T> = Result<T, String>;
type Checked = Result<Vec<String>, String>;
type Words = Vec<String>;
type Local<T> = Result<T, Box<dyn std::error::Error>>;
type Shared<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[fn_node]
fn parse(text: String) -> Fallible<u32> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))
}

#[fn_node]
fn double(n: u32) -> u32 {
    n * 2
}

#[fn_node]
fn split(text: String) -> Checked {
    if text.is_empty() {
        Err("no text".to_string())
    } else {
        Ok(text.split(' ').map(str::to_string).collect())
    }
}

#[fn_node]
fn count(words: Vec<String>) -> usize {
    words.len()
}

#[fn_node]
fn plain(text: String) -> Words {
    vec![text]
}

#[fn_node]
async fn local(n: u32) -> Local<u32> {
    let parsed: u32 = format!("{n}x").parse()?;
    Ok(parsed)
}

#[derive(Debug)]
struct Outer(std::num::ParseIntError);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reading the count")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[fn_node]
fn shared(text: String) -> Shared<u32> {
    Ok(text.parse().map_err(Outer)?)
}

#[derive(Outputs, Serialize, Deserialize)]
pub struct Halves {
    pub head: String,
    pub tail: String,
}

#[fn_node(fields)]
fn halves(text: String) -> Fallible<Halves> {
    let (head, tail) = text.split_once(' ').ok_or("one word only")?;
    Ok(Halves {
        head: head.into(),
        tail: tail.into(),
    })
}

pipeline! {
    struct Flow {
        inputs {
            number: String = "21".to_string(),
            text: String = "two words".to_string(),
        }
        nodes {
            n = parse(text: number);
            d = double(n: n);
            w = split(text: text);
            c = count(words: w);
            p = plain(text: text);
            l = local(n: n);
            s = shared(text: number);
            h = halves(text: text);
        }
        outputs {
            doubled: u32 = d,
            words: usize = c,
            plain: Vec<String> = p,
            local: u32 = l,
            shared: u32 = s,
            tail: String = h.tail,
        }
    }
}

/// The error of a failed node, with its source chain.
fn failure(report: &daggr::RunReport, node: &str) -> String {
    match report.outcome(node) {
        Some(daggr::Outcome::Failed(error)) => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&**error);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
        other => panic!("node `{node}` did not fail: {other:?}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let flow = Flow::build(daggr::Cache::temporary().unwrap()).unwrap();
    let report = flow.run().await.unwrap();
    assert_eq!(*report.value(&flow.outputs.doubled).unwrap(), 42);
    assert_eq!(*report.value(&flow.outputs.words).unwrap(), 2);
    assert_eq!(
        *report.value(&flow.outputs.plain).unwrap(),
        vec!["two words".to_string()]
    );
    assert_eq!(*report.value(&flow.outputs.shared).unwrap(), 21);
    assert_eq!(*report.value(&flow.outputs.tail).unwrap(), "words");
    // `Box<dyn Error>` (not `Send`): its text.
    let error = failure(&report, "l");
    assert!(error.contains("invalid digit found in string"), "{error}");

    flow.set_number("many".to_string()).unwrap();
    flow.set_text(String::new()).unwrap();
    let report = flow.run().await.unwrap();
    let mut failed = report.failed();
    failed.sort();
    assert_eq!(
        failed,
        ["h", "n", "s", "w"],
        "aliased `Err`s fail their nodes"
    );
    let error = failure(&report, "n");
    assert!(error.contains("not a number: \"many\""), "{error}");
    assert!(
        report.value(&flow.outputs.doubled).is_err(),
        "downstream gets no value"
    );
    let error = failure(&report, "w");
    assert!(error.contains("no text"), "{error}");
    let error = failure(&report, "h");
    assert!(error.contains("one word only"), "{error}");
    let error = failure(&report, "s");
    assert!(
        error.contains("reading the count") && error.contains("invalid digit found in string"),
        "the source chain is kept: {error}"
    );
}
