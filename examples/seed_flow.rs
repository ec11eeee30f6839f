//! The seed flow against the real Spaces: an image-generation Space, then a
//! background-removal Space, then a Rust function that captions the result.
//!
//! ```text
//! cargo run --example seed_flow -- "a cheetah in the savanna"
//! ```
//!
//! It needs the network (huggingface.co and the Spaces' `*.hf.space` hosts), so CI does
//! not run it; without the network it says so and exits with status 2. Set `HF_TOKEN`
//! for ZeroGPU quota; it is sent only to Hugging Face hosts. A second run with the same
//! prompt and Space revisions comes from the cache.

use std::time::Duration;

use daggr::{Configure, Error, GradioNode, Image, RetryPolicy};
use serde_json::json;

/// Captions an image from what its bytes say: format, size, and how much is transparent.
#[daggr::fn_node]
fn caption(image: Image) -> String {
    let kind = image.mime().trim_start_matches("image/").to_uppercase();
    let kb = image.bytes().len() as f64 / 1024.0;
    match png_summary(image.bytes()) {
        Some((w, h, alpha)) => format!(
            "a {w}×{h} {kind} ({kb:.0} KB){}",
            if alpha {
                " with a transparent background"
            } else {
                ""
            }
        ),
        None => format!("a {kind} image of {kb:.0} KB"),
    }
}

/// Width, height and whether the PNG has an alpha channel, from its IHDR chunk.
fn png_summary(bytes: &[u8]) -> Option<(u32, u32, bool)> {
    if bytes.len() < 26 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    let colour_type = bytes[25];
    Some((w, h, colour_type == 4 || colour_type == 6))
}

fn is_network_failure(e: &Error) -> bool {
    match e {
        Error::Remote {
            status, message, ..
        } => {
            status.is_none()
                && (message.contains("cannot connect")
                    || message.contains("dns")
                    || message.contains("error sending request")
                    || message.contains("timed out"))
        }
        // Both Spaces unreachable at the preflight check.
        Error::Invalid(problems) => problems.iter().all(is_network_failure),
        _ => false,
    }
}

fn offline(e: &Error) -> ! {
    eprintln!(
        "seed_flow needs the network (huggingface.co and *.hf.space), which is not reachable here:\n  {e}"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A cheetah in the grassy savanna.".to_string());
    if let Err(e) = run(prompt).await {
        if is_network_failure(&e) {
            offline(&e);
        }
        eprintln!("seed_flow failed: {e}");
        std::process::exit(1);
    }
}

// The whole flow: two Spaces and a Rust function, wired by name and checked by rustc.
daggr::pipeline! {
    struct SeedFlow {
        inputs { prompt: String = "A cheetah in the grassy savanna.".to_string() }
        nodes {
            image = [GradioNode::new("generate", "hf-applications/Z-Image-Turbo").api("/generate_image")
                .input::<String>("prompt").input::<f64>("seed").param("width", json!(1024)).param("height", json!(1024))
                .output::<Image>("image").timeout(Duration::from_secs(600)).retry(RetryPolicy::new(1, Duration::from_secs(5)))]
                (prompt, daggr::generated("seed", || (rand_seed() % 1_000_000) as f64));
            cutout = [GradioNode::new("remove_background", "hf-applications/background-removal").api("/image")
                .input::<Image>("image").skip_output().output::<Image>("cutout").timeout(Duration::from_secs(600))](image);
            text = caption(image: cutout);
        }
        outputs { caption: String = text, cutout: Image = cutout }
    }
}

async fn run(prompt: String) -> Result<(), Error> {
    // Both Spaces' endpoints and names are checked against their APIs before anything runs
    // (a renamed endpoint of the second Space fails now, not after the generation), and each
    // Space's current revision (asked of the Hub) is part of its node's cache key. The
    // generated seed is recorded with the result, as `random.random` in the original.
    let flow = SeedFlow::new()?;
    flow.set_prompt(prompt)?;
    println!("checking the Spaces…");
    flow.preflight().await?;
    println!("calling the Spaces…");
    let report = flow.run().await?;
    if let Some(e) = report.errors().first() {
        if is_network_failure(e) {
            offline(e);
        }
        return Err(Error::Failed {
            node: e.node().unwrap_or("?").to_string(),
            message: e.to_string(),
        });
    }
    let cut_image = report.value(&flow.outputs.cutout)?;
    std::fs::write("seed_flow_cutout.png", cut_image.bytes()).map_err(|source| Error::Io {
        context: "writing seed_flow_cutout.png".into(),
        source,
    })?;
    println!("caption: {}", report.value(&flow.outputs.caption)?);
    println!("saved the cut-out image to seed_flow_cutout.png");
    Ok(())
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(7)
}
