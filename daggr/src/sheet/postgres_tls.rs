//! TLS for sheets on PostgreSQL: the URL's `sslmode` and `sslrootcert`, with libpq's
//! meaning, on rustls (ring) through `tokio-postgres-rustls`.
//!
//! The `postgres` client's URL parser knows `sslmode=disable|prefer|require` only, and no
//! `sslrootcert`. So both are read here and taken out of the URL; the client is told to
//! `require` TLS for `verify-ca` and `verify-full` (it then refuses a server that answers
//! without TLS before sending anything else: no user name or password in clear), and the
//! rustls verifier built here checks what the mode asks:
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `allow`, `prefer` (the default) | if the server offers it | not checked |
//! | `require` | always | not checked, or as `verify-ca` when `sslrootcert` names a file (libpq's rule) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and issued to the URL's host |
//!
//! Trusted CAs: the certificates in the `sslrootcert` file; else (or with
//! `sslrootcert=system`) the platform's store, or Mozilla's roots where the platform has
//! none. libpq reads `~/.postgresql/root.crt` when `sslrootcert` is not given: here the
//! file must be named. As libpq, `sslrootcert=system` makes `verify-full` the default and
//! refuses a weaker mode, and a Unix-socket connection never uses TLS. `allow` (libpq: TLS
//! only if the server insists) is taken as `prefer`, and under `prefer` a failed handshake
//! is an error where libpq would retry in clear: the client makes one attempt per host.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ::postgres::config::{Host, SslMode as ClientSslMode};
use ::postgres::{Client, Config, NoTls};
use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::BoxError;

/// libpq's `sslmode` values (`allow` is read as `prefer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, BoxError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )
                .into())
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    /// `sslrootcert=PATH`: the certificates (PEM) in that file, and no others.
    File(PathBuf),
    /// No `sslrootcert`, or `sslrootcert=system`: the platform's store.
    System,
}

/// The URL's TLS settings, read before the client parses the rest.
#[derive(Debug, PartialEq, Eq)]
struct TlsOptions {
    mode: SslMode,
    roots: Roots,
}

/// Takes `sslmode` and `sslrootcert` out of `url`'s query (the last of each counts, as in
/// the client's parser): the URL left for the client, and the settings.
fn split_url(url: &str) -> Result<(String, TlsOptions), BoxError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || -> Result<String, BoxError> {
            Ok(percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{key}: not UTF-8 once percent-decoded"))?
                .into_owned())
        };
        match key {
            "sslmode" => mode = Some(SslMode::parse(&decoded()?)?),
            "sslrootcert" => root_cert = Some(decoded()?),
            _ => kept.push(pair),
        }
    }
    let roots = match root_cert.as_deref() {
        None | Some("system") => Roots::System,
        Some("") => return Err("sslrootcert: empty (a file's path, or `system`)".into()),
        Some(path) => Roots::File(PathBuf::from(path)),
    };
    let mode = match (mode, root_cert.as_deref()) {
        (None, Some("system")) => SslMode::VerifyFull,
        (Some(mode), Some("system")) if mode != SslMode::VerifyFull => {
            return Err(format!(
                "sslmode={} with sslrootcert=system: the platform's roots need sslmode=verify-full (as in libpq)",
                mode.name()
            )
            .into())
        }
        (mode, _) => mode.unwrap_or(SslMode::Prefer),
    };
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, TlsOptions { mode, roots }))
}

/// How connections are made: without TLS, or with this rustls configuration.
#[derive(Clone)]
pub(super) struct Tls {
    connector: Option<MakeRustlsConnect>,
    /// When the server's certificate is checked: the mode, and the trusted CAs (for
    /// messages).
    checked: Option<(SslMode, Arc<str>)>,
}

impl Tls {
    /// Connects as `config` says, with TLS as the URL asked. A certificate that does not
    /// verify is an error naming the host, the mode and the CAs it was checked against.
    pub(super) fn connect(&self, config: &Config) -> Result<Client, BoxError> {
        let result = match &self.connector {
            None => config.connect(NoTls),
            Some(connector) => config.connect(connector.clone()),
        };
        result.map_err(|e| match &self.checked {
            Some((mode, roots)) if is_certificate_error(&e) => Box::new(Untrusted {
                hosts: tls_names(config),
                mode: *mode,
                roots: roots.clone(),
                source: e,
            }) as BoxError,
            _ => e.into(),
        })
    }
}

/// Whether the connection failed on the server's certificate: rustls's error, in the
/// `io::Error` the TLS stream gave the client.
fn is_certificate_error(e: &::postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(tls, Some(rustls::Error::InvalidCertificate(_))) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The names the server's certificate is checked against: the URL's hosts.
fn tls_names(config: &Config) -> String {
    let names: Vec<&str> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            Host::Tcp(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.join(" or ")
}

/// Reads `url` (a `postgres://` URL, with libpq's `sslmode` and `sslrootcert`): the client's
/// configuration, its TLS mode set, and how to connect.
pub(super) fn configure(url: &str) -> Result<(Config, Tls), BoxError> {
    let (url, options) = split_url(url)?;
    let mut config: Config = url.parse()?;
    // libpq: TLS is not used on Unix sockets (the server does not offer it there).
    let unix_only = config.get_hostaddrs().is_empty()
        && !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, Host::Tcp(_)));
    let mode = if unix_only {
        SslMode::Disable
    } else {
        options.mode
    };
    config.ssl_mode(match mode {
        SslMode::Disable => ClientSslMode::Disable,
        SslMode::Prefer => ClientSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
    });
    let check = match (mode, &options.roots) {
        (SslMode::Disable, _) => {
            let tls = Tls {
                connector: None,
                checked: None,
            };
            return Ok((config, tls));
        }
        (SslMode::VerifyFull, _) => Check::Full,
        (SslMode::VerifyCa, _) | (SslMode::Require, Roots::File(_)) => Check::Chain,
        (SslMode::Prefer, _) | (SslMode::Require, Roots::System) => Check::None,
    };
    let (client_config, roots) = client_config(check, &options.roots)?;
    let tls = Tls {
        connector: Some(MakeRustlsConnect::new(client_config)),
        checked: roots.map(|roots| (mode, roots.into())),
    };
    Ok((config, tls))
}

/// The rustls configuration: ring, TLS 1.2 and 1.3, no client certificate, PostgreSQL's
/// ALPN name (PostgreSQL 17 checks it when offered; older servers ignore it). With what the
/// trusted CAs are, when they are used.
fn client_config(check: Check, roots: &Roots) -> Result<(ClientConfig, Option<String>), BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let (webpki, described) = match check {
        Check::None => (None, None),
        Check::Chain | Check::Full => {
            let (store, described) = load_roots(roots)?;
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()?;
            (Some(verifier), Some(described))
        }
    };
    let verifier = Verifier {
        check,
        webpki,
        algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((config, described))
}

/// The trusted CAs, and what they are for messages.
fn load_roots(roots: &Roots) -> Result<(RootCertStore, String), BoxError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let read = |e: &dyn fmt::Display| format!("sslrootcert {}: {e}", path.display());
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| read(&e))? {
                store
                    .add(cert.map_err(|e| read(&e))?)
                    .map_err(|e| read(&e))?;
            }
            if store.is_empty() {
                return Err(read(&"no PEM certificate in it").into());
            }
            Ok((store, format!("the CA certificates in {}", path.display())))
        }
        Roots::System => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(native.certs);
            if added > 0 {
                return Ok((store, "the platform's CA certificates".into()));
            }
            // A slim container without ca-certificates: Mozilla's list, as reqwest uses.
            tracing::debug!(errors = ?native.errors, "no platform CA certificates: using Mozilla's");
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Ok((
                store,
                "Mozilla's CA certificates (the platform has none)".into(),
            ))
        }
    }
}

/// What is checked of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Nothing (`prefer`, `require`): the connection is encrypted, the server unproven.
    None,
    /// Signed by a trusted CA, for any name (`verify-ca`).
    Chain,
    /// Signed by a trusted CA and issued to the host connected to (`verify-full`).
    Full,
}

/// The server certificate verifier for every mode. The handshake's signatures are always
/// checked (the server proves it holds the certificate's key), whatever is checked of the
/// certificate itself.
#[derive(Debug)]
struct Verifier {
    check: Check,
    /// WebPKI's verifier on the trusted CAs, when the chain is checked.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => Ok(verified),
            // WebPKI checks the name last: the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A server certificate the mode does not accept: which host, under which mode, against
/// which CAs; the client's error (rustls's reason) as the source.
#[derive(Debug)]
struct Untrusted {
    hosts: String,
    mode: SslMode,
    roots: Arc<str>,
    source: ::postgres::Error,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate of {} does not verify against {} (sslmode={})",
            self.hosts,
            self.roots,
            self.mode.name()
        )
    }
}

impl std::error::Error for Untrusted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsOptions) {
        split_url(url).unwrap()
    }

    #[test]
    fn sslmode_and_sslrootcert_leave_the_url_and_the_rest_stays() {
        let (url, options) = split(
            "postgres://u:p@db.example:5432/sheets?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fmy%20ca.pem&connect_timeout=3",
        );
        assert_eq!(
            url,
            "postgres://u:p@db.example:5432/sheets?application_name=x&connect_timeout=3"
        );
        assert_eq!(
            options,
            TlsOptions {
                mode: SslMode::VerifyFull,
                roots: Roots::File(PathBuf::from("/tmp/my ca.pem"))
            }
        );
        let (url, options) = split("postgres://u@h/db?sslmode=require&sslmode=disable");
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(options.mode, SslMode::Disable, "the last one counts");
    }

    #[test]
    fn libpq_defaults() {
        let (_, options) = split("postgres://u@h/db");
        assert_eq!(
            options,
            TlsOptions {
                mode: SslMode::Prefer,
                roots: Roots::System
            }
        );
        let (_, options) = split("postgres://u@h/db?sslrootcert=system");
        assert_eq!(options.mode, SslMode::VerifyFull);
        assert_eq!(
            split("postgres://u@h/db?sslmode=allow").1.mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let e = split_url("postgres://u@h/db?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("sslmode=verify: expected"), "{e}");
        let e = split_url("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(e.to_string().contains("need sslmode=verify-full"), "{e}");
        let e = split_url("postgres://u@h/db?sslrootcert=").unwrap_err();
        assert!(e.to_string().contains("sslrootcert: empty"), "{e}");
        let e = match configure(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        ) {
            Err(e) => e,
            Ok(_) => panic!("a missing sslrootcert file was accepted"),
        };
        assert!(
            e.to_string().contains("sslrootcert /nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn the_client_is_told_to_require_tls_for_the_verifying_modes() {
        for (mode, expected) in [
            ("disable", ClientSslMode::Disable),
            ("prefer", ClientSslMode::Prefer),
            ("require", ClientSslMode::Require),
            ("verify-ca", ClientSslMode::Require),
            ("verify-full", ClientSslMode::Require),
        ] {
            let (config, tls) = configure(&format!(
                "postgres://u@h/db?sslmode={mode}&sslrootcert=system"
            ))
            .or_else(|_| configure(&format!("postgres://u@h/db?sslmode={mode}")))
            .unwrap();
            assert_eq!(config.get_ssl_mode(), expected, "{mode}");
            assert_eq!(tls.connector.is_none(), mode == "disable", "{mode}");
        }
        // A Unix socket: no TLS, whatever the mode (libpq).
        let (config, tls) =
            configure("postgres://u@%2Frun%2Fpostgresql/db?sslmode=require").unwrap();
        assert_eq!(config.get_ssl_mode(), ClientSslMode::Disable);
        assert!(tls.connector.is_none());
    }
}
