//! prompt → LLM → Rust post-processing, against any OpenAI-compatible server.
//!
//! Offline, with the test suite's local server (scripts/setup/llm.sh installs it):
//! ```text
//! ~/.cache/daggr-test-env/llm-venv/bin/python -m llama_cpp.server --model <SmolLM2 gguf> \
//!     --model_alias HuggingFaceTB/SmolLM2-135M-Instruct --host 127.0.0.1 --port 8080
//! DAGGR_LLM_URL=http://127.0.0.1:8080/v1 cargo run --example llm_chain
//! ```
//! With the Hugging Face router instead: set `HF_TOKEN` and `DAGGR_LLM_URL=router`.

use daggr::{fn_node, Configure, Graph, InferenceNode, Scope};

/// Builds the prompt from a topic.
#[fn_node]
fn ask(topic: String) -> String {
    format!("List three facts about {topic}, one per line.")
}

/// Keeps the non-empty lines, numbered.
#[fn_node]
fn tidy(answer: String) -> Vec<String> {
    answer
        .lines()
        .map(|l| l.trim().trim_start_matches(['-', '*', '•', ' ']).trim())
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| format!("{}. {l}", i + 1))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DAGGR_LLM_URL") else {
        println!("Set DAGGR_LLM_URL to an OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1), or to `router`.");
        return Ok(());
    };
    let model = std::env::var("DAGGR_LLM_MODEL")
        .unwrap_or_else(|_| "HuggingFaceTB/SmolLM2-135M-Instruct".into());
    let llm = InferenceNode::chat("llm", &model)
        .temperature(0.0)
        .max_tokens(120)
        .stream(true);
    let llm = if url == "router" {
        llm
    } else {
        llm.base_url(&url)
    };

    let mut g = Graph::new("llm_chain");
    let topic = g.input(
        "topic",
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "octopuses".into()),
    );
    let prompt = g.add(AskNode::new(), (topic,));
    let answer = g.add(
        llm.timeout(std::time::Duration::from_secs(120)),
        (prompt.output,),
    );
    let facts = g.add(TidyNode::new(), (answer,));
    let pipeline = g.build()?;
    let report = pipeline.run(Scope::All).await?;
    for (node, outcome) in report.outcomes() {
        println!("{node:<7} {outcome:?}");
    }
    match report.value(&facts.output) {
        Ok(facts) => facts.iter().for_each(|f| println!("{f}")),
        Err(e) => println!("error: {e}"),
    }
    Ok(())
}
