//! Where a sheet database is: reading a sheets URL ([`SheetStore::open_url`]) into the
//! backend that keeps it, and naming it in messages without its password. The backends
//! name their database this way too, so this module depends on none of them.

use std::path::PathBuf;

#[cfg(doc)]
use super::SheetStore;
use crate::Error;

/// Where [`SheetStore::open_url`] keeps the sheets.
pub(super) enum Target {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (with its password: it is what connects).
    Postgres(String),
}

/// Reads a sheets URL: `postgres://…` / `postgresql://…`, `sqlite://PATH` (`sqlite:PATH`),
/// or a plain path to an SQLite file.
pub(super) fn target(url: &str) -> Result<Target, Error> {
    let url = url.trim();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        return Ok(Target::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_string()));
    }
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(Error::Io {
                context: format!("sheet database {}", redact_url(url)),
                source: std::io::Error::other(format!(
                    "unknown scheme `{scheme}`: expected postgres://…, sqlite://PATH or the path of an SQLite file"
                )),
            })
        }
        _ if url.is_empty() => Err(Error::Io {
            context: "sheet database".into(),
            source: std::io::Error::other("empty URL"),
        }),
        _ => Ok(Target::Sqlite(PathBuf::from(url))),
    }
}

/// A URL without its password (`postgres://user:secret@host/db` → `postgres://user@host/db`),
/// for messages.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            // The query may carry a password too (`?password=…`): not shown.
            let tail = tail.split(['?', '#']).next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => {
            let tail = tail.split(['?', '#']).next().unwrap_or_default();
            format!("{scheme}://{authority}{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn urls_name_their_backend_and_messages_lose_the_password() {
        let sqlite = |url: &str| match target(url) {
            Ok(Target::Sqlite(path)) => path,
            _ => panic!("{url} is not SQLite"),
        };
        assert_eq!(
            sqlite("sqlite:///abs/sheets.db"),
            Path::new("/abs/sheets.db")
        );
        assert_eq!(sqlite("sqlite://rel.db"), Path::new("rel.db"));
        assert_eq!(sqlite("sqlite:rel.db"), Path::new("rel.db"));
        assert_eq!(sqlite(" .daggr/sheets.db "), Path::new(".daggr/sheets.db"));
        for url in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5433/db?sslmode=disable",
        ] {
            assert!(matches!(target(url), Ok(Target::Postgres(_))), "{url}");
        }
        let err = target("mysql://u:secret@h/db").err().unwrap().to_string();
        assert!(
            err.contains("unknown scheme `mysql`") && !err.contains("secret"),
            "{err}"
        );
        assert!(target("  ").is_err());

        assert_eq!(
            redact_url("postgres://me:secret@db.example:5432/sheets?password=x&sslmode=disable"),
            "postgres://me@db.example:5432/sheets"
        );
        assert_eq!(
            redact_url("postgres://db.example/sheets"),
            "postgres://db.example/sheets"
        );
        assert_eq!(redact_url("postgres://me@h"), "postgres://me@h");
    }
}
