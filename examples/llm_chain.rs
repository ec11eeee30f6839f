//! prompt → LLM → Rust post-processing, against any OpenAI-compatible server.
//!
//! ```text
//! cargo run --example llm_chain -- --url http://127.0.0.1:8080/v1 [topic]
//! DAGGR_LLM_URL=http://127.0.0.1:8080/v1 cargo run --example llm_chain
//! DAGGR_LLM_URL=router HF_TOKEN=hf_… cargo run --example llm_chain   # the Hugging Face router
//! ```
//!
//! Offline, with the test suite's local server (`bash scripts/setup/llm.sh` installs it
//! into `~/.cache/daggr-test-env/llm-venv`; the script's header shows how to start it).
//! Without a URL the example says so and exits successfully. The answer streams: its
//! tokens are printed as they arrive. Results are cached (in `$DAGGR_CACHE_DIR`, default
//! `.daggr/cache`): a second run with the same topic calls nothing.

use std::io::Write as _;

use daggr::{fn_node, Cache, Configure, Event, Graph, InferenceNode, Scope, TerminalProgress};

/// Builds the prompt from a topic.
#[fn_node]
fn ask(topic: String) -> String {
    format!("List three short facts about {topic}, one per line.")
}

/// Keeps the non-empty lines, without list markers, numbered.
#[fn_node]
fn tidy(answer: String) -> Vec<String> {
    answer
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches(|c: char| c.is_ascii_digit() || "-*•.) ".contains(c))
                .trim()
        })
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| format!("{}. {l}", i + 1))
        .collect()
}

/// The server URL from `--url URL` or `$DAGGR_LLM_URL`, and the topic (the other argument).
fn arguments() -> (Option<String>, String) {
    let mut url = std::env::var("DAGGR_LLM_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut topic = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next(),
            _ => topic = Some(arg),
        }
    }
    (url, topic.unwrap_or_else(|| "octopuses".into()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (Some(url), topic) = arguments() else {
        println!(
            "llm_chain: no LLM server given, nothing to do.\n\
             Pass an OpenAI-compatible base URL with --url http://127.0.0.1:8080/v1 (or set \
             DAGGR_LLM_URL), or DAGGR_LLM_URL=router with HF_TOKEN set for the Hugging Face router."
        );
        return Ok(());
    };
    let model = std::env::var("DAGGR_LLM_MODEL")
        .unwrap_or_else(|_| "HuggingFaceTB/SmolLM2-135M-Instruct".into());
    let llm = InferenceNode::chat("llm", &model)
        .system("You answer briefly.")
        .temperature(0.0)
        .seed(1)
        .max_tokens(96)
        .stream(true)
        .timeout(std::time::Duration::from_secs(180));
    let llm = if url == "router" {
        llm
    } else {
        llm.base_url(&url)
    };

    let cache_dir = std::env::var("DAGGR_CACHE_DIR").unwrap_or_else(|_| ".daggr/cache".into());
    let mut g = Graph::new("llm_chain").cache(Cache::open(&cache_dir)?);
    let topic = g.input("topic", topic);
    let prompt = g.add(AskNode::new(), (topic,));
    let answer = g.add(llm, (prompt.output,));
    let facts = g.add(TidyNode::new(), (answer.text,));
    let pipeline = g.build()?;
    pipeline.set_terminal_progress(TerminalProgress::Never);

    // Print the tokens as they stream in.
    let mut events = pipeline.subscribe();
    let printer = tokio::spawn(async move {
        let mut shown = 0;
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            if let Event::NodePartial { value, .. } = event {
                let text = value["text"].as_str().unwrap_or("");
                print!("{}", &text[shown.min(text.len())..]);
                let _ = std::io::stdout().flush();
                shown = text.len();
            }
        }
    });
    let report = pipeline.run(Scope::All).await?;
    printer.abort();
    println!();
    for (node, outcome) in report.outcomes() {
        println!("{node:<5} {outcome:?}");
    }
    if let Ok(Some(usage)) = report.value(&answer.usage).as_deref() {
        println!(
            "tokens: {} in, {} out",
            usage.prompt_tokens, usage.completion_tokens
        );
    }
    match report.value(&facts.output) {
        Ok(facts) => {
            println!("facts:");
            facts.iter().for_each(|f| println!("{f}"));
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
