//! Hugging Face credentials: where the token comes from and which hosts may see it.
//!
//! The token is found as `huggingface_hub` finds it ([`HfToken::from_env`]): `HF_TOKEN`,
//! else `HUGGING_FACE_HUB_TOKEN`, else the file the Hugging Face CLI writes
//! (`$HF_TOKEN_PATH`, else `$HF_HOME/token`, with `HF_HOME` defaulting to
//! `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`); a truthy
//! `HF_HUB_DISABLE_IMPLICIT_TOKEN` turns the file off. It is sent only to Hugging Face
//! hosts, never logged, and never written into caches or sheets: it is not part of any
//! cache key (only whether one is present may be).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::exec::is_truthy;

/// A secret token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HfToken(String);

impl HfToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        HfToken(token.into())
    }

    /// The token, for an `Authorization` header. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token from the environment or the CLI's token file, if any, looked up as
    /// `huggingface_hub` does:
    ///
    /// 1. `HF_TOKEN`, then `HUGGING_FACE_HUB_TOKEN` (an empty one counts as unset);
    /// 2. unless `HF_HUB_DISABLE_IMPLICIT_TOKEN` is `1`, `ON`, `YES` or `TRUE` (any case),
    ///    the file at `HF_TOKEN_PATH`, else `$HF_HOME/token`, where `HF_HOME` defaults to
    ///    `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`.
    ///
    /// Line breaks and surrounding whitespace are removed; what is left empty is no token.
    pub fn from_env() -> Option<HfToken> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// [`HfToken::from_env`] with the environment given as a function (for tests, which
    /// must not set the process's variables while other tests read them).
    fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Option<HfToken> {
        let text = |name: &str| var(name).map(|v| v.to_string_lossy().into_owned());
        for name in [TOKEN_ENV, OLD_TOKEN_ENV] {
            if let Some(token) = text(name).and_then(|t| clean(&t)) {
                return Some(HfToken(token));
            }
        }
        if text(DISABLE_IMPLICIT_ENV).is_some_and(|v| is_truthy(&v)) {
            return None;
        }
        let file = token_file(&var)?;
        clean(&std::fs::read_to_string(file).ok()?).map(HfToken)
    }
}

/// The token's environment variable.
const TOKEN_ENV: &str = "HF_TOKEN";
/// Its older name, still read by `huggingface_hub`.
const OLD_TOKEN_ENV: &str = "HUGGING_FACE_HUB_TOKEN";
/// Turns the token file off (`huggingface_hub`'s "implicit" token).
const DISABLE_IMPLICIT_ENV: &str = "HF_HUB_DISABLE_IMPLICIT_TOKEN";

/// A token as `huggingface_hub` cleans it: without line breaks or surrounding whitespace,
/// `None` if nothing is left.
fn clean(token: &str) -> Option<String> {
    let token = token.replace(['\r', '\n'], "");
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Where the CLI keeps the token: `HF_TOKEN_PATH`, else `$HF_HOME/token`, with the
/// defaults of `huggingface_hub` (`$XDG_CACHE_HOME/huggingface`, `~/.cache/huggingface`).
/// A leading `~` is the home directory, as Python's `expanduser` reads it.
fn token_file(var: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let home = || {
        var("HOME")
            .or_else(|| var("USERPROFILE"))
            .map(PathBuf::from)
    };
    let expand = |path: OsString| -> Option<PathBuf> {
        let text = path.to_string_lossy();
        match text.strip_prefix('~') {
            Some("") => home(),
            Some(rest) if rest.starts_with(['/', '\\']) => Some(home()?.join(&rest[1..])),
            _ => Some(PathBuf::from(path)),
        }
    };
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(path) = non_empty("HF_TOKEN_PATH") {
        return expand(path);
    }
    let hf_home = match non_empty("HF_HOME") {
        Some(h) => expand(h)?,
        None => match non_empty("XDG_CACHE_HOME") {
            Some(cache) => expand(cache)?.join("huggingface"),
            None => home()?.join(".cache").join("huggingface"),
        },
    };
    Some(hf_home.join("token"))
}

impl fmt::Debug for HfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HfToken(<redacted>)")
    }
}

impl fmt::Display for HfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

pub mod hub;

// Shared with `cargo daggr codegen gradio`, so both send the token to the same hosts.
pub use hub::is_hf_host;

#[cfg(test)]
mod tests {
    use super::*;

    /// The token found with exactly these variables set.
    fn lookup(vars: &[(&str, &str)]) -> Option<String> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        HfToken::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .map(|t| t.expose().to_string())
    }

    #[test]
    fn variables_come_first_in_huggingface_hub_order() {
        assert_eq!(lookup(&[("HF_TOKEN", " hf_a\n")]).as_deref(), Some("hf_a"));
        assert_eq!(
            lookup(&[("HF_TOKEN", "hf_a"), ("HUGGING_FACE_HUB_TOKEN", "hf_b")]).as_deref(),
            Some("hf_a")
        );
        assert_eq!(
            lookup(&[("HF_TOKEN", " \r\n"), ("HUGGING_FACE_HUB_TOKEN", "hf_b")]).as_deref(),
            Some("hf_b"),
            "an empty HF_TOKEN counts as unset"
        );
        // The variables are explicit: the switch turns off only the file.
        assert_eq!(
            lookup(&[("HF_TOKEN", "hf_a"), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]).as_deref(),
            Some("hf_a")
        );
        assert_eq!(lookup(&[]), None, "no variable, no home: no file to read");
    }

    #[test]
    fn the_token_file_is_found_where_huggingface_hub_looks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &std::path::Path, token: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, token).unwrap();
        };
        write(&root.join("home/.cache/huggingface/token"), "hf_home\n");
        write(&root.join("xdg/huggingface/token"), "hf_xdg");
        write(&root.join("hf_home/token"), "hf_hf_home");
        write(&root.join("home/elsewhere/token"), " hf_path ");
        let at = |p: &str| root.join(p).to_string_lossy().into_owned();
        let (home, xdg, hf_home) = (at("home"), at("xdg"), at("hf_home"));

        assert_eq!(lookup(&[("HOME", &home)]).as_deref(), Some("hf_home"));
        assert_eq!(
            lookup(&[("HOME", &home), ("XDG_CACHE_HOME", &xdg)]).as_deref(),
            Some("hf_xdg")
        );
        assert_eq!(
            lookup(&[
                ("HOME", &home),
                ("XDG_CACHE_HOME", &xdg),
                ("HF_HOME", &hf_home)
            ])
            .as_deref(),
            Some("hf_hf_home")
        );
        let path_vars = [
            ("HOME", home.as_str()),
            ("HF_HOME", hf_home.as_str()),
            ("HF_TOKEN_PATH", "~/elsewhere/token"),
        ];
        assert_eq!(lookup(&path_vars).as_deref(), Some("hf_path"), "~ is HOME");
        // Variables win over the file.
        let mut with_var = path_vars.to_vec();
        with_var.push(("HUGGING_FACE_HUB_TOKEN", "hf_var"));
        assert_eq!(lookup(&with_var).as_deref(), Some("hf_var"));
        // A missing or empty file is no token.
        assert_eq!(lookup(&[("HF_TOKEN_PATH", &at("nowhere/token"))]), None);
        write(&root.join("empty/token"), "\n");
        assert_eq!(lookup(&[("HF_TOKEN_PATH", &at("empty/token"))]), None);
    }

    #[test]
    fn the_implicit_token_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "hf_file").unwrap();
        let path = file.to_string_lossy().into_owned();
        for on in ["1", "ON", "yes", "True", " true "] {
            let vars = [
                ("HF_TOKEN_PATH", path.as_str()),
                ("HF_HUB_DISABLE_IMPLICIT_TOKEN", on),
            ];
            assert_eq!(lookup(&vars), None, "{on:?}");
        }
        for off in ["0", "false", "no", ""] {
            let vars = [
                ("HF_TOKEN_PATH", path.as_str()),
                ("HF_HUB_DISABLE_IMPLICIT_TOKEN", off),
            ];
            assert_eq!(lookup(&vars).as_deref(), Some("hf_file"), "{off:?}");
        }
    }

    #[test]
    fn tokens_never_print() {
        let t = HfToken::new("hf_secret");
        assert_eq!(format!("{t} {t:?}"), "<redacted> HfToken(<redacted>)");
    }
}
