//! daggr's procedural macros: a thin shim over `daggr-codegen`, where the parsing,
//! validation and code generation live as an ordinary, unit-tested library.
//! Use them through the `daggr` crate (`daggr::fn_node`, `daggr::pipeline!`).

use proc_macro::TokenStream;

/// Turns a function into a typed daggr node. See `daggr::fn_node`.
#[proc_macro_attribute]
pub fn fn_node(attr: TokenStream, item: TokenStream) -> TokenStream {
    daggr_codegen::fn_node::expand(attr.into(), item.into()).into()
}

/// Declares a pipeline type. See `daggr::pipeline!`.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    daggr_codegen::pipeline::expand(input.into()).into()
}

/// Makes a struct's named fields a node's output ports. See `daggr::Outputs`.
#[proc_macro_derive(Outputs)]
pub fn outputs(input: TokenStream) -> TokenStream {
    daggr_codegen::outputs::expand(input.into()).into()
}
