//! A pipeline's graph read from its sources, without building or running anything: the
//! logic of `cargo daggr graph --static`. The sources are parsed with syn; every
//! `#[fn_node]` function gives its ports' types ([`crate::fn_node::signature`]) and every
//! `pipeline! { … }` invocation a pipeline ([`crate::pipeline::PipelineDef`]), whose graph
//! is [`crate::pipeline::PipelineDef::static_ir`]. Graphs assembled at run time (the
//! `Graph` API) are not seen: that takes building the target.
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
//!             }
//!         }
//!         "#,
//!     )
//!     .unwrap();
//! let ir = sources.graph(None).unwrap();
//! assert_eq!(ir.name, "Loud");
//! assert_eq!(ir.edges[0].ty, "String");
//! ```

use std::collections::HashMap;
use std::path::Path;

use syn::visit::Visit;

use crate::fn_node::{signature, FnSignature};
use crate::ir::GraphIr;
use crate::pipeline::PipelineDef;

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
    #[error("parsing {source_name}: {message}")]
    Parse {
        /// The source's name (its path).
        source_name: String,
        /// syn's error.
        message: String,
    },
    /// No `pipeline!` was found in the sources.
    #[error("no `pipeline!` found in {sources}{}", why(.errors))]
    NoPipeline {
        /// The sources read, comma-separated.
        sources: String,
        /// Why the `pipeline!` invocations found, if any, could not be read.
        errors: Vec<String>,
    },
    /// A named pipeline is not among those found.
    #[error("no pipeline named `{name}`; found: {found}")]
    UnknownPipeline {
        /// The name asked for.
        name: String,
        /// The names found, comma-separated.
        found: String,
    },
}

fn why(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

/// The `#[fn_node]` signatures and `pipeline!` definitions of a set of sources.
#[derive(Default)]
pub struct StaticSources {
    names: Vec<String>,
    signatures: HashMap<String, FnSignature>,
    pipelines: Vec<PipelineDef>,
    errors: Vec<String>,
}

impl std::fmt::Debug for StaticSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticSources")
            .field("sources", &self.names)
            .field("fn_nodes", &self.signatures.keys().collect::<Vec<_>>())
            .field("pipelines", &self.pipeline_names())
            .finish()
    }
}

impl<'ast> Visit<'ast> for StaticSources {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if let Some(sig) = signature(item) {
            self.signatures.insert(item.sig.ident.to_string(), sig);
        }
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if mac
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "pipeline")
        {
            match syn::parse2::<PipelineDef>(mac.tokens.clone()) {
                Ok(def) => self.pipelines.push(def),
                Err(e) => self.errors.push(e.to_string()),
            }
        }
    }
}

impl StaticSources {
    /// No sources yet.
    pub fn new() -> StaticSources {
        StaticSources::default()
    }

    /// Reads the source `text`, named `name` in errors (its path).
    pub fn add_source(&mut self, name: &str, text: &str) -> Result<(), StaticGraphError> {
        let ast = syn::parse_file(text).map_err(|e| StaticGraphError::Parse {
            source_name: name.to_string(),
            message: e.to_string(),
        })?;
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

    /// The names of the `pipeline!` types found, in the order found.
    pub fn pipeline_names(&self) -> Vec<String> {
        self.pipelines.iter().map(|p| p.name.to_string()).collect()
    }

    /// The graph of the pipeline named `pipeline`, or of the first one found. Port types
    /// come from the `#[fn_node]` functions of all the sources, by function name.
    pub fn graph(&self, pipeline: Option<&str>) -> Result<GraphIr, StaticGraphError> {
        if self.pipelines.is_empty() {
            return Err(StaticGraphError::NoPipeline {
                sources: self.names.join(", "),
                errors: self.errors.clone(),
            });
        }
        let def = match pipeline {
            Some(name) => self
                .pipelines
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| StaticGraphError::UnknownPipeline {
                    name: name.to_string(),
                    found: self.pipeline_names().join(", "),
                })?,
            None => &self.pipelines[0],
        };
        Ok(def.static_ir(&|path| {
            let name = path.segments.last()?.ident.to_string();
            self.signatures.get(&name).cloned()
        }))
    }
}

/// The graph of the pipeline named `pipeline` (or the first one) in the files `files`;
/// see [`StaticSources`].
pub fn graph_of_files(
    files: &[impl AsRef<Path>],
    pipeline: Option<&str>,
) -> Result<GraphIr, StaticGraphError> {
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
        let ir = sources.graph(None).unwrap();
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
        let ir = sources.graph(Some("Counting")).unwrap();
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
                r#"pipeline! { struct Other { inputs { x: u32 = 1 } nodes { } } }"#,
            )
            .unwrap();
        assert_eq!(sources.pipeline_names(), ["Flow", "Other"]);
        assert_eq!(sources.graph(None).unwrap().name, "Flow");
        assert_eq!(sources.graph(Some("Other")).unwrap().name, "Other");
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
        let err = sources.graph(None).unwrap_err().to_string();
        assert!(
            err.starts_with("no `pipeline!` found in main.rs, lib.rs ("),
            "the macro's parse error is said: {err}"
        );

        let err = graph_of_files(&[Path::new("/nonexistent/daggr/main.rs")], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reading /nonexistent/daggr/main.rs: "),
            "{err}"
        );
    }

    #[test]
    fn files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.rs");
        std::fs::write(&file, FLOW).unwrap();
        let ir = graph_of_files(&[&file], None).unwrap();
        assert_eq!(ir.name, "Flow");
    }
}
