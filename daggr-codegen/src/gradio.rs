//! Typed Rust bindings for a Gradio app, generated from its API description (the JSON of
//! `GET {api_prefix}/info`; Gradio 4, 5 and 6 answer in the same shape). This is the
//! logic behind `cargo daggr codegen gradio`; it does no I/O, so it is tested on saved
//! `/info` responses.
//!
//! [`generate`] writes Rust source with, for every named endpoint, a documented function
//! returning a fully typed `daggr::GradioNode`:
//!
//! ```text
//! pub fn upper(name: &str) -> GradioNode<(String,), (String,)> {
//!     App::default().upper(name)
//! }
//! ```
//!
//! and the same function as a method of a small `App` value (`App::at(src)`), so one set
//! of bindings reaches the Space it was generated from, a duplicate of it, or a copy on
//! another port (`run_locally`, a test fixture). The file holds only items and plain `//`
//! comments, so it can be a module of its own or be `include!`d.
//!
//! # Ports and parameters with defaults
//!
//! * The **input ports** are the endpoint's parameters *without* a default, in the
//!   endpoint's order and named by their parameter names.
//! * A parameter **with a default** is not a port: the node sends the app's default
//!   unless the caller sets `.param(name, json)`. Each such parameter is listed in the
//!   function's docs with its Rust type and default, so turning it into a port is one
//!   appended `.input::<T>(name)`.
//!
//!   Why not a port each: Gradio gives every component with an initial value a default,
//!   so apps have many of them (a Space with a prompt and twelve sliders), and every port
//!   must be wired: the caller would restate each default as a constant, and a node has
//!   at most eight input ports. Why not a second, "all ports" variant: it doubles the
//!   generated API for a choice the caller makes per parameter with one call.
//! * The **output ports** are the endpoint's return values, in order, named after their
//!   labels in snake case.
//! * A node takes at most [`MAX_PORTS`] inputs and outputs: required parameters past
//!   that are listed as such (set them with `.param`), return values past it get no port.
//!
//! # Types
//!
//! | component (or python type) | Rust type |
//! | --- | --- |
//! | Textbox, … (`str`) | `String` |
//! | Dropdown, Radio whose choices are strings | an enum of the choices (below) |
//! | Number, Slider (`float`, `int`) | `f64` (a Slider's range is in the docs) |
//! | Checkbox (`bool`) | `bool` |
//! | CheckboxGroup, multiselect Dropdown (`list[str]`) | `Vec<…>` of an enum of the choices, else `Vec<String>` |
//! | JSON (`dict`, any JSON) | `serde_json::Value` |
//! | Image, Audio, Video, File | `Image`, `Audio`, `Video`, `File` (`Vec<File>` for several files) |
//! | Gallery | `Vec<Image>` |
//! | a parameter whose default is `None` | `Option<…>` of the above |
//! | anything else | `serde_json::Value`, with a note in the docs |
//!
//! Media types come from the component; the others from the JSON schema Gradio gives for
//! the value (the python type when there is none), so custom components with plain
//! values are typed too.
//!
//! # Choices
//!
//! A parameter whose schema lists its values (`"enum"`: a Dropdown's or Radio's choices,
//! a CheckboxGroup's items) gets a generated enum, so a choice the app does not offer is a
//! compile error, not a failed call (Gradio 5 and 6 refuse it: "… is not in the list of
//! choices") or a value the app was never meant to see (Gradio 4 passes it on):
//!
//! ```text
//! #[derive(
//!     Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
//! )]
//! pub enum Colour {
//!     /// `"red"`, the app's default.
//!     #[default]
//!     #[serde(rename = "red")]
//!     Red,
//!     /// `"dark blue"`
//!     #[serde(rename = "dark blue")]
//!     DarkBlue,
//! }
//! ```
//!
//! Each variant is serialized as the exact string the app lists; `Default` is the app's
//! default when it is one of the choices. The enum is named after the parameter
//! (`colour` → `Colour`); parameters of one name with the same choices share it (so their
//! ports connect), and otherwise each takes its endpoint's name as a prefix
//! (`PaintColour`), as does a name Rust or the file already uses (`Default`, `Image`).
//! Variants are the choices in camel case (`dark-red` → `DarkRed`; `1st` → `X1st`, `self`
//! → `Self_`, `""` → `Empty`, a choice with no ASCII letter or digit → `Choice3`, a clash
//! → `Red2`). Return values stay `String`: an app may return any text into a Dropdown.
//! A Dropdown made with `allow_custom_value=True` lists its choices in the same way, so its
//! enum leaves out the other strings the app takes: send those with `.param(name, json)`.
//!
//! The output is deterministic (endpoints sorted by name, no timestamps) and formatted
//! as rustfmt formats it. Function names are Rust identifiers made from the endpoint
//! names: `/make-thumb` → `make_thumb`, `/predict_1` → `predict_1`, `/type` → `type_`,
//! `/2x` → `api_2x`; clashes get a numeric suffix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::gradio_info::{parse_info, schema_has_file, ParamInfo, ReturnInfo};
use crate::suggest;

/// The most input (and output) ports a `GradioNode` takes.
pub const MAX_PORTS: usize = 8;

/// The width rustfmt formats to (its default `max_width`).
const MAX_WIDTH: usize = 100;
/// The longest chain rustfmt keeps on one line (its default `chain_width`).
const CHAIN_WIDTH: usize = 60;
/// The longest tuple type rustfmt keeps on one line: 60 (its default `fn_call_width`)
/// between the parentheses.
const TUPLE_WIDTH: usize = 62;
/// The longest `#[derive(…)]` rustfmt keeps on one line (rustfmt 1.9: 96 characters stay,
/// 97 are wrapped).
const DERIVE_WIDTH: usize = 96;

/// What to generate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The app the bindings call by default (their `SRC`): a Space id (`owner/name`) or
    /// a URL.
    pub src: String,
    /// Only these endpoints (`/upper` or `upper`); every named endpoint when empty.
    pub apis: Vec<String>,
    /// The app's Gradio version (from its `/config`), for the header.
    pub gradio_version: Option<String>,
}

/// Generated bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bindings {
    /// The Rust source.
    pub code: String,
    /// The endpoints bound, as `(api name, function name)`, in the file's order.
    pub endpoints: Vec<(String, String)>,
}

/// Why no bindings could be generated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodegenError {
    /// The JSON is not a Gradio API description.
    #[error("not a Gradio API description: {0}")]
    NotApiInfo(String),
    /// The app describes no named endpoint.
    #[error("the app describes no named endpoint (its functions have no api_name, or its API is hidden)")]
    NoEndpoints,
    /// An endpoint asked for (`--api`) is not among the app's.
    #[error("the app has no endpoint `{api}`{} (its endpoints: {})", did_you_mean(.suggestion), .available.join(", "))]
    UnknownApi {
        /// The name asked for.
        api: String,
        /// The closest endpoint name, if one is close enough to be a typo.
        suggestion: Option<String>,
        /// The app's endpoints.
        available: Vec<String>,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// A Rust type for a value, and why it is only JSON when it is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapped {
    rust: String,
    note: Option<String>,
}

impl Mapped {
    fn plain(rust: &str) -> Mapped {
        Mapped {
            rust: rust.to_string(),
            note: None,
        }
    }
}

#[derive(Clone, Debug)]
struct Param {
    name: String,
    component: String,
    ty: Mapped,
    /// `Some` when the parameter has a default.
    default: Option<Json>,
    /// The strings it takes, when the app lists them (a Dropdown's, a Radio's choices).
    choices: Option<Vec<String>>,
    /// A Slider's least and greatest value.
    range: Option<(f64, f64)>,
}

#[derive(Clone, Debug)]
struct Return {
    port: String,
    component: String,
    ty: Mapped,
}

#[derive(Clone, Debug)]
struct Endpoint {
    api: String,
    ident: String,
    description: String,
    params: Vec<Param>,
    returns: Vec<Return>,
}

impl Endpoint {
    /// The input ports (required parameters, at most [`MAX_PORTS`]) and the required
    /// parameters that did not fit.
    fn split_required(&self) -> (Vec<&Param>, Vec<&Param>) {
        let required: Vec<&Param> = self.params.iter().filter(|p| p.default.is_none()).collect();
        let cut = required.len().min(MAX_PORTS);
        (required[..cut].to_vec(), required[cut..].to_vec())
    }

    fn output_ports(&self) -> &[Return] {
        &self.returns[..self.returns.len().min(MAX_PORTS)]
    }

    /// `GradioNode<(inputs…), (outputs…)>`, as tuple type lists.
    fn node_type(&self) -> (Vec<String>, Vec<String>) {
        let (inputs, _) = self.split_required();
        (
            inputs.iter().map(|p| p.ty.rust.clone()).collect(),
            self.output_ports()
                .iter()
                .map(|r| r.ty.rust.clone())
                .collect(),
        )
    }
}

/// Generates bindings for the app whose `/info` answer is `info`.
pub fn generate(info: &Json, options: &Options) -> Result<Bindings, CodegenError> {
    let mut endpoints = parse(info)?;
    if !options.apis.is_empty() {
        let wanted = select(&endpoints, &options.apis)?;
        endpoints.retain(|e| wanted.contains(&e.api));
    }
    if endpoints.is_empty() {
        return Err(CodegenError::NoEndpoints);
    }
    let enums = choice_enums(&mut endpoints);
    let code = render(&endpoints, &enums, options);
    Ok(Bindings {
        code,
        endpoints: endpoints.into_iter().map(|e| (e.api, e.ident)).collect(),
    })
}

/// The API names of the endpoints asked for, checked against the app's.
fn select(endpoints: &[Endpoint], apis: &[String]) -> Result<BTreeSet<String>, CodegenError> {
    let available: Vec<&str> = endpoints.iter().map(|e| e.api.as_str()).collect();
    let mut wanted = BTreeSet::new();
    for api in apis {
        let api = format!("/{}", api.trim().trim_start_matches('/'));
        if !available.contains(&api.as_str()) {
            return Err(CodegenError::UnknownApi {
                suggestion: suggest(&api, available.iter().copied()),
                api,
                available: available.iter().map(|s| s.to_string()).collect(),
            });
        }
        wanted.insert(api);
    }
    Ok(wanted)
}

/// Reads the named endpoints, sorted by API name, with their function names.
fn parse(info: &Json) -> Result<Vec<Endpoint>, CodegenError> {
    // The runtime's reading of `/info`, so the bindings' ports are the names it checks.
    let described = parse_info(info).map_err(CodegenError::NotApiInfo)?;
    let mut taken = BTreeSet::new();
    let endpoints = described
        .into_iter()
        .map(|(api, e)| {
            let mut port_names = BTreeSet::new();
            Endpoint {
                ident: unique(fn_ident(&api), &mut taken),
                api,
                description: e.description,
                params: e.parameters.iter().map(param).collect(),
                returns: e
                    .returns
                    .iter()
                    .enumerate()
                    .map(|(i, r)| output(i, r, &mut port_names))
                    .collect(),
            }
        })
        .collect();
    Ok(endpoints)
}

fn param(p: &ParamInfo) -> Param {
    let default = p.has_default.then(|| p.default.clone());
    let optional = default.as_ref().is_some_and(Json::is_null);
    Param {
        ty: map_type(&p.component, &p.schema, &p.python_type, optional),
        name: p.name.clone(),
        component: p.component.clone(),
        default,
        choices: p.choices(),
        range: p.range(),
    }
}

fn output(i: usize, r: &ReturnInfo, taken: &mut BTreeSet<String>) -> Return {
    let label = snake(&r.label);
    let port = if label.is_empty() {
        format!("output_{i}")
    } else {
        label
    };
    Return {
        port: unique(port, taken),
        ty: map_type(&r.component, &r.schema, &r.python_type, false),
        component: r.component.clone(),
    }
}

/// The Rust type of a parameter or return value (see the module docs).
fn map_type(component: &str, schema: &Json, python: &str, optional: bool) -> Mapped {
    let wrap = |t: &str| {
        if optional {
            Mapped::plain(&format!("Option<{t}>"))
        } else {
            Mapped::plain(t)
        }
    };
    let several = schema.get("type").and_then(Json::as_str) == Some("array")
        || python.to_ascii_lowercase().starts_with("list[");
    let media = match component.to_ascii_lowercase().as_str() {
        "image" | "simpleimage" => Some("Image"),
        "audio" => Some("Audio"),
        "video" => Some("Video"),
        "file" | "uploadbutton" | "downloadbutton" | "model3d" | "simplefile" => Some("File"),
        "gallery" => return Mapped::plain("Vec<Image>"),
        "json" => return Mapped::plain("serde_json::Value"),
        _ => None,
    };
    if let Some(media) = media {
        return if several {
            Mapped::plain(&format!("Vec<{media}>"))
        } else {
            wrap(media)
        };
    }
    if schema_has_file(schema) {
        return Mapped {
            rust: "serde_json::Value".into(),
            note: Some(format!(
                "`{component}` holds files in a shape daggr's media types do not cover, so it is \
                 JSON (outputs keep the files' URLs; GradioNode refuses a JSON input port for a \
                 file parameter unless `.validate(false)`)"
            )),
        };
    }
    if let Some(t) = schema_type(schema).or_else(|| python_scalar(python)) {
        return wrap(t);
    }
    let shown = if python.is_empty() {
        String::new()
    } else {
        format!(" (python type `{}`)", shorten(python, 60))
    };
    Mapped {
        rust: "serde_json::Value".into(),
        note: Some(format!(
            "`{component}`{shown} has no daggr type, so it is passed as JSON"
        )),
    }
}

/// The Rust type of a plain JSON schema: a string, number, boolean or a list of them.
fn schema_type(schema: &Json) -> Option<&'static str> {
    match schema.get("type").and_then(Json::as_str)? {
        "string" => Some("String"),
        // Gradio's numbers are Python floats or ints; f64 reads both.
        "number" | "integer" => Some("f64"),
        "boolean" => Some("bool"),
        "array" => match schema_type(schema.get("items")?)? {
            "String" => Some("Vec<String>"),
            "f64" => Some("Vec<f64>"),
            "bool" => Some("Vec<bool>"),
            _ => None,
        },
        _ => None,
    }
}

fn python_scalar(python: &str) -> Option<&'static str> {
    match python {
        "str" => Some("String"),
        "float" | "int" => Some("f64"),
        "bool" => Some("bool"),
        _ => None,
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// `Generate Image` → `generate_image`, `makeThumb` → `make_thumb`; empty when there is
/// no ASCII letter or digit.
fn snake(raw: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Words Rust reserves (2021 edition, plus `gen` of 2024), which cannot name a function.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names the generated file itself uses: `App`'s own methods (`at`, and those of the traits
/// it implements), and `main` (the bindings may be included into a binary's root).
const RESERVED: &[&str] = &["at", "clone", "default", "fmt", "main"];

/// A function name for an endpoint: snake case, never a keyword or a reserved name.
fn fn_ident(api: &str) -> String {
    let mut ident = snake(api);
    if ident.is_empty() {
        ident = "endpoint".into();
    }
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident = format!("api_{ident}");
    }
    if KEYWORDS.contains(&ident.as_str()) || RESERVED.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// `name`, or `name_2`, `name_3`, … when taken; records the result as taken.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A tuple type: `()`, `(A,)`, `(A, B)`.
fn tuple(types: &[String]) -> String {
    match types {
        [] => "()".into(),
        [one] => format!("({one},)"),
        many => format!("({})", many.join(", ")),
    }
}

// ---------- choices: enums for the parameters whose values the app lists ----------

/// A generated enum: the choices of one or more parameters (a Dropdown, a Radio, a
/// CheckboxGroup's items), each variant serialized as the exact string the app lists.
#[derive(Clone, Debug, PartialEq)]
struct ChoiceEnum {
    name: String,
    /// `(variant, choice string)`, in the app's order.
    variants: Vec<(String, String)>,
    /// The variant that is the parameter's default, when it has one (not for lists).
    default: Option<usize>,
    /// The parameters it types: `(api, parameter, component)`.
    used_by: Vec<(String, String, String)>,
}

/// Type names the generated file uses or Rust's prelude has, which an enum must not take.
const TAKEN_TYPES: &str = "App Audio File GradioNode Image Video \
     AsMut AsRef Box Clone Copy Default Drop Eq Extend Fn FnMut FnOnce From FromIterator Into \
     IntoIterator Iterator Option Ord PartialEq PartialOrd Result Send Sized String Sync \
     ToOwned ToString TryFrom TryInto Unpin Vec";

/// `Sky Blue` → `SkyBlue`, `dark-red` → `DarkRed`, `1st coat` → `X1stCoat`, `self` →
/// `Self_`; empty when there is no ASCII letter or digit.
fn pascal(raw: &str) -> String {
    let mut out: String = snake(raw)
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'X');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

/// Gives the parameters with string choices an enum of their own, and returns the enums.
/// An enum is named after its parameter (`colour` → `Colour`); parameters of the same name
/// with the same choices and default share one, so their ports connect. When parameters
/// of one name differ, or the name is taken, each is prefixed with its endpoint's name
/// (`PaintColour`).
fn choice_enums(endpoints: &mut [Endpoint]) -> Vec<ChoiceEnum> {
    // The parameters an enum can type: a String (optional or not) with choices, or a
    // list of Strings whose items have choices.
    let mut wanted = Vec::new();
    for (e, endpoint) in endpoints.iter().enumerate() {
        for (p, param) in endpoint.params.iter().enumerate() {
            let Some(choices) = &param.choices else {
                continue;
            };
            let list = match param.ty.rust.as_str() {
                "String" | "Option<String>" => false,
                "Vec<String>" => true,
                _ => continue,
            };
            let default = match (&param.default, list) {
                (Some(Json::String(d)), false) => choices.iter().position(|c| c == d),
                _ => None,
            };
            let mut base = pascal(&param.name);
            if base.is_empty() {
                base = "Choice".into();
            }
            wanted.push((e, p, base, (choices.clone(), default)));
        }
    }
    let mut enums: Vec<ChoiceEnum> = Vec::new();
    // The enum made for a name and choices, by its index.
    let mut made: BTreeMap<(String, Vec<String>, Option<usize>), usize> = BTreeMap::new();
    let mut taken: BTreeSet<String> = TAKEN_TYPES.split_whitespace().map(String::from).collect();
    for (e, p, base, spec) in &wanted {
        let shared = wanted.iter().filter(|w| w.2 == *base).all(|w| w.3 == *spec);
        let name = if shared && !TAKEN_TYPES.split_whitespace().any(|t| t == base) {
            base.clone()
        } else {
            format!("{}{base}", pascal(&endpoints[*e].ident))
        };
        let (choices, default) = spec;
        let param = &endpoints[*e].params[*p];
        let user = (
            endpoints[*e].api.clone(),
            param.name.clone(),
            param.component.clone(),
        );
        // The same name for the same choices: one enum (a parameter shared by endpoints).
        let index = match made.get(&(name.clone(), choices.clone(), *default)) {
            Some(i) => *i,
            None => {
                let mut variants_taken = BTreeSet::new();
                let variants = choices
                    .iter()
                    .enumerate()
                    .map(|(i, choice)| {
                        let mut variant = pascal(choice);
                        if variant.is_empty() {
                            variant = if choice.is_empty() {
                                "Empty".into()
                            } else {
                                format!("Choice{}", i + 1)
                            };
                        }
                        (unique_type(variant, &mut variants_taken), choice.clone())
                    })
                    .collect();
                made.insert((name.clone(), choices.clone(), *default), enums.len());
                enums.push(ChoiceEnum {
                    name: unique_type(name, &mut taken),
                    variants,
                    default: *default,
                    used_by: Vec::new(),
                });
                enums.len() - 1
            }
        };
        enums[index].used_by.push(user);
        let ty = &mut endpoints[*e].params[*p].ty.rust;
        *ty = ty.replace("String", &enums[index].name);
    }
    enums
}

/// `name`, or `name2`, `name3`, … when taken (no underscore: type and variant names are
/// camel case); records the result as taken.
fn unique_type(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// An enum's definition.
fn choice_enum(out: &mut String, choice: &ChoiceEnum) {
    let used_by: Vec<String> = choice
        .used_by
        .iter()
        .map(|(api, param, component)| {
            if component.is_empty() {
                format!("`{param}` of `{api}`")
            } else {
                format!("`{param}` of `{api}` ({component})")
            }
        })
        .collect();
    for line in wrap(&format!(
        "The choices of {}, sent to the app as the strings shown.",
        used_by.join(", ")
    )) {
        let _ = writeln!(out, "/// {line}");
    }
    let default = if choice.default.is_some() {
        "Default, "
    } else {
        ""
    };
    // Laid out as rustfmt lays it out: on one line when it fits.
    let derives = format!(
        "Clone, Copy, Debug, {default}PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize"
    );
    let one_line = format!("#[derive({derives})]");
    if one_line.len() <= DERIVE_WIDTH {
        let _ = writeln!(out, "{one_line}");
    } else {
        let _ = writeln!(out, "#[derive(\n    {derives},\n)]");
    }
    let _ = writeln!(out, "pub enum {} {{", choice.name);
    for (i, (variant, string)) in choice.variants.iter().enumerate() {
        let shown = format!("{string:?}").replace('`', "'");
        if choice.default == Some(i) {
            let _ = writeln!(out, "    /// `{shown}`, the app's default.\n    #[default]");
        } else {
            let _ = writeln!(out, "    /// `{shown}`");
        }
        let _ = writeln!(out, "    #[serde(rename = {string:?})]\n    {variant},");
    }
    out.push_str("}\n");
}

/// Renders the whole file.
fn render(endpoints: &[Endpoint], enums: &[ChoiceEnum], options: &Options) -> String {
    let mut out = String::new();
    header(&mut out, endpoints, !enums.is_empty(), options);

    // Only the media types the file names, so it compiles without unused imports. Whole
    // words: an enum may be called `ImageSize`.
    let mut imports: BTreeSet<&str> = BTreeSet::from(["GradioNode"]);
    for e in endpoints {
        let (ins, outs) = e.node_type();
        for ty in ins.iter().chain(&outs) {
            for word in ty.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                if let Some(media) = ["Audio", "File", "Image", "Video"]
                    .into_iter()
                    .find(|m| *m == word)
                {
                    imports.insert(media);
                }
            }
        }
    }
    let imports: Vec<&str> = imports.into_iter().collect();
    if imports.len() == 1 {
        out.push_str("use daggr::GradioNode;\n\n");
    } else {
        let _ = writeln!(out, "use daggr::{{{}}};\n", imports.join(", "));
    }

    let _ = writeln!(
        out,
        "/// The Gradio app these bindings were generated from: a Space id or a URL.\n\
         pub const SRC: &str = {:?};\n",
        options.src
    );
    out.push_str(APP);
    out.push_str("impl App {\n");
    out.push_str(
        "    /// The same app at `src`: a Space id (`owner/name`) or a URL.\n    \
         pub fn at(src: &str) -> Self {\n        \
         App {\n            src: src.to_string(),\n        }\n    }\n",
    );
    for e in endpoints {
        out.push('\n');
        method(&mut out, e);
    }
    out.push_str("}\n");
    for e in endpoints {
        out.push('\n');
        function(&mut out, e);
    }
    for choice in enums {
        out.push('\n');
        choice_enum(&mut out, choice);
    }
    out
}

/// The `App` type and its `Default` (the app at `SRC`).
const APP: &str = "\
/// The app at [`SRC`], or another copy of it (a duplicated Space, a local run, the same app
/// on another port): its methods are the functions of these bindings, calling that copy.
#[derive(Clone, Debug)]
pub struct App {
    src: String,
}

impl Default for App {
    fn default() -> Self {
        App::at(SRC)
    }
}

";

fn header(out: &mut String, endpoints: &[Endpoint], enums: bool, options: &Options) {
    let version = options
        .gradio_version
        .as_deref()
        .map(|v| format!(" (Gradio {v})"))
        .unwrap_or_default();
    let mut command = format!("cargo daggr codegen gradio {}", options.src);
    for api in &options.apis {
        let _ = write!(command, " --api {}", api.trim_start_matches('/'));
    }
    let _ = writeln!(
        out,
        "// Typed daggr bindings for the Gradio app at {}{version}: {} endpoint{}.",
        options.src,
        endpoints.len(),
        if endpoints.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "// Generated by `{command}` (daggr-codegen {})\n\
         // from the app's API description: regenerate it rather than edit it.",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(
        "//\n\
         // Each function returns a typed `GradioNode`. Its input ports are the endpoint's\n\
         // parameters without a default; the others are sent with the app's default unless set\n\
         // with `.param(name, json)`, or become ports with `.input::<T>(name)` (their types are in\n\
         // the docs). `App::at(src)` calls another copy of the app: a duplicated Space, a local run.\n",
    );
    let uses_json = endpoints.iter().any(|e| {
        let (ins, outs) = e.node_type();
        ins.iter().chain(&outs).any(|t| t.contains("serde_json"))
    });
    if uses_json {
        out.push_str("// JSON ports use `serde_json::Value`: the crate needs `serde_json`.\n");
    }
    if enums {
        out.push_str(
            "// A parameter whose values the app lists (a Dropdown, a Radio) is an enum of them,\n\
             // sent as the listed strings: the crate needs `serde` with its `derive` feature.\n",
        );
    }
    out.push('\n');
}

/// `App::{ident}`: the builder chain.
fn method(out: &mut String, e: &Endpoint) {
    let _ = writeln!(
        out,
        "    /// Like [`{}`], on this copy of the app.",
        e.ident
    );
    let (ins, outs) = e.node_type();
    signature(
        out,
        4,
        &format!("pub fn {}(&self, name: &str)", e.ident),
        &["&self", "name: &str"],
        &ins,
        &outs,
    );
    let mut chain = vec![
        "GradioNode::new(name, &self.src)".to_string(),
        format!(".api({:?})", e.api),
    ];
    let (inputs, _) = e.split_required();
    for p in inputs {
        chain.push(format!(".input::<{}>({:?})", p.ty.rust, p.name));
    }
    for r in e.output_ports() {
        chain.push(format!(".output::<{}>({:?})", r.ty.rust, r.port));
    }
    write_chain(out, 8, &chain);
    out.push_str("    }\n");
}

/// The free function: docs, and a call of the method on the app at `SRC`.
fn function(out: &mut String, e: &Endpoint) {
    for line in docs(e) {
        if line.is_empty() {
            out.push_str("///\n");
        } else {
            let _ = writeln!(out, "/// {line}");
        }
    }
    let (ins, outs) = e.node_type();
    signature(
        out,
        0,
        &format!("pub fn {}(name: &str)", e.ident),
        &["name: &str"],
        &ins,
        &outs,
    );
    write_chain(
        out,
        4,
        &["App::default()".to_string(), format!(".{}(name)", e.ident)],
    );
    out.push_str("}\n");
}

/// The doc comment of an endpoint's function, line by line.
fn docs(e: &Endpoint) -> Vec<String> {
    let mut lines = vec![format!("Calls `{}` of the app at [`SRC`].", e.api)];
    if !e.description.is_empty() {
        lines.push(String::new());
        for line in e.description.lines() {
            // A stray fence would turn the rest of the docs into a doctest.
            lines.push(line.trim_end().replace("```", "'''"));
        }
    }
    let (inputs, overflow) = e.split_required();
    lines.push(String::new());
    if inputs.is_empty() {
        lines.push("Input ports: none.".into());
    } else {
        lines.push("Input ports:".into());
        for p in inputs {
            lines.extend(wrap(&item(&p.name, &p.ty, &p.component, p.range, None)));
        }
    }
    lines.push(String::new());
    if e.returns.is_empty() {
        lines.push("Output ports: none.".into());
    } else {
        lines.push("Output ports:".into());
        for r in e.output_ports() {
            lines.extend(wrap(&item(&r.port, &r.ty, &r.component, None, None)));
        }
        if e.returns.len() > MAX_PORTS {
            lines.extend(wrap(&format!(
                "- ({} more return values have no port: a node has at most {MAX_PORTS} outputs)",
                e.returns.len() - MAX_PORTS
            )));
        }
    }
    if !overflow.is_empty() {
        lines.push(String::new());
        lines.extend(wrap(&format!(
            "Required, but past the {MAX_PORTS} input ports a node has: set them with \
             `.param(name, json)`:"
        )));
        for p in overflow {
            lines.extend(wrap(&item(&p.name, &p.ty, &p.component, p.range, None)));
        }
    }
    let defaulted: Vec<&Param> = e.params.iter().filter(|p| p.default.is_some()).collect();
    if !defaulted.is_empty() {
        lines.push(String::new());
        lines.extend(wrap(
            "Parameters with a default, sent unless set with `.param(name, json)` (or made a \
             port with `.input::<T>(name)`):",
        ));
        for p in defaulted {
            lines.extend(wrap(&item(
                &p.name,
                &p.ty,
                &p.component,
                p.range,
                p.default.as_ref(),
            )));
        }
    }
    lines
}

/// Splits a generated doc line at spaces to fit the width (after `/// `); list items go
/// on indented, as Markdown continues them. The app's own descriptions are not passed
/// through here: their line breaks may matter.
fn wrap(line: &str) -> Vec<String> {
    const WIDTH: usize = MAX_WIDTH - 4;
    let indent = if line.starts_with("- ") { "  " } else { "" };
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in line.split(' ') {
        let width = current.chars().count() + 1 + word.chars().count();
        if !current.trim().is_empty() && width > WIDTH {
            lines.push(std::mem::replace(&mut current, indent.to_string()));
        } else if !current.is_empty() && !current.ends_with(' ') {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

/// One list item: ``- `name: Type` (Component, low to high) = `default`: note``.
fn item(
    name: &str,
    ty: &Mapped,
    component: &str,
    range: Option<(f64, f64)>,
    default: Option<&Json>,
) -> String {
    let mut line = format!("- `{name}: {}`", ty.rust);
    let range = range.map(|(low, high)| format!("{low} to {high}"));
    let about: Vec<&str> = [Some(component).filter(|c| !c.is_empty()), range.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !about.is_empty() {
        let _ = write!(line, " ({})", about.join(", "));
    }
    if let Some(default) = default {
        let shown = serde_json::to_string(default).unwrap_or_default();
        let _ = write!(line, " = `{}`", shorten(&shown, 60).replace('`', "'"));
    }
    if let Some(note) = &ty.note {
        let _ = write!(line, ": {note}");
    }
    line
}

/// A function signature returning `GradioNode<(ins), (outs)>`, laid out as rustfmt lays
/// it out: on one line when it fits, else the parameters on their own lines, else the
/// type's arguments too. A tuple longer than [`TUPLE_WIDTH`] is always one element per
/// line, which breaks the rest as well.
fn signature(
    out: &mut String,
    indent: usize,
    head: &str,
    params: &[&str],
    ins: &[String],
    outs: &[String],
) {
    let pad = " ".repeat(indent);
    let tuples = [tuple(ins), tuple(outs)];
    let short = tuples.iter().all(|t| t.len() <= TUPLE_WIDTH);
    let ty = format!("GradioNode<{}, {}>", tuples[0], tuples[1]);
    let one_line = format!("{pad}{head} -> {ty} {{");
    if short && one_line.len() <= MAX_WIDTH {
        out.push_str(&one_line);
        out.push('\n');
        return;
    }
    // `pub fn name(` … `) -> Type {`
    let name_end = head.find('(').expect("a parameter list");
    let _ = writeln!(out, "{pad}{}(", &head[..name_end]);
    for p in params {
        let _ = writeln!(out, "{pad}    {p},");
    }
    let closing = format!("{pad}) -> {ty} {{");
    if short && closing.len() <= MAX_WIDTH {
        out.push_str(&closing);
        out.push('\n');
        return;
    }
    let _ = writeln!(out, "{pad}) -> GradioNode<");
    for (t, types) in tuples.iter().zip([ins, outs]) {
        if t.len() <= TUPLE_WIDTH {
            let _ = writeln!(out, "{pad}    {t},");
        } else {
            let _ = writeln!(out, "{pad}    (");
            for t in types {
                let _ = writeln!(out, "{pad}        {t},");
            }
            let _ = writeln!(out, "{pad}    ),");
        }
    }
    let _ = writeln!(out, "{pad}> {{");
}

/// A method chain as a function's tail expression: one line when rustfmt would keep it
/// on one, else one call per line.
fn write_chain(out: &mut String, indent: usize, chain: &[String]) {
    let pad = " ".repeat(indent);
    let joined = chain.concat();
    if joined.len() <= CHAIN_WIDTH && indent + joined.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{pad}{joined}");
        return;
    }
    let _ = writeln!(out, "{pad}{}", chain[0]);
    for call in &chain[1..] {
        let _ = writeln!(out, "{pad}    {call}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(version: &str) -> Json {
        let path = format!(
            "{}/tests/data/gradio_info/codegen_app-{version}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn options(src: &str) -> Options {
        Options {
            src: src.into(),
            ..Options::default()
        }
    }

    fn code_for(info: &Json) -> String {
        generate(info, &options("http://127.0.0.1:7860"))
            .unwrap()
            .code
    }

    /// The code of one endpoint's free function: its docs (from the blank line before
    /// it) and its body.
    fn function_of<'a>(code: &'a str, ident: &str) -> &'a str {
        let at = code
            .find(&format!("\npub fn {ident}("))
            .unwrap_or_else(|| panic!("no function {ident} in\n{code}"));
        let start = code[..at].rfind("\n\n").unwrap() + 2;
        let end = at + code[at..].find("\n}\n").unwrap() + 3;
        &code[start..end]
    }

    /// Formats with rustfmt and asserts nothing changed; skipped only where the
    /// toolchain has no rustfmt component.
    fn assert_rustfmt_clean(code: &str) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("rustfmt")
            .args(["--edition", "2021", "--emit", "stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            eprintln!("rustfmt is not installed; formatting not checked");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(code.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rustfmt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let formatted = String::from_utf8(out.stdout).unwrap();
        if formatted != code {
            let diff: Vec<String> = formatted
                .lines()
                .zip(code.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("line {}:\n  rustfmt: {a}\n  ours:    {b}", i + 1))
                .collect();
            panic!(
                "not rustfmt-clean:\n{}\n--- ours:\n{code}\n--- rustfmt:\n{formatted}",
                diff.join("\n")
            );
        }
    }

    #[test]
    fn the_fixture_app_on_gradio_5_50() {
        let code = code_for(&sample("5.50.0"));
        assert!(
            code.contains("pub fn upper(name: &str) -> GradioNode<(String,), (String,)> {\n    App::default().upper(name)\n}"),
            "{code}"
        );
        assert!(code.contains(
            "    pub fn upper(&self, name: &str) -> GradioNode<(String,), (String,)> {\n        \
             GradioNode::new(name, &self.src)\n            .api(\"/upper\")\n            \
             .input::<String>(\"text\")\n            .output::<String>(\"shouted\")\n    }"
        ));
        // Names: a dash, a numbered duplicate, a keyword.
        assert!(code.contains("pub fn make_thumb(name: &str) -> GradioNode<(Image,), (Image,)>"));
        assert!(code.contains("pub fn predict_1(name: &str) -> GradioNode<(f64,), (f64,)>"));
        assert!(code.contains(
            "pub fn type_(name: &str) -> GradioNode<(serde_json::Value,), (String, bool)>"
        ));
        assert!(code.contains(
            ".output::<String>(\"type_name\")\n            .output::<bool>(\"is_number\")"
        ));
        // The defaulted slider is documented, with its range, not a port.
        let thumb = function_of(&code, "make_thumb");
        assert!(
            thumb.contains("/// - `size: f64` (Slider, 8 to 64) = `16`"),
            "{thumb}"
        );
        assert!(!code.contains(".input::<f64>(\"size\")"));
        let settings = function_of(&code, "settings");
        for line in [
            "/// Input ports:\n/// - `name: String` (Textbox)\n",
            "/// - `loud: bool` (Checkbox) = `false`\n",
            "/// - `colour: Colour` (Dropdown) = `\"red\"`\n",
            "/// - `letters: Vec<Letters>` (Checkboxgroup) = `[\"a\"]`\n",
            "/// - `times: f64` (Number) = `2`\n",
            "/// Output ports:\n/// - `summary: serde_json::Value` (Json)\n",
        ] {
            assert!(settings.contains(line), "{line} in {settings}");
        }
        // A Radio without a default: a port typed by the enum of its choices, which are not
        // Rust names; a Dropdown's default is the enum's.
        assert!(code.contains("pub fn paint(name: &str) -> GradioNode<(Shade,), (String,)> {"));
        assert!(code.contains(".input::<Shade>(\"shade\")"));
        let paint = function_of(&code, "paint");
        for line in [
            "/// - `shade: Shade` (Radio)\n",
            "/// - `coats: f64` (Slider, 1 to 5) = `1`\n",
            "/// - `finish: Finish` (Dropdown) = `\"gloss\"`\n",
        ] {
            assert!(paint.contains(line), "{line} in {paint}");
        }
        assert!(code.contains(
            "/// The choices of `shade` of `/paint` (Radio), sent to the app as the strings shown.\n\
             #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]\n\
             pub enum Shade {\n    \
             /// `\"Sky Blue\"`\n    #[serde(rename = \"Sky Blue\")]\n    SkyBlue,\n    \
             /// `\"dark-red\"`\n    #[serde(rename = \"dark-red\")]\n    DarkRed,\n    \
             /// `\"1st coat\"`\n    #[serde(rename = \"1st coat\")]\n    X1stCoat,\n    \
             /// `\"self\"`\n    #[serde(rename = \"self\")]\n    Self_,\n}\n"
        ), "{code}");
        assert!(code.contains(
            "#[derive(\n    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,\n)]\n\
             pub enum Colour {\n    /// `\"red\"`, the app's default.\n    #[default]\n    #[serde(rename = \"red\")]\n    Red,\n"
        ), "{code}");
        // A list's items have no default.
        assert!(code.contains(
            "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]\npub enum Letters {"
        ), "{code}");
        assert!(code.contains(
            "// sent as the listed strings: the crate needs `serde` with its `derive` feature.\n"
        ));
        // Files: a file port, an optional image left to its default, a gallery.
        assert!(
            code.contains("pub fn files(name: &str) -> GradioNode<(File,), (File, Vec<Image>)>")
        );
        assert!(
            function_of(&code, "files").contains("/// - `overlay: Option<Image>` (Image) = `null`")
        );
        assert!(
            code.contains("pub fn echo_audio(name: &str) -> GradioNode<(Audio,), (Audio, f64)>")
        );
        assert!(code.contains("use daggr::{Audio, File, GradioNode, Image};\n"));
        assert!(code.contains("pub const SRC: &str = \"http://127.0.0.1:7860\";"));
        assert!(code.starts_with(
            "// Typed daggr bindings for the Gradio app at http://127.0.0.1:7860: 9 endpoints.\n"
        ));
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn gradio_4_44_5_50_and_6_31_give_the_same_bindings() {
        let reference = code_for(&sample("5.50.0"));
        for version in ["4.44.1", "6.31.0"] {
            let code = code_for(&sample(version));
            assert_eq!(code, reference, "Gradio {version}");
        }
    }

    #[test]
    fn the_header_says_how_the_file_was_made() {
        let bindings = generate(
            &sample("6.31.0"),
            &Options {
                src: "owner/space".into(),
                apis: vec!["upper".into(), "/type".into()],
                gradio_version: Some("6.31.0".into()),
            },
        )
        .unwrap();
        let first: Vec<&str> = bindings.code.lines().take(2).collect();
        assert_eq!(
            first[0],
            "// Typed daggr bindings for the Gradio app at owner/space (Gradio 6.31.0): 2 endpoints."
        );
        assert!(first[1].starts_with(
            "// Generated by `cargo daggr codegen gradio owner/space --api upper --api type` (daggr-codegen "
        ));
        assert_eq!(
            bindings.endpoints,
            [
                ("/type".to_string(), "type_".to_string()),
                ("/upper".to_string(), "upper".to_string())
            ]
        );
        assert!(!bindings.code.contains("fn make_thumb"));
        assert!(bindings.code.contains("use daggr::GradioNode;\n"));
        assert!(bindings
            .code
            .contains("pub const SRC: &str = \"owner/space\";"));
        assert_rustfmt_clean(&bindings.code);
    }

    #[test]
    fn output_is_deterministic() {
        let info = sample("6.31.0");
        let a = code_for(&info);
        // The same description with its endpoints in another order.
        let mut reversed = serde_json::Map::new();
        let named = info["named_endpoints"].as_object().unwrap();
        let mut names: Vec<&String> = named.keys().collect();
        names.reverse();
        for name in names {
            reversed.insert(name.clone(), named[name].clone());
        }
        let b = code_for(&json!({ "named_endpoints": reversed }));
        assert_eq!(a, b);
    }

    /// The `/combine` entry of the protocol reference (Gradio 6.31, trimmed).
    fn combine() -> Json {
        json!({"named_endpoints": {"/combine": {
            "parameters": [
                {"label": "x", "parameter_name": "x", "parameter_has_default": true, "parameter_default": 1,
                 "type": {"type": "number"}, "python_type": {"type": "float", "description": ""},
                 "component": "Number", "example_input": 3},
                {"label": "label", "parameter_name": "label", "parameter_has_default": false,
                 "parameter_default": null, "type": {"type": "string"},
                 "python_type": {"type": "str", "description": ""}, "component": "Textbox",
                 "example_input": "Hello!!"}],
            "returns": [
                {"label": "doubled", "type": {"type": "number"}, "python_type": {"type": "float", "description": ""}, "component": "Number"},
                {"label": "joined", "type": {"type": "string"}, "python_type": {"type": "str", "description": ""}, "component": "Textbox"}],
            "api_visibility": "public", "description": "Doubles `x` and labels it.\n```\nnot code\n```"
        }}, "unnamed_endpoints": {}})
    }

    #[test]
    fn the_reference_combine_endpoint() {
        let code = code_for(&combine());
        let f = function_of(&code, "combine");
        assert!(
            f.contains("pub fn combine(name: &str) -> GradioNode<(String,), (f64, String)> {"),
            "{f}"
        );
        assert!(
            f.contains("/// Doubles `x` and labels it.\n/// '''\n/// not code\n/// '''\n"),
            "{f}"
        );
        assert!(f.contains("/// - `x: f64` (Number) = `1`"), "{f}");
        assert!(code.contains(".input::<String>(\"label\")\n            .output::<f64>(\"doubled\")\n            .output::<String>(\"joined\")"));
        assert_rustfmt_clean(&code);
    }

    fn param(name: &str, component: &str, schema: Json, python: &str) -> Json {
        json!({"label": name, "parameter_name": name, "parameter_has_default": false,
               "parameter_default": null, "type": schema,
               "python_type": {"type": python, "description": ""}, "component": component})
    }

    fn file_schema() -> Json {
        json!({"properties": {"path": {"type": "string"}, "meta": {"default": {"_type": "gradio.FileData"}}},
               "title": "FileData", "type": "object"})
    }

    #[test]
    fn choices_become_enums_named_after_their_parameters() {
        let choices = |name: &str, component: &str, list: Json, default: Option<Json>| {
            let mut p = param(
                name,
                component,
                json!({"type": "string", "enum": list}),
                "str",
            );
            if let Some(d) = default {
                p["parameter_has_default"] = json!(true);
                p["parameter_default"] = d;
            }
            p
        };
        let picks = param(
            "picks",
            "Dropdown",
            json!({"type": "array", "items": {"type": "string", "enum": ["", "日本", "a b", "a-b", "Self"]}}),
            "list[str]",
        );
        let info = json!({"named_endpoints": {
            "/a": {"parameters": [
                choices("colour", "Dropdown", json!(["red", "green"]), Some(json!("red"))),
                choices("mode", "Radio", json!(["x", "y"]), None),
                choices("default", "Dropdown", json!(["1", "2"]), Some(json!("2"))),
                choices("size", "Dropdown", json!([1, 2]), None),
            ], "returns": []},
            "/b": {"parameters": [
                choices("colour", "Dropdown", json!(["red", "green"]), Some(json!("red"))),
                choices("mode", "Radio", json!(["x", "z"]), None),
                picks,
            ], "returns": [
                {"label": "picked", "type": {"type": "string", "enum": ["x"]}, "component": "Dropdown"}
            ]},
            "/c": {"parameters": [
                choices("opt", "Dropdown", json!(["on", "off"]), Some(Json::Null)),
                choices("image_size", "Dropdown", json!(["small"]), None),
            ], "returns": []},
        }});
        let code = code_for(&info);
        // One parameter name, the same choices: one enum, for both endpoints.
        assert_eq!(code.matches("pub enum Colour {").count(), 1, "{code}");
        assert!(code.contains(
            "/// The choices of `colour` of `/a` (Dropdown), `colour` of `/b` (Dropdown), sent to the app as the\n\
             /// strings shown.\n\
             #[derive(\n    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,\n)]\n\
             pub enum Colour {\n"
        ), "{code}");
        // One name, other choices: an enum per endpoint; a name Rust uses: prefixed too.
        assert!(code.contains(".input::<AMode>(\"mode\")"), "{code}");
        assert!(code.contains(".input::<BMode>(\"mode\")"), "{code}");
        assert!(code.contains("pub enum ADefault {\n    /// `\"1\"`\n    #[serde(rename = \"1\")]\n    X1,\n    /// `\"2\"`, the app's default.\n    #[default]\n"), "{code}");
        // Choices that are numbers are no enum; nor is a return value.
        assert!(function_of(&code, "a").contains("/// - `size: String` (Dropdown)\n"));
        assert!(code.contains(".output::<String>(\"picked\")"), "{code}");
        // A list of choices: a Vec of the enum; awkward choices get names all the same.
        assert!(function_of(&code, "b").contains("/// - `picks: Vec<Picks>` (Dropdown)\n"));
        for variant in [
            "#[serde(rename = \"\")]\n    Empty,",
            "#[serde(rename = \"日本\")]\n    Choice2,",
            "#[serde(rename = \"a b\")]\n    AB,",
            "#[serde(rename = \"a-b\")]\n    AB2,",
            "#[serde(rename = \"Self\")]\n    Self_,",
        ] {
            assert!(code.contains(variant), "{variant} in {code}");
        }
        // A default of `None`: optional, and no default variant.
        assert!(function_of(&code, "c").contains("/// - `opt: Option<Opt>` (Dropdown) = `null`\n"));
        assert!(code.contains("#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]\npub enum Opt {"));
        // `ImageSize` names no media type: nothing more to import.
        assert!(code.contains(".input::<ImageSize>(\"image_size\")"));
        assert!(code.contains("use daggr::GradioNode;\n"), "{code}");
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn types_of_components() {
        let cases = [
            param("t", "Textbox", json!({"type": "string"}), "str"),
            param("n", "Number", json!({"type": "number"}), "float"),
            param("i", "Number", json!({"type": "integer"}), "int"),
            param("b", "Checkbox", json!({"type": "boolean"}), "bool"),
            param(
                "multi",
                "Dropdown",
                json!({"type": "array", "items": {"type": "string"}}),
                "list[str]",
            ),
            param("j", "JSON", json!({}), "Dict[Any, Any]"),
            param("v", "Video", file_schema(), "filepath"),
            param(
                "files",
                "File",
                json!({"type": "array", "items": file_schema()}),
                "list[filepath]",
            ),
            param(
                "g",
                "Gallery",
                json!({"type": "array", "items": {}}),
                "list[dict(image: filepath)]",
            ),
            param(
                "df",
                "Dataframe",
                json!({"type": "object", "properties": {"headers": {}}}),
                "dict(headers: list[Any], data: list[list[Any]])",
            ),
            param(
                "chat",
                "Multimodaltextbox",
                json!({"type": "object", "properties": {"files": {"type": "array", "items": file_schema()}}}),
                "dict(text: str, files: list[filepath])",
            ),
            param(
                "custom",
                "MyCustomSlider",
                json!({"type": "number"}),
                "float",
            ),
            param("legacy", "OldThing", json!(null), "str"),
        ];
        let info = json!({"named_endpoints": {"/all": {"parameters": cases, "returns": []}}});
        let code = code_for(&info);
        let f = function_of(&code, "all");
        for line in [
            "/// - `t: String` (Textbox)\n",
            "/// - `n: f64` (Number)\n",
            "/// - `i: f64` (Number)\n",
            "/// - `b: bool` (Checkbox)\n",
            "/// - `multi: Vec<String>` (Dropdown)\n",
            "/// - `j: serde_json::Value` (JSON)\n",
            "/// - `v: Video` (Video)\n",
            "/// - `files: Vec<File>` (File)\n",
            "/// - `g: Vec<Image>` (Gallery)\n",
            "/// - `df: serde_json::Value` (Dataframe): `Dataframe` (python type `dict(headers: list[Any], data:\n///   list[list[Any]])`) has no daggr type, so it is passed as JSON\n",
            "/// - `chat: serde_json::Value` (Multimodaltextbox): `Multimodaltextbox` holds files",
            "/// - `custom: f64` (MyCustomSlider)\n",
            "/// - `legacy: String` (OldThing)\n",
            "/// Required, but past the 8 input ports a node has: set them with `.param(name, json)`:\n/// - `g: ",
            "/// Output ports: none.\n",
        ] {
            assert!(f.contains(line), "{line}\nin\n{f}");
        }
        // The first eight required parameters are the ports, in order.
        assert!(code.contains(".input::<String>(\"t\")"));
        assert!(code.contains(".input::<Vec<File>>(\"files\")"));
        assert!(!code.contains(".input::<Vec<Image>>(\"g\")"));
        // A long tuple is one type per line, as rustfmt lays it out.
        assert!(code.contains("pub fn all(\n    name: &str,\n) -> GradioNode<\n    (\n        String,\n        f64,\n"), "{code}");
        assert!(code.contains("use daggr::{File, GradioNode, Video};"));
        assert!(code.contains("// JSON ports use `serde_json::Value`"));
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn optional_values_and_many_outputs() {
        let mut img = param("mask", "Image", file_schema(), "filepath");
        img["parameter_has_default"] = json!(true);
        let mut text = param("negative", "Textbox", json!({"type": "string"}), "str");
        text["parameter_has_default"] = json!(true);
        let returns: Vec<Json> = (0..10)
            .map(|i| json!({"label": if i == 3 { "" } else { "Out Put" }, "type": {"type": "string"}, "python_type": {"type": "str"}, "component": "Textbox"}))
            .collect();
        let info = json!({"named_endpoints": {"/Generate Image": {"parameters": [img, text], "returns": returns}}});
        let code = code_for(&info);
        let f = function_of(&code, "generate_image");
        assert!(
            f.contains("/// - `mask: Option<Image>` (Image) = `null`\n"),
            "{f}"
        );
        assert!(
            f.contains("/// - `negative: Option<String>` (Textbox) = `null`\n"),
            "{f}"
        );
        assert!(f.contains("/// Input ports: none.\n"), "{f}");
        assert!(
            f.contains("/// - (2 more return values have no port: a node has at most 8 outputs)"),
            "{f}"
        );
        for port in ["out_put", "out_put_2", "out_put_3", "output_3", "out_put_4"] {
            assert!(
                code.contains(&format!(".output::<String>({port:?})")),
                "{port}"
            );
        }
        assert!(code.contains(".api(\"/Generate Image\")"));
        assert_eq!(code.matches(".output::<String>").count(), 8);
        assert!(code.contains("pub fn generate_image(\n    name: &str,\n) -> GradioNode<\n    (),\n    (\n        String,\n"), "{code}");
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn identifiers_are_valid_rust() {
        for (api, ident) in [
            ("/predict_1", "predict_1"),
            ("/make-thumb", "make_thumb"),
            ("/type", "type_"),
            ("/self", "self_"),
            ("/at", "at_"),
            ("/default", "default_"),
            ("/2x", "api_2x"),
            ("/generateImage", "generate_image"),
            ("/ünïcode", "n_code"),
            ("/---", "endpoint"),
            ("/", "endpoint"),
        ] {
            assert_eq!(fn_ident(api), ident, "{api}");
        }
        let mut taken = BTreeSet::new();
        assert_eq!(unique("a".into(), &mut taken), "a");
        assert_eq!(unique("a".into(), &mut taken), "a_2");
        assert_eq!(unique("a".into(), &mut taken), "a_3");

        let endpoint = json!({"parameters": [], "returns": [{"label": "out", "type": {"type": "string"}, "component": "Textbox"}]});
        let info = json!({"named_endpoints": {
            "/predict-1": endpoint, "/predict_1": endpoint, "/fn": endpoint, "/main": endpoint,
        }});
        let bindings = generate(&info, &options("a/b")).unwrap();
        let idents: Vec<&str> = bindings.endpoints.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(idents, ["fn_", "main_", "predict_1", "predict_1_2"]);
        assert!(bindings
            .code
            .contains("pub fn fn_(name: &str) -> GradioNode<(), (String,)> {"));
        // A short chain stays on one line, as rustfmt keeps it.
        assert!(bindings.code.contains("    pub fn fn_(&self, name: &str) -> GradioNode<(), (String,)> {\n        GradioNode::new(name, &self.src)\n            .api(\"/fn\")\n            .output::<String>(\"out\")\n    }"));
        assert_rustfmt_clean(&bindings.code);

        let tiny = json!({"named_endpoints": {"/ping": {"parameters": [], "returns": []}}});
        let code = code_for(&tiny);
        assert!(code.contains("    pub fn ping(&self, name: &str) -> GradioNode<(), ()> {\n        GradioNode::new(name, &self.src).api(\"/ping\")\n    }"), "{code}");
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn strings_are_escaped() {
        let info = json!({"named_endpoints": {"/quote\"d": {
            "parameters": [param("say \"hi\"\\", "Textbox", json!({"type": "string"}), "str")],
            "returns": []}}});
        let code = generate(&info, &options("http://h/\"x\"")).unwrap().code;
        assert!(code.contains(r#".api("/quote\"d")"#), "{code}");
        assert!(
            code.contains(r#".input::<String>("say \"hi\"\\")"#),
            "{code}"
        );
        assert!(
            code.contains(r#"pub const SRC: &str = "http://h/\"x\"";"#),
            "{code}"
        );
        assert_rustfmt_clean(&code);
    }

    #[test]
    fn unknown_apis_and_bad_descriptions_are_errors() {
        let err = generate(
            &sample("5.50.0"),
            &Options {
                src: "a/b".into(),
                apis: vec!["/uper".into()],
                gradio_version: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the app has no endpoint `/uper`; did you mean `/upper`? (its endpoints: /echo_audio, \
             /files, /make-thumb, /paint, /predict, /predict_1, /settings, /type, /upper)"
        );
        let err = generate(&json!({"detail": "Not Found"}), &options("a/b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a Gradio API description: no `named_endpoints` object (keys: detail)"
        );
        assert!(matches!(
            generate(&json!([1]), &options("a/b")),
            Err(CodegenError::NotApiInfo(_))
        ));
        assert_eq!(
            generate(
                &json!({"named_endpoints": {}, "unnamed_endpoints": {"0": {}}}),
                &options("a/b")
            ),
            Err(CodegenError::NoEndpoints)
        );
    }
}
