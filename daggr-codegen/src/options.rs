//! The one parser for `key = value` attribute options, with errors spanned on the option.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, Token};

// Re-exported for the macros' parsers, which import their helpers from here.
pub use crate::suggest;

/// One option: `key = literal`, `key = path`, `key(a, b)` or a bare flag `key`.
pub enum OptionValue {
    /// `key = literal`
    Lit(Lit),
    /// `key = path`: for `crate = my_daggr`, and an unquoted value (`cache = never`) that
    /// the option then reports with the quoted form.
    Path(syn::Path),
    /// `key(a, b, …)`
    List(Vec<Ident>),
    /// `key`
    Flag,
}

/// A parsed option.
pub struct AttrOption {
    /// The key.
    pub key: Ident,
    /// Its value.
    pub value: OptionValue,
}

/// A comma-separated option list.
pub struct AttrOptions(pub Vec<AttrOption>);

impl Parse for AttrOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `Ident::parse_any` also reads keywords, for `crate = path`.
        let key: Ident = syn::ext::IdentExt::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.peek(Lit) {
                OptionValue::Lit(input.parse()?)
            } else {
                let path = syn::Path::parse_mod_style(input).map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!("expected a value for `{key}`: a string, a number or a path"),
                    )
                })?;
                OptionValue::Path(path)
            }
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            OptionValue::List(names.into_iter().collect())
        } else {
            OptionValue::Flag
        };
        Ok(AttrOption { key, value })
    }
}

impl Parse for AttrOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = Punctuated::<AttrOption, Token![,]>::parse_terminated(input)?;
        Ok(AttrOptions(list.into_iter().collect()))
    }
}

/// `; did you mean `x`?` or nothing.
pub fn did_you_mean(suggestion: Option<String>) -> String {
    suggestion
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Parses a duration such as `500ms`, `30s`, `2m` or `1h` into milliseconds.
pub fn parse_duration_ms(text: &str, span: Span) -> syn::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        syn::Error::new(
            span,
            "expected a duration such as \"500ms\", \"30s\" or \"2m\"",
        )
    })?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" | "" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(syn::Error::new(
                span,
                format!("unknown duration unit `{other}`: use ms, s, m or h"),
            ))
        }
    };
    Ok(number * factor)
}

/// Accumulates errors so one expansion reports all of them (serde's `Ctxt` idea).
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Adds an error at `span`.
    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Adds an error underlining all of `tokens` (first to last token), not only the first.
    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The combined error, if any.
    pub fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = Span::call_site();
        assert_eq!(parse_duration_ms("500ms", s).unwrap(), 500);
        assert_eq!(parse_duration_ms("30s", s).unwrap(), 30_000);
        assert_eq!(parse_duration_ms("2m", s).unwrap(), 120_000);
        assert!(parse_duration_ms("2 fortnights", s).is_err());
    }

    #[test]
    fn options_parse_all_three_shapes() {
        let opts: AttrOptions = syn::parse_str(r#"name = "x", outputs(a, b), inline"#).unwrap();
        assert_eq!(opts.0.len(), 3);
        assert!(matches!(opts.0[1].value, OptionValue::List(ref l) if l.len() == 2));
        assert!(matches!(opts.0[2].value, OptionValue::Flag));
    }
}
