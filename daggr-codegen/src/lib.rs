//! The logic behind daggr's macros and its `cargo daggr` tool, as an ordinary library:
//! the graph IR and its export formats, the Gradio bindings generator and what the
//! runtime and the tool share about Hugging Face and Gradio apps (always), and with the
//! `macros` feature the parsers, validation and code generation that `daggr-macros`
//! calls.

#![warn(missing_docs)]

pub mod gradio;
pub mod gradio_info;
pub mod ir;

#[cfg(feature = "macros")]
pub mod fn_node;
#[cfg(feature = "macros")]
pub mod options;
#[cfg(feature = "macros")]
pub mod outputs;
#[cfg(feature = "macros")]
pub mod pipeline;
#[cfg(feature = "macros")]
pub mod static_graph;

/// The closest candidate to `name`, when one is close enough to be a likely typo. The
/// "did you mean" of the runtime, the macros and `cargo daggr` alike: one rule, so the
/// three suggest the same names.
///
/// Its cost is bounded whatever `name` is (it may come from a request): names longer than
/// [`SUGGEST_MAX_CHARS`] get no suggestion, and a candidate whose length alone puts it
/// beyond the allowed distance (the distance is at least the length difference) is skipped
/// before the quadratic edit distance is computed.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if name.len() > SUGGEST_MAX_CHARS * 4 {
        return None; // more bytes than any name of SUGGEST_MAX_CHARS characters
    }
    let len = name.chars().count();
    if len > SUGGEST_MAX_CHARS {
        return None;
    }
    candidates
        .into_iter()
        .filter_map(|c| {
            let allowed = 2.max(c.len() / 3);
            let c_len = c.chars().count();
            if len.abs_diff(c_len) > allowed {
                return None;
            }
            let d = strsim::levenshtein(name, c);
            (d <= allowed).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// The longest name (in characters) [`suggest`] compares: a typo of an identifier is never
/// longer, and the edit distance costs the product of the two lengths.
pub const SUGGEST_MAX_CHARS: usize = 256;

#[cfg(test)]
mod suggest_tests {
    use super::*;

    #[test]
    fn suggests_close_names_only_and_cheaply() {
        assert_eq!(
            suggest("cuont", ["count", "upper"]).as_deref(),
            Some("count")
        );
        assert_eq!(suggest("x", ["count"]), None);
        assert_eq!(
            suggest("génrate", ["generate"]).as_deref(),
            Some("generate")
        );
        // A 10 MB name against long candidates: answered at once (this took 39 s).
        let huge = "n".repeat(10 * 1024 * 1024);
        let long = "n".repeat(200);
        assert_eq!(suggest(&huge, [long.as_str(), "count"]), None);
        let at_limit = "n".repeat(SUGGEST_MAX_CHARS);
        assert_eq!(
            suggest(&at_limit, [&at_limit[1..]]).as_deref(),
            Some(&at_limit[1..])
        );
    }
}
