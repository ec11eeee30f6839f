//! A pipeline's graph read from its sources, without building or running anything: the
//! logic of `cargo daggr graph --static`. The sources are parsed with syn; every
//! `#[fn_node]` function gives its ports' types ([`crate::fn_node::signature`]), every
//! struct deriving `Outputs` the ports of the `#[fn_node(fields)]` functions returning it,
//! and every `pipeline! { … }` invocation a pipeline ([`crate::pipeline::PipelineDef`]),
//! whose graph is [`crate::pipeline::PipelineDef::static_ir`] with its named outputs.
//! Graphs assembled at run time (the `Graph` API) are not seen: that takes building the
//! target.
//!
//! A pipeline that would not compile has no graph: the error is the macro's own (the
//! `pipeline!` expansion's errors), and, for the `#[fn_node]` functions found, what the
//! compiler would say about an unknown or missing port.
//!
//! ```
//! use daggr_codegen::static_graph::StaticSources;
//!
//! let mut sources = StaticSources::new();
//! sources
//!     .add_source(
//!         "main.rs",
//!         r#"
//!         #[fn_node] fn shout(text: String) -> String { text.to_uppercase() }
//!         daggr::pipeline! {
//!             pub struct Loud {
//!                 inputs { text: String = String::new() }
//!                 nodes { loud = shout(text: text); }
//!                 outputs { loud: String = loud }
//!             }
//!         }
//!         "#,
//!     )
//!     .unwrap();
//! let ir = sources.graph(None).unwrap();
//! assert_eq!(ir.graph.name, "Loud");
//! assert_eq!(ir.graph.edges[0].ty, "String");
//! assert_eq!((ir.outputs[0].from.as_str(), ir.outputs[0].ty.as_str()), ("loud", "String"));
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;

use crate::fn_node::{signature, FnSignature};
use crate::ir::{GraphIr, OutputIr, PipelineIr, PortIr};
use crate::options::{did_you_mean, AttrOptions};
use crate::pipeline::{classify, LenientPipeline, PipelineDef, SourceRef, VariantNode};
use crate::suggest;

/// Why no graph could be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticGraphError {
    /// A source file could not be read.
    #[error("reading {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A source is not valid Rust.
    #[error("parsing {}: {message}", at(.source_name, *.position))]
    Parse {
        /// The source's name (its path).
        source_name: String,
        /// The 1-based line and column of the error, when known (see
        /// [`StaticSources::locate_with`]).
        position: Option<(usize, usize)>,
        /// syn's error.
        message: String,
    },
    /// No `pipeline!` was found in the sources.
    #[error("no `pipeline!` found in {sources}")]
    NoPipeline {
        /// The sources read, comma-separated.
        sources: String,
    },
    /// A named pipeline is not among those found.
    #[error("no pipeline named `{name}`; found: {found}")]
    UnknownPipeline {
        /// The name asked for.
        name: String,
        /// The names found, comma-separated (and where a `pipeline!` whose name could not
        /// be read is).
        found: String,
    },
    /// The pipeline asked for does not compile: the errors the `pipeline!` macro reports
    /// (and the ports the compiler would report as unknown or missing).
    #[error("{} does not compile:{}", invocation(.pipeline, .source_name), list(.mistakes))]
    Invalid {
        /// The pipeline's name, when it could be read.
        pipeline: Option<String>,
        /// The source of its `pipeline!` (its path).
        source_name: String,
        /// What is wrong, in source order as the macro reports it.
        mistakes: Vec<PipelineMistake>,
    },
}

/// One error in a `pipeline!`, where it is: `src/main.rs:12:32: unknown node `promt`; did
/// you mean `prompt`?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineMistake {
    /// The source (its path).
    pub source_name: String,
    /// The 1-based line and column of the token at fault, when known (see
    /// [`StaticSources::locate_with`]).
    pub position: Option<(usize, usize)>,
    /// The message, as the macro (or the compiler) words it.
    pub message: String,
}

impl fmt::Display for PipelineMistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            at(&self.source_name, self.position),
            self.message
        )
    }
}

/// `file:line:column`, or `file` when the position is not known.
fn at(source: &str, position: Option<(usize, usize)>) -> String {
    match position {
        Some((line, column)) => format!("{source}:{line}:{column}"),
        None => source.to_string(),
    }
}

fn invocation(pipeline: &Option<String>, source: &str) -> String {
    match pipeline {
        Some(name) => format!("pipeline `{name}` ({source})"),
        None => format!("a `pipeline!` in {source}"),
    }
}

fn list(mistakes: &[PipelineMistake]) -> String {
    mistakes.iter().map(|m| format!("\n  {m}")).collect()
}

/// Finds a token's 1-based line and column from its span. proc-macro2 knows where a token
/// is only with its `span-locations` feature, which this crate leaves to the program that
/// reads sources (the macros have no use for it): such a program passes
/// `|span| Some((span.start().line, span.start().column + 1))`.
pub type SpanLocator = fn(Span) -> Option<(usize, usize)>;

/// One `pipeline! { … }` invocation.
struct Invocation {
    /// The source it is in.
    source: usize,
    /// Its tokens, for the macro's own expansion (and errors).
    tokens: TokenStream,
    /// The macro's name in the invocation (`pipeline` in `daggr::pipeline!`): where a
    /// `pipeline!` with no readable name is.
    at: Span,
    /// The pipeline's name, when it could be read.
    name: Option<String>,
    /// The pipeline, when it could be read (perhaps with errors).
    def: Option<PipelineDef>,
}

/// The `#[fn_node]` signatures and `pipeline!` definitions of a set of sources.
#[derive(Default)]
pub struct StaticSources {
    names: Vec<String>,
    /// The source being read.
    current: usize,
    signatures: HashMap<String, FnSignature>,
    /// `#[fn_node(fields)]` functions → the struct they return (candidates, see
    /// `fields_struct`).
    fields_fns: HashMap<String, Vec<String>>,
    /// Structs deriving `Outputs` → their fields (ports) and types.
    outputs_structs: HashMap<String, Vec<(String, String)>>,
    pipelines: Vec<Invocation>,
    locate: Option<SpanLocator>,
}

impl fmt::Debug for StaticSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticSources")
            .field("sources", &self.names)
            .field("fn_nodes", &self.signatures.keys().collect::<Vec<_>>())
            .field("pipelines", &self.pipeline_names())
            .finish()
    }
}

/// A type as the IR writes types read from sources (as `crate::fn_node::signature` does).
fn type_text(ty: &syn::Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

/// Whether `attrs` hold `#[derive(…, Outputs, …)]` (any path ending in `Outputs`).
fn derives_outputs(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|a| {
            a.parse_args_with(
                syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
            )
            .is_ok_and(|paths| {
                paths
                    .iter()
                    .any(|p| p.segments.last().is_some_and(|s| s.ident == "Outputs"))
            })
        })
}

/// The struct a `#[fn_node(fields)]` function may return, most likely first: the last path
/// segment of its return type, then of that type's first type argument (the `T` of a
/// `Result<T, E>`, however it is spelled or aliased), and so on.
fn fields_struct(item: &syn::ItemFn) -> Option<Vec<String>> {
    let attr = item.attrs.iter().find(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "fn_node")
    })?;
    let syn::Meta::List(list) = &attr.meta else {
        return None;
    };
    let options: AttrOptions = syn::parse2(list.tokens.clone()).ok()?;
    if !options.0.iter().any(|o| o.key == "fields") {
        return None;
    }
    let syn::ReturnType::Type(_, ty) = &item.sig.output else {
        return None;
    };
    let mut candidates = Vec::new();
    let mut next = Some(&**ty);
    while let Some(syn::Type::Path(p)) = next {
        let Some(segment) = p.path.segments.last() else {
            break;
        };
        candidates.push(segment.ident.to_string());
        next = match &segment.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            }),
            _ => None,
        };
    }
    Some(candidates)
}

/// The name in a `pipeline!` that does not parse: the identifier after `struct`.
fn struct_name(tokens: &TokenStream) -> Option<String> {
    let mut after_struct = false;
    for tree in tokens.clone() {
        match tree {
            TokenTree::Ident(i) if after_struct => return Some(i.to_string()),
            TokenTree::Ident(i) => after_struct = i == "struct",
            _ => after_struct = false,
        }
    }
    None
}

/// The `compile_error!`s of an expansion: the macro's errors, each with its span.
fn compile_errors(tokens: TokenStream, into: &mut Vec<(Span, String)>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if ident == "compile_error" => {
                if let (Some(TokenTree::Punct(bang)), Some(TokenTree::Group(group))) =
                    (trees.get(i + 1), trees.get(i + 2))
                {
                    if bang.as_char() == '!' {
                        if let Ok(message) = syn::parse2::<syn::LitStr>(group.stream()) {
                            into.push((ident.span(), message.value()));
                        }
                    }
                }
            }
            TokenTree::Group(group) => compile_errors(group.stream(), into),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for StaticSources {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if let Some(sig) = signature(item) {
            let name = item.sig.ident.to_string();
            if let Some(fields) = fields_struct(item) {
                self.fields_fns.insert(name.clone(), fields);
            }
            self.signatures.insert(name, sig);
        }
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        if derives_outputs(&item.attrs) {
            if let syn::Fields::Named(named) = &item.fields {
                let fields = named
                    .named
                    .iter()
                    .filter_map(|f| Some((f.ident.as_ref()?.to_string(), type_text(&f.ty))))
                    .collect();
                self.outputs_structs.insert(item.ident.to_string(), fields);
            }
        }
        syn::visit::visit_item_struct(self, item);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let Some(last) = mac.path.segments.last() else {
            return;
        };
        if last.ident != "pipeline" {
            return;
        }
        let (name, def) = match syn::parse2::<LenientPipeline>(mac.tokens.clone()) {
            Ok(LenientPipeline { def, .. }) => (Some(def.name.to_string()), Some(def)),
            Err(_) => (struct_name(&mac.tokens), None),
        };
        self.pipelines.push(Invocation {
            source: self.current,
            tokens: mac.tokens.clone(),
            at: last.ident.span(),
            name,
            def,
        });
    }
}

impl StaticSources {
    /// No sources yet.
    pub fn new() -> StaticSources {
        StaticSources::default()
    }

    /// Errors will say where they are, with `locate` (see [`SpanLocator`]); without it
    /// they name the source only.
    pub fn locate_with(&mut self, locate: SpanLocator) {
        self.locate = Some(locate);
    }

    fn position(&self, span: Span) -> Option<(usize, usize)> {
        // A line 0 is a token with no place in the source (one the macro made up).
        self.locate
            .and_then(|locate| locate(span))
            .filter(|(line, _)| *line > 0)
    }

    /// Reads the source `text`, named `name` in errors (its path).
    pub fn add_source(&mut self, name: &str, text: &str) -> Result<(), StaticGraphError> {
        let ast = syn::parse_file(text).map_err(|e| StaticGraphError::Parse {
            source_name: name.to_string(),
            position: self.position(e.span()),
            message: e.to_string(),
        })?;
        self.current = self.names.len();
        self.names.push(name.to_string());
        self.visit_file(&ast);
        Ok(())
    }

    /// Reads the source file at `path`.
    pub fn add_file(&mut self, path: &Path) -> Result<(), StaticGraphError> {
        let text = std::fs::read_to_string(path).map_err(|e| StaticGraphError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.add_source(&path.display().to_string(), &text)
    }

    /// The names of the `pipeline!` types found, in the order found (those that do not
    /// compile included).
    pub fn pipeline_names(&self) -> Vec<String> {
        self.pipelines
            .iter()
            .filter_map(|p| p.name.clone())
            .collect()
    }

    /// The graph and named outputs of the pipeline named `pipeline`, or of the first one
    /// found. Port types come from the `#[fn_node]` functions of all the sources, by
    /// function name. A pipeline that does not compile is an error
    /// ([`StaticGraphError::Invalid`]) saying why.
    pub fn graph(&self, pipeline: Option<&str>) -> Result<PipelineIr, StaticGraphError> {
        let Some(first) = self.pipelines.first() else {
            return Err(StaticGraphError::NoPipeline {
                sources: self.names.join(", "),
            });
        };
        let found = match pipeline {
            Some(name) => self
                .pipelines
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .ok_or_else(|| StaticGraphError::UnknownPipeline {
                    name: name.to_string(),
                    found: self.found_text(),
                })?,
            None => first,
        };
        let mistakes = self.mistakes(found);
        let def = match &found.def {
            Some(def) if mistakes.is_empty() => def,
            _ => {
                return Err(StaticGraphError::Invalid {
                    pipeline: found.name.clone(),
                    source_name: self.names[found.source].clone(),
                    mistakes,
                })
            }
        };
        let mut graph = def.static_ir(&|path| self.signature_of(path));
        complete_output_ports(&mut graph);
        let outputs = outputs_of(def, &graph);
        Ok(PipelineIr { graph, outputs })
    }

    /// The named outputs of the `pipeline!` that `graph` was built from (the one of its
    /// name, if it compiles), read against `graph`'s nodes: for a graph the program built,
    /// whose IR has no outputs. Empty when no such `pipeline!` is in the sources.
    pub fn outputs_of(&self, graph: &GraphIr) -> Vec<OutputIr> {
        let Some(def) = self
            .pipelines
            .iter()
            .filter(|p| p.name.as_deref() == Some(graph.name.as_str()))
            .find_map(|p| p.def.as_ref())
        else {
            return Vec::new();
        };
        // Only ports the built graph has: a `pipeline!` of the same name that is not the
        // one built gives none.
        outputs_of(def, graph)
            .into_iter()
            .filter(|o| {
                graph
                    .nodes
                    .iter()
                    .any(|n| n.name == o.from && n.outputs.iter().any(|p| p.name == o.from_port))
            })
            .collect()
    }

    /// The names found, and where any `pipeline!` whose name could not be read is.
    fn found_text(&self) -> String {
        let mut text = self.pipeline_names().join(", ");
        for p in self.pipelines.iter().filter(|p| p.name.is_none()) {
            if !text.is_empty() {
                text.push_str(", and ");
            }
            text.push_str(&format!(
                "a `pipeline!` that does not parse at {}",
                at(&self.names[p.source], self.position(p.at))
            ));
        }
        if text.is_empty() {
            text.push_str("none");
        }
        text
    }

    /// Why `found` does not compile: the macro's own errors, then (when it has none) the
    /// ports the compiler would find unknown or missing. Empty when it compiles.
    fn mistakes(&self, found: &Invocation) -> Vec<PipelineMistake> {
        let mut errors = Vec::new();
        compile_errors(crate::pipeline::expand(found.tokens.clone()), &mut errors);
        if errors.is_empty() {
            if let Some(def) = &found.def {
                errors = self.port_errors(def);
            }
        }
        errors
            .into_iter()
            .map(|(span, message)| PipelineMistake {
                source_name: self.names[found.source].clone(),
                position: self.position(span),
                message,
            })
            .collect()
    }

    /// The signature of the `#[fn_node]` function `path` names (by its last segment), with
    /// the fields of a `fields` function's struct as its outputs (none when the struct is
    /// not in the sources).
    fn signature_of(&self, path: &syn::Path) -> Option<FnSignature> {
        let name = path.segments.last()?.ident.to_string();
        let mut sig = self.signatures.get(&name)?.clone();
        if self.fields_fns.contains_key(&name) {
            sig.outputs = self.fields_of(&name).unwrap_or_default();
        }
        Some(sig)
    }

    /// The output ports of the node `path` names, when they are known: a `fields`
    /// function's struct may be in another crate.
    fn known_outputs(&self, path: &syn::Path) -> Option<Vec<(String, String)>> {
        let name = path.segments.last()?.ident.to_string();
        if self.fields_fns.contains_key(&name) {
            return self.fields_of(&name);
        }
        Some(self.signatures.get(&name)?.outputs.clone())
    }

    /// The fields of the `Outputs` struct the `fields` function `name` returns, when that
    /// struct is in the sources.
    fn fields_of(&self, name: &str) -> Option<Vec<(String, String)>> {
        self.fields_fns
            .get(name)?
            .iter()
            .find_map(|s| self.outputs_structs.get(s))
            .cloned()
    }

    /// What the compiler would report about the ports of the `#[fn_node]` nodes found: an
    /// input the function does not take, one it takes that is not wired, and a source
    /// naming an output port its node does not have, or no port of a node with several.
    fn port_errors(&self, def: &PipelineDef) -> Vec<(Span, String)> {
        let mut errors = Vec::new();
        let inputs: HashSet<String> = def.inputs.iter().map(|i| i.name.to_string()).collect();
        // Node → (function, its output ports), for the nodes whose ports are known.
        let mut outputs: HashMap<String, (String, Vec<(String, String)>)> = HashMap::new();
        for node in &def.nodes {
            // A choice shows its first variant's output (the variants' are the same).
            let func = match (&node.custom, &node.choice) {
                (None, None) => &node.func,
                (None, Some(choice)) => match choice.variants.first().map(|v| &v.node) {
                    Some(VariantNode::Fn(path)) => path,
                    _ => continue,
                },
                (Some(_), _) => continue,
            };
            if let Some(mut ports) = self.known_outputs(func) {
                if node.map.is_some() {
                    ports.truncate(1);
                }
                let func = func.segments.last().map(|s| s.ident.to_string());
                outputs.insert(node.name.to_string(), (func.unwrap_or_default(), ports));
            }
        }
        let check_source = |value: &syn::Expr, errors: &mut Vec<(Span, String)>| {
            let SourceRef::Name(from, port) = classify(value) else {
                return;
            };
            let key = from.to_string();
            match port {
                Some(port) if inputs.contains(&key) => errors.push((
                    port.span(),
                    format!("`{key}` is a pipeline input, with no ports to name: wire it as `{key}`, without `.{port}`"),
                )),
                Some(port) => {
                    let Some((func, ports)) = outputs.get(&key) else {
                        return;
                    };
                    let port = port.to_string();
                    if !ports.iter().any(|(p, _)| *p == port) {
                        errors.push((
                            value_port_span(value),
                            format!(
                                "node `{key}` (`{func}`) has no output `{port}`{}",
                                hint(&port, ports.iter().map(|(p, _)| p.as_str()), "outputs")
                            ),
                        ));
                    }
                }
                None => {
                    let Some((func, ports)) = outputs.get(&key) else {
                        return;
                    };
                    if ports.len() > 1 {
                        let names: Vec<String> =
                            ports.iter().map(|(p, _)| format!("`{p}`")).collect();
                        errors.push((
                            from.span(),
                            format!(
                                "node `{key}` (`{func}`) has several outputs ({}): name one, as in `{key}.{}`",
                                names.join(", "),
                                ports[0].0
                            ),
                        ));
                    }
                }
            }
        };
        for node in def.nodes.iter().filter(|n| !n.is_fn_node()) {
            for arg in &node.args {
                check_source(&arg.value, &mut errors);
            }
        }
        for node in def.nodes.iter().filter(|n| n.is_fn_node()) {
            if let Some(sig) = self.signature_of(&node.func) {
                let func = node.func.segments.last().map(|s| s.ident.to_string());
                let func = func.unwrap_or_default();
                if node.map.is_some() && sig.outputs.len() > 1 {
                    errors.push((
                        node.func
                            .segments
                            .last()
                            .map_or(node.name.span(), |s| s.ident.span()),
                        format!(
                            "a mapped node has one output port, and `{func}` has {} (node `{}`): split it, or map a function returning one value",
                            sig.outputs.len(),
                            node.name
                        ),
                    ));
                }
                let takes = sig.inputs.iter().map(|(p, _)| p.as_str());
                let mut unknown = false;
                for arg in &node.args {
                    let port = arg.port.to_string();
                    if !sig.inputs.iter().any(|(p, _)| *p == port) {
                        unknown = true;
                        errors.push((
                            arg.port.span(),
                            format!(
                                "node `{}` (`{func}`) has no input `{port}`{}",
                                node.name,
                                hint(&port, takes.clone(), "inputs")
                            ),
                        ));
                    }
                }
                // As the compiler: an unknown input (a typo, most often) hides the
                // missing ones.
                for (port, _) in sig.inputs.iter().filter(|_| !unknown) {
                    if !node.args.iter().any(|a| a.port == port) {
                        errors.push((
                            node.func
                                .segments
                                .last()
                                .map_or(node.name.span(), |s| s.ident.span()),
                            format!(
                                "missing required input `{port}` of node `{}`: wire it: `{port}: other_node.port`, a constant, or a pipeline input",
                                node.name
                            ),
                        ));
                    }
                }
            }
            for arg in &node.args {
                check_source(&arg.value, &mut errors);
            }
        }
        for out in &def.outputs {
            check_source(&out.value, &mut errors);
        }
        errors
    }
}

/// The span of the port in a `node.port` source.
fn value_port_span(value: &syn::Expr) -> Span {
    match value {
        syn::Expr::Field(f) => match &f.member {
            syn::Member::Named(port) => port.span(),
            syn::Member::Unnamed(i) => i.span,
        },
        other => syn::spanned::Spanned::span(other),
    }
}

/// `; did you mean `x`?`, or the list of what there is (`; its inputs: `a`, `b``).
fn hint<'a>(name: &str, candidates: impl Iterator<Item = &'a str> + Clone, what: &str) -> String {
    match suggest(name, candidates.clone()) {
        Some(s) => did_you_mean(Some(s)),
        None => {
            let all: Vec<String> = candidates.map(|c| format!("`{c}`")).collect();
            if all.is_empty() {
                format!("; it has no {what}")
            } else {
                format!("; its {what}: {}", all.join(", "))
            }
        }
    }
}

/// Gives every node the output ports its edges read: a node whose function is not in the
/// sources (its one `output` port is a guess) or a `fields` node whose struct is not.
/// Without them graphviz warns about unknown ports.
fn complete_output_ports(graph: &mut GraphIr) {
    let mut read: Vec<(String, String, String)> = Vec::new();
    for e in &graph.edges {
        if !read
            .iter()
            .any(|(n, p, _)| *n == e.from && *p == e.from_port)
        {
            read.push((e.from.clone(), e.from_port.clone(), e.ty.clone()));
        }
    }
    for node in &mut graph.nodes {
        let wanted: Vec<&(String, String, String)> =
            read.iter().filter(|(n, _, _)| *n == node.name).collect();
        if wanted.is_empty() {
            continue;
        }
        let guessed = node.outputs.len() == 1
            && node.outputs[0].name == "output"
            && node.outputs[0].ty == "?"
            && !wanted.iter().any(|(_, p, _)| p == "output");
        if guessed {
            node.outputs.clear();
        }
        for (_, port, ty) in wanted {
            if !node.outputs.iter().any(|p| p.name == *port) {
                node.outputs.push(PortIr {
                    name: port.clone(),
                    ty: ty.clone(),
                    source: None,
                });
            }
        }
    }
}

/// The named outputs of `def`, read against `graph`'s nodes: the port each reads (a node's
/// only port when none is named) and its type (the port's, else the one written).
/// Outputs that are not a node's port (a constant) are left out.
fn outputs_of(def: &PipelineDef, graph: &GraphIr) -> Vec<OutputIr> {
    def.outputs
        .iter()
        .filter_map(|o| {
            let SourceRef::Name(from, port) = classify(&o.value) else {
                return None;
            };
            let from = from.to_string();
            let node = graph.nodes.iter().find(|n| n.name == from);
            let from_port = match port {
                Some(p) => p.to_string(),
                None => node
                    .and_then(|n| n.outputs.first())
                    .map_or_else(|| "output".to_string(), |p| p.name.clone()),
            };
            let ty = node
                .and_then(|n| n.outputs.iter().find(|p| p.name == from_port))
                .map(|p| p.ty.clone())
                .filter(|t| t != "?")
                .unwrap_or_else(|| type_text(&o.ty));
            Some(OutputIr {
                name: o.name.to_string(),
                ty,
                from,
                from_port,
            })
        })
        .collect()
}

/// The graph of the pipeline named `pipeline` (or the first one) in the files `files`;
/// see [`StaticSources`].
pub fn graph_of_files(
    files: &[impl AsRef<Path>],
    pipeline: Option<&str>,
) -> Result<PipelineIr, StaticGraphError> {
    let mut sources = StaticSources::new();
    for file in files {
        sources.add_file(file.as_ref())?;
    }
    sources.graph(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = r#"
        #[fn_node] fn shout(text: String) -> String { text }
        #[fn_node(outputs(n, m))] fn pair(text: String) -> (u32, Vec<u8>) { (text.len() as u32, text.into_bytes()) }
        daggr::pipeline! {
            pub struct Flow {
                inputs { text: String = String::new() }
                nodes { loud = shout(text: text); p = pair(text: loud); }
            }
        }
        fn main() {}
    "#;

    #[test]
    fn pipelines_and_port_types_are_found() {
        let mut sources = StaticSources::new();
        sources.add_source("main.rs", FLOW).unwrap();
        assert_eq!(sources.pipeline_names(), ["Flow"]);
        let ir = sources.graph(None).unwrap().graph;
        assert_eq!(ir.name, "Flow");
        let p = ir.nodes.iter().find(|n| n.name == "p").unwrap();
        assert_eq!(p.outputs[0].name, "n");
        assert_eq!(p.outputs[1].ty, "Vec<u8>");
        assert_eq!(ir.edges.len(), 2);
        assert_eq!(ir.edges[1].ty, "String");
        assert_eq!(
            (ir.edges[1].from.as_str(), ir.edges[1].to.as_str()),
            ("loud", "p")
        );
    }

    #[test]
    fn functions_in_another_source_type_the_ports() {
        let mut sources = StaticSources::new();
        sources
            .add_source(
                "main.rs",
                r#"
                use crate::nodes::count;
                daggr::pipeline! {
                    struct Counting {
                        inputs { text: String = String::new() }
                        nodes { n = nodes::count(text: text); }
                    }
                }
                "#,
            )
            .unwrap();
        sources
            .add_source(
                "lib.rs",
                "pub mod nodes { #[daggr::fn_node] pub fn count(text: String) -> u64 { 0 } }",
            )
            .unwrap();
        let ir = sources.graph(Some("Counting")).unwrap().graph;
        let n = ir.nodes.iter().find(|n| n.name == "n").unwrap();
        assert_eq!(n.outputs[0].ty, "u64");
    }

    #[test]
    fn several_pipelines_are_chosen_by_name() {
        let mut sources = StaticSources::new();
        sources.add_source("a.rs", FLOW).unwrap();
        sources
            .add_source(
                "b.rs",
                r#"pipeline! { struct Other { inputs { x: u32 = 1 } nodes { } outputs { x: u32 = x } } }"#,
            )
            .unwrap();
        assert_eq!(sources.pipeline_names(), ["Flow", "Other"]);
        assert_eq!(sources.graph(None).unwrap().graph.name, "Flow");
        assert_eq!(sources.graph(Some("Other")).unwrap().graph.name, "Other");
        let err = sources.graph(Some("Otter")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no pipeline named `Otter`; found: Flow, Other"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let mut sources = StaticSources::new();
        let err = sources.add_source("bad.rs", "fn (").unwrap_err();
        assert!(err.to_string().starts_with("parsing bad.rs: "), "{err}");

        sources.add_source("main.rs", "fn main() {}").unwrap();
        assert_eq!(
            sources.graph(None).unwrap_err().to_string(),
            "no `pipeline!` found in main.rs"
        );
        sources
            .add_source("lib.rs", "daggr::pipeline! { not a pipeline }")
            .unwrap();
        assert!(sources.pipeline_names().is_empty());
        let err = sources.graph(None).unwrap_err().to_string();
        assert_eq!(
            err, "a `pipeline!` in lib.rs does not compile:\n  lib.rs: expected `struct`",
            "the macro's parse error is said"
        );
        let err = sources.graph(Some("Flow")).unwrap_err().to_string();
        assert_eq!(
            err,
            "no pipeline named `Flow`; found: a `pipeline!` that does not parse at lib.rs"
        );

        let err = graph_of_files(&[Path::new("/nonexistent/daggr/main.rs")], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reading /nonexistent/daggr/main.rs: "),
            "{err}"
        );
    }

    fn invalid(src: &str) -> String {
        let mut sources = StaticSources::new();
        sources.add_source("main.rs", src).unwrap();
        let err = sources.graph(None).unwrap_err();
        assert!(matches!(err, StaticGraphError::Invalid { .. }), "{err:?}");
        err.to_string()
    }

    const NODES: &str = r#"
        #[fn_node] fn shout(text: String) -> String { text }
        #[fn_node] fn scale(x: u64, factor: u64) -> u64 { x * factor }
        #[fn_node(outputs(words, chars))] fn stats(text: String) -> (usize, usize) { (0, 0) }
        #[fn_node] fn double(n: usize) -> usize { n * 2 }
    "#;

    #[test]
    fn a_pipeline_that_does_not_compile_is_an_error_not_a_graph() {
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ prompt: String = String::new() }} nodes {{ loud = shout(text: promt); }} }} }}"
        ));
        assert_eq!(
            err,
            "pipeline `Flow` (main.rs) does not compile:\n  main.rs: unknown node `promt`; did you mean `prompt`?"
        );
        let err = invalid(
            "pipeline! { struct Flow { inputs { a: u32 = 1 } nodes { x = f(v: a); y = f(v: x); x = f(v: y); } } }",
        );
        assert!(err.contains("main.rs: duplicate node `x`"), "{err}");
    }

    #[test]
    fn unknown_and_missing_ports_are_errors() {
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ prompt: String = String::new() }} nodes {{ loud = shout(txt: prompt); }} }} }}"
        ));
        assert!(
            err.contains("node `loud` (`shout`) has no input `txt`; did you mean `text`?"),
            "{err}"
        );
        assert!(
            !err.contains("missing required input"),
            "an unknown input hides the missing ones, as in the compiler: {err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ x: u64 = 1 }} nodes {{ s = scale(x: x); }} }} }}"
        ));
        assert!(
            err.contains("missing required input `factor` of node `s`"),
            "{err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: String = String::new() }} nodes {{ s = stats(text: t); d = double(n: s.word); }} }} }}"
        ));
        assert!(
            err.contains("node `s` (`stats`) has no output `word`; did you mean `words`?"),
            "{err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: String = String::new() }} nodes {{ s = stats(text: t); d = double(n: s); }} }} }}"
        ));
        assert!(
            err.contains("node `s` (`stats`) has several outputs (`words`, `chars`): name one, as in `s.words`"),
            "{err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: String = String::new() }} nodes {{ l = shout(text: t.value); }} }} }}"
        ));
        assert!(
            err.contains("`t` is a pipeline input, with no ports to name"),
            "{err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: String = String::new() }} nodes {{ l = shout(text: t); }} outputs {{ n: usize = l.out }} }} }}"
        ));
        assert!(
            err.contains("node `l` (`shout`) has no output `out`; its outputs: `output`"),
            "{err}"
        );
    }

    #[test]
    fn maps_and_choices_are_read_from_sources() {
        let mut sources = StaticSources::new();
        sources
            .add_source(
                "main.rs",
                r#"
                #[fn_node] fn shout(word: String) -> String { word }
                #[fn_node] fn first(words: Vec<String>) -> String { String::new() }
                #[fn_node] fn last(words: Vec<String>) -> String { String::new() }
                pipeline! {
                    struct Flow {
                        inputs { words: Vec<String> = vec![], group look { mark: String = String::new() } }
                        nodes {
                            #[map(skip_failed)]
                            loud = shout(word: each(words));
                            pick = choose(loud) { a: first, b: last };
                            marked = [FnNode::sync("m", |a: String, b: String| a + &b)](pick, mark);
                        }
                        outputs { pick: String = pick, loud: Vec<String> = loud.output }
                    }
                }
                "#,
            )
            .unwrap();
        let ir = sources.graph(None).unwrap();
        let node = |name: &str| ir.graph.nodes.iter().find(|n| n.name == name).unwrap();
        assert_eq!(node("loud").kind, "map");
        assert_eq!(node("loud").outputs[0].ty, "Vec<String>");
        assert_eq!(node("pick").kind, "choice");
        assert_eq!(node("pick").inputs[0].name, "words");
        assert_eq!(node("mark").group.as_deref(), Some("look"));
        let edge = ir.graph.edges.iter().find(|e| e.to == "pick").unwrap();
        assert_eq!(
            (edge.from.as_str(), edge.ty.as_str()),
            ("loud", "Vec<String>")
        );
        let outputs: Vec<(&str, &str)> = ir
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.ty.as_str()))
            .collect();
        assert_eq!(outputs, [("pick", "String"), ("loud", "Vec<String>")]);
        assert!(ir.to_dot().contains("\"loud\""));
    }

    #[test]
    fn a_mapped_node_of_several_outputs_is_an_error() {
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: Vec<String> = vec![] }} nodes {{ s = stats(text: each(t)); }} }} }}"
        ));
        assert!(
            err.contains("a mapped node has one output port, and `stats` has 2 (node `s`)"),
            "{err}"
        );
        let err = invalid(&format!(
            "{NODES} pipeline! {{ struct Flow {{ inputs {{ t: String = String::new() }} nodes {{ s = stats(text: t); c = choose(s.word) {{ a: shout }}; }} }} }}"
        ));
        assert!(
            err.contains("node `s` (`stats`) has no output `word`; did you mean `words`?"),
            "the sources of a choice are checked too: {err}"
        );
    }

    #[test]
    fn positions_come_from_the_locator() {
        let mut sources = StaticSources::new();
        sources.locate_with(|_| Some((7, 3)));
        sources
            .add_source(
                "main.rs",
                "pipeline! { struct P { inputs { a: u32 = 1 } nodes { n = f(x: b); } } }",
            )
            .unwrap();
        let err = sources.graph(None).unwrap_err().to_string();
        assert!(err.contains("\n  main.rs:7:3: unknown node `b`"), "{err}");
    }

    #[test]
    fn fields_nodes_and_named_outputs() {
        let mut sources = StaticSources::new();
        sources
            .add_source(
                "main.rs",
                r#"
                #[derive(daggr::Outputs)]
                struct Measures { words: u64, chars: u64 }
                #[fn_node(fields)]
                fn measure(text: String) -> Fallible<Measures> { todo!() }
                type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
                #[fn_node] fn double(n: u64) -> u64 { n * 2 }
                pipeline! {
                    struct Flow {
                        inputs { text: String = String::new() }
                        nodes { m = measure(text: text); d = double(n: m.chars); }
                        outputs { words: u64 = m.words, doubled: u64 = d, text: String = text }
                    }
                }
                "#,
            )
            .unwrap();
        let ir = sources.graph(None).unwrap();
        let m = ir.graph.nodes.iter().find(|n| n.name == "m").unwrap();
        let ports: Vec<(&str, &str)> = m
            .outputs
            .iter()
            .map(|p| (p.name.as_str(), p.ty.as_str()))
            .collect();
        assert_eq!(ports, [("words", "u64"), ("chars", "u64")]);
        let outputs: Vec<(&str, &str, &str, &str)> = ir
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.as_str(),
                    o.ty.as_str(),
                    o.from.as_str(),
                    o.from_port.as_str(),
                )
            })
            .collect();
        assert_eq!(
            outputs,
            [
                ("words", "u64", "m", "words"),
                ("doubled", "u64", "d", "output"),
                ("text", "String", "text", "value"),
            ]
        );
        let dot = ir.to_dot();
        assert!(
            dot.contains("\"m\":\"out_words\" -> \"output:words\":\"in_value\""),
            "{dot}"
        );
        // The outputs of a graph built from it, read against that graph.
        assert_eq!(sources.outputs_of(&ir.graph), ir.outputs);
    }

    #[test]
    fn ports_read_from_unknown_functions_are_drawn() {
        let mut sources = StaticSources::new();
        sources
            .add_source(
                "main.rs",
                r#"
                #[fn_node] fn double(n: u64) -> u64 { n * 2 }
                pipeline! {
                    struct Flow {
                        inputs { text: String = String::new() }
                        nodes { m = other::measure(text: text); d = double(n: m.chars); }
                    }
                }
                "#,
            )
            .unwrap();
        let ir = sources.graph(None).unwrap().graph;
        let m = ir.nodes.iter().find(|n| n.name == "m").unwrap();
        assert_eq!(m.outputs.len(), 1);
        assert_eq!(
            (m.outputs[0].name.as_str(), m.outputs[0].ty.as_str()),
            ("chars", "u64")
        );
    }

    #[test]
    fn files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.rs");
        std::fs::write(&file, FLOW).unwrap();
        let ir = graph_of_files(&[&file], None).unwrap();
        assert_eq!(ir.graph.name, "Flow");
    }
}
