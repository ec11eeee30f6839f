//! `#[fn_node]`: turns a function into a typed node, keeping the function as it is.
//!
//! For `fn caption(image: Image, style: String) -> String` it generates:
//! - `CaptionNode`, the node (`new()`, `named(name)`, `inputs()`, `CODE_HASH`),
//! - `CaptionNodeInputs<…>`, a type-state builder with one method per input port
//!   (`.image(src)`, `.style(src)`, then `.finish()`, which only compiles when every
//!   input is wired; wiring one twice is "already wired"),
//! - `CaptionNodeOutputs`, one `Output<T>` field per output port (`output` by default).
//! - `CaptionNodeMapInputs<…>`, the same type-state builder for the node as the item of a
//!   map (`CaptionNode::map_inputs()`, what `pipeline!` uses for `port: each(list)`): each
//!   method takes `each(list)` of a `Vec<T>`, or an output or constant of `T` given to every
//!   item, and `finish()` gives the map's sources. A list of another item type is an error on
//!   it naming both types (`daggr::__private::ItemOf`).
//!
//! A return type spelled as a `Result` (`Result<T, E>`, `io::Result<T>`) has output `T`; one
//! that is certainly not a `Result` (a tuple, `String`, `Vec<T>`, a number) is the output
//! itself; for any other path (`Fallible<u32>`, `Handle`) the compiler decides, through
//! `daggr::__private::NodeReturn`: a `Result` behind an alias still fails the node on `Err`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Lit, Pat, PathArguments, ReturnType, Type};

use crate::options::{did_you_mean, parse_duration_ms, suggest, AttrOptions, Errors, OptionValue};

const OPTIONS: &[&str] = &[
    "name", "version", "cache", "group", "timeout", "retries", "outputs", "fields", "inline",
    "crate",
];

/// The settings given in `#[fn_node(...)]`.
#[derive(Default)]
pub struct FnNodeOptions {
    /// `name = "…"`: the default node name.
    pub name: Option<String>,
    /// `version = "…"`.
    pub version: Option<String>,
    /// `cache = "default" | "always" | "never"`.
    pub cache: Option<Ident>,
    /// `group = "…"`.
    pub group: Option<String>,
    /// `timeout = "30s"`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `retries = 3`.
    pub retries: Option<u32>,
    /// `outputs(a, b)`: names for the elements of a returned tuple.
    pub outputs: Option<Vec<Ident>>,
    /// `inline`: run a cheap synchronous function on the scheduler thread.
    pub inline: bool,
    /// `fields`: the returned struct's fields are the output ports (it derives `daggr::Outputs`).
    pub fields: bool,
    /// `crate = path`: where daggr is, for a renamed dependency (`::daggr` by default).
    pub krate: Option<syn::Path>,
}

/// Parses the attribute's options, reporting every bad one.
pub fn parse_options(attr: TokenStream, errors: &mut Errors) -> FnNodeOptions {
    let mut options = FnNodeOptions::default();
    let parsed: AttrOptions = match syn::parse2(attr) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e);
            return options;
        }
    };
    let mut fields_key = None;
    for opt in parsed.0 {
        let key = opt.key.to_string();
        // Errors about a value underline the value; a flag or list has none, so the key.
        let value_span = match &opt.value {
            OptionValue::Lit(lit) => lit.span(),
            OptionValue::Path(path) => path.span(),
            OptionValue::List(_) | OptionValue::Flag => opt.key.span(),
        };
        // The value as written, quoted, for "write it as" hints: `cache = never` → "never".
        let quoted = match &opt.value {
            OptionValue::Path(path) => format!(
                "\"{}\"",
                path.to_token_stream().to_string().replace(' ', "")
            ),
            _ => "\"…\"".to_string(),
        };
        let lit_str = |errors: &mut Errors| match &opt.value {
            OptionValue::Lit(Lit::Str(s)) => Some(s.value()),
            _ => {
                errors.at(
                    value_span,
                    format!("`{key}` takes a string: `{key} = {quoted}`"),
                );
                None
            }
        };
        match key.as_str() {
            "name" => options.name = lit_str(errors),
            "version" => options.version = lit_str(errors),
            "group" => options.group = lit_str(errors),
            "cache" => {
                if let Some(value) = lit_str(errors) {
                    match value.as_str() {
                        "default" => options.cache = Some(format_ident!("Default")),
                        "always" => options.cache = Some(format_ident!("AlwaysRecompute")),
                        "never" => options.cache = Some(format_ident!("NeverCache")),
                        other => errors.at(
                            value_span,
                            format!(
                                "unknown cache policy `{other}`{}: use \"default\", \"always\" or \"never\"",
                                did_you_mean(suggest(other, ["default", "always", "never"]))
                            ),
                        ),
                    }
                }
            }
            "crate" => match &opt.value {
                OptionValue::Path(path) => options.krate = Some(path.clone()),
                OptionValue::Lit(Lit::Str(s)) => match s.parse::<syn::Path>() {
                    Ok(path) => options.krate = Some(path),
                    Err(_) => errors.at(s.span(), "`crate` takes a path: `crate = daggr` or `crate = \"my_daggr\"`"),
                },
                _ => errors.at(value_span, "`crate` takes a path: `crate = my_daggr` (where daggr is, when renamed in Cargo.toml)"),
            },
            "timeout" => {
                if let OptionValue::Lit(Lit::Str(s)) = &opt.value {
                    match parse_duration_ms(&s.value(), s.span()) {
                        Ok(ms) => options.timeout_ms = Some(ms),
                        Err(e) => errors.push(e),
                    }
                } else {
                    errors.at(
                        value_span,
                        format!("`timeout` takes a duration string: `timeout = {}`", if quoted == "\"…\"" { "\"30s\"" } else { &quoted }),
                    );
                }
            }
            "retries" => match &opt.value {
                OptionValue::Lit(Lit::Int(n)) => match n.base10_parse() {
                    Ok(n) => options.retries = Some(n),
                    Err(e) => errors.push(e),
                },
                _ => errors.at(value_span, "`retries` takes a number: `retries = 3`"),
            },
            "outputs" => match opt.value {
                OptionValue::List(names) if !names.is_empty() => options.outputs = Some(names),
                _ => errors.at(
                    opt.key.span(),
                    "`outputs` takes port names: `outputs(mask, image)`",
                ),
            },
            "fields" => match opt.value {
                OptionValue::Flag => {
                    options.fields = true;
                    fields_key = Some(opt.key.clone());
                }
                _ => errors.at(opt.key.span(), "`fields` is a flag and takes no value"),
            },
            "inline" => match opt.value {
                OptionValue::Flag => options.inline = true,
                _ => errors.at(opt.key.span(), "`inline` is a flag and takes no value"),
            },
            other => errors.at(
                opt.key.span(),
                format!(
                    "unknown `fn_node` option `{other}`{} (options: {})",
                    did_you_mean(match other {
                        // Near misses that are too far apart for the edit distance.
                        "retry" | "retrys" | "retry_count" | "max_retries" => Some("retries".to_string()),
                        "output" => Some("outputs".to_string()),
                        "field" => Some("fields".to_string()),
                        _ => suggest(other, OPTIONS.iter().copied()),
                    }),
                    OPTIONS.join(", ")
                ),
            ),
        }
    }
    if let (Some(key), Some(_)) = (&fields_key, &options.outputs) {
        errors.at(
            key.span(),
            "use `outputs(..)` for a returned tuple or `fields` for a returned struct, not both",
        );
    }
    options
}

/// How a function's return value becomes the node's output, or fails it.
enum ReturnKind {
    /// A type that is no `Result` however it is aliased (a tuple, `()`, `String`, `Vec<T>`,
    /// a number…): the value is the output.
    Plain,
    /// Spelled as a `Result` (`Result<T, E>`, `io::Result<T>`): the port carries `T`, `Err`
    /// fails the node.
    Spelled,
    /// Any other path (`Handle`, `Fallible<u32>`): possibly a `Result` behind an alias, so
    /// the compiler decides (`NodeReturn`): the port carries the `Result`'s `T` if it is one,
    /// else the type itself. Holds the type as written.
    ByType(Box<Type>),
}

/// What a function returns, as the node sees it.
struct Returns {
    /// How the value becomes the output.
    kind: ReturnKind,
    /// Output ports: name and type.
    ports: Vec<(Ident, Type)>,
    /// Whether the value is a tuple to split into ports.
    split: bool,
    /// `fields`: the value is a struct deriving `Outputs`, split by its impl.
    fields: Option<Type>,
}

/// Where to report a `Result`'s error type: its `E` if written, else the whole return type.
fn result_err_span(output: &ReturnType) -> Span {
    let ReturnType::Type(_, ty) = output else {
        return Span::call_site();
    };
    if let Type::Path(path) = &**ty {
        if let Some(PathArguments::AngleBracketed(args)) =
            path.path.segments.last().map(|s| &s.arguments)
        {
            if let Some(GenericArgument::Type(e)) = args.args.iter().nth(1) {
                return e.span();
            }
        }
    }
    ty.span()
}

/// The `Result`'s `T`, if `ty` is syntactically a `Result<T, …>`.
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn returns(item: &ItemFn, options: &FnNodeOptions, errors: &mut Errors) -> Returns {
    let ty: Type = match &item.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (kind, value) = match result_ok_type(&ty) {
        Some(ok) => (ReturnKind::Spelled, ok.clone()),
        None if certainly_plain(&ty) => (ReturnKind::Plain, ty),
        None => (
            ReturnKind::ByType(Box::new(ty.clone())),
            returned_value(&ty),
        ),
    };
    if options.fields {
        return Returns {
            kind,
            ports: Vec::new(),
            split: false,
            fields: Some(value),
        };
    }
    match &options.outputs {
        None => Returns {
            kind,
            ports: vec![(format_ident!("output"), value)],
            split: false,
            fields: None,
        },
        Some(names) if names.len() == 1 => Returns {
            kind,
            ports: vec![(names[0].clone(), value)],
            split: false,
            fields: None,
        },
        Some(names) => match &value {
            Type::Tuple(tuple) if tuple.elems.len() == names.len() => Returns {
                kind,
                ports: names
                    .iter()
                    .cloned()
                    .zip(tuple.elems.iter().cloned())
                    .collect(),
                split: true,
                fields: None,
            },
            other => {
                // Behind an alias the tuple is out of the macro's sight.
                let (written, alias) = match &kind {
                    ReturnKind::ByType(written) => (&**written, true),
                    _ => (other, false),
                };
                let list = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
                errors.spanned(
                    written,
                    format!(
                        "`outputs({})` names {} ports, so the function must return a tuple of {} values{}",
                        list.join(", "),
                        names.len(),
                        names.len(),
                        if alias {
                            format!(
                                ", written out in the signature (`({0})` or `Result<({0}), E>`): the macro cannot see through a type alias",
                                vec!["_"; names.len()].join(", ")
                            )
                        } else {
                            String::new()
                        }
                    ),
                );
                Returns {
                    kind,
                    ports: vec![(format_ident!("output"), value.clone())],
                    split: false,
                    fields: None,
                }
            }
        },
    }
}

/// Whether `ty` is no `Result` whatever the aliases in scope: a tuple, an array, or a
/// well-known type by its usual name (`String`, `Vec<T>`, `u32`, `daggr::Image`…).
fn certainly_plain(ty: &Type) -> bool {
    const KNOWN: &[&str] = &[
        "bool", "char", "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16",
        "u32", "u64", "u128", "usize", "String", "Vec", "Option", "Box", "HashMap", "BTreeMap",
        "HashSet", "BTreeSet", "VecDeque", "PathBuf", "Image", "Audio", "Video", "File", "Value",
    ];
    match ty {
        Type::Tuple(_) | Type::Array(_) | Type::Never(_) => true,
        Type::Paren(inner) => certainly_plain(&inner.elem),
        Type::Group(inner) => certainly_plain(&inner.elem),
        Type::Path(path) if path.qself.is_none() => {
            let segments = &path.path.segments;
            let from_std = segments.len() == 1
                || ["std", "core", "alloc", "daggr", "serde_json"]
                    .iter()
                    .any(|krate| segments[0].ident == krate);
            from_std
                && segments
                    .last()
                    .is_some_and(|last| KNOWN.iter().any(|k| last.ident == k))
        }
        _ => false,
    }
}

/// `<ty as NodeReturn<{ is ty a Result? }>>`, located on the user's type: the compiler
/// decides whether a return type the macro cannot read is a `Result` (see
/// `daggr::__private::NodeReturn`).
fn node_return(ty: &Type) -> TokenStream {
    let span = Span::call_site().located_at(ty.span());
    quote_spanned! {span=>
        <#ty as ::daggr::__private::NodeReturn<{
            #[allow(unused_imports)]
            use ::daggr::__private::NotAResult as _;
            ::daggr::__private::ReturnProbe::<#ty>::IS_RESULT
        }>>
    }
}

/// The output value of a return type decided by the compiler: the `Result`'s `T`, or the
/// type itself.
fn returned_value(ty: &Type) -> Type {
    let node_return = node_return(ty);
    let span = Span::call_site().located_at(ty.span());
    Type::Verbatim(quote_spanned!(span=> #node_return::Value))
}

/// Every identifier in the function's signature: names the expansion must not shadow with
/// its own local items (a parameter type `FactorWired` stays the user's).
fn idents_of_signature(sig: &syn::Signature) -> std::collections::HashSet<String> {
    fn collect(tokens: TokenStream, into: &mut std::collections::HashSet<String>) {
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Ident(i) => {
                    into.insert(i.to_string());
                }
                proc_macro2::TokenTree::Group(g) => collect(g.stream(), into),
                _ => {}
            }
        }
    }
    let mut idents = std::collections::HashSet::new();
    collect(sig.to_token_stream(), &mut idents);
    idents
}

/// `snake_case` → `PascalCase`.
pub fn pascal_case(name: &str) -> String {
    name.split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The generated node type's name for a function name: `remove_bg` → `RemoveBgNode`.
pub fn node_type_name(fn_name: &Ident) -> Ident {
    Ident::new(
        &format!("{}Node", pascal_case(&fn_name.to_string())),
        fn_name.span(),
    )
}

/// A hash of the function's tokens: editing the body changes it, so cached results of the
/// old code are never reused.
pub fn code_hash(item: &ItemFn) -> String {
    let text = item.to_token_stream().to_string();
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// A `#[fn_node]` function's ports as written in the source: `(name, type)` pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct FnSignature {
    /// Input ports.
    pub inputs: Vec<(String, String)>,
    /// Output ports.
    pub outputs: Vec<(String, String)>,
}

/// The ports of a function carrying `#[fn_node(...)]`, read without compiling it
/// (for `cargo daggr graph --static`). `None` if it is not a valid `#[fn_node]`.
pub fn signature(item: &ItemFn) -> Option<FnSignature> {
    let attr = item.attrs.iter().find(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "fn_node")
    })?;
    let tokens = match &attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        _ => TokenStream::new(),
    };
    let mut errors = Errors::default();
    let options = parse_options(tokens, &mut errors);
    let text = |ty: &Type| ty.to_token_stream().to_string().replace(' ', "");
    let inputs = item
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(p) => match &*p.pat {
                Pat::Ident(i) => Some((i.ident.to_string(), text(&p.ty))),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let returns = returns(item, &options, &mut errors);
    if !errors.is_empty() {
        return None;
    }
    Some(FnSignature {
        inputs,
        outputs: returns
            .ports
            .iter()
            .map(|(n, t)| {
                // A type the compiler decides on is shown as written.
                let t = match &returns.kind {
                    ReturnKind::ByType(written) => written,
                    _ => t,
                };
                (n.to_string(), text(t))
            })
            .collect(),
    })
}

/// Expands `#[fn_node(attr)] item`. Never fails: on errors it re-emits the item unchanged
/// (so completion keeps working) followed by the errors.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse_options(attr, &mut errors);
    // A bad option falls back to its default: the node is still generated (with the error),
    // so code using `…Node` reports nothing more.
    let option_errors = errors.finish();
    let mut errors = Errors::default();
    if let Some(e) = option_errors.clone() {
        errors.push(e);
    }
    let item_fn: ItemFn = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(f)) => f,
        Ok(other) => {
            // Underline the item's keyword and name, not its whole body.
            let (what, head) = match &other {
                syn::Item::Struct(s) => ("a struct", head(&s.struct_token, &s.ident)),
                syn::Item::Enum(e) => ("an enum", head(&e.enum_token, &e.ident)),
                syn::Item::Impl(i) => ("an impl block", head(&i.impl_token, &i.self_ty)),
                syn::Item::Mod(m) => ("a module", head(&m.mod_token, &m.ident)),
                _ => ("this item", quote_spanned!(other.span()=> item)),
            };
            errors.spanned(
                head,
                format!("`#[fn_node]` goes on a function, not on {what}"),
            );
            return with_errors(item, errors);
        }
        Err(_) => {
            // Method with `self` inside an impl parses as an item only with its impl; a bare
            // `fn f(&self)` fails here.
            if let Ok(method) = syn::parse2::<syn::ImplItemFn>(item.clone()) {
                if let Some(receiver) = method.sig.receiver() {
                    errors.spanned(
                        receiver,
                        "`#[fn_node]` cannot take `self`: make it a free function and pass what it needs as inputs",
                    );
                    return with_errors(item, errors);
                }
            }
            errors.at(Span::call_site(), "`#[fn_node]` goes on a function");
            return with_errors(item, errors);
        }
    };
    let mut signature_errors = Errors::default();
    match expand_fn(&item_fn, &options, &mut signature_errors) {
        Some(generated) if signature_errors.is_empty() => {
            let generated = with_crate(generated, options.krate.as_ref());
            let errors = option_errors.map(|e| e.to_compile_error());
            quote!(#item_fn #generated #errors)
        }
        _ => {
            if let Some(e) = signature_errors.finish() {
                errors.push(e);
            }
            with_errors(item, errors)
        }
    }
}

/// Generated code with `::daggr` replaced by `krate` (the `crate = path` option, for a
/// renamed dependency). Only generated tokens go through this, never the user's own.
pub(crate) fn with_crate(tokens: TokenStream, krate: Option<&syn::Path>) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    let Some(krate) = krate else { return tokens };
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(id))) =
            (trees.get(i), trees.get(i + 1), trees.get(i + 2))
        {
            let next_is_colon =
                matches!(trees.get(i + 3), Some(TokenTree::Punct(p)) if p.as_char() == ':');
            if a.as_char() == ':' && b.as_char() == ':' && id == "daggr" && next_is_colon {
                let span = id.span();
                out.extend(krate.to_token_stream().into_iter().map(|mut t| {
                    t.set_span(span);
                    t
                }));
                i += 3;
                continue;
            }
        }
        match &trees[i] {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), with_crate(g.stream(), Some(krate)));
                group.set_span(g.span());
                out.push(TokenTree::Group(group));
            }
            other => out.push(other.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

/// An item's keyword and name, to underline.
fn head(keyword: &impl ToTokens, name: &impl ToTokens) -> TokenStream {
    quote!(#keyword #name)
}

/// `::daggr::__private::port::<ty>()`, located on the user's type (call-site hygiene).
pub(crate) fn port_of(ty: &Type) -> TokenStream {
    let span = Span::call_site().located_at(ty.span());
    quote_spanned!(span=> ::daggr::__private::port::<#ty>())
}

/// `::daggr::__private::field_ports::<ty>()`, located on the user's type like [`port_of`].
fn field_ports_of(ty: &Type) -> TokenStream {
    let span = Span::call_site().located_at(ty.span());
    quote_spanned!(span=> ::daggr::__private::field_ports::<#ty>())
}

/// The owned type to suggest for a reference parameter: `&str` → `String`, `&[T]` → `Vec<T>`.
fn owned_hint(referent: &Type) -> String {
    match referent {
        Type::Path(p) if p.path.is_ident("str") => "String".into(),
        Type::Path(p) if p.path.is_ident("Path") => "PathBuf".into(),
        Type::Slice(s) => format!("Vec<{}>", s.elem.to_token_stream()),
        other => other.to_token_stream().to_string(),
    }
}

/// The first part of `ty` that cannot cross a port as written, and what to say about it:
/// a reference, a lifetime other than `'static`, `impl Trait`. `param`: an input's type.
fn unowned_part(ty: &Type, what: &str, param: bool) -> Option<(TokenStream, String)> {
    use syn::visit::Visit;
    struct Finder<'a> {
        what: &'a str,
        param: bool,
        top: bool,
        found: Option<(TokenStream, String)>,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.found.is_some() {
                return;
            }
            let top = std::mem::replace(&mut self.top, false);
            let (verb, kind) = if self.param {
                ("take", "inputs")
            } else {
                ("return", "outputs")
            };
            match ty {
                Type::Reference(r) => {
                    let owned = owned_hint(&r.elem);
                    let message = if top {
                        format!("`#[fn_node]` {kind} are owned values: {verb} `{owned}`, not a reference")
                    } else {
                        format!(
                            "`#[fn_node]` {kind} are owned values, so {} cannot hold a reference: use `{owned}` here, not `{}`",
                            self.what,
                            type_text(ty)
                        )
                    };
                    self.found = Some((r.to_token_stream(), message));
                }
                Type::ImplTrait(i) => {
                    let message = format!(
                        "`#[fn_node]` {kind} need one concrete type, so {} cannot be `impl Trait`: write the type itself (the port carries exactly that type)",
                        self.what
                    );
                    self.found = Some((i.to_token_stream(), message));
                }
                other => syn::visit::visit_type(self, other),
            }
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if self.found.is_none() && lifetime.ident != "static" {
                let kind = if self.param { "inputs" } else { "outputs" };
                self.found = Some((
                    lifetime.to_token_stream(),
                    format!(
                        "`#[fn_node]` {kind} are owned values, decoded afresh for each run, so {} cannot borrow for `{lifetime}`: use an owned type (`String` for `Cow<{lifetime}, str>` or `&str`, `Vec<T>` for `&[T]`)",
                        self.what
                    ),
                ));
            }
        }
    }
    let mut finder = Finder {
        what,
        param,
        top: true,
        found: None,
    };
    finder.visit_type(ty);
    finder.found
}

/// A type as one would write it: `Vec<&str>`, not `Vec < & str >`.
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

fn with_errors(item: TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.finish().map(|e| e.to_compile_error());
    quote!(#item #errors)
}

fn expand_fn(item: &ItemFn, options: &FnNodeOptions, errors: &mut Errors) -> Option<TokenStream> {
    let sig = &item.sig;
    // A type that cannot cross a port as written (a reference, a lifetime, `impl Trait`):
    // one error on the first such part of each type.
    let mut unowned = 0;
    for arg in &sig.inputs {
        if let FnArg::Typed(pat_type) = arg {
            let what = match &*pat_type.pat {
                Pat::Ident(p) => format!("input `{}`", p.ident),
                _ => "an input".to_string(),
            };
            if let Some((tokens, message)) = unowned_part(&pat_type.ty, &what, true) {
                errors.spanned(tokens, message);
                unowned += 1;
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some((tokens, message)) = unowned_part(ty, "the output", false) {
            errors.spanned(tokens, message);
            unowned += 1;
        }
    }
    let type_params = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
    if type_params {
        errors.spanned(
            &sig.generics,
            "`#[fn_node]` functions cannot be generic: every port needs one concrete type (write a small wrapper per type)",
        );
    } else if !sig.generics.params.is_empty() && unowned == 0 {
        errors.spanned(
            &sig.generics,
            "`#[fn_node]` functions take no lifetime parameters: ports carry owned values (`String`, `Vec<T>`), decoded afresh for each run",
        );
    }
    if let Some(receiver) = sig.receiver() {
        errors.spanned(
            receiver,
            "`#[fn_node]` cannot take `self`: make it a free function and pass what it needs as inputs",
        );
    }
    let mut params: Vec<(Ident, Type)> = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pat_type) = arg else {
            continue;
        };
        match &*pat_type.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                params.push((p.ident.clone(), (*pat_type.ty).clone()))
            }
            other => errors.spanned(
                other,
                "`#[fn_node]` parameters must be plain names: each one becomes an input port of that name",
            ),
        }
    }
    // Names the input builder already uses for itself.
    let base_name = pascal_case(&sig.ident.to_string());
    for (name, _) in &params {
        let clash = match name.to_string().as_str() {
            "finish" => Some("the `finish()` method"),
            "__state" => Some("the `__state` field"),
            _ => None,
        };
        if let Some(item) = clash {
            errors.at(
                name.span(),
                format!(
                    "input `{name}` has the name of {item} that `#[fn_node]` generates on the input builder `{base_name}NodeInputs` (one method per input, then `finish()`): rename the parameter"
                ),
            );
        }
    }
    if let Some(names) = &options.outputs {
        let mut seen = std::collections::HashSet::new();
        for name in names {
            if !seen.insert(name.to_string()) {
                errors.at(
                    name.span(),
                    format!("output `{name}` is named twice in `outputs(..)`: each output port needs its own name"),
                );
            }
        }
    }
    if params.len() > 8 {
        errors.at(
            sig.inputs.span(),
            "`#[fn_node]` supports at most 8 inputs: group them in a struct",
        );
    }
    let returns = returns(item, options, errors);
    if !errors.is_empty() {
        return None;
    }

    let vis = &item.vis;
    let fn_name = &sig.ident;
    let fn_name_str = fn_name.to_string();
    let node_name = options.name.clone().unwrap_or_else(|| fn_name_str.clone());
    let node_ty = node_type_name(fn_name);
    let base = pascal_case(&fn_name_str);
    let inputs_ty = Ident::new(&format!("{base}NodeInputs"), fn_name.span());
    let outputs_ty = Ident::new(&format!("{base}NodeOutputs"), fn_name.span());
    let hash = code_hash(item);

    // Every use of a port type goes through `port::<T>()` spanned on the user's type: a type
    // that cannot cross a port is then reported once, there (rustc drops identical repeats).
    let port_checks = params
        .iter()
        .map(|(_, ty)| port_of(ty))
        .chain(returns.ports.iter().map(|(_, ty)| port_of(ty)))
        .chain(returns.fields.iter().map(field_ports_of))
        .map(|check| quote!(let _ = #check;));
    // The same facts as bounds on the `TypedNode` impl, so its associated types are checked
    // under them rather than reporting the same problem again on the macro call. Higher-ranked,
    // so a false one is not a "trivial bound" error: the checks above report it.
    let typed_node_bounds = params
        .iter()
        .map(|(_, ty)| quote!(for<'__daggr> #ty: ::daggr::__private::PortValue))
        .chain(
            returns
                .fields
                .iter()
                .map(|ty| quote!(for<'__daggr> #ty: ::daggr::__private::SplitOutputs)),
        );

    let in_specs = params.iter().map(|(name, ty)| {
        let name = name.to_string();
        let port = port_of(ty);
        quote!(#port.spec(#name))
    });
    let out_specs = returns.ports.iter().map(|(name, ty)| {
        let name = name.to_string();
        let port = port_of(ty);
        quote!(#port.spec(#name))
    });
    let args = params.iter().enumerate().map(|(i, (_, ty))| {
        let port = port_of(ty);
        quote!(#port.get(&__inputs, #i)?)
    });
    let call = if sig.asyncness.is_some() {
        quote!(#fn_name(#(#args),*).await)
    } else {
        quote!(#fn_name(#(#args),*))
    };
    // `Err` fails the node: the error converted by the most fitting rule for its concrete
    // type (see `macro_support`), spanned on the error type so a type that cannot be an
    // error (no `Display`) is reported there.
    let error_span = match &returns.kind {
        ReturnKind::Plain => None,
        ReturnKind::Spelled => Some(result_err_span(&sig.output)),
        ReturnKind::ByType(ty) => Some(ty.span()),
    };
    let unwrap = error_span.map(|error_span| {
        let span = Span::call_site().located_at(error_span);
        let convert = quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use ::daggr::__private::{
                    DisplayErrorKind as _, IntoBoxErrorKind as _, LocalErrorKind as _, NodeErrorKind as _,
                };
                (&&&::daggr::__private::ErrorOf::of(&__error)).__daggr_error_kind().convert(__error)
            }
        };
        // A type the compiler decides on is split by `NodeReturn` (a plain value never
        // fails: its error type is `Infallible`, hence the allowances).
        let split = match &returns.kind {
            ReturnKind::ByType(ty) => {
                let node_return = node_return(ty);
                quote!(#node_return::into_result(__value))
            }
            _ => quote!(__value),
        };
        quote! {
            #[allow(unreachable_code, unreachable_patterns)]
            let __value = match #split {
                ::core::result::Result::Ok(__ok) => __ok,
                ::core::result::Result::Err(__error) => return ::core::result::Result::Err(#convert),
            };
        }
    });
    let encode = if let Some(ty) = &returns.fields {
        let fields = field_ports_of(ty);
        quote!(#fields.split(__value, &__node))
    } else if returns.split {
        let names: Vec<&Ident> = returns.ports.iter().map(|(n, _)| n).collect();
        let strs = names.iter().map(|n| n.to_string());
        let ports = returns.ports.iter().map(|(_, ty)| port_of(ty));
        quote! {
            let (#(#names,)*) = __value;
            ::core::result::Result::Ok(::std::vec![#(#ports.encode(&__node, #strs, #names)?),*])
        }
    } else {
        let name = returns.ports[0].0.to_string();
        let port = port_of(&returns.ports[0].1);
        quote!(::core::result::Result::Ok(
            ::std::vec![#port.encode(&__node, #name, __value)?]
        ))
    };
    let body = quote! {
        #call;
    };
    let body = quote! {
        let __value = #body
        #unwrap
        #encode
    };
    let core = if sig.asyncness.is_some() {
        quote! {
            ::daggr::__private::NodeCore::asynchronous(__spec, move |_ctx, __inputs| {
                let __node = __node.clone();
                ::std::boxed::Box::pin(async move { #body })
            })
        }
    } else {
        quote! {
            ::daggr::__private::NodeCore::sync(__spec, move |_ctx, __inputs| { #body })
        }
    };
    let cache = options
        .cache
        .as_ref()
        .map(|c| quote!(::daggr::__private::CachePolicy::#c))
        .unwrap_or(quote!(::daggr::__private::CachePolicy::Default));
    let group = match &options.group {
        Some(g) => quote!(::core::option::Option::Some(::std::string::String::from(#g))),
        None => quote!(::core::option::Option::None),
    };
    let timeout = match options.timeout_ms {
        Some(ms) => quote!(::core::option::Option::Some(::std::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    let retry = match options.retries {
        Some(n) => {
            quote!(::daggr::__private::RetryPolicy::new(#n, ::std::time::Duration::from_millis(200)))
        }
        None => quote!(::daggr::__private::RetryPolicy::default()),
    };
    let version = match &options.version {
        Some(v) => quote!(::core::option::Option::Some(::std::string::String::from(#v))),
        None => quote!(::core::option::Option::None),
    };
    let inline = options.inline.then(|| quote!(__core.set_inline();));

    let arg_tys: Vec<&Type> = params.iter().map(|(_, t)| t).collect();
    let out_names: Vec<&Ident> = returns.ports.iter().map(|(n, _)| n).collect();
    let out_tys: Vec<&Type> = returns.ports.iter().map(|(_, t)| t).collect();
    let out_index = 0..returns.ports.len();
    let sole = (returns.ports.len() == 1).then(|| {
        let ty = out_tys[0];
        let name = out_names[0];
        quote! {
            impl ::daggr::__private::SoleOutput for #outputs_ty {
                type Value = #ty;
                fn sole_output(&self) -> ::daggr::__private::Output<#ty> { self.#name }
            }
            impl ::daggr::__private::OneOutputPort for #outputs_ty {
                type Value = #ty;
                fn one_output(&self) -> ::daggr::__private::Output<#ty> { self.#name }
            }
        }
    });

    // The type-state input builder.
    let states: Vec<Ident> = (0..params.len()).map(|i| format_ident!("P{}", i)).collect();
    let param_names: Vec<&Ident> = params.iter().map(|(n, _)| n).collect();
    // Per input, two traits of the input builder (local to the expansion, so their names
    // show in help text as written): `…Wired`, held once it is wired (`finish()` needs it),
    // and `…NotYetWired`, held until then (its method needs it, so wiring it twice is "already
    // wired" rather than "no method").
    let taken = idents_of_signature(sig);
    let mut used = std::collections::HashSet::new();
    // Located on the parameter: rustc's "required by this bound" notes point there.
    let mut trait_name = |base: String, param: &Ident| {
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(&name) || !used.insert(name.clone()) {
            n += 1;
            name = format!("{base}{n}");
        }
        Ident::new(&name, Span::call_site().located_at(param.span()))
    };
    let (wired_traits, unwired_traits): (Vec<Ident>, Vec<Ident>) = params
        .iter()
        .map(|(n, _)| {
            let port = pascal_case(&n.to_string());
            (
                trait_name(format!("{port}Wired"), n),
                trait_name(format!("{port}NotYetWired"), n),
            )
        })
        .unzip();
    // The map-input builder's own (names of their own: two traits of one name would be
    // shown as `_::Name`).
    let (map_wired_traits, map_unwired_traits): (Vec<Ident>, Vec<Ident>) = params
        .iter()
        .map(|(n, _)| {
            let port = pascal_case(&n.to_string());
            (
                trait_name(format!("{port}WiredForMap"), n),
                trait_name(format!("{port}NotYetWiredForMap"), n),
            )
        })
        .unzip();
    let trait_defs = params
        .iter()
        .zip(wired_traits.iter().zip(&unwired_traits))
        .map(|((n, _), (wired, unwired))| {
            let message = format!("missing required input `{n}` of node `{node_name}`");
            let label = format!("`{n}` is not wired");
            let note = format!("wire it: `{n}: other_node.port`, a constant, or a pipeline input");
            let again = format!("input `{n}` of node `{node_name}` is already wired");
            let again_label = format!("`{n}` was wired before this call");
            let again_note =
                format!("an input takes exactly one source: keep one `.{n}(..)` call");
            let span = Span::call_site().located_at(n.span());
            quote_spanned! {span=>
                #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
                trait #wired {}
                impl #wired for ::daggr::__private::Set {}
                #[diagnostic::on_unimplemented(message = #again, label = #again_label, note = #again_note)]
                trait #unwired {}
                impl #unwired for ::daggr::__private::Unset {}
            }
        });
    let setters = params.iter().enumerate().map(|(i, (name, ty))| {
        let after: Vec<TokenStream> = states
            .iter()
            .enumerate()
            .map(|(j, s)| if j == i { quote!(::daggr::__private::Set) } else { quote!(#s) })
            .collect();
        let others = param_names.iter().filter(|n| **n != name);
        let doc = format!("Wires input `{name}`.");
        let state = &states[i];
        let unwired = &unwired_traits[i];
        // On the parameter's type: a source of another type is "required by this bound",
        // there.
        let into_source = quote_spanned!(Span::call_site().located_at(ty.span())=> ::daggr::__private::IntoSource<#ty>);
        quote! {
            #[doc = #doc]
            #[allow(private_bounds)]
            pub fn #name(self, source: impl #into_source) -> #inputs_ty<#(#after),*>
            where
                #state: #unwired,
            {
                #inputs_ty {
                    #name: ::core::option::Option::Some(::daggr::__private::IntoSource::into_source(source)),
                    #(#others: self.#others,)*
                    __state: ::core::marker::PhantomData,
                }
            }
        }
    });
    let map_builder = map_inputs_builder(&MapBuilder {
        vis,
        node_ty: &node_ty,
        node_name: &node_name,
        params: &params,
        states: &states,
        wired_traits: &map_wired_traits,
        unwired_traits: &map_unwired_traits,
        taken: &taken,
    });
    let doc_node = format!("The daggr node for [`{fn_name_str}`] (generated by `#[fn_node]`).");
    let doc_inputs =
        format!("Wires the inputs of [`{node_ty}`]: one method per input port, then `finish()`.");
    let doc_outputs = format!("The output ports of [`{node_ty}`].");
    let field_docs = out_names.iter().map(|n| format!("Output port `{n}`."));
    let input_field_docs = param_names
        .iter()
        .map(|n| format!("Input `{n}`, once wired."));

    // With `fields`, the handles are the struct's own (from its `Outputs` derive).
    // (A type alias is not checked where it is declared, only where it is used.)
    let (outputs_item, out_specs_expr, handles_expr) = match &returns.fields {
        Some(ty) => (
            quote! {
                #[doc = #doc_outputs]
                #vis type #outputs_ty = <#ty as ::daggr::__private::SplitOutputs>::Handles;
            },
            {
                let fields = field_ports_of(ty);
                quote!(#fields.port_specs())
            },
            quote!(<#ty as ::daggr::__private::SplitOutputs>::handles(node)),
        ),
        None => (
            quote! {
            #[doc = #doc_outputs]
            #[derive(Clone, Copy, Debug)]
            #vis struct #outputs_ty {
                #(#[doc = #field_docs] pub #out_names: ::daggr::__private::Output<#out_tys>,)*
            }
                },
            quote!(::std::vec![#(#out_specs),*]),
            quote!(#outputs_ty { #(#out_names: ::daggr::__private::Output::new(node, #out_index),)* }),
        ),
    };
    Some(quote! {
        #[doc = #doc_node]
        #vis struct #node_ty(::daggr::__private::NodeCore);

        #map_builder

        #[doc = #doc_inputs]
        #vis struct #inputs_ty<#(#states = ::daggr::__private::Unset),*> {
            #(#[doc = #input_field_docs] #param_names: ::core::option::Option<::daggr::__private::Source<#arg_tys>>,)*
            __state: ::core::marker::PhantomData<fn() -> (#(#states,)*)>,
        }

        #outputs_item

        const _: () = {
            fn __daggr_port_checks() { #(#port_checks)* }
            #(#trait_defs)*

            impl<#(#states),*> #inputs_ty<#(#states),*> {
                #(#setters)*

                /// The wired sources, in port order (compiles only once every input is wired).
                // The bounds sit on the method, not the impl, so a missing input reports the
                // trait's own message ("missing required input …") rather than "method not found".
                #[allow(private_bounds)]
                pub fn finish(self) -> (#(::daggr::__private::Source<#arg_tys>,)*)
                where
                    #(#states: #wired_traits,)*
                {
                    (#(self.#param_names.expect("the type state guarantees this input is wired"),)*)
                }
            }

            #sole

            impl #node_ty {
                /// A hash of the function's tokens, part of the cache key.
                pub const CODE_HASH: &'static str = #hash;

                /// The node, named after the function (or the `name` option).
                pub fn new() -> Self {
                    Self::named(#node_name)
                }

                /// The node with its own name in the pipeline.
                pub fn named(name: &str) -> Self {
                    let __spec = ::daggr::__private::NodeSpec {
                        name: ::std::string::String::from(name),
                        kind: "fn",
                        identity: ::std::string::String::from(::core::concat!(::core::module_path!(), "::", #fn_name_str)),
                        code_fingerprint: ::std::string::String::from(Self::CODE_HASH),
                        params: ::core::default::Default::default(),
                        inputs: ::std::vec![#(#in_specs),*],
                        outputs: #out_specs_expr,
                        config: ::daggr::__private::NodeConfig {
                            cache: #cache,
                            group: #group,
                            timeout: #timeout,
                            retry: #retry,
                            version: #version,
                        },
                    };
                    let __node: ::daggr::__private::Arc<str> = ::daggr::__private::Arc::from(name);
                    #[allow(unused_mut)]
                    let mut __core = #core;
                    #inline
                    #node_ty(__core)
                }

                /// An input builder with nothing wired yet.
                pub fn inputs() -> #inputs_ty {
                    #inputs_ty {
                        #(#param_names: ::core::option::Option::None,)*
                        __state: ::core::marker::PhantomData,
                    }
                }
            }

            impl ::core::default::Default for #node_ty {
                fn default() -> Self {
                    Self::new()
                }
            }

            impl ::daggr::__private::Node for #node_ty {
                fn spec(&self) -> &::daggr::__private::NodeSpec {
                    ::daggr::__private::Node::spec(&self.0)
                }
                fn run(
                    &self,
                    ctx: ::daggr::__private::NodeContext,
                    inputs: ::daggr::__private::Inputs,
                ) -> ::daggr::__private::BoxFuture<'static, ::core::result::Result<::std::vec::Vec<::daggr::__private::Value>, ::daggr::__private::BoxError>> {
                    ::daggr::__private::Node::run(&self.0, ctx, inputs)
                }
            }

            impl ::daggr::__private::Configure for #node_ty {
                fn config_mut(&mut self) -> &mut ::daggr::__private::NodeConfig {
                    ::daggr::__private::Configure::config_mut(&mut self.0)
                }
            }

            impl ::daggr::__private::TypedNode for #node_ty
            where
                #(#typed_node_bounds,)*
            {
                type Args = (#(#arg_tys,)*);
                type Handles = #outputs_ty;
                fn handles(node: usize) -> #outputs_ty {
                    #handles_expr
                }
            }
        };
    })
}

/// What the map-input builder of a node is generated from.
struct MapBuilder<'a> {
    vis: &'a syn::Visibility,
    node_ty: &'a Ident,
    node_name: &'a str,
    params: &'a [(Ident, Type)],
    /// The type-state parameters, one per input (`P0`, `P1`, …).
    states: &'a [Ident],
    /// The names of its type-state traits (see the input builder's).
    wired_traits: &'a [Ident],
    unwired_traits: &'a [Ident],
    /// The identifiers of the function's signature, which generated names must not shadow.
    taken: &'a std::collections::HashSet<String>,
}

/// `…NodeMapInputs`, the input builder of the node used as a map's item (`pipeline!`'s
/// `name = f(port: each(list), …)`): one method per input port taking `each(list)` of a
/// `Vec<T>`, or an `Output<T>` or constant given to every item, then `finish()`, which only
/// compiles once every input is wired and returns the sources for `Graph::add_map`. The
/// same type state as the input builder, but each state holds its source (`Wired<S>`).
/// Nothing for a function without inputs: a map splits at least one.
fn map_inputs_builder(b: &MapBuilder) -> TokenStream {
    if b.params.is_empty() {
        return TokenStream::new();
    }
    let MapBuilder {
        vis,
        node_ty,
        node_name,
        params,
        states,
        wired_traits,
        unwired_traits,
        taken,
    } = *b;
    let map_inputs_ty = format_ident!("{}MapInputs", node_ty);
    // The setters' source type parameter, under a name the signature does not use.
    let mut source = "S".to_string();
    let mut n = 1;
    while taken.contains(&source) {
        n += 1;
        source = format!("S{n}");
    }
    let source = Ident::new(&source, Span::call_site());
    let names: Vec<&Ident> = params.iter().map(|(n, _)| n).collect();
    let tys: Vec<&Type> = params.iter().map(|(_, t)| t).collect();
    let trait_defs = names
        .iter()
        .zip(wired_traits.iter().zip(unwired_traits))
        .map(|(n, (wired, unwired))| {
            let message = format!("missing required input `{n}` of node `{node_name}`");
            let label = format!("`{n}` is not wired");
            let note = format!(
                "wire it: `{n}: each(list)` to split a list, or an output, a constant or a pipeline input given to every item"
            );
            let again = format!("input `{n}` of node `{node_name}` is already wired");
            let again_label = format!("`{n}` was wired before this call");
            let again_note =
                format!("an input takes exactly one source: keep one `.{n}(..)` call");
            let span = Span::call_site().located_at(n.span());
            quote_spanned! {span=>
                #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
                trait #wired {}
                impl<S> #wired for ::daggr::__private::Wired<S> {}
                #[diagnostic::on_unimplemented(message = #again, label = #again_label, note = #again_note)]
                trait #unwired {}
                impl #unwired for ::daggr::__private::Unset {}
            }
        });
    let setters = params.iter().enumerate().map(|(i, (name, ty))| {
        // On the parameter's type: a source of another type is "required by this bound",
        // there.
        let map_arg = quote_spanned!(Span::call_site().located_at(ty.span())=> ::daggr::__private::MapArg<#ty>);
        let after = states.iter().enumerate().map(|(j, s)| {
            if j == i {
                quote!(::daggr::__private::Wired<<#source as ::daggr::__private::MapArgSource<#ty>>::Source>)
            } else {
                quote!(#s)
            }
        });
        let others = names.iter().filter(|n| **n != name);
        let doc = format!(
            "Wires input `{name}`: `daggr::each(list)` of a `Vec` to call the node once per item, or an output or constant given whole to every item."
        );
        let (state, unwired) = (&states[i], &unwired_traits[i]);
        quote! {
            #[doc = #doc]
            #[allow(private_bounds)]
            pub fn #name<#source: #map_arg>(self, source: #source) -> #map_inputs_ty<#(#after),*>
            where
                #state: #unwired,
            {
                #map_inputs_ty {
                    #name: ::daggr::__private::Wired(::daggr::__private::MapArg::map_arg(source)),
                    #(#others: self.#others,)*
                }
            }
        }
    });
    let doc = format!(
        "Wires the inputs of [`{node_ty}`] as the item node of a map (`pipeline!`'s `each(..)`): one method per input port, then `finish()`."
    );
    let field_docs = names.iter().map(|n| format!("Input `{n}`, once wired."));
    quote! {
        #[doc = #doc]
        #vis struct #map_inputs_ty<#(#states = ::daggr::__private::Unset),*> {
            #(#[doc = #field_docs] #names: #states,)*
        }

        const _: () = {
            #(#trait_defs)*

            impl<#(#states),*> #map_inputs_ty<#(#states),*> {
                #(#setters)*

                /// The wired sources, in port order (compiles only once every input is wired).
                // As in the input builder, the bounds sit on the method; the return type
                // holds for any state (`TakeSource`), so a missing input is the `…Wired`
                // trait's error alone.
                #[allow(private_bounds)]
                pub fn finish(self) -> (#(<#states as ::daggr::__private::TakeSource<#tys>>::Source,)*)
                where
                    #(#states: ::daggr::__private::TakeSource<#tys> + #wired_traits,)*
                {
                    (#(::daggr::__private::TakeSource::<#tys>::take_source(self.#names),)*)
                }
            }

            impl #node_ty {
                /// A map-input builder with nothing wired yet: for this node applied to every
                /// item of a list.
                pub fn map_inputs() -> #map_inputs_ty {
                    #map_inputs_ty {
                        #(#names: ::daggr::__private::Unset,)*
                    }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(attr: &str, item: &str) -> String {
        expand(attr.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn names() {
        assert_eq!(
            pascal_case("remove_bg"),
            "RemoveBgNode".trim_end_matches("Node")
        );
        assert_eq!(
            node_type_name(&format_ident!("caption")).to_string(),
            "CaptionNode"
        );
    }

    #[test]
    fn expansion_keeps_the_function_and_uses_private_paths_only() {
        let out = expand_str(
            "",
            "fn caption(image: u32, style: String) -> String { style }",
        );
        assert!(
            out.starts_with("fn caption (image : u32 , style : String) -> String { style }"),
            "{out}"
        );
        assert!(out.contains("struct CaptionNode"));
        assert!(out.contains("struct CaptionNodeInputs"));
        assert!(out.contains("pub fn image"));
        assert!(out.contains("pub fn style"));
        assert!(!out.contains("compile_error"));
        for path in out.split(":: daggr ::").skip(1) {
            let first = path.split_whitespace().next().unwrap();
            assert_eq!(
                first, "__private",
                "expansions use only ::daggr::__private paths"
            );
        }
    }

    #[test]
    fn editing_the_body_changes_the_code_hash() {
        let a: ItemFn = syn::parse_str("fn f(x: u32) -> u32 { x + 1 }").unwrap();
        let b: ItemFn = syn::parse_str("fn f(x: u32) -> u32 { x + 2 }").unwrap();
        let a2: ItemFn = syn::parse_str("fn f(x: u32) -> u32 {\n    x + 1\n}").unwrap();
        assert_ne!(code_hash(&a), code_hash(&b));
        assert_eq!(code_hash(&a), code_hash(&a2), "formatting does not matter");
    }

    #[test]
    fn errors_keep_the_item_and_explain() {
        let out = expand_str("retires = 3", "fn f(x: u32) -> u32 { x }");
        assert!(out.contains("fn f"), "the item is re-emitted");
        assert!(out.contains("did you mean `retries`"), "{out}");
        assert!(
            out.contains("struct FNode"),
            "a bad option still generates the node, with defaults: {out}"
        );
        let out = expand_str("cache = \"sometimes\"", "fn g<T>(x: T) -> T { x }");
        assert!(
            out.contains("unknown cache policy") && out.contains("cannot be generic"),
            "option and signature errors are both reported: {out}"
        );
        assert!(!out.contains("struct GNode"), "{out}");
        let out = expand_str("", "fn g<T>(x: T) -> T { x }");
        assert!(out.contains("cannot be generic"), "{out}");
        let out = expand_str("", "struct S;");
        assert!(out.contains("goes on a function, not on a struct"), "{out}");
        let out = expand_str("", "fn m(&self) -> u32 { 1 }");
        assert!(out.contains("cannot take `self`"), "{out}");
        let out = expand_str("outputs(a, b)", "fn t() -> u32 { 1 }");
        assert!(out.contains("must return a tuple of 2 values"), "{out}");
    }

    #[test]
    fn signatures_that_cannot_cross_ports_get_one_error_each() {
        let out = expand_str("", "fn f(words: Vec<&str>) -> usize { 0 }");
        assert!(out.contains("use `String` here, not `&str`"), "{out}");
        let out = expand_str("", "fn f<'a>(t: Cow<'a, str>) -> usize { 0 }");
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.contains("cannot borrow for `'a`"), "{out}");
        let out = expand_str("", "fn f(x: impl Into<String>) -> impl Display { 0 }");
        assert!(out.contains("input `x` cannot be `impl Trait`"), "{out}");
        assert!(out.contains("the output cannot be `impl Trait`"), "{out}");
        let out = expand_str("", "fn f(finish: u32) -> u32 { 0 }");
        assert!(
            out.contains("input `finish` has the name of the `finish()` method"),
            "{out}"
        );
        let out = expand_str("cache = never, retry = 2", "fn f(x: u32) -> u32 { x }");
        assert!(out.contains(r#"`cache = \"never\"`"#), "{out}");
        assert!(out.contains("did you mean `retries`"), "{out}");
    }

    #[test]
    fn results_are_checked_by_type_and_crate_is_honoured() {
        // Behind a name the macro cannot read, the compiler decides: the port carries
        // `NodeReturn::Value` and the value is split by `into_result`.
        let out = expand_str("", "fn f(x: u32) -> Fallible<u32> { Ok(x) }");
        assert!(
            out.contains("Output < < Fallible < u32 > as :: daggr :: __private :: NodeReturn"),
            "{out}"
        );
        assert!(
            out.contains("ReturnProbe :: < Fallible < u32 > > :: IS_RESULT"),
            "{out}"
        );
        assert!(out.contains(":: into_result (__value)"), "{out}");
        assert!(out.contains("__daggr_error_kind"), "{out}");
        let out = expand_str("", "fn f(x: u32) -> io::Result<u32> { Ok(x) }");
        assert!(
            !out.contains("NodeReturn"),
            "spelled out, read as written: {out}"
        );
        assert!(
            out.contains("pub output : :: daggr :: __private :: Output < u32 >"),
            "{out}"
        );
        assert!(out.contains("__daggr_error_kind"), "{out}");
        for plain in ["u32", "Vec<String>", "(u32, String)", "std::string::String"] {
            let out = expand_str("", &format!("fn f(x: u32) -> {plain} {{ todo!() }}"));
            assert!(
                !out.contains("NodeReturn"),
                "{plain} is never a `Result`: {out}"
            );
            assert!(!out.contains("__daggr_error_kind"), "{plain}: {out}");
        }
        let out = expand_str("outputs(a, b)", "fn f(x: u32) -> Pair { todo!() }");
        assert!(
            out.contains("the macro cannot see through a type alias"),
            "{out}"
        );
        let item: ItemFn =
            syn::parse_str("#[fn_node] fn f(x: u32) -> Fallible<u32> { Ok(x) }").unwrap();
        assert_eq!(
            signature(&item).unwrap().outputs,
            vec![("output".to_string(), "Fallible<u32>".to_string())],
            "the static graph shows the type as written"
        );
        let out = expand_str("crate = dag", "fn f(x: u32) -> u32 { ::daggr::keep(x) }");
        assert!(out.contains("dag :: __private :: NodeCore"), "{out}");
        assert_eq!(
            out.matches(":: daggr ::").count(),
            1,
            "only the user's own path is left: {out}"
        );
    }

    #[test]
    fn a_map_input_builder_is_generated_beside_the_input_builder() {
        let out = expand_str("", "fn shout(word: String, S: u32) -> String { word }");
        assert!(
            out.contains("struct ShoutNodeMapInputs < P0 = :: daggr :: __private :: Unset , P1 = :: daggr :: __private :: Unset >"),
            "{out}"
        );
        assert!(
            out.contains("pub fn word < S2 : :: daggr :: __private :: MapArg < String > > (self , source : S2)"),
            "the source parameter does not shadow the signature's `S`: {out}"
        );
        assert!(
            out.contains("ShoutNodeMapInputs < :: daggr :: __private :: Wired << S2 as :: daggr :: __private :: MapArgSource < String >> :: Source > , P1 >"),
            "{out}"
        );
        assert!(
            out.contains("pub fn map_inputs () -> ShoutNodeMapInputs"),
            "{out}"
        );
        assert!(
            out.contains("impl :: daggr :: __private :: OneOutputPort for ShoutNodeOutputs"),
            "a node of one output can be mapped and chosen: {out}"
        );
        assert_eq!(
            out.matches("missing required input `word` of node `shout`")
                .count(),
            2,
            "the map builder says what the input builder says: {out}"
        );
        let out = expand_str("", "fn now() -> u64 { 0 }");
        assert!(!out.contains("MapInputs"), "nothing to map over: {out}");
        let out = expand_str("outputs(a, b)", "fn two(x: u32) -> (u32, u32) { (x, x) }");
        assert!(!out.contains("OneOutputPort"), "two outputs: {out}");
    }

    #[test]
    fn result_and_tuple_returns() {
        let out = expand_str(
            "outputs(mask, image)",
            "fn seg(x: u32) -> Result<(u32, String), std::io::Error> { Ok((x, x.to_string())) }",
        );
        assert!(out.contains("__daggr_error_kind"), "{out}");
        assert!(
            out.contains("pub mask : :: daggr :: __private :: Output < u32 >"),
            "{out}"
        );
        assert!(
            out.contains("pub image : :: daggr :: __private :: Output < String >"),
            "{out}"
        );
    }
}
