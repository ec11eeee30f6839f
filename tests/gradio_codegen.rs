//! `cargo daggr codegen gradio` against a real Gradio app: the fixture
//! tests/fixtures/gradio/codegen_app.py, run by the harness of tests/gradio_support.
//!
//! * Bindings generated from its live `/info`, by the library and by the built
//!   `cargo-daggr` binary, must equal the committed snapshot
//!   tests/generated/codegen_app_bindings.rs (`UPDATE_SNAPSHOTS=1` rewrites it).
//! * That committed file is `include!`d below, and its nodes are wired into a pipeline
//!   that runs against the live app: the generated code compiles, and works. The enums
//!   generated for a Radio and Dropdowns reach the app as the exact choice strings.
//!
//! The snapshot names the app `http://127.0.0.1:7860`; the fixture runs on a free port,
//! which the test reaches with the bindings' `App::at(url)`.

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;
mod gradio_support;

use std::path::PathBuf;
use std::process::Command;

use daggr::{constant, Audio, Cache, File, Graph, Image, Outcome, Scope};
use gradio_support::{png, repo_root, shared};
use serde_json::{json, Value as Json};

// The free functions call the app at the snapshot's SRC; this test calls the live app
// through `App::at`, so they are compiled here but not called.
#[allow(dead_code)]
mod bindings {
    include!("generated/codegen_app_bindings.rs");
}

/// The app the snapshot names (Gradio's default local address).
const SNAPSHOT_SRC: &str = "http://127.0.0.1:7860";

fn snapshot_path() -> PathBuf {
    repo_root().join("tests/generated/codegen_app_bindings.rs")
}

fn app() -> String {
    shared("codegen_app.py")
}

/// The Gradio version on the header's first line is the fixture's own; the rest must
/// not depend on it (4.44, 5.50 and 6.31 describe this app alike).
fn without_version(code: &str) -> String {
    let (first, rest) = code.split_once('\n').unwrap_or((code, ""));
    let first = match (first.find(" (Gradio "), first.rfind("): ")) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &first[..open], &first[close + 1..])
        }
        _ => first.to_string(),
    };
    format!("{first}\n{rest}")
}

/// Compares generated code with the committed snapshot, or rewrites the snapshot when
/// `UPDATE_SNAPSHOTS=1`.
fn check_snapshot(code: &str, how: &str) {
    let path = snapshot_path();
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, code).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if without_version(code) != without_version(&committed) {
        let first_difference = code
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  generated: {a}\n  committed: {b}", i + 1))
            .unwrap_or_else(|| "one is longer".into());
        panic!(
            "bindings generated {how} differ from {} ({first_difference}); if the change is \
             intended, rerun with UPDATE_SNAPSHOTS=1 and review the diff.\n--- generated:\n{code}",
            path.display()
        );
    }
}

/// The app's Gradio version and API description, as the CLI reads them.
async fn live_info(url: &str) -> (String, Json) {
    let http = reqwest::Client::new();
    let config: Json = http
        .get(format!("{url}/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prefix = config["api_prefix"].as_str().unwrap_or("");
    let info: Json = http
        .get(format!("{url}{prefix}/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (config["version"].as_str().unwrap().to_string(), info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_generates_the_committed_bindings() {
    let url = app();
    let (version, info) = live_info(&url).await;
    let bindings = daggr_codegen::gradio::generate(
        &info,
        &daggr_codegen::gradio::Options {
            src: SNAPSHOT_SRC.into(),
            apis: Vec::new(),
            gradio_version: Some(version),
        },
    )
    .unwrap();
    check_snapshot(&bindings.code, "by the library");
}

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(cargo_daggr_bin::binary())
        .args(["daggr", "codegen", "gradio"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_binary_generates_the_committed_bindings() {
    let url = app();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bindings.rs");
    let out = run_cli(&[&url, "-o", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("wrote bindings for 9 endpoint(s) (/echo_audio, /files, /make-thumb,"),
        "{stderr}"
    );
    // The binary names the app by the URL it was given, the snapshot by SNAPSHOT_SRC.
    let code = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&url, SNAPSHOT_SRC);
    check_snapshot(&code, "by `cargo daggr codegen gradio`");

    // One endpoint, on stdout.
    let out = run_cli(&[&url, "--api", "predict_1"]);
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap();
    assert!(code.contains("pub fn predict_1(name: &str) -> GradioNode<(f64,), (f64,)> {"));
    assert_eq!(code.matches("\npub fn ").count(), 1, "{code}");

    // An endpoint the app does not have.
    let out = run_cli(&[&url, "--api", "/make_thumb"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the app has no endpoint `/make_thumb`; did you mean `/make-thumb`?"),
        "{stderr}"
    );
}

fn dimensions(image: &Image) -> (u32, u32) {
    let img = image::load_from_memory(image.bytes()).unwrap();
    (img.width(), img.height())
}

/// A short mono 16-bit WAV.
fn wav(samples: usize) -> Audio {
    let data: Vec<u8> = (0..samples)
        .flat_map(|i| ((i as i16 % 64) * 256).to_le_bytes())
        .collect();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    for field in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    Audio::named(bytes, "audio/wav", "tone.wav")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_nodes_run_against_the_app() {
    let url = app();
    let app = bindings::App::at(&url);
    let cache_dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("codegen").cache(Cache::open(cache_dir.path()).unwrap());

    // Typed edges between generated nodes: text → upper → predict (reverse) → settings.
    let text = g.input("text", "hello".to_string());
    let shouted = g.add(app.upper("upper"), (text,));
    let reversed = g.add(app.predict("reverse"), (shouted,));
    let summary = g.add(
        // Defaulted parameters: two set with .param, the others keep the app's defaults.
        app.settings("settings")
            .param("loud", json!(true))
            .param("letters", json!(["c", "b"])),
        (reversed,),
    );
    let doubled = g.add(app.predict_1("double"), (constant(21.0),));
    let thumb = g.add(
        app.make_thumb("thumb").param("size", json!(8)),
        (constant(png(10, 6, |_, _| [200, 30, 30])),),
    );
    let (type_name, is_number) = g.add(app.type_("kind"), (constant(json!(3.5)),));
    let note = File::named(b"\x01\x02\x03 note".to_vec(), "text/plain", "note.txt");
    let (copy, swatches) = g.add(app.files("files"), (constant(note.clone()),));
    // A defaulted parameter made a port with one appended `.input`, as the docs say.
    let (_, with_overlay) = g.add(
        app.files("files_overlay").input::<Option<Image>>("overlay"),
        (
            constant(note.clone()),
            constant(Some(png(4, 4, |_, _| [0, 0, 255]))),
        ),
    );
    let tone = wav(400);
    let (same_audio, bytes) = g.add(app.echo_audio("audio"), (constant(tone.clone()),));

    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());

    assert_eq!(*report.value(&shouted).unwrap(), "HELLO");
    assert_eq!(*report.value(&reversed).unwrap(), "OLLEH");
    let summary = report.value(&summary).unwrap();
    assert_eq!(summary["text"], "OLLEH IN RED", "{summary}");
    assert_eq!(summary["letters"], json!(["b", "c"]));
    assert_eq!(summary["times"].as_f64(), Some(2.0), "{summary}");
    assert_eq!(*report.value(&doubled).unwrap(), 42.0);
    assert_eq!(dimensions(&report.value(&thumb).unwrap()), (8, 8));
    assert_eq!(*report.value(&type_name).unwrap(), "float");
    assert!(*report.value(&is_number).unwrap());
    let copy = report.value(&copy).unwrap();
    assert_eq!(copy.bytes(), note.bytes());
    let swatches = report.value(&swatches).unwrap();
    assert_eq!(
        swatches.len(),
        3,
        "one swatch for each of the file's first three bytes"
    );
    assert_eq!(dimensions(&swatches[0]), (4, 4));
    assert_eq!(report.value(&with_overlay).unwrap().len(), 4);
    assert_eq!(report.value(&same_audio).unwrap().bytes(), tone.bytes());
    assert_eq!(*report.value(&bytes).unwrap(), tone.bytes().len() as f64);

    // Generated nodes cache like any other.
    let again = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(again.outcome("thumb"), Some(Outcome::Cached(_))));
    assert!(matches!(
        again.outcome("settings"),
        Some(Outcome::Cached(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choice_enums_reach_the_app_as_their_choice_strings() {
    use bindings::{Colour, Finish, Letters, Shade};
    // A variant is sent as the string the app lists, whatever its Rust name; `Default` is
    // the app's default.
    assert_eq!(
        serde_json::to_value(Shade::SkyBlue).unwrap(),
        json!("Sky Blue")
    );
    assert_eq!(serde_json::to_value(Shade::Self_).unwrap(), json!("self"));
    assert_eq!(
        (Finish::default(), Colour::default()),
        (Finish::Gloss, Colour::Red)
    );

    let url = app();
    let app = bindings::App::at(&url);
    let mut g = Graph::new("choices").cache(Cache::temporary().unwrap());
    // The Radio without a default is a port typed by its enum: every variant goes through.
    let shades = [
        Shade::SkyBlue,
        Shade::DarkRed,
        Shade::X1stCoat,
        Shade::Self_,
    ];
    let painted: Vec<_> = shades
        .iter()
        .map(|shade| g.add(app.paint(&format!("paint {shade:?}")), (constant(*shade),)))
        .collect();
    // Defaulted choices made ports with `.input::<T>`, T the generated enum.
    let matte = g.add(
        app.paint("matte").input::<Finish>("finish"),
        (constant(Shade::DarkRed), constant(Finish::Matte)),
    );
    let summary = g.add(
        app.settings("settings")
            .input::<Colour>("colour")
            .input::<Vec<Letters>>("letters"),
        (
            constant("ada".to_string()),
            constant(Colour::Blue),
            constant(vec![Letters::C, Letters::A]),
        ),
    );
    // A string the app does not list, sent as JSON: what the enum rules out.
    g.add(
        app.paint("glossy").param("finish", json!("glossy")),
        (constant(Shade::SkyBlue),),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();

    let expected = [
        "1 coats of Sky Blue (gloss)",
        "1 coats of dark-red (gloss)",
        "1 coats of 1st coat (gloss)",
        "1 coats of self (gloss)",
    ];
    for (out, expected) in painted.iter().zip(expected) {
        assert_eq!(*report.value(out).unwrap(), expected);
    }
    assert_eq!(
        *report.value(&matte).unwrap(),
        "1 coats of dark-red (matte)"
    );
    let summary = report.value(&summary).unwrap();
    assert_eq!(summary["text"], "ada in blue", "{summary}");
    assert_eq!(summary["letters"], json!(["a", "c"]));
    // Gradio 5 and 6 refuse the unlisted string; Gradio 4 passes it to the function.
    match report.outcome("glossy") {
        Some(Outcome::Failed(error)) => {
            assert!(gradio_support::gradio_version() >= (5, 0), "{error}");
            assert!(
                error.to_string().contains("not in the list of choices"),
                "{error}"
            );
        }
        Some(Outcome::Computed { .. }) => {
            assert!(gradio_support::gradio_version() < (5, 0));
        }
        other => panic!("{other:?}"),
    }
}

/// A pipeline input feeding a Dropdown/Radio or a Slider of a Gradio app gets the app's
/// choices or range as its widget hint, once the node is connected (here by preflight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_feeding_an_apps_radio_and_slider_get_its_choices_and_range() {
    let url = app();
    let mut g = Graph::new("hints").cache(Cache::temporary().unwrap());
    let shade = g.input("shade", "self".to_string());
    let coats = g.input("coats", 2.0f64);
    g.add(
        daggr::GradioNode::new("paint", &url)
            .api("/paint")
            .input::<String>("shade")
            .input::<f64>("coats")
            .output::<String>("text"),
        (shade, coats),
    );
    let pipeline = g.build().unwrap();
    assert_eq!(
        pipeline.input_hint(shade.node_id().index()),
        None,
        "not connected yet"
    );
    pipeline.preflight().await.unwrap();
    let hint = pipeline.input_hint(shade.node_id().index()).unwrap();
    assert_eq!(
        hint.choices,
        [
            json!("Sky Blue"),
            json!("dark-red"),
            json!("1st coat"),
            json!("self")
        ]
    );
    let hint = pipeline.input_hint(coats.node_id().index()).unwrap();
    assert_eq!((hint.minimum, hint.maximum), (Some(1.0), Some(5.0)));
}
