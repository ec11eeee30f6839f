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
//!
//! ## Maps, choices and grouped inputs
//!
//! ```text
//! pipeline! {
//!     pub struct Shout {
//!         inputs {
//!             words: Vec<String> = vec!["map".into(), "each".into()],
//!             group style { mark: String = "!".into(), times: u32 = 2 }
//!         }
//!         nodes {
//!             loud = upper(word: each(words), mark: mark);
//!             #[map(collect_errors)]
//!             checked = parse(text: each(words));
//!             #[choice(selected = local, fallback)]
//!             title = choose(loud) {
//!                 space: [GradioNode::new("me/titles", "/predict")],
//!                 local: titlecase,
//!             };
//!         }
//!         outputs { loud: Vec<String> = loud, title: String = title }
//!     }
//! }
//! ```
//! - **Map**: a node whose source for a port is `each(list)` is applied to every item of
//!   that list (a `Vec<T>` where the port takes `T`), concurrently, each item cached on its
//!   own; its output is the `Vec` of the node's output, in item order. Other sources go whole
//!   to every item; several `each(..)` lists are zipped. `#[map(skip_failed)]` leaves failed
//!   items out, `#[map(collect_errors)]` makes the output `Vec<Result<U, daggr::ItemError>>`;
//!   by default a failed item fails the node (after the others are cached). A `[node](…)`
//!   node maps too: `loud = [node](each(words), "!");`. The mapped node has one output port.
//! - **Choice**: `name = choose(source, …) { variant: node, … };` with each node a
//!   `#[fn_node]` function or a `[expression]`, all of the same input types (the sources are
//!   given once, in order) and the same output type (one port). `#[choice(selected =
//!   variant)]` picks the variant (default: the first; the inspector and sheets change it),
//!   `#[choice(fallback)]` tries the next variants in order when the selected one fails.
//! - **Grouped inputs**: `group name { input: Type = default, … }` among the inputs shows
//!   them as one card named `name` in the inspector; each stays an input of its own.

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
    /// Groups of inputs (`group name { … }` in `inputs`), in declaration order.
    pub groups: Vec<GroupDef>,
}

/// `group name { input: Type = default, … }`: inputs shown as one card.
pub struct GroupDef {
    /// The group's name.
    pub name: Ident,
    /// Its inputs, by name (each is also in [`PipelineDef::inputs`]).
    pub members: Vec<Ident>,
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
    /// The parentheses around the sources of a `[expr](…)` node or a choice, where a wrong
    /// number of sources is reported.
    pub sources_span: Option<Span>,
    /// For a node with an `each(..)` source: the map's settings (`#[map(..)]`).
    pub map: Option<MapDef>,
    /// For `name = choose(source, …) { variant: node, … };`: the variants and settings
    /// (`#[choice(..)]`); `args` are then the sources, named `in0`, `in1`, ….
    pub choice: Option<ChoiceDef>,
}

impl NodeDef {
    /// Whether the node is a `#[fn_node]` function wired by port name (mapped or not).
    pub fn is_fn_node(&self) -> bool {
        self.custom.is_none() && self.choice.is_none()
    }
}

/// What a map does with failed items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MapFailures {
    /// A failed item fails the node (the default).
    #[default]
    FailNode,
    /// `#[map(skip_failed)]`: failed items are left out.
    SkipFailed,
    /// `#[map(collect_errors)]`: one `Result` per item.
    CollectErrors,
}

/// A map's settings.
pub struct MapDef {
    /// What happens to failed items.
    pub failures: MapFailures,
}

/// A choice's variants and settings.
pub struct ChoiceDef {
    /// `choose`, where the choice is reported.
    pub keyword: Ident,
    /// The variants, in order (the fallback order).
    pub variants: Vec<VariantDef>,
    /// `#[choice(selected = variant)]`.
    pub selected: Option<Ident>,
    /// `#[choice(fallback)]`.
    pub fallback: bool,
}

/// `variant: node` in a choice.
pub struct VariantDef {
    /// The variant's name.
    pub name: Ident,
    /// A `#[fn_node]` function, or (`[expr]`) any typed node expression.
    pub node: VariantNode,
}

/// The node of a variant.
pub enum VariantNode {
    /// A `#[fn_node]` function.
    Fn(Path),
    /// `[expr]`: any typed node expression.
    Expr(Expr),
}

impl VariantNode {
    /// The tokens to report the variant on.
    pub fn span(&self) -> Span {
        match self {
            VariantNode::Fn(path) => path.span(),
            VariantNode::Expr(expr) => expr.span(),
        }
    }
}

/// `port: source`
pub struct ArgDef {
    /// Input port.
    pub port: Ident,
    /// Source expression (for `each(list)`, the list).
    pub value: Expr,
    /// `each(list)`: the list is split into a map's items.
    pub each: Option<EachDef>,
}

/// Where an `each(list)` source is written.
#[derive(Clone, Copy)]
pub struct EachDef {
    /// The `each` name.
    pub name: Span,
    /// Its parentheses.
    pub paren: Span,
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
            groups: Vec::new(),
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
                "inputs" => parse_inputs(&content, &mut def, &mut errors, None)?,
                "nodes" => {
                    while !content.is_empty() {
                        def.nodes.push(parse_node(&content, &mut errors)?);
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
    /// Strict: the first mistake is an error.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let def = parse_node(input, &mut errors)?;
        match errors.finish() {
            Some(e) => Err(e),
            None => Ok(def),
        }
    }
}

/// The entries of `inputs { … }` (or of a `group name { … }` in it, `group` being its
/// index in `def.groups`): inputs, and groups of inputs.
fn parse_inputs(
    content: ParseStream,
    def: &mut PipelineDef,
    errors: &mut Errors,
    group: Option<usize>,
) -> syn::Result<()> {
    while !content.is_empty() {
        // `group name { … }`; an input named `group` is `group: Type = …`.
        let fork = content.fork();
        let word = fork.parse::<Ident>().ok();
        let block = fork.peek(Ident) && fork.peek2(syn::token::Brace);
        match word {
            Some(word) if block => {
                let keyword: Ident = content.parse()?;
                let name: Ident = content.parse()?;
                let inner;
                braced!(inner in content);
                if word != "group" {
                    errors.at(
                        keyword.span(),
                        format!(
                            "unknown `{word} {name} {{ … }}` among the inputs: write an input as `name: Type = default`, or a group of inputs as `group {name} {{ … }}`"
                        ),
                    );
                }
                let index = match group {
                    Some(outer) => {
                        errors.at(
                            keyword.span(),
                            format!(
                                "group `{name}` is inside group `{}`: groups do not nest; declare it beside the other",
                                def.groups[outer].name
                            ),
                        );
                        outer
                    }
                    None => {
                        def.groups.push(GroupDef {
                            name: name.clone(),
                            members: Vec::new(),
                        });
                        def.groups.len() - 1
                    }
                };
                let before = def.inputs.len();
                parse_inputs(&inner, def, errors, Some(index))?;
                if def.inputs.len() == before {
                    errors.at(
                        name.span(),
                        format!(
                            "group `{name}` has no inputs: put inputs in it (`group {name} {{ width: u32 = 512 }}`) or remove it"
                        ),
                    );
                }
                // A comma after a group's braces is optional, as after a block.
                if content.peek(Token![,]) {
                    content.parse::<Token![,]>()?;
                }
                continue;
            }
            _ => {}
        }
        let input = parse_input(content, errors)?;
        if let Some(index) = group {
            def.groups[index].members.push(input.name.clone());
        }
        def.inputs.push(input);
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    Ok(())
}

/// `name = …;`, with its attributes: `f(port: source, …)`, `[expr](source, …)` or
/// `choose(source, …) { variant: node, … }`.
fn parse_node(input: ParseStream, errors: &mut Errors) -> syn::Result<NodeDef> {
    let attrs = input.call(Attribute::parse_outer)?;
    let name: Ident = input.parse()?;
    input.parse::<Token![=]>()?;
    let mut def = if input.peek(syn::token::Bracket) {
        let node;
        syn::bracketed!(node in input);
        let node: Expr = node.parse()?;
        let content;
        let paren = parenthesized!(content in input);
        let args = positional_sources(&content, errors, &name, "[node](a, b)")?;
        input.parse::<Token![;]>()?;
        NodeDef {
            func: Path::from(name.clone()),
            name,
            args,
            custom: Some(node),
            sources_span: Some(paren.span.join()),
            map: None,
            choice: None,
        }
    } else {
        let func: Path = input.parse()?;
        if input.peek(syn::token::Paren) && input.peek2(syn::token::Brace) {
            parse_choice(input, errors, name, func)?
        } else {
            let content;
            parenthesized!(content in input);
            let args = Punctuated::<ArgDef, Token![,]>::parse_terminated(&content)?;
            input.parse::<Token![;]>()?;
            let args = args
                .into_iter()
                .map(|arg| {
                    let (value, each) = split_each(arg.value, errors);
                    ArgDef { value, each, ..arg }
                })
                .collect();
            NodeDef {
                name,
                func,
                args,
                custom: None,
                sources_span: None,
                map: None,
                choice: None,
            }
        }
    };
    if def.args.iter().any(|a| a.each.is_some()) {
        def.map = Some(MapDef {
            failures: MapFailures::default(),
        });
    }
    node_attributes(&mut def, attrs, errors);
    Ok(def)
}

/// The sources of a `[node](…)` node or a choice, in order (named `in0`, `in1`, …). A
/// source written with a port name is reported (the ports are not named there) and read.
fn positional_sources(
    content: ParseStream,
    errors: &mut Errors,
    node: &Ident,
    example: &str,
) -> syn::Result<Vec<ArgDef>> {
    let mut args = Vec::new();
    while !content.is_empty() {
        if content.peek(Ident) && content.peek2(Token![:]) && !content.peek2(Token![::]) {
            let port: Ident = content.parse()?;
            content.parse::<Token![:]>()?;
            errors.at(
                port.span(),
                format!(
                    "the sources of node `{node}` are positional: write `{port}`'s source alone, in the order of the node's inputs, as in `{node} = {example};`"
                ),
            );
        }
        let value: Expr = content.parse()?;
        let (value, each) = split_each(value, errors);
        args.push(ArgDef {
            port: Ident::new(&format!("in{}", args.len()), value.span()),
            value,
            each,
        });
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    Ok(args)
}

/// `choose(source, …) { variant: node, … };` after `name =` (`func` is `choose`).
fn parse_choice(
    input: ParseStream,
    errors: &mut Errors,
    name: Ident,
    func: Path,
) -> syn::Result<NodeDef> {
    let keyword = match func.get_ident() {
        Some(keyword) if keyword == "choose" => keyword.clone(),
        _ => {
            let span = func.span();
            errors.at(
                span,
                format!(
                    "`{{ … }}` after the sources makes node `{name}` a choice between variants: write it as `{name} = choose(sources) {{ variant: node, … }};`"
                ),
            );
            Ident::new("choose", span)
        }
    };
    let content;
    let paren = parenthesized!(content in input);
    let mut args = positional_sources(&content, errors, &name, "choose(a, b) { … }")?;
    for arg in &mut args {
        if let Some(each) = arg.each.take() {
            errors.at(
                each.name,
                format!(
                    "`each(..)` maps a node over a list, and `{name}` is a choice: map a node with `each(..)` in a node of its own, and choose between nodes that take its list"
                ),
            );
        }
    }
    let body;
    braced!(body in input);
    let mut variants = Vec::new();
    while !body.is_empty() {
        let variant: Ident = body.parse()?;
        body.parse::<Token![:]>()?;
        let node = if body.peek(syn::token::Bracket) {
            let inner;
            syn::bracketed!(inner in body);
            VariantNode::Expr(inner.parse()?)
        } else {
            VariantNode::Fn(body.parse()?)
        };
        if body.peek(syn::token::Paren) {
            let group: proc_macro2::Group = body.parse()?;
            errors.at(
                group.span(),
                format!(
                    "variant `{variant}` is a node, without sources (they are the choice's, given once in `choose(…)`): a `#[fn_node]` function by name (`{variant}: describe`) or a node expression in brackets (`{variant}: [GradioNode::new(..)]`)"
                ),
            );
        }
        variants.push(VariantDef {
            name: variant,
            node,
        });
        if !body.is_empty() {
            body.parse::<Token![,]>()?;
        }
    }
    input.parse::<Token![;]>()?;
    if variants.is_empty() {
        errors.at(
            keyword.span(),
            format!(
                "choice `{name}` has no variants: list them as `{name} = choose(sources) {{ first: node, second: [expression] }};`"
            ),
        );
    }
    Ok(NodeDef {
        func: Path::from(name.clone()),
        name,
        args,
        custom: None,
        sources_span: Some(paren.span.join()),
        map: None,
        choice: Some(ChoiceDef {
            keyword,
            variants,
            selected: None,
            fallback: false,
        }),
    })
}

/// Whether `func` is `each` (or `daggr::each`), as a source's call.
fn is_each(func: &Expr) -> Option<Span> {
    let Expr::Path(p) = func else { return None };
    if p.qself.is_some() {
        return None;
    }
    let segments: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let plain = p.path.segments.iter().all(|s| s.arguments.is_empty());
    match segments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["each"] | ["daggr", "each"] if plain => p.path.segments.last().map(|s| s.ident.span()),
        _ => None,
    }
}

/// Whether `expr` is `each(..)`.
pub fn is_each_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(call) if is_each(&call.func).is_some())
}

/// `each(list)` → (`list`, where `each` is written); any other source as it is.
fn split_each(value: Expr, errors: &mut Errors) -> (Expr, Option<EachDef>) {
    let Expr::Call(call) = &value else {
        return (value, None);
    };
    let Some(name) = is_each(&call.func) else {
        return (value, None);
    };
    let each = EachDef {
        name,
        paren: call.paren_token.span.join(),
    };
    if call.args.len() != 1 {
        errors.at(
            name,
            "`each(..)` takes one list, as in `word: each(words)`; several lists are zipped when each input has its own `each(..)`",
        );
        return (value, None);
    }
    let list = call.args[0].clone();
    if is_each_call(&list) {
        errors.spanned(
            &list,
            "`each(..)` splits one level of a list: the node is called once per item of the outer list; to go deeper, map a node that maps",
        );
    }
    (list, Some(each))
}

const MAP_OPTIONS: &[&str] = &["skip_failed", "collect_errors"];
const CHOICE_OPTIONS: &[&str] = &["selected", "fallback"];

/// Reads `#[map(..)]` and `#[choice(..)]` into `def`, reporting options that are wrong or
/// not allowed on this node. Doc comments are allowed (and ignored).
fn node_attributes(def: &mut NodeDef, attrs: Vec<Attribute>, errors: &mut Errors) {
    use crate::options::{AttrOptions, OptionValue};
    let name = def.name.clone();
    for attr in attrs {
        let path = attr.path();
        let kind = path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        if kind == "doc" {
            continue;
        }
        let (allowed, shape) = match kind.as_str() {
            "map" => (
                MAP_OPTIONS,
                "`#[map(skip_failed)]` or `#[map(collect_errors)]`",
            ),
            "choice" => (
                CHOICE_OPTIONS,
                "`#[choice(selected = variant)]`, `#[choice(fallback)]` or both",
            ),
            _ => {
                errors.spanned(
                    path,
                    format!(
                        "unknown attribute `#[{}]` on node `{name}`: a node takes `#[map(..)]` (with an `each(..)` source) or `#[choice(..)]` (on `choose(…) {{ … }}`)",
                        path.to_token_stream().to_string().replace(' ', "")
                    ),
                );
                continue;
            }
        };
        match (kind.as_str(), &def.map, &def.choice) {
            ("map", None, _) => {
                errors.spanned(
                    path,
                    format!(
                        "`#[map(..)]` is for a node that maps over a list, and node `{name}` has no `each(..)` source: split a list with `port: each(list)`"
                    ),
                );
                continue;
            }
            ("choice", _, None) => {
                errors.spanned(
                    path,
                    format!(
                        "`#[choice(..)]` is for a choice, and node `{name}` is not one: write `{name} = choose(sources) {{ variant: node, … }};`"
                    ),
                );
                continue;
            }
            _ => {}
        }
        let options = match &attr.meta {
            syn::Meta::List(list) => match syn::parse2::<AttrOptions>(list.tokens.clone()) {
                Ok(options) => options.0,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            _ => {
                errors.spanned(&attr, format!("`#[{kind}]` needs its options: {shape}"));
                continue;
            }
        };
        for option in options {
            let key = option.key.to_string();
            let flag = matches!(option.value, OptionValue::Flag);
            match (kind.as_str(), key.as_str()) {
                ("map", "skip_failed" | "collect_errors") if flag => {
                    let failures = if key == "skip_failed" {
                        MapFailures::SkipFailed
                    } else {
                        MapFailures::CollectErrors
                    };
                    if let Some(map) = &mut def.map {
                        if map.failures != MapFailures::FailNode && map.failures != failures {
                            errors.at(
                                option.key.span(),
                                "`skip_failed` leaves failed items out, `collect_errors` keeps them as `Err`: choose one",
                            );
                        }
                        map.failures = failures;
                    }
                }
                ("choice", "fallback") if flag => {
                    if let Some(choice) = &mut def.choice {
                        choice.fallback = true;
                    }
                }
                ("choice", "selected") => {
                    let variant = match &option.value {
                        OptionValue::Path(p) => p.get_ident().cloned(),
                        OptionValue::Lit(Lit::Str(s)) => {
                            syn::parse_str::<Ident>(&s.value()).ok().map(|mut i| {
                                i.set_span(s.span());
                                i
                            })
                        }
                        _ => None,
                    };
                    match (variant, &mut def.choice) {
                        (Some(variant), Some(choice)) => choice.selected = Some(variant),
                        _ => errors.at(
                            option.key.span(),
                            "`selected` takes a variant's name: `#[choice(selected = local)]`",
                        ),
                    }
                }
                (_, known) if allowed.contains(&known) => errors.at(
                    option.key.span(),
                    format!("`{key}` is a flag and takes no value: {shape}"),
                ),
                _ => errors.at(
                    option.key.span(),
                    format!(
                        "unknown `{kind}` option `{key}`{} (options: {})",
                        did_you_mean(suggest(&key, allowed.iter().copied())),
                        allowed.join(", ")
                    ),
                ),
            }
        }
    }
}

impl Parse for ArgDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let port = input.parse()?;
        input.parse::<Token![:]>()?;
        Ok(ArgDef {
            port,
            value: input.parse()?,
            each: None,
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
            for variant in node.choice.iter().flat_map(|c| &c.variants) {
                if let VariantNode::Expr(expr) = &variant.node {
                    mention(expr.to_token_stream());
                }
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
            if is_each_call(&out.value) {
                errors.spanned(
                    &out.value,
                    format!(
                        "`each(..)` maps a node over a list, in a node's sources: output `{}` reads a node or an input as it is",
                        out.name
                    ),
                );
                continue;
            }
            if let SourceRef::Name(ident, _) = classify(&out.value) {
                check_ref(ident, errors);
            }
        }
        for node in &self.nodes {
            if let Some(choice) = &node.choice {
                check_choice(&node.name, choice, errors);
            }
        }
        let mut groups = HashSet::new();
        for group in &self.groups {
            if !groups.insert(group.name.to_string()) {
                errors.at(
                    group.name.span(),
                    format!(
                        "duplicate group `{}`: every group of inputs needs its own name",
                        group.name
                    ),
                );
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
                group: self
                    .groups
                    .iter()
                    .find(|g| g.members.contains(&input.name))
                    .map(|g| g.name.to_string()),
                variants: Vec::new(),
                mapped: Vec::new(),
            });
        }
        for node in &self.nodes {
            // The function whose ports the node shows: its own, or a choice's first
            // variant's (whose inputs the choice's positional sources feed).
            let sig = match (&node.custom, &node.choice) {
                (None, None) => signature(&node.func),
                (None, Some(choice)) => match choice.variants.first().map(|v| &v.node) {
                    Some(VariantNode::Fn(path)) => signature(path),
                    _ => None,
                },
                (Some(_), _) => None,
            };
            let names = input_port_names(node, &sig);
            let mut inputs = Vec::new();
            for (arg, port) in node.args.iter().zip(names.iter().cloned()) {
                let ty = sig
                    .as_ref()
                    .and_then(|s| s.inputs.iter().find(|(n, _)| *n == port))
                    .map_or_else(|| "?".to_string(), |(_, t)| t.clone());
                // A mapped input takes the list of what the node takes.
                let ty = match (&arg.each, ty.as_str()) {
                    (Some(_), "?") | (None, _) => ty,
                    (Some(_), item) => format!("Vec<{item}>"),
                };
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
            let mut outputs: Vec<PortIr> = match &sig {
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
            let kind = if let Some(map) = &node.map {
                // The list of the node's one output (a node of several does not compile).
                outputs.truncate(1);
                for port in outputs.iter_mut().filter(|p| p.ty != "?") {
                    port.ty = match map.failures {
                        MapFailures::CollectErrors => format!("Vec<Result<{},ItemError>>", port.ty),
                        _ => format!("Vec<{}>", port.ty),
                    };
                }
                "map"
            } else if node.choice.is_some() {
                // The selection: a constant the inspector and sheets change.
                inputs.push(PortIr {
                    name: "variant".into(),
                    ty: "String".into(),
                    source: Some("const".into()),
                });
                "choice"
            } else {
                "fn"
            };
            output_ports.insert(node.name.to_string(), outputs.clone());
            nodes.push(NodeIr {
                name: node.name.to_string(),
                kind: kind.into(),
                inputs,
                outputs,
                location: None,
                group: None,
                variants: node
                    .choice
                    .iter()
                    .flat_map(|c| &c.variants)
                    .map(|v| v.name.to_string())
                    .collect(),
                mapped: node
                    .args
                    .iter()
                    .zip(&names)
                    .filter(|(a, _)| a.each.is_some())
                    .map(|(_, name)| name.clone())
                    .collect(),
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

/// The names of `node`'s input ports in the IR, one per source: the function's port names
/// (for a choice, its first variant's, in order), else `in0`, `in1`, ….
fn input_port_names(node: &NodeDef, sig: &Option<crate::fn_node::FnSignature>) -> Vec<String> {
    node.args
        .iter()
        .enumerate()
        .map(|(i, arg)| match (&node.choice, sig) {
            (Some(_), Some(sig)) => sig
                .inputs
                .get(i)
                .map_or_else(|| arg.port.to_string(), |(n, _)| n.clone()),
            _ => arg.port.to_string(),
        })
        .collect()
}

/// A choice's variant names are unique, and the selected one is one of them.
fn check_choice(name: &Ident, choice: &ChoiceDef, errors: &mut Errors) {
    let mut names: Vec<String> = Vec::new();
    for variant in &choice.variants {
        let key = variant.name.to_string();
        if names.contains(&key) {
            errors.at(
                variant.name.span(),
                format!(
                    "variant `{key}` of choice `{name}` is declared twice: every variant needs its own name"
                ),
            );
        }
        names.push(key);
    }
    if let Some(selected) = &choice.selected {
        let key = selected.to_string();
        if !names.contains(&key) && !names.is_empty() {
            errors.at(
                selected.span(),
                format!(
                    "choice `{name}` has no variant `{key}`{} (its variants: {})",
                    did_you_mean(suggest(&key, names.iter().map(String::as_str))),
                    names
                        .iter()
                        .enumerate()
                        .filter(|(i, n)| !names[..*i].contains(n))
                        .map(|(_, n)| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
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
    let fns = def
        .nodes
        .iter()
        .filter(|n| n.is_fn_node())
        .filter_map(|node| Some((&node.name, &node.func.segments.last()?.ident)));
    let variants = def.nodes.iter().flat_map(|node| {
        let variants = node.choice.iter().flat_map(|c| &c.variants);
        variants.filter_map(move |v| match &v.node {
            VariantNode::Fn(path) => Some((&node.name, &path.segments.last()?.ident)),
            VariantNode::Expr(_) => None,
        })
    });
    fns.chain(variants)
        .find_map(|(node, func)| {
            let node_ty = node_type_name(func).to_string();
            let theirs = [
                node_ty.clone(),
                format!("{node_ty}Inputs"),
                format!("{node_ty}MapInputs"),
                format!("{node_ty}Outputs"),
            ];
            let clash = ours.iter().find(|t| theirs.contains(t))?;
            Some(syn::Error::new(
                def.name.span(),
                format!(
                    "pipeline `{pipeline}` clashes with node `{node}`: `pipeline!` generates the type `{clash}` here, and `#[fn_node]` already generated a type of that name for `{func}` (`{node_ty}`, `{node_ty}Inputs`, `{node_ty}MapInputs`, `{node_ty}Outputs`); rename the pipeline",
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

/// For a node wired positionally (`name = [node](sources);`, a choice): a local trait
/// `OneSourcePerInput`, implemented for tuples of exactly `count` sources, that the node's
/// local `wire` function requires of its sources, so a wrong count is one error naming the
/// node, the inputs and the count (rather than a bound of `IntoSources` on `(…)`). Its
/// `{Args}` is the node's input types. Sources of the wrong type still fail `IntoSources`
/// (or `MapArg`), whose message names the source and the input type.
fn source_count_check(name: &Ident, count: usize, example: &str) -> TokenStream {
    let given = match count {
        0 => "no source is given".to_string(),
        1 => "1 source is given".to_string(),
        n => format!("{n} sources are given"),
    };
    let message = format!("node `{name}` takes the inputs `{{Args}}`, but {given}");
    let label = "one source per input, in order";
    let note = format!(
        "the sources given are `{{Self}}`: wire node `{name}` with one source per input, in order, as in `{name} = {example};`"
    );
    let args: Vec<Ident> = (0..count).map(|i| format_ident!("A{}", i)).collect();
    let sources: Vec<Ident> = (0..count).map(|i| format_ident!("S{}", i)).collect();
    // The typed bound is required of `S::Sources` (which is `S`), not of `S`: with the wrong
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
    }
}

/// The local `wire(graph, node, sources)` of a `name = [node](sources);` node (see
/// [`source_count_check`]).
fn wire_node(name: &Ident) -> TokenStream {
    quote_spanned! {name.span()=>
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

/// The local `wire(graph, name, node, failures, sources)` of a `name = [node](…each(list)…);`
/// map (see [`source_count_check`]): one bound per mistake (the count, a source, a node
/// with several outputs).
fn wire_map(name: &Ident) -> TokenStream {
    quote_spanned! {name.span()=>
        #[track_caller]
        fn wire<N, U, F, S>(
            graph: &mut ::daggr::__private::Graph,
            name: &str,
            node: N,
            failures: F,
            sources: S,
        ) -> ::daggr::__private::Output<::daggr::__private::MapOutput<U, F>>
        where
            N: ::daggr::__private::TypedNode,
            N::Handles: ::daggr::__private::OneOutputPort<Value = U>,
            U: ::daggr::__private::PortValue,
            F: ::daggr::__private::MapFailures,
            F::Gather: ::daggr::__private::Gather<U>,
            S: OneSourcePerInput<N::Args>,
            S::Sources: ::daggr::__private::MapArgs<N::Args>,
        {
            ::daggr::__private::add_map(
                graph,
                name,
                node,
                failures,
                ::daggr::__private::MapArgs::map_args(sources.sources()),
            )
        }
    }
}

/// The local `wire(graph, choice, sources)` of a choice (see [`source_count_check`]).
fn wire_choice(name: &Ident) -> TokenStream {
    quote_spanned! {name.span()=>
        #[track_caller]
        fn wire<A, H, S>(
            graph: &mut ::daggr::__private::Graph,
            choice: ::daggr::__private::Choice<A, H>,
            sources: S,
        ) -> H
        where
            A: ::daggr::__private::ArgTuple,
            S: OneSourcePerInput<A>,
            S::Sources: ::daggr::__private::IntoSources<A>,
        {
            graph.choose(choice, sources.sources())
        }
    }
}

/// A source as Rust, `each(list)` included.
fn arg_tokens(arg: &ArgDef) -> TokenStream {
    let value = source_tokens(&arg.value);
    match &arg.each {
        // Spanned on the user's `each(…)`: a list of the wrong item type is reported there.
        Some(each) => {
            let path = quote_spanned!(each.name=> ::daggr::__private::each);
            let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, value);
            args.set_span(each.paren);
            quote!(#path #args)
        }
        None => value,
    }
}

/// `::daggr::__private::FailNode` and friends, for a map's `#[map(..)]`.
fn failures_tokens(map: &MapDef) -> TokenStream {
    match map.failures {
        MapFailures::FailNode => quote!(::daggr::__private::FailNode),
        MapFailures::SkipFailed => quote!(::daggr::__private::SkipFailed),
        MapFailures::CollectErrors => quote!(::daggr::__private::CollectErrors),
    }
}

/// `path::to::FnNameNode`, the type `#[fn_node]` generates for the function `func`.
fn node_type_path(func: &Path) -> Path {
    let mut node_path = func.clone();
    if let Some(last) = node_path.segments.last_mut() {
        last.ident = node_type_name(&last.ident);
    }
    node_path
}

/// A `name = [node](sources);` node, mapped or not.
fn custom_node_tokens(node: &NodeDef, custom: &Expr, graph: &Ident) -> TokenStream {
    let name = &node.name;
    let name_str = name.to_string();
    let sources = node.args.iter().map(arg_tokens);
    // The tuple is spanned on the user's parentheses: a wrong number of sources is
    // reported there.
    let paren = node.sources_span.unwrap_or_else(|| name.span());
    let sources = quote_spanned!(paren=> (#(#sources,)*));
    let check = source_count_check(name, node.args.len(), "[node](a, b)");
    // The user's expressions are evaluated outside the block that declares `wire`, so
    // those names never shadow theirs (and they cannot see these two variables, bound
    // after them). The variables carry the spans of what they hold, where rustc reports a
    // node that is not one, or sources that do not fit it.
    let node_var = Ident::new("__daggr_node", custom.span());
    let sources_var = Ident::new("__daggr_sources", paren);
    // Spanned on the node's name: `Graph::add` records its caller's location (through
    // `wire`, which tracks its own), so the graph IR points at this line.
    let (wire, add) = match &node.map {
        None => (
            wire_node(name),
            quote_spanned!(name.span()=> wire(&mut #graph, #node_var, #sources_var)),
        ),
        Some(map) => {
            let failures = failures_tokens(map);
            (
                wire_map(name),
                quote_spanned!(name.span()=> wire(&mut #graph, #name_str, #node_var, #failures, #sources_var)),
            )
        }
    };
    quote! {
        #[allow(unused_variables)]
        let #name = {
            let (#node_var, #sources_var) = (#custom, #sources);
            {
                #check
                #wire
                #add
            }
        };
    }
}

/// A `name = f(port: source, …);` node, mapped (with an `each(..)` source) or not.
fn fn_node_tokens(node: &NodeDef, graph: &Ident) -> TokenStream {
    let name = &node.name;
    let name_str = name.to_string();
    let node_path = node_type_path(&node.func);
    let wires = node.args.iter().map(|arg| {
        let port = &arg.port;
        let value = arg_tokens(arg);
        quote_spanned!(port.span()=> .#port(#value))
    });
    let finish_span = node.func.span();
    // The whole wiring chain is spanned on the user's function name, so an error about
    // it (a missing input) points there rather than at the macro call.
    let builder = if node.map.is_some() {
        quote_spanned!(finish_span=> map_inputs)
    } else {
        quote_spanned!(finish_span=> inputs)
    };
    let start = quote_spanned!(finish_span=> #node_path::#builder());
    let finish = quote_spanned!(finish_span=> .finish());
    let chain = quote_spanned!(finish_span=> #start #(#wires)* #finish);
    let add = match &node.map {
        None => quote_spanned!(name.span()=> #graph.add(#node_path::named(#name_str), #chain)),
        Some(map) => {
            // The item node keeps the function's name (item errors name it); the map node
            // is named by the statement. The node is spanned on the function, where a node
            // with several outputs is reported.
            let item = quote_spanned!(finish_span=> #node_path::new());
            let failures = failures_tokens(map);
            quote_spanned!(name.span()=> ::daggr::__private::add_map(&mut #graph, #name_str, #item, #failures, #chain))
        }
    };
    quote! {
        // A node nothing reads from still runs (and is cached): not an unused variable.
        #[allow(unused_variables)]
        let #name = #add;
    }
}

/// A `name = choose(sources) { variant: node, … };` node.
fn choice_tokens(node: &NodeDef, choice: &ChoiceDef, graph: &Ident) -> TokenStream {
    use syn::ext::IdentExt;
    let name = &node.name;
    let name_str = name.to_string();
    let Some(first) = choice.variants.first() else {
        // Reported when parsed; nothing is expanded then.
        return TokenStream::new();
    };
    let vars: Vec<Ident> = (0..choice.variants.len())
        .map(|i| {
            Ident::new(
                &format!("__daggr_variant{i}"),
                choice.variants[i].node.span(),
            )
        })
        .collect();
    let exprs = choice.variants.iter().map(|v| match &v.node {
        VariantNode::Fn(path) => {
            let node_path = node_type_path(path);
            quote_spanned!(path.span()=> #node_path::new())
        }
        VariantNode::Expr(expr) => quote!(#expr),
    });
    let sources = node.args.iter().map(arg_tokens);
    let paren = node.sources_span.unwrap_or_else(|| name.span());
    let sources = quote_spanned!(paren=> (#(#sources,)*));
    let sources_var = Ident::new("__daggr_sources", paren);
    // Braces doubled: the note is a `diagnostic::on_unimplemented` format string.
    let check = source_count_check(name, node.args.len(), "choose(a, b) {{ … }}");
    let wire = wire_choice(name);
    let first_name = first.name.unraw().to_string();
    let start = {
        let var = &vars[0];
        quote_spanned!(first.node.span()=> ::daggr::__private::first_variant(#name_str, #first_name, #var))
    };
    // Per later variant, two traits whose only impls say "the same type as the first
    // variant's", with messages naming both variants, and a function adding the variant
    // through them: a variant of other types is one error, on that variant.
    let mut pascals = HashSet::new();
    let (items, adds): (Vec<TokenStream>, Vec<TokenStream>) = choice
        .variants
        .iter()
        .zip(&vars)
        .enumerate()
        .skip(1)
        .map(|(i, (variant, var))| {
            let v = variant.name.unraw().to_string();
            let span = variant.node.span();
            // `a_b` and `aB` are both `AB`: the second gets its index.
            let mut pascal = crate::fn_node::pascal_case(&v);
            // `_1` is a variant name, `1…` no identifier.
            if !pascal.starts_with(char::is_alphabetic) {
                pascal = format!("Variant{pascal}");
            }
            if !pascals.insert(pascal.clone()) {
                pascal = format!("{pascal}{i}");
            }
            let same_inputs = format_ident!("{}TakesTheSameInputs", pascal, span = span);
            let same_output = format_ident!("{}GivesTheSameOutput", pascal, span = span);
            let add = format_ident!("add_{}", v, span = span);
            let in_message = format!(
                "variant `{v}` of choice `{name}` takes the inputs `{{Self}}`, but variant `{first_name}` takes `{{A}}`"
            );
            let in_label = format!("variant `{v}` takes other inputs than variant `{first_name}`");
            let out_message = format!(
                "variant `{v}` of choice `{name}` outputs `{{Self}}`, but variant `{first_name}` outputs `{{T}}`"
            );
            let out_label = format!("variant `{v}` outputs another type than variant `{first_name}`");
            let note = "the variants of a choice are interchangeable: each takes the same input types, in the same order (the sources are given once, in `choose(…)`), and outputs the same type";
            let item = quote_spanned! {span=>
                #[diagnostic::on_unimplemented(message = #in_message, label = #in_label, note = #note)]
                trait #same_inputs<A>: Sized {
                    fn to_variant<H>(choice: ::daggr::__private::Choice<A, H>) -> ::daggr::__private::Choice<Self, H>;
                    fn to_first<H>(choice: ::daggr::__private::Choice<Self, H>) -> ::daggr::__private::Choice<A, H>;
                }
                impl<A> #same_inputs<A> for A {
                    fn to_variant<H>(choice: ::daggr::__private::Choice<A, H>) -> ::daggr::__private::Choice<A, H> {
                        choice
                    }
                    fn to_first<H>(choice: ::daggr::__private::Choice<A, H>) -> ::daggr::__private::Choice<A, H> {
                        choice
                    }
                }
                #[diagnostic::on_unimplemented(message = #out_message, label = #out_label, note = #note)]
                trait #same_output<T>: Sized {
                    fn to_variant<A>(
                        choice: ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>,
                    ) -> ::daggr::__private::Choice<A, ::daggr::__private::Output<Self>>;
                    fn to_first<A>(
                        choice: ::daggr::__private::Choice<A, ::daggr::__private::Output<Self>>,
                    ) -> ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>;
                }
                impl<T> #same_output<T> for T {
                    fn to_variant<A>(
                        choice: ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>,
                    ) -> ::daggr::__private::Choice<A, ::daggr::__private::Output<T>> {
                        choice
                    }
                    fn to_first<A>(
                        choice: ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>,
                    ) -> ::daggr::__private::Choice<A, ::daggr::__private::Output<T>> {
                        choice
                    }
                }
                fn #add<A, T, N>(
                    choice: ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>,
                    node: N,
                ) -> ::daggr::__private::Choice<A, ::daggr::__private::Output<T>>
                where
                    A: ::daggr::__private::ArgTuple,
                    N: ::daggr::__private::TypedNode,
                    N::Handles: ::daggr::__private::OneOutputPort,
                    N::Args: #same_inputs<A>,
                    <N::Handles as ::daggr::__private::OneOutputPort>::Value: #same_output<T>,
                {
                    let choice = <N::Args as #same_inputs<A>>::to_variant(choice);
                    let choice = <<N::Handles as ::daggr::__private::OneOutputPort>::Value as #same_output<T>>::to_variant(choice);
                    let choice = choice.or(#v, ::daggr::__private::SoleNode(node));
                    let choice = <<N::Handles as ::daggr::__private::OneOutputPort>::Value as #same_output<T>>::to_first(choice);
                    <N::Args as #same_inputs<A>>::to_first(choice)
                }
            };
            let call = quote_spanned!(span=> let __daggr_choice = #add(__daggr_choice, #var););
            (item, call)
        })
        .unzip();
    let selected = choice.selected.as_ref().map(|s| {
        let s = s.unraw().to_string();
        quote!(let __daggr_choice = __daggr_choice.selected(#s);)
    });
    let fallback = choice
        .fallback
        .then(|| quote!(let __daggr_choice = __daggr_choice.fallback();));
    let add = quote_spanned!(name.span()=> wire(&mut #graph, __daggr_choice, #sources_var));
    quote! {
        #[allow(unused_variables)]
        let #name = {
            let (#(#vars,)* #sources_var) = (#(#exprs,)* #sources);
            {
                #check
                #wire
                #(#items)*
                let __daggr_choice = #start;
                #(#adds)*
                #selected
                #fallback
                #add
            }
        };
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
    let groups = def.groups.iter().map(|group| {
        let (n, members) = (group.name.to_string(), &group.members);
        quote_spanned! {group.name.span()=>
            #graph.group_inputs(#n, &[#(::daggr::__private::Output::node_id(&#members)),*]);
        }
    });
    let nodes = order.iter().map(|&i| {
        let node = &def.nodes[i];
        match (&node.custom, &node.choice) {
            (Some(custom), _) => custom_node_tokens(node, custom, &graph),
            (None, Some(choice)) => choice_tokens(node, choice, &graph),
            (None, None) => fn_node_tokens(node, &graph),
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
        #(#groups)*
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

    const MAPS: &str = r#"
        pub struct Flow {
            inputs {
                words: Vec<String> = vec![],
                group size { width: u32 = 512, height: u32 = 256 }
                group: u32 = 1,
            }
            nodes {
                loud = shout(word: each(words), mark: "!", times: group);
                /// Docs are allowed.
                #[map(collect_errors)]
                parsed = parse(text: daggr::each(words));
                lengths = [FnNode::sync("len", |w: String| w.len())](each(loud));
                #[choice(selected = local, fallback)]
                title = choose(loud, width, height) {
                    space: [GradioNode::new("me/titles", "/predict")],
                    local: titles::title,
                };
            }
            outputs { title: String = title, lengths: Vec<usize> = lengths }
        }
    "#;

    #[test]
    fn maps_choices_and_groups_are_parsed() {
        let def: PipelineDef = syn::parse_str(MAPS).unwrap();
        let names: Vec<String> = def.inputs.iter().map(|i| i.name.to_string()).collect();
        assert_eq!(
            names,
            ["words", "width", "height", "group"],
            "an input may be named `group`"
        );
        assert_eq!(def.groups.len(), 1);
        assert_eq!(def.groups[0].name, "size");
        assert_eq!(def.groups[0].members, ["width", "height"]);
        let node = |name: &str| def.nodes.iter().find(|n| n.name == name).unwrap();
        let loud = node("loud");
        assert_eq!(loud.map.as_ref().unwrap().failures, MapFailures::FailNode);
        assert!(loud.args[0].each.is_some() && loud.args[1].each.is_none());
        assert_eq!(
            loud.args[0].value.to_token_stream().to_string(),
            "words",
            "the list"
        );
        assert_eq!(
            node("parsed").map.as_ref().unwrap().failures,
            MapFailures::CollectErrors
        );
        assert!(node("lengths").map.is_some() && node("lengths").custom.is_some());
        let title = node("title");
        let choice = title.choice.as_ref().unwrap();
        let variants: Vec<String> = choice.variants.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(variants, ["space", "local"]);
        assert!(matches!(choice.variants[1].node, VariantNode::Fn(_)));
        assert_eq!(choice.selected.as_ref().unwrap(), "local");
        assert!(choice.fallback);
        assert_eq!(title.args.len(), 3);
        assert!(!title.is_fn_node() && loud.is_fn_node());
    }

    #[test]
    fn maps_choices_and_groups_expand_to_the_builder() {
        let out = expand_str(MAPS);
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains("__daggr_graph . group_inputs (\"size\" , & [:: daggr :: __private :: Output :: node_id (& width) , :: daggr :: __private :: Output :: node_id (& height)]) ;"),
            "{out}"
        );
        assert!(out.contains(":: daggr :: __private :: add_map (& mut __daggr_graph , \"loud\" , ShoutNode :: new () , :: daggr :: __private :: FailNode , ShoutNode :: map_inputs () . word (:: daggr :: __private :: each (:: daggr :: __private :: SoleOutput :: sole_output (& words))) . mark (:: daggr :: __private :: constant (:: std :: string :: String :: from (\"!\"))) . times (:: daggr :: __private :: SoleOutput :: sole_output (& group)) . finish ())"), "{out}");
        assert!(
            out.contains("ParseNode :: new () , :: daggr :: __private :: CollectErrors"),
            "{out}"
        );
        assert!(
            out.contains("wire (& mut __daggr_graph , \"lengths\" , __daggr_node , :: daggr :: __private :: FailNode , __daggr_sources)"),
            "a `[node]` map: {out}"
        );
        assert!(
            out.contains(
                ":: daggr :: __private :: first_variant (\"title\" , \"space\" , __daggr_variant0)"
            ),
            "{out}"
        );
        assert!(
            out.contains("let __daggr_choice = add_local (__daggr_choice , __daggr_variant1) ;"),
            "{out}"
        );
        assert!(out.contains("titles :: TitleNode :: new ()"), "{out}");
        assert!(
            out.contains("variant `local` of choice `title` takes the inputs `{Self}`, but variant `space` takes `{A}`"),
            "{out}"
        );
        assert!(
            out.contains("__daggr_choice . selected (\"local\")"),
            "{out}"
        );
        assert!(out.contains("__daggr_choice . fallback ()"), "{out}");
        assert!(
            out.contains("takes the inputs `{Args}`, but 3 sources are given"),
            "{out}"
        );
        assert!(
            out.contains("as in `title = choose(a, b) {{ … }};`"),
            "braces escaped in the format string: {out}"
        );
        for path in out.split(":: daggr ::").skip(1) {
            assert_eq!(path.split_whitespace().next().unwrap(), "__private");
        }
        // In dependency order: the map before the choice that reads it.
        assert!(out.find("let loud").unwrap() < out.find("let title").unwrap());
    }

    #[test]
    fn map_and_choice_mistakes_are_reported_on_their_tokens() {
        let out = error_of(
            "struct P { inputs { w: Vec<String> = vec![] } nodes { #[map(skip_failed)] a = f(x: w); } }",
        );
        assert!(out.contains("`#[map(..)]` is for a node that maps over a list, and node `a` has no `each(..)` source"), "{out}");
        let out = error_of(
            "struct P { inputs { w: Vec<String> = vec![] } nodes { #[map(skip_failed, collect_errors, skip)] a = f(x: each(w)); } }",
        );
        assert!(out.contains("choose one"), "{out}");
        assert!(out.contains("unknown `map` option `skip`"), "{out}");
        let out = error_of("struct P { inputs { w: Vec<String> = vec![] } nodes { a = f(x: each(w, w)); b = f(x: each()); } }");
        assert_eq!(out.matches("`each(..)` takes one list").count(), 2, "{out}");
        let out = error_of("struct P { inputs { w: Vec<String> = vec![] } nodes { a = f(x: w); } outputs { o: String = each(w) } }");
        assert!(
            out.contains("output `o` reads a node or an input as it is"),
            "{out}"
        );
        let out = error_of(
            "struct P { inputs { i: String = String::new() } nodes { #[choice(selected = locl, fallback = true)] c = choose(i) { local: f, local: [g()] }; } }",
        );
        assert!(
            out.contains("variant `local` of choice `c` is declared twice"),
            "{out}"
        );
        assert!(
            out.contains(
                "choice `c` has no variant `locl`; did you mean `local`? (its variants: `local`)"
            ),
            "{out}"
        );
        assert!(
            out.contains("`fallback` is a flag and takes no value"),
            "{out}"
        );
        let out = error_of(
            "struct P { inputs { i: String = String::new() } nodes { c = choose(image: i) { a: f(x: i) }; d = chose(i) { a: f }; e = choose(each(i)) { a: f }; f = choose(i) { }; #[choice(fallback)] g = f(x: i); #[cache] h = f(x: i); } }",
        );
        assert!(
            out.contains("the sources of node `c` are positional"),
            "{out}"
        );
        assert!(
            out.contains("variant `a` is a node, without sources"),
            "{out}"
        );
        assert!(
            out.contains("`{ … }` after the sources makes node `d` a choice"),
            "{out}"
        );
        assert!(
            out.contains("`each(..)` maps a node over a list, and `e` is a choice"),
            "{out}"
        );
        assert!(out.contains("choice `f` has no variants"), "{out}");
        assert!(
            out.contains("`#[choice(..)]` is for a choice, and node `g` is not one"),
            "{out}"
        );
        assert!(
            out.contains("unknown attribute `#[cache]` on node `h`"),
            "{out}"
        );
        let out = error_of(
            "struct P { inputs { group a { x: u32 = 1 } group a { y: u32 = 1, group b { z: u32 = 1 } } group c { } groop d { w: u32 = 1 } } nodes { n = [f()](x, y, z, w); } }",
        );
        assert!(out.contains("duplicate group `a`"), "{out}");
        assert!(
            out.contains("group `b` is inside group `a`: groups do not nest"),
            "{out}"
        );
        assert!(out.contains("group `c` has no inputs"), "{out}");
        assert!(
            out.contains("unknown `groop d { … }` among the inputs"),
            "{out}"
        );
    }

    #[test]
    fn any_variant_name_expands() {
        let out = expand_str(
            "struct P { inputs { i: String = String::new() } nodes { #[choice(selected = r#type)] c = choose(i) { x: e, a_b: f, aB: g, _1: h, __: k, r#type: [m()] }; } }",
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("trait ABGivesTheSameOutput"), "{out}");
        assert!(out.contains("trait AB2GivesTheSameOutput"), "{out}");
        assert!(out.contains("trait Variant1TakesTheSameInputs"), "{out}");
        assert!(out.contains("trait VariantTakesTheSameInputs"), "{out}");
        assert!(out.contains("fn add_type"), "{out}");
        assert!(
            out.contains("__daggr_choice . selected (\"type\")"),
            "{out}"
        );
    }

    #[test]
    fn static_ir_shows_maps_choices_and_groups() {
        let def: PipelineDef = syn::parse_str(MAPS).unwrap();
        let ir = def.static_ir(&|path| {
            let name = path.segments.last().unwrap().ident.to_string();
            let sig = |inputs: &[(&str, &str)], output: &str| crate::fn_node::FnSignature {
                inputs: inputs
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect(),
                outputs: vec![("output".into(), output.into())],
            };
            match name.as_str() {
                "shout" => Some(sig(
                    &[("word", "String"), ("mark", "String"), ("times", "u32")],
                    "String",
                )),
                "parse" => Some(sig(&[("text", "String")], "u32")),
                "title" => Some(sig(
                    &[("words", "Vec<String>"), ("w", "u32"), ("h", "u32")],
                    "String",
                )),
                _ => None,
            }
        });
        let node = |name: &str| ir.nodes.iter().find(|n| n.name == name).unwrap();
        let loud = node("loud");
        assert_eq!(loud.kind, "map");
        assert_eq!(loud.mapped, ["word"]);
        assert_eq!(
            (loud.inputs[0].ty.as_str(), loud.inputs[1].ty.as_str()),
            ("Vec<String>", "String")
        );
        assert_eq!(loud.outputs[0].ty, "Vec<String>");
        assert_eq!(node("parsed").outputs[0].ty, "Vec<Result<u32,ItemError>>");
        let lengths = node("lengths");
        assert_eq!(
            (lengths.kind.as_str(), lengths.mapped.as_slice()),
            ("map", &["in0".to_string()][..])
        );
        let title = node("title");
        assert_eq!(title.kind, "choice");
        assert_eq!(title.variants, ["space", "local"]);
        let ports: Vec<&str> = title.inputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            ports,
            ["in0", "in1", "in2", "variant"],
            "the first variant is a `[node]`"
        );
        assert_eq!(node("width").group.as_deref(), Some("size"));
        assert_eq!(node("words").group, None);
        let edge = ir.edges.iter().find(|e| e.to == "loud").unwrap();
        assert_eq!(
            (edge.from.as_str(), edge.ty.as_str()),
            ("words", "Vec<String>")
        );
        let edge = ir.edges.iter().find(|e| e.to == "lengths").unwrap();
        assert_eq!(edge.from, "loud");
    }

    #[test]
    fn a_choice_shows_its_first_fn_variants_ports() {
        let def: PipelineDef = syn::parse_str(
            "struct P { inputs { t: String = String::new() } nodes { c = choose(t) { a: lower, b: [g()] }; } }",
        )
        .unwrap();
        let ir = def.static_ir(&|path| {
            (path.segments.last().unwrap().ident == "lower").then(|| crate::fn_node::FnSignature {
                inputs: vec![("text".into(), "String".into())],
                outputs: vec![("output".into(), "String".into())],
            })
        });
        let c = ir.nodes.iter().find(|n| n.name == "c").unwrap();
        let ports: Vec<(&str, &str)> = c
            .inputs
            .iter()
            .map(|p| (p.name.as_str(), p.ty.as_str()))
            .collect();
        assert_eq!(ports, [("text", "String"), ("variant", "String")]);
        assert_eq!(c.outputs[0].ty, "String");
        assert_eq!(ir.edges[0].to_port, "text");
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
