//! The page, built from `inspector/` by `inspector/build.sh` and committed, embedded here so
//! building the crate needs no Node.

pub const INDEX_HTML: &str = include_str!("../../assets/inspector/index.html");
pub const INSPECTOR_JS: &str = include_str!("../../assets/inspector/inspector.js");
pub const INSPECTOR_CSS: &str = include_str!("../../assets/inspector/inspector.css");
pub const FAVICON_SVG: &str = include_str!("../../assets/inspector/favicon.svg");
