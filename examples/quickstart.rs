//! Quick start: an offline image pipeline of Rust function nodes.
//!
//! `generate` draws a procedural scene from a seed, `blur` and `edges` process it in
//! parallel, `measure` computes statistics from both, and `caption` describes the result.
//! The example runs the pipeline, runs it again (everything is cached), changes the blur
//! (only the affected nodes rerun), and then opens the inspector.
//!
//! ```text
//! cargo run --example quickstart              # ends by serving the inspector (Ctrl-C to stop)
//! DAGGR_NO_LAUNCH=1 cargo run --example quickstart
//! ```

use std::io::Cursor;

use daggr::{fn_node, pipeline, CacheSource, Image, Outcome, RunReport};
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// Statistics of the processed image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Mean brightness of the blurred image, 0–255.
    pub brightness: f64,
    /// Standard deviation of the blurred image's brightness.
    pub contrast: f64,
    /// Share of pixels on an edge, 0–1.
    pub edge_density: f64,
}

fn png(image: &image::DynamicImage) -> Result<Image, image::ImageError> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)?;
    Ok(Image::named(bytes, "image/png", "image.png"))
}

fn decode(image: &Image) -> Result<image::DynamicImage, image::ImageError> {
    image::load_from_memory(image.bytes())
}

/// A sky gradient with seeded "planets" (xorshift, so the same seed draws the same scene).
#[fn_node]
fn generate(width: u32, height: u32, seed: u64) -> Result<Image, image::ImageError> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut img = RgbImage::from_fn(width, height, |_, y| {
        let t = y as f64 / height as f64;
        Rgb([
            (20.0 + 60.0 * t) as u8,
            (30.0 + 90.0 * t) as u8,
            (90.0 + 120.0 * t) as u8,
        ])
    });
    for _ in 0..6 {
        let (cx, cy) = (
            (next() % width as u64) as i64,
            (next() % height as u64) as i64,
        );
        let r = (8 + next() % (width as u64 / 6).max(9)) as i64;
        let color = Rgb([
            (next() % 200 + 55) as u8,
            (next() % 200 + 55) as u8,
            (next() % 120) as u8,
        ]);
        for y in (cy - r).max(0)..(cy + r).min(height as i64) {
            for x in (cx - r).max(0)..(cx + r).min(width as i64) {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    img.put_pixel(x as u32, y as u32, color);
                }
            }
        }
    }
    png(&img.into())
}

/// Gaussian blur.
#[fn_node]
fn blur(image: Image, sigma: f32) -> Result<Image, image::ImageError> {
    png(&decode(&image)?.blur(sigma))
}

/// Sobel edge magnitude, as a grey image.
#[fn_node]
fn edges(image: Image) -> Result<Image, image::ImageError> {
    let gray = decode(&image)?.to_luma8();
    let (w, h) = gray.dimensions();
    let at = |x: i64, y: i64| {
        gray.get_pixel(
            x.clamp(0, w as i64 - 1) as u32,
            y.clamp(0, h as i64 - 1) as u32,
        )[0] as f64
    };
    let out = GrayImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as i64, y as i64);
        let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
            - at(x - 1, y - 1)
            - 2.0 * at(x - 1, y)
            - at(x - 1, y + 1);
        let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
            - at(x - 1, y - 1)
            - 2.0 * at(x, y - 1)
            - at(x + 1, y - 1);
        Luma([(gx.hypot(gy) / 4.0).min(255.0) as u8])
    });
    png(&out.into())
}

/// Brightness and contrast of the blurred image, edge density of the edge map.
#[fn_node]
fn measure(blurred: Image, edge_map: Image) -> Result<Stats, image::ImageError> {
    let luma = decode(&blurred)?.to_luma8();
    let n = luma.pixels().len() as f64;
    let mean = luma.pixels().map(|p| p[0] as f64).sum::<f64>() / n;
    let var = luma
        .pixels()
        .map(|p| (p[0] as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let edge = decode(&edge_map)?.to_luma8();
    let on_edge = edge.pixels().filter(|p| p[0] > 40).count() as f64 / edge.pixels().len() as f64;
    Ok(Stats {
        brightness: mean,
        contrast: var.sqrt(),
        edge_density: on_edge,
    })
}

/// A one-line description.
#[fn_node]
fn caption(stats: Stats) -> String {
    let light = match stats.brightness {
        b if b < 70.0 => "a dark",
        b if b < 140.0 => "a dim",
        _ => "a bright",
    };
    let busy = if stats.edge_density > 0.05 {
        "busy"
    } else {
        "calm"
    };
    format!(
        "{light}, {busy} scene (brightness {:.0}, contrast {:.0}, {:.1}% edges)",
        stats.brightness,
        stats.contrast,
        stats.edge_density * 100.0
    )
}

pipeline! {
    /// Generate → (blur ‖ edges) → measure → caption.
    pub struct Quickstart {
        inputs {
            width: u32 = 320,
            height: u32 = 200,
            seed: u64 = 7,
            sigma: f32 = 2.5,
        }
        nodes {
            scene = generate(width: width, height: height, seed: seed);
            soft = blur(image: scene, sigma: sigma);
            outline = edges(image: scene);
            stats = measure(blurred: soft, edge_map: outline);
            text = caption(stats: stats);
        }
        outputs {
            caption: String = text,
            stats: Stats = stats,
            soft: Image = soft,
            outline: Image = outline,
        }
    }
}

/// Prints what each node of a run did (the pipeline's inputs are not work: not shown).
fn show(title: &str, report: &RunReport, flow: &Quickstart) {
    let inputs: Vec<&str> = flow
        .pipeline
        .nodes()
        .map(|n| n.spec())
        .filter(|s| s.kind == daggr::INPUT_KIND)
        .map(|s| s.name.as_str())
        .collect();
    let computed = report.computed().iter().any(|n| !inputs.contains(n));
    let note = if computed || title != "first run" {
        ""
    } else {
        ": nothing to compute, an earlier process left every result in the cache"
    };
    println!(
        "\n== {title} ({:.1} ms){note}",
        report.elapsed.as_secs_f64() * 1000.0
    );
    for (node, outcome) in report.outcomes() {
        if inputs.contains(&node) {
            continue;
        }
        let what = match outcome {
            Outcome::Computed { elapsed, .. } => {
                format!("computed in {:.1} ms", elapsed.as_secs_f64() * 1000.0)
            }
            Outcome::Cached(source) => format!(
                "cached ({}: {})",
                format!("{source:?}").to_lowercase(),
                match source {
                    CacheSource::Memory => "this process computed it earlier",
                    CacheSource::Disk => "read back from the cache directory",
                    CacheSource::Workspace => "its inputs did not change since the last run",
                    CacheSource::Shared => "computed elsewhere, from the shared store",
                }
            ),
            Outcome::Failed(e) => format!("FAILED: {e}"),
            Outcome::Skipped { because } => format!("skipped (because {because} failed)"),
        };
        println!("   {node:<8} {what}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Quickstart::new()?;
    println!("cache: {}", flow.pipeline.cache().dir().display());

    let report = flow.run().await?;
    show("first run", &report, &flow);
    let stats = report.value(&flow.outputs.stats)?;
    println!("   caption: {}", report.value(&flow.outputs.caption)?);
    println!(
        "   stats:   brightness {:.1}, contrast {:.1}, edges {:.2}%",
        stats.brightness,
        stats.contrast,
        stats.edge_density * 100.0
    );

    show("same inputs again", &flow.run().await?, &flow);

    // Only the blur changes: `generate` and `edges` are reused, the blurred branch reruns.
    flow.set_sigma(6.0)?;
    let report = flow.run().await?;
    show("after set_sigma(6.0)", &report, &flow);
    println!("   caption: {}", report.value(&flow.outputs.caption)?);

    let out = std::path::Path::new(".daggr").join("quickstart");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("blurred.png"),
        report.value(&flow.outputs.soft)?.bytes(),
    )?;
    std::fs::write(
        out.join("edges.png"),
        report.value(&flow.outputs.outline)?.bytes(),
    )?;
    println!("\nimages written to {}", out.display());

    if std::env::var_os("DAGGR_NO_LAUNCH").is_some() {
        println!("inspector not launched (DAGGR_NO_LAUNCH is set)");
        return Ok(());
    }
    flow.launch().await?;
    Ok(())
}
