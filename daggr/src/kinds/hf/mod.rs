//! Hugging Face credentials: where the token comes from and which hosts may see it.
//!
//! The token is read from `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`), else from the file
//! the Hugging Face CLI writes (`$HF_HOME/token`, default `~/.cache/huggingface/token`).
//! It is sent only to Hugging Face hosts, never logged, and never written into caches or
//! sheets: it is not part of any cache key (only whether one is present may be).

use std::fmt;
use std::path::PathBuf;

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

    /// The token from the environment or the CLI's token file, if any.
    pub fn from_env() -> Option<HfToken> {
        for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
            if let Ok(t) = std::env::var(var) {
                if !t.trim().is_empty() {
                    return Some(HfToken(t.trim().to_string()));
                }
            }
        }
        let file = token_file()?;
        let text = std::fs::read_to_string(file).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| HfToken(text.to_string()))
    }
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

fn token_file() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("HF_TOKEN_PATH") {
        return Some(PathBuf::from(path));
    }
    let home = match std::env::var_os("HF_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME")?)
            .join(".cache")
            .join("huggingface"),
    };
    Some(home.join("token"))
}

pub mod hub;

// Shared with `cargo daggr codegen gradio`, so both send the token to the same hosts.
pub use hub::is_hf_host;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = HfToken::new("hf_secret");
        assert_eq!(format!("{t} {t:?}"), "<redacted> HfToken(<redacted>)");
    }
}
