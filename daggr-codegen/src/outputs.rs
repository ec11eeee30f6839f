//! `#[derive(Outputs)]`: a struct whose named fields become a node's output ports, for
//! `#[fn_node(fields)]` functions that return it. For `struct Cutout { mask: Image, image:
//! Image }` it generates `CutoutPorts { pub mask: Output<Image>, pub image: Output<Image> }`
//! and the `SplitOutputs` impl that turns a value into one port value per field.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

/// Expands the derive; errors become `compile_error!` on the user's tokens.
pub fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) if !named.named.is_empty() => {
                named.named.iter().collect::<Vec<_>>()
            }
            other => {
                return syn::Error::new(
                    other.span(),
                    "`Outputs` needs a struct with named fields: each field is an output port",
                )
                .to_compile_error()
            }
        },
        _ => {
            return syn::Error::new(
                input.ident.span(),
                "`Outputs` goes on a struct with named fields",
            )
            .to_compile_error();
        }
    };
    if !input.generics.params.is_empty() {
        return syn::Error::new(
            input.generics.span(),
            "`Outputs` structs cannot be generic: every port needs one concrete type",
        )
        .to_compile_error();
    }
    let name = &input.ident;
    let vis = &input.vis;
    let ports = format_ident!("{}Ports", name);
    let idents: Vec<_> = fields
        .iter()
        .map(|f| f.ident.clone().expect("named fields"))
        .collect();
    let strs: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let tys: Vec<_> = fields.iter().map(|f| &f.ty).collect();
    let index = 0..fields.len();
    let checks = tys
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> ::daggr::__private::assert_port_value::<#ty>();));
    let doc =
        format!("The output ports of a node returning [`{name}`] (from `#[derive(Outputs)]`).");
    let field_docs = strs.iter().map(|s| format!("Output port `{s}`."));
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ports {
            #(#[doc = #field_docs] pub #idents: ::daggr::__private::Output<#tys>,)*
        }

        const _: () = {
            fn __daggr_port_checks() { #(#checks)* }

            impl ::daggr::__private::SplitOutputs for #name {
                type Handles = #ports;
                fn port_specs() -> ::std::vec::Vec<::daggr::__private::PortSpec> {
                    ::std::vec![#(::daggr::__private::PortSpec::new::<#tys>(#strs)),*]
                }
                fn split(self, node: &str) -> ::core::result::Result<::std::vec::Vec<::daggr::__private::Value>, ::daggr::__private::BoxError> {
                    ::core::result::Result::Ok(::std::vec![#(::daggr::__private::encode_port(node, #strs, self.#idents)?),*])
                }
                fn handles(node: usize) -> #ports {
                    #ports { #(#idents: ::daggr::__private::Output::new(node, #index),)* }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_struct_and_split_impl() {
        let out = super::expand(
            "pub struct Cutout { mask: Image, image: Image }"
                .parse()
                .unwrap(),
        )
        .to_string();
        assert!(out.contains("pub struct CutoutPorts"), "{out}");
        assert!(
            out.contains("pub mask : :: daggr :: __private :: Output < Image >"),
            "{out}"
        );
        assert!(
            out.contains("encode_port (node , \"image\" , self . image)"),
            "{out}"
        );
        let err = super::expand("struct T(u32);".parse().unwrap()).to_string();
        assert!(err.contains("named fields"), "{err}");
    }
}
