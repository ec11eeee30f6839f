//! `pipeline!`: a small Rust-like DSL that declares a pipeline type and expands to
//! the plain builder API.
//!
//! ```text
//! pipeline! {
//!     /// Docs for the type.
//!     pub struct SeedFlow {
//!         inputs {
//!             prompt: String = "a red fox".to_string(),
//!         }
//!         nodes {
//!             image = generate(prompt: prompt, steps: 20);
//!             cutout = remove_background(image: image.image);
//!             caption = describe(image: cutout, style: "short");
//!         }
//!         outputs {
//!             caption: String = caption,
//!         }
//!     }
//! }
//! ```
//! A node is `name = function(port: source, …);` where `function` is a `#[fn_node]`
//! function (its generated `…Node` type is used). A source is a pipeline input, a node
//! (its only output), `node.port`, a literal or `{ expr }` (constants), or any other
//! expression of type `Source<T>` (`daggr::random_seed()`).

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{braced, parenthesized, Attribute, Expr, Ident, Lit, Path, Token, Type, Visibility};

use crate::fn_node::{node_type_name, port_of};
use crate::ir::{EdgeIr, GraphIr, NodeIr, PortIr, SCHEMA_VERSION};
use crate::options::{did_you_mean, suggest, Errors};

/// A parsed `pipeline!`.
pub struct PipelineDef {
    /// Attributes (docs) on the struct.
    pub attrs: Vec<Attribute>,
    /// Visibility.
    pub vis: Visibility,
    /// The type name.
    pub name: Ident,
    /// Pipeline inputs.
    pub inputs: Vec<InputDef>,
    /// Nodes, in declaration order.
    pub nodes: Vec<NodeDef>,
    /// Named outputs.
    pub outputs: Vec<OutputDef>,
}

/// `name: Type = default`
pub struct InputDef {
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: Type,
    /// Default value.
    pub default: Expr,
}

/// `name = function(port: source, …);`
pub struct NodeDef {
    /// Node name.
    pub name: Ident,
    /// The `#[fn_node]` function.
    pub func: Path,
    /// Wired inputs.
    pub args: Vec<ArgDef>,
    /// `name = [expr](source, …);`: any typed node expression (an `InferenceNode`, a
    /// `GradioNode`, an `FnNode`), wired positionally; `args` then name ports `in0`, `in1`, ….
    pub custom: Option<Expr>,
    /// The parentheses around the sources of a `[expr](…)` node, where a wrong number of
    /// sources is reported.
    pub sources_span: Option<Span>,
}

/// `port: source`
pub struct ArgDef {
    /// Input port.
    pub port: Ident,
    /// Source expression.
    pub value: Expr,
}

/// `name: Type = source`
pub struct OutputDef {
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: Type,
    /// Source expression.
    pub value: Expr,
}

const SECTIONS: &[&str] = &["inputs", "nodes", "outputs"];

/// A `pipeline!` parsed for expansion. Mistakes that leave the rest readable (an unknown or
/// repeated section, an input without a default) are collected in `errors` instead of ending
/// the parse, so the expansion still declares the pipeline's types and the user's code that
/// names them reports no follow-up errors.
pub struct LenientPipeline {
    /// What could be read.
    pub def: PipelineDef,
    /// The mistakes found while reading it.
    pub errors: Errors,
}

impl Parse for PipelineDef {
    /// Strict: the first mistake is an error (as `cargo daggr graph --static` wants).
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let LenientPipeline { def, errors } = input.parse()?;
        match errors.finish() {
            Some(e) => Err(e),
            None => Ok(def),
        }
    }
}

/// A type as one would write it: `Vec<String>`, not `Vec < String >`.
fn type_text(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

/// `name: Type = default`, or `name: Type` with the missing default reported.
fn parse_input(content: ParseStream, errors: &mut Errors) -> syn::Result<InputDef> {
    let name: Ident = content.parse()?;
    content.parse::<Token![:]>()?;
    let ty: Type = content.parse()?;
    let default = if content.peek(Token![=]) {
        content.parse::<Token![=]>()?;
        content.parse()?
    } else {
        errors.spanned(
            &ty,
            format!(
                "pipeline input `{name}` needs a default value: `{name}: {} = …`",
                type_text(&ty)
            ),
        );
        syn::parse_quote!(::core::unreachable!())
    };
    Ok(InputDef { name, ty, default })
}

impl Parse for LenientPipeline {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let mut def = PipelineDef {
            attrs,
            vis,
            name,
            inputs: Vec::new(),
            nodes: Vec::new(),
            outputs: Vec::new(),
        };
        let mut seen = HashSet::new();
        while !body.is_empty() {
            let section: Ident = body.parse()?;
            let content;
            braced!(content in body);
            let key = section.to_string();
            if SECTIONS.contains(&key.as_str()) && !seen.insert(key.clone()) {
                errors.at(
                    section.span(),
                    format!("section `{key}` appears twice: write all of its entries in one `{key} {{ … }}`"),
                );
            }
            match key.as_str() {
                "inputs" => {
                    while !content.is_empty() {
                        def.inputs.push(parse_input(&content, &mut errors)?);
                        if !content.is_empty() {
                            content.parse::<Token![,]>()?;
                        }
                    }
                }
                "nodes" => {
                    while !content.is_empty() {
                        def.nodes.push(content.parse()?);
                    }
                }
                "outputs" => {
                    let list = Punctuated::<OutputDef, Token![,]>::parse_terminated(&content)?;
                    def.outputs.extend(list);
                }
                other => errors.at(
                    section.span(),
                    format!(
                        "unknown section `{other}`{} (sections: `inputs {{ … }}`, `nodes {{ … }}`, `outputs {{ … }}`)",
                        did_you_mean(suggest(other, SECTIONS.iter().copied()))
                    ),
                ),
            }
        }
        Ok(LenientPipeline { def, errors })
    }
}

impl Parse for InputDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let def = parse_input(input, &mut errors)?;
        match errors.finish() {
            Some(e) => Err(e),
            None => Ok(def),
        }
    }
}

impl Parse for NodeDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        if input.peek(syn::token::Bracket) {
            let node;
            syn::bracketed!(node in input);
            let node: Expr = node.parse()?;
            let content;
            let paren = parenthesized!(content in input);
            let sources = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            input.parse::<Token![;]>()?;
            let args = sources
                .into_iter()
                .enumerate()
                .map(|(i, value)| ArgDef {
                    port: Ident::new(&format!("in{i}"), value.span()),
                    value,
                })
                .collect();
            return Ok(NodeDef {
                func: Path::from(name.clone()),
                name,
                args,
                custom: Some(node),
                sources_span: Some(paren.span.join()),
            });
        }
        let func: Path = input.parse()?;
        let content;
        parenthesized!(content in input);
        let args = Punctuated::<ArgDef, Token![,]>::parse_terminated(&content)?;
        input.parse::<Token![;]>()?;
        Ok(NodeDef {
            name,
            func,
            args: args.into_iter().collect(),
            custom: None,
            sources_span: None,
        })
    }
}

impl Parse for ArgDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let port = input.parse()?;
        input.parse::<Token![:]>()?;
        Ok(ArgDef {
            port,
            value: input.parse()?,
        })
    }
}

impl Parse for OutputDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(OutputDef {
            name,
            ty,
            value: input.parse()?,
        })
    }
}

/// What a source expression refers to.
pub enum SourceRef<'a> {
    /// A node or input, and optionally one of its ports.
    Name(&'a Ident, Option<&'a Ident>),
    /// A literal.
    Literal(&'a Lit),
    /// `{ expr }`: a constant.
    Block(&'a Expr),
    /// Anything else: passed through as a `Source<T>`.
    Other(&'a Expr),
}

/// Classifies a source expression.
pub fn classify(expr: &Expr) -> SourceRef<'_> {
    match expr {
        Expr::Path(p)
            if p.qself.is_none()
                && p.path.segments.len() == 1
                && p.path.leading_colon.is_none() =>
        {
            SourceRef::Name(&p.path.segments[0].ident, None)
        }
        Expr::Field(f) => match (&*f.base, &f.member) {
            (Expr::Path(p), syn::Member::Named(port))
                if p.path.segments.len() == 1 && p.qself.is_none() =>
            {
                SourceRef::Name(&p.path.segments[0].ident, Some(port))
            }
            _ => SourceRef::Other(expr),
        },
        Expr::Lit(l) => SourceRef::Literal(&l.lit),
        Expr::Block(b) if b.label.is_none() => SourceRef::Block(expr),
        _ => SourceRef::Other(expr),
    }
}

impl PipelineDef {
    /// Checks names, duplicate wiring and cycles; returns the nodes in dependency order.
    pub fn validate(&self, errors: &mut Errors) -> Vec<usize> {
        // Name → whether it is a pipeline input.
        let mut names: HashMap<String, bool> = HashMap::new();
        for (name, is_input) in self
            .inputs
            .iter()
            .map(|i| (&i.name, true))
            .chain(self.nodes.iter().map(|n| (&n.name, false)))
        {
            let key = name.to_string();
            match names.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let what = match (*e.get(), is_input) {
                        (true, false) => format!(
                            "node `{0}` has the same name as pipeline input `{0}`",
                            e.key()
                        ),
                        (true, true) => format!("duplicate input `{}`", e.key()),
                        _ => format!("duplicate node `{}`", e.key()),
                    };
                    errors.at(
                        name.span(),
                        format!("{what}: every input and node of a pipeline needs its own name"),
                    );
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(is_input);
                }
            }
        }
        let known: Vec<String> = names.keys().cloned().collect();
        let node_index: HashMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.to_string(), i))
            .collect();
        let mut deps: Vec<Vec<(usize, &Ident)>> = vec![Vec::new(); self.nodes.len()];
        let check_ref = |ident: &Ident, errors: &mut Errors| {
            let key = ident.to_string();
            if !names.contains_key(&key) {
                errors.at(
                    ident.span(),
                    format!(
                        "unknown node `{key}`{}",
                        did_you_mean(suggest(&key, known.iter().map(|s| s.as_str())))
                    ),
                );
            }
        };
        for (i, node) in self.nodes.iter().enumerate() {
            let mut ports = HashSet::new();
            for arg in &node.args {
                if !ports.insert(arg.port.to_string()) {
                    errors.at(
                        arg.port.span(),
                        format!(
                            "input `{}` of node `{}` is wired twice: an input takes exactly one source",
                            arg.port, node.name
                        ),
                    );
                }
                if let SourceRef::Name(ident, _) = classify(&arg.value) {
                    check_ref(ident, errors);
                    if let Some(&j) = node_index.get(&ident.to_string()) {
                        deps[i].push((j, ident));
                    }
                }
            }
        }
        // A pipeline input nothing reads is almost always a mistake (a typo in a source, a
        // node removed). Any mention in a source counts, even inside an expression.
        let mut mentioned = HashSet::new();
        let mut mention = |tokens: TokenStream| collect_idents(tokens, &mut mentioned);
        for node in &self.nodes {
            for arg in &node.args {
                mention(arg.value.to_token_stream());
            }
            if let Some(custom) = &node.custom {
                mention(custom.to_token_stream());
            }
        }
        for out in &self.outputs {
            mention(out.value.to_token_stream());
        }
        // Only when nothing else is wrong: a typo in a source also leaves an input unread.
        let others = !errors.is_empty();
        for input in self.inputs.iter().filter(|_| !others) {
            if !mentioned.contains(&input.name.to_string()) {
                errors.at(
                    input.name.span(),
                    format!(
                        "pipeline input `{0}` is not read by any node or output: wire it into a node (`port: {0}`) or remove it",
                        input.name
                    ),
                );
            }
        }
        let mut seen_outputs = HashSet::new();
        for out in &self.outputs {
            if !seen_outputs.insert(out.name.to_string()) {
                errors.at(out.name.span(), format!("duplicate output `{}`", out.name));
            }
            if let SourceRef::Name(ident, _) = classify(&out.value) {
                check_ref(ident, errors);
            }
        }
        topological_order(&self.nodes, &deps, errors)
    }

    /// The type's static graph, with port types taken from `signature` (the `#[fn_node]`
    /// functions' signatures, when known).
    pub fn static_ir(
        &self,
        signature: &dyn Fn(&Path) -> Option<crate::fn_node::FnSignature>,
    ) -> GraphIr {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let type_text = |ty: &Type| ty.to_token_stream().to_string().replace(' ', "");
        let mut output_ports: HashMap<String, Vec<PortIr>> = HashMap::new();
        for input in &self.inputs {
            let ty = type_text(&input.ty);
            let port = |source| PortIr {
                name: "value".into(),
                ty: ty.clone(),
                source,
            };
            output_ports.insert(input.name.to_string(), vec![port(None)]);
            nodes.push(NodeIr {
                name: input.name.to_string(),
                kind: "input".into(),
                inputs: vec![port(Some("const".into()))],
                outputs: vec![port(None)],
                location: None,
                group: None,
                variants: Vec::new(),
                mapped: Vec::new(),
            });
        }
        for node in &self.nodes {
            let sig = signature(&node.func);
            let declared_ty = |port: &str| {
                sig.as_ref()
                    .and_then(|s| {
                        s.inputs
                            .iter()
                            .find(|(n, _)| n == port)
                            .map(|(_, t)| t.clone())
                    })
                    .unwrap_or_else(|| "?".into())
            };
            let mut inputs = Vec::new();
            for arg in &node.args {
                let port = arg.port.to_string();
                let ty = declared_ty(&port);
                let source = match classify(&arg.value) {
                    SourceRef::Name(from, port_name) => {
                        let from_ports = output_ports.get(&from.to_string());
                        let from_port = match port_name {
                            Some(p) => p.to_string(),
                            None => from_ports
                                .and_then(|ps| ps.first())
                                .map(|p| p.name.clone())
                                .unwrap_or_else(|| "output".into()),
                        };
                        edges.push(EdgeIr {
                            from: from.to_string(),
                            from_port,
                            to: node.name.to_string(),
                            to_port: port.clone(),
                            ty: ty.clone(),
                        });
                        None
                    }
                    SourceRef::Literal(_) | SourceRef::Block(_) => Some("const".to_string()),
                    SourceRef::Other(e) => Some(e.to_token_stream().to_string().replace(' ', "")),
                };
                inputs.push(PortIr {
                    name: port,
                    ty,
                    source,
                });
            }
            let outputs: Vec<PortIr> = match &sig {
                Some(s) => s
                    .outputs
                    .iter()
                    .map(|(n, t)| PortIr {
                        name: n.clone(),
                        ty: t.clone(),
                        source: None,
                    })
                    .collect(),
                None => vec![PortIr {
                    name: "output".into(),
                    ty: "?".into(),
                    source: None,
                }],
            };
            output_ports.insert(node.name.to_string(), outputs.clone());
            nodes.push(NodeIr {
                name: node.name.to_string(),
                kind: "fn".into(),
                inputs,
                outputs,
                location: None,
                group: None,
                variants: Vec::new(),
                mapped: Vec::new(),
            });
        }
        GraphIr {
            schema_version: SCHEMA_VERSION,
            name: self.name.to_string(),
            nodes,
            edges,
        }
    }
}

/// The pipeline's types must not be the ones `#[fn_node]` generates for its nodes.
fn name_clash(def: &PipelineDef) -> Option<syn::Error> {
    let pipeline = def.name.to_string();
    let ours = [
        pipeline.clone(),
        format!("{pipeline}Inputs"),
        format!("{pipeline}Outputs"),
    ];
    def.nodes
        .iter()
        .filter(|n| n.custom.is_none())
        .find_map(|node| {
            let func = node.func.segments.last()?;
            let node_ty = node_type_name(&func.ident).to_string();
            let theirs = [
                node_ty.clone(),
                format!("{node_ty}Inputs"),
                format!("{node_ty}Outputs"),
            ];
            let clash = ours.iter().find(|t| theirs.contains(t))?;
            Some(syn::Error::new(
                def.name.span(),
                format!(
                    "pipeline `{pipeline}` clashes with node `{}`: `pipeline!` generates the type `{clash}` here, and `#[fn_node]` already generated a type of that name for `{}` (`{node_ty}`, `{node_ty}Inputs`, `{node_ty}Outputs`); rename the pipeline",
                    node.name, func.ident
                ),
            ))
        })
}

/// Every identifier in `tokens`, nested groups included.
fn collect_idents(tokens: TokenStream, into: &mut HashSet<String>) {
    for tree in tokens {
        match tree {
            proc_macro2::TokenTree::Ident(i) => {
                into.insert(i.to_string());
            }
            proc_macro2::TokenTree::Group(g) => collect_idents(g.stream(), into),
            _ => {}
        }
    }
}

/// Takes `#[daggr(crate = path)]` out of the pipeline's attributes (where daggr is, for a
/// renamed dependency), reporting a malformed one.
fn take_crate_option(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Option<Path> {
    let mut krate = None;
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if !attr.path().is_ident("daggr") {
            kept.push(attr);
            continue;
        }
        let parsed = attr.parse_args_with(|input: ParseStream| {
            let key: Ident = syn::ext::IdentExt::parse_any(input)?;
            if key != "crate" {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown `daggr` option `{key}`: the one option is `crate = path`"),
                ));
            }
            input.parse::<Token![=]>()?;
            if input.peek(syn::LitStr) {
                input.parse::<syn::LitStr>()?.parse::<Path>()
            } else {
                Path::parse_mod_style(input)
            }
        });
        match parsed {
            Ok(path) => krate = Some(path),
            Err(e) => errors.push(e),
        }
    }
    *attrs = kept;
    krate
}

/// Kahn's algorithm; a leftover loop is reported on the reference that closes it.
fn topological_order(
    nodes: &[NodeDef],
    deps: &[Vec<(usize, &Ident)>],
    errors: &mut Errors,
) -> Vec<usize> {
    let n = nodes.len();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|(j, _)| done[*j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                // Walk the unfinished dependencies from the first unfinished node until a repeat.
                let start = (0..n).find(|&i| !done[i]).expect("some node is unfinished");
                let mut path = vec![start];
                let mut current = start;
                let closing = loop {
                    let (next, ident) = *deps[current]
                        .iter()
                        .find(|(j, _)| !done[*j])
                        .expect("an unfinished node waits on an unfinished node");
                    if let Some(pos) = path.iter().position(|&p| p == next) {
                        path.drain(..pos);
                        break ident;
                    }
                    path.push(next);
                    current = next;
                };
                // path is in "depends on" order; print it in data-flow order.
                let mut flow: Vec<usize> = path.iter().rev().copied().collect();
                // Start at the first-declared node, so the message is stable.
                let min_at = flow
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, n)| **n)
                    .map_or(0, |(i, _)| i);
                flow.rotate_left(min_at);
                let mut names: Vec<String> =
                    flow.iter().map(|&i| nodes[i].name.to_string()).collect();
                names.push(names[0].clone());
                errors.at(
                    closing.span(),
                    format!(
                        "the pipeline has a cycle: {}: a node cannot depend on its own output",
                        names.join(" -> ")
                    ),
                );
                return (0..n).collect();
            }
        }
    }
    order
}

/// Expands `pipeline! { … }`. Never fails: on errors it still emits the pipeline's types and
/// methods, with a body that never runs (so completion keeps working and code using them adds
/// no errors), and the errors.
pub fn expand(input: TokenStream) -> TokenStream {
    let LenientPipeline {
        mut def,
        mut errors,
    } = match syn::parse2(input) {
        Ok(d) => d,
        Err(e) => return e.to_compile_error(),
    };
    let krate = take_crate_option(&mut def.attrs, &mut errors);
    let expanded = expand_def(def, errors);
    crate::fn_node::with_crate(expanded, krate.as_ref())
}

fn expand_def(def: PipelineDef, mut errors: Errors) -> TokenStream {
    // Types that would clash: nothing else is emitted, or each generated item would add its
    // own duplicate-definition error.
    if let Some(clash) = name_clash(&def) {
        return clash.to_compile_error();
    }
    let order = def.validate(&mut errors);
    let skeleton = skeleton(&def);
    // With errors, the same items with a body that never runs (the crate does not compile),
    // so code using the type reports nothing more.
    let (body, errors) = match errors.finish() {
        Some(e) => (
            quote!(::core::unreachable!(
                "`pipeline!` reported errors at compile time"
            )),
            e.to_compile_error(),
        ),
        None => (build_body(&def, &order), TokenStream::new()),
    };
    let name = &def.name;
    let inputs_ty = format_ident!("{}Inputs", name);
    let outputs_ty = format_ident!("{}Outputs", name);
    let name_str = name.to_string();
    let setters = def.inputs.iter().map(|i| {
        let (n, ty) = (&i.name, &i.ty);
        let setter = format_ident!("set_{}", n);
        let doc = format!("Changes input `{n}`; its downstream cone becomes stale.");
        let port = port_of(ty);
        quote! {
            #[doc = #doc]
            pub fn #setter(&self, value: #ty) -> ::core::result::Result<(), ::daggr::__private::Error> {
                #port.set_input(&self.pipeline, &self.inputs.#n, value)
            }
        }
    });
    quote! {
        #skeleton

        impl #name {
            /// The pipeline's name.
            pub const NAME: &'static str = #name_str;

            /// The graph, not yet built, with typed handles to its inputs and outputs.
            pub fn graph() -> (::daggr::__private::Graph, #inputs_ty, #outputs_ty) {
                #body
            }

            /// Builds the pipeline with the default cache (`.daggr/cache`, or `$DAGGR_CACHE_DIR`).
            pub fn new() -> ::core::result::Result<Self, ::daggr::__private::Error> {
                let (graph, inputs, outputs) = Self::graph();
                ::core::result::Result::Ok(#name { pipeline: graph.build()?, inputs, outputs })
            }

            /// Builds the pipeline with the given cache.
            pub fn build(cache: ::daggr::__private::Cache) -> ::core::result::Result<Self, ::daggr::__private::Error> {
                let (graph, inputs, outputs) = Self::graph();
                ::core::result::Result::Ok(#name { pipeline: graph.cache(cache).build()?, inputs, outputs })
            }

            /// Runs every node (cached ones are not recomputed).
            pub async fn run(&self) -> ::core::result::Result<::daggr::__private::RunReport, ::daggr::__private::Error> {
                self.pipeline.run(::daggr::__private::Scope::All).await
            }

            /// Checks every node against what it calls (Gradio endpoints and port names) before anything runs.
            pub async fn preflight(&self) -> ::core::result::Result<(), ::daggr::__private::Error> {
                self.pipeline.preflight().await
            }

            /// Serves the inspector for this pipeline until Ctrl-C.
            pub async fn launch(&self) -> ::core::result::Result<(), ::daggr::__private::Error> {
                self.pipeline.launch().await
            }

            /// The graph IR (nodes, typed ports, edges, source locations), as `cargo daggr graph` prints it.
            pub fn graph_ir() -> ::daggr::__private::GraphIr {
                Self::graph().0.ir()
            }

            /// The graph IR as JSON.
            pub fn graph_json() -> ::std::string::String {
                Self::graph_ir().to_json()
            }

            #(#setters)*
        }

        #errors
    }
}

/// The pipeline struct and its typed input and output handle structs.
fn skeleton(def: &PipelineDef) -> TokenStream {
    let (attrs, vis, name) = (&def.attrs, &def.vis, &def.name);
    let inputs_ty = format_ident!("{}Inputs", name);
    let outputs_ty = format_ident!("{}Outputs", name);
    let in_names = def.inputs.iter().map(|i| &i.name);
    let in_tys = def.inputs.iter().map(|i| &i.ty);
    let in_docs = def
        .inputs
        .iter()
        .map(|i| format!("Pipeline input `{}`.", i.name));
    let out_names = def.outputs.iter().map(|o| &o.name);
    let out_tys = def.outputs.iter().map(|o| &o.ty);
    let out_docs = def
        .outputs
        .iter()
        .map(|o| format!("Pipeline output `{}`.", o.name));
    let doc_in = format!("Typed handles to the inputs of [`{name}`].");
    let doc_out = format!("Typed handles to the outputs of [`{name}`].");
    quote! {
        #(#attrs)*
        #vis struct #name {
            /// The built pipeline.
            pub pipeline: ::daggr::__private::Pipeline,
            /// Handles to its inputs.
            pub inputs: #inputs_ty,
            /// Handles to its outputs.
            pub outputs: #outputs_ty,
        }

        #[doc = #doc_in]
        #[derive(Clone, Copy, Debug)]
        #vis struct #inputs_ty {
            #(#[doc = #in_docs] pub #in_names: ::daggr::__private::Output<#in_tys>,)*
        }

        #[doc = #doc_out]
        #[derive(Clone, Copy, Debug)]
        #vis struct #outputs_ty {
            #(#[doc = #out_docs] pub #out_names: ::daggr::__private::Output<#out_tys>,)*
        }
    }
}

/// A source expression as Rust: handles stay handles, literals and blocks become constants.
fn source_tokens(expr: &Expr) -> TokenStream {
    match classify(expr) {
        SourceRef::Name(node, None) => {
            // The trait's method, not the `sole_output` function: rustc names a function
            // whose name is also a method's by its whole path (`daggr::__private::…`).
            quote_spanned!(node.span()=> ::daggr::__private::SoleOutput::sole_output(&#node))
        }
        SourceRef::Name(_, Some(_)) => quote!(#expr),
        SourceRef::Literal(Lit::Str(s)) => {
            quote_spanned!(s.span()=> ::daggr::__private::constant(::std::string::String::from(#s)))
        }
        SourceRef::Literal(lit) => quote_spanned!(lit.span()=> ::daggr::__private::constant(#lit)),
        SourceRef::Block(block) => {
            // The user's braces are DSL syntax here, not an expression's: rebuilt with a
            // call-site span so rustc's `unused_braces` lint does not flag them.
            let span = Span::call_site().located_at(block.span());
            let inner = match block {
                Expr::Block(b) => {
                    let stmts = &b.block.stmts;
                    quote!(#(#stmts)*)
                }
                other => quote!(#other),
            };
            let mut braced = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, inner);
            braced.set_span(span);
            quote_spanned!(span=> ::daggr::__private::constant(#braced))
        }
        SourceRef::Other(other) => quote!(#other),
    }
}

/// For a `name = [node](sources);` node: a local `wire(graph, node, sources)` that adds
/// the node only when there is one source per input, so a wrong count is one error naming
/// the node, the inputs and the count (rather than a bound of `IntoSources` on `(…)`).
/// The trait is implemented for tuples of exactly `count` sources; its `{Args}` is the
/// node's input types. Sources of the wrong type still fail `IntoSources`, whose message
/// names the source and the input type.
fn source_count_check(name: &Ident, count: usize) -> TokenStream {
    let given = match count {
        0 => "no source is given".to_string(),
        1 => "1 source is given".to_string(),
        n => format!("{n} sources are given"),
    };
    let message = format!("node `{name}` takes the inputs `{{Args}}`, but {given}");
    let label = "one source per input, in order";
    let note = format!(
        "the sources given are `{{Self}}`: wire node `{name}` with one source per input, in order, as in `{name} = [node](a, b);`"
    );
    let args: Vec<Ident> = (0..count).map(|i| format_ident!("A{}", i)).collect();
    let sources: Vec<Ident> = (0..count).map(|i| format_ident!("S{}", i)).collect();
    // `IntoSources` is required of `S::Sources` (which is `S`), not of `S`: with the wrong
    // count the projection fails, and rustc reports nothing more about it. Spanned on the
    // node's name, where rustc shows the impl and the bound in its notes.
    quote_spanned! {name.span()=>
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        trait OneSourcePerInput<Args> {
            type Sources;
            fn sources(self) -> Self::Sources;
        }
        impl<#(#args,)* #(#sources,)*> OneSourcePerInput<(#(#args,)*)> for (#(#sources,)*) {
            type Sources = Self;
            fn sources(self) -> Self {
                self
            }
        }
        #[track_caller]
        fn wire<N, S>(graph: &mut ::daggr::__private::Graph, node: N, sources: S) -> N::Handles
        where
            N: ::daggr::__private::TypedNode,
            S: OneSourcePerInput<N::Args>,
            S::Sources: ::daggr::__private::IntoSources<N::Args>,
        {
            graph.add(node, sources.sources())
        }
    }
}

fn build_body(def: &PipelineDef, order: &[usize]) -> TokenStream {
    let name_str = def.name.to_string();
    let graph = Ident::new("__daggr_graph", Span::mixed_site());
    let inputs = def.inputs.iter().map(|i| {
        let (n, ty, default) = (&i.name, &i.ty, &i.default);
        let n_str = n.to_string();
        // `port::<T>()` is where a type that cannot cross a port is reported, on the type;
        // the call is spanned on the name, the location the graph IR records.
        let port = port_of(ty);
        let input = quote_spanned!(n.span()=> #port.input(&mut #graph, #n_str, #default));
        quote_spanned! {default.span()=>
            let #n: ::daggr::__private::Output<#ty> = #input;
        }
    });
    let nodes = order.iter().map(|&i| {
        let node = &def.nodes[i];
        let name = &node.name;
        let name_str = name.to_string();
        if let Some(custom) = &node.custom {
            let sources = node.args.iter().map(|a| source_tokens(&a.value));
            // The tuple is spanned on the user's parentheses: a wrong number of sources is
            // reported there.
            let paren = node.sources_span.unwrap_or_else(|| name.span());
            let sources = quote_spanned!(paren=> (#(#sources,)*));
            let check = source_count_check(name, node.args.len());
            // The user's expressions are evaluated outside the block that declares `wire`,
            // so those names never shadow theirs (and they cannot see these two variables,
            // bound after them). The variables carry the spans of what they hold, where rustc
            // reports a node that is not one, or sources that do not fit it.
            let node_var = Ident::new("__daggr_node", custom.span());
            let sources_var = Ident::new("__daggr_sources", paren);
            // Spanned on the node's name: `Graph::add` records its caller's location (through
            // `wire`, which tracks its own), so the graph IR points at this line.
            let add = quote_spanned!(name.span()=> wire(&mut #graph, #node_var, #sources_var));
            return quote! {
                #[allow(unused_variables)]
                let #name = {
                    let (#node_var, #sources_var) = (#custom, #sources);
                    {
                        #check
                        #add
                    }
                };
            };
        }
        let mut node_path = node.func.clone();
        if let Some(last) = node_path.segments.last_mut() {
            last.ident = node_type_name(&last.ident);
        }
        let wires = node.args.iter().map(|arg| {
            let port = &arg.port;
            let value = source_tokens(&arg.value);
            quote_spanned!(port.span()=> .#port(#value))
        });
        let finish_span = node.func.span();
        // The whole wiring chain is spanned on the user's function name, so an error about
        // it (a missing input) points there rather than at the macro call.
        let start = quote_spanned!(finish_span=> #node_path::inputs());
        let finish = quote_spanned!(finish_span=> .finish());
        let chain = quote_spanned!(finish_span=> #start #(#wires)* #finish);
        let add = quote_spanned!(name.span()=> #graph.add(#node_path::named(#name_str), #chain));
        quote! {
            // A node nothing reads from still runs (and is cached): not an unused variable.
            #[allow(unused_variables)]
            let #name = #add;
        }
    });
    let outputs_ty = format_ident!("{}Outputs", def.name);
    let inputs_ty = format_ident!("{}Inputs", def.name);
    let out_fields = def.outputs.iter().map(|o| {
        let (n, ty) = (&o.name, &o.ty);
        let value = source_tokens(&o.value);
        quote_spanned!(o.value.span()=> #n: { let __out: ::daggr::__private::Output<#ty> = #value; __out })
    });
    let in_names = def.inputs.iter().map(|i| &i.name);
    // The outputs are the pipeline's named outputs too (what the workflow API and
    // `cargo daggr run` answer).
    let named = def.outputs.iter().map(|o| {
        let n = &o.name;
        let n_str = n.to_string();
        quote! { #graph.name_output(#n_str, &__outputs.#n); }
    });
    quote! {
        let mut #graph = ::daggr::__private::Graph::new(#name_str);
        #(#inputs)*
        #(#nodes)*
        let __outputs = #outputs_ty { #(#out_fields,)* };
        #(#named)*
        (#graph, #inputs_ty { #(#in_names,)* }, __outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(src: &str) -> String {
        expand(src.parse().unwrap()).to_string()
    }

    const FLOW: &str = r#"
        pub struct Flow {
            inputs { prompt: String = "a fox".to_string(), }
            nodes {
                caption = describe(image: cutout, style: "short");
                image = generate(prompt: prompt, steps: 20);
                cutout = remove_background(image: image.image);
            }
            outputs { caption: String = caption, }
        }
    "#;

    #[test]
    fn nodes_are_emitted_in_dependency_order_with_typed_wiring() {
        let out = expand_str(FLOW);
        assert!(!out.contains("compile_error"), "{out}");
        let pos = |s: &str| {
            out.find(s)
                .unwrap_or_else(|| panic!("missing {s} in {out}"))
        };
        assert!(pos("let image") < pos("let cutout") && pos("let cutout") < pos("let caption"));
        assert!(out.contains("GenerateNode :: named (\"image\")"));
        assert!(out
            .contains(". prompt (:: daggr :: __private :: SoleOutput :: sole_output (& prompt))"));
        assert!(out.contains(". steps (:: daggr :: __private :: constant (20))"));
        assert!(out.contains(". image (image . image)"));
        assert!(out.contains("constant (:: std :: string :: String :: from (\"short\"))"));
        for path in out.split(":: daggr ::").skip(1) {
            assert_eq!(path.split_whitespace().next().unwrap(), "__private");
        }
    }

    fn error_of(src: &str) -> String {
        let out = expand_str(src);
        assert!(out.contains("compile_error"), "expected an error: {out}");
        out
    }

    #[test]
    fn custom_node_expressions_are_wired_positionally() {
        let out = expand_str(
            "struct P { inputs { p: String = String::new() } nodes { llm = [InferenceNode::chat(\"llm\", \"m\")](p); after = tidy(text: llm); } }",
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("let (__daggr_node , __daggr_sources) = (InferenceNode :: chat (\"llm\" , \"m\") , (:: daggr :: __private :: SoleOutput :: sole_output (& p) ,)) ;"), "{out}");
        assert!(
            out.contains("wire (& mut __daggr_graph , __daggr_node , __daggr_sources)"),
            "{out}"
        );
        assert!(
            out.contains("node `llm` takes the inputs `{Args}`, but 1 source is given"),
            "a wrong count names the node: {out}"
        );
        assert!(
            out.contains("impl < A0 , S0 , > OneSourcePerInput < (A0 ,) > for (S0 ,)"),
            "{out}"
        );
        assert!(out.find("let llm").unwrap() < out.find("let after").unwrap());
    }

    #[test]
    fn unknown_nodes_get_a_suggestion() {
        let out = error_of("struct P { nodes { a = f(x: imagee.out); image = g(); } }");
        assert!(
            out.contains("unknown node `imagee`; did you mean `image`?"),
            "{out}"
        );
    }

    #[test]
    fn cycles_name_the_loop() {
        let out = error_of("struct P { nodes { a = f(x: c); b = f(x: a); c = f(x: b); } }");
        assert!(
            out.contains("cycle: a -> b -> c -> a") || out.contains("cycle: c -> a -> b -> c"),
            "{out}"
        );
    }

    #[test]
    fn duplicates_are_reported() {
        let out = error_of("struct P { inputs { a: u32 = 1 } nodes { a = f(); } }");
        assert!(
            out.contains("node `a` has the same name as pipeline input `a`"),
            "{out}"
        );
        let out = error_of("struct P { nodes { a = f(); a = g(); } }");
        assert!(out.contains("duplicate node `a`"), "{out}");
        let out = error_of("struct P { nodes { a = f(x: 1, x: 2); } }");
        assert!(
            out.contains("input `x` of node `a` is wired twice"),
            "{out}"
        );
    }

    #[test]
    fn errors_still_emit_the_typed_skeleton() {
        let out = error_of("pub struct P { inputs { n: u32 = 1 } nodes { a = f(x: nope); } }");
        assert!(out.contains("pub struct P"));
        assert!(out.contains("pub struct PInputs"));
        assert!(out.contains("pub fn set_n"), "the methods too: {out}");
        assert!(
            out.contains("unreachable"),
            "with a body that never runs: {out}"
        );
        let out = error_of("pub struct P { inputs { n: u32 } node { } }");
        assert!(
            out.contains("pipeline input `n` needs a default value"),
            "{out}"
        );
        assert!(out.contains("pub struct PInputs"), "{out}");
        assert!(
            syn::parse_str::<PipelineDef>("struct P { inputs { n: u32 } }").is_err(),
            "the strict parser (cargo daggr graph --static) still rejects it"
        );
    }

    #[test]
    fn unread_inputs_and_clashing_names_are_reported() {
        let out = error_of("struct P { inputs { a: u32 = 1, b: u32 = 2 } nodes { n = f(x: a); } }");
        assert!(
            out.contains("pipeline input `b` is not read by any node or output"),
            "{out}"
        );
        assert!(!out.contains("input `a` is not read"), "{out}");
        let out = expand_str("struct P { inputs { a: u32 = 1 } nodes { n = [g(\"x\")]({ a }); } }");
        assert!(
            !out.contains("compile_error"),
            "a mention in an expression counts: {out}"
        );
        let out =
            error_of("struct ShoutNode { inputs { a: u32 = 1 } nodes { n = shout(text: a); } }");
        assert!(
            out.contains("pipeline `ShoutNode` clashes with node `n`"),
            "{out}"
        );
        assert!(
            !out.contains("struct ShoutNode"),
            "nothing else is emitted: {out}"
        );
    }

    #[test]
    fn the_crate_option_replaces_the_daggr_path() {
        let out = expand_str(
            "#[daggr(crate = dag)] struct P { inputs { a: u32 = 1 } nodes { n = f(x: a); } }",
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains(":: daggr ::"), "{out}");
        assert!(out.contains("dag :: __private :: Graph"), "{out}");
        assert!(
            !out.contains("# [daggr"),
            "the attribute is consumed: {out}"
        );
    }

    #[test]
    fn unknown_sections_suggest() {
        let out = error_of("struct P { node { } }");
        assert!(out.contains("did you mean `nodes`"), "{out}");
    }

    #[test]
    fn static_ir_uses_known_signatures() {
        let def: PipelineDef = syn::parse_str(FLOW).unwrap();
        let ir = def.static_ir(&|path| {
            let name = path.segments.last().unwrap().ident.to_string();
            (name == "describe").then(|| crate::fn_node::FnSignature {
                inputs: vec![
                    ("image".into(), "Image".into()),
                    ("style".into(), "String".into()),
                ],
                outputs: vec![("output".into(), "String".into())],
            })
        });
        assert_eq!(ir.nodes.len(), 4);
        let edge = ir
            .edges
            .iter()
            .find(|e| e.to == "caption" && e.to_port == "image")
            .unwrap();
        assert_eq!((edge.from.as_str(), edge.ty.as_str()), ("cutout", "Image"));
        let caption = ir.nodes.iter().find(|n| n.name == "caption").unwrap();
        assert_eq!(caption.inputs[1].source.as_deref(), Some("const"));
    }
}
