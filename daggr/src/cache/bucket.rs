//! [`ObjectStoreShared`]: the shared tier on object storage, through the `object_store`
//! crate (S3 and S3-compatible servers such as MinIO or R2, Google Cloud Storage, Azure Blob
//! Storage, and local files).
//!
//! `object_store` is async; the cache calls its shared tier from background threads and
//! the blocking pool. So this store runs its requests on a small runtime of its own, on a
//! thread of its own, and the blocking calls wait for them there: this works whether or
//! not the caller is inside a runtime, and never blocks a runtime's worker on network I/O.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutPayload, RetryConfig};
use tokio::sync::oneshot;

use super::shared::SharedStore;
use crate::error::BoxError;
use crate::Error;

/// A [`SharedStore`] on object storage, through the `object_store` crate: S3 and
/// S3-compatible servers (MinIO, R2, moto…), Google Cloud Storage (and fake-gcs-server),
/// Azure Blob Storage (and Azurite), a local directory (`file://`), or memory.
///
/// `object_store` is async and the cache calls its shared store from background threads
/// and the blocking pool, so requests run on a small runtime of this store's own, on a
/// thread of its own, and the blocking calls wait for them: this works whether or not the
/// caller is inside a runtime. A bucket that does not answer fails a request within
/// seconds (2 retries, a 3 s connect timeout), never minutes.
pub struct ObjectStoreShared {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    location: String,
    runtime: tokio::runtime::Handle,
    /// Dropping it stops the runtime's thread.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for ObjectStoreShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreShared")
            .field("location", &self.location)
            .finish()
    }
}

impl ObjectStoreShared {
    /// Opens the store at `url`: `s3://bucket/prefix` (configured from the `AWS_*`
    /// environment variables), `gs://bucket/prefix` (configured from the `GOOGLE_*`
    /// environment variables: `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`…), `az://container/prefix`, `azure://container/prefix` or
    /// `https://ACCOUNT.blob.core.windows.net/container/prefix` (configured from the
    /// `AZURE_*` environment variables: `AZURE_STORAGE_ACCOUNT_NAME`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_ENDPOINT`…), `file:///absolute/path` or
    /// `memory://` (one process only, for tests).
    pub fn from_url(url: &str) -> Result<ObjectStoreShared, Error> {
        Self::from_url_with_options(url, std::iter::empty::<(String, String)>())
    }

    /// Like [`ObjectStoreShared::from_url`], with `object_store` configuration keys
    /// (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, `azure_storage_account_key`,
    /// …, the backend's own) on top of the environment's.
    pub fn from_url_with_options<K, V>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ObjectStoreShared, Error>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let location = redacted(url);
        let fail = |context: &str, source: BoxError| Error::SharedStore {
            store: location.clone(),
            context: context.into(),
            source,
        };
        let parsed = url::Url::parse(url).map_err(|e| fail("reading the URL", e.into()))?;
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.into()))
            .collect();
        let read_options = |e: object_store::Error| fail("reading the options", e.into());
        let prefix = |skip_container: bool| {
            path_prefix(parsed.path(), skip_container)
                .map_err(|e| fail("reading the prefix", e.into()))
        };
        // One cloud backend: its builder with our retries and timeouts, the environment's
        // `$env_prefix*` settings and the caller's options, then the URL. (The builders
        // share these methods but no trait.)
        macro_rules! cloud {
            ($builder:ty, $env_prefix:literal, $what:literal) => {{
                let mut builder = <$builder>::new()
                    .with_retry(retry())
                    .with_client_options(client_options());
                for (key, value) in settings($env_prefix, &options).map_err(read_options)? {
                    builder = builder.with_config(key, value);
                }
                let store = builder
                    .with_url(url)
                    .build()
                    .map_err(|e| fail(concat!("configuring ", $what), e.into()))?;
                Arc::new(store) as Arc<dyn ObjectStore>
            }};
        }
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "s3" | "s3a" => (
                cloud!(object_store::aws::AmazonS3Builder, "AWS_", "S3"),
                prefix(false)?,
            ),
            "az" | "azure" | "abfs" | "abfss" | "adl" | "https"
                if parsed.scheme() != "https" || is_azure_blob_host(&parsed) =>
            {
                let store = cloud!(
                    object_store::azure::MicrosoftAzureBuilder,
                    "AZURE_",
                    "Azure Blob Storage"
                );
                // In the https form the path starts with the container.
                (store, prefix(parsed.scheme() == "https")?)
            }
            "gs" => (
                cloud!(
                    object_store::gcp::GoogleCloudStorageBuilder,
                    "GOOGLE_",
                    "Google Cloud Storage"
                ),
                prefix(false)?,
            ),
            "file" | "memory" => {
                if parsed.scheme() == "file" {
                    let dir = parsed
                        .to_file_path()
                        .map_err(|()| fail("reading the path", "not a local path".into()))?;
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| fail("creating the directory", e.into()))?;
                }
                let (store, prefix) = object_store::parse_url(&parsed)
                    .map_err(|e| fail("opening the store", e.into()))?;
                (Arc::from(store), prefix)
            }
            other => {
                return Err(fail(
                    "choosing a store",
                    format!(
                        "unsupported scheme `{other}` (use s3://bucket/prefix, \
                         gs://bucket/prefix, az://container/prefix or \
                         https://ACCOUNT.blob.core.windows.net/container/prefix, file:///path \
                         or memory://)"
                    )
                    .into(),
                ))
            }
        };
        Self::new(store, prefix, location)
    }

    /// Wraps an `object_store` store (any of its backends), with object names under
    /// `prefix`. `location` names it in messages.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        location: impl Into<String>,
    ) -> Result<ObjectStoreShared, Error> {
        let location = location.into();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                context: "starting the shared cache store's runtime".into(),
                source,
            })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("daggr-shared-store".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|source| Error::Io {
                context: "starting the shared cache store's thread".into(),
                source,
            })?;
        Ok(ObjectStoreShared {
            store,
            prefix,
            location,
            runtime: handle,
            _stop: stop,
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.child(part))
    }

    /// Runs `request` on the store's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        context: &str,
        request: impl std::future::Future<Output = Result<T, object_store::Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        let fail = |source: BoxError| Error::SharedStore {
            store: self.location.clone(),
            context: context.into(),
            source,
        };
        rx.recv()
            .map_err(|_| fail("the store's runtime stopped".into()))?
            .map_err(|e| fail(e.into()))
    }
}

impl SharedStore for ObjectStoreShared {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let (store, path) = (self.store.clone(), self.path(name));
        self.block(&format!("reading {name}"), async move {
            match store.get(&path).await {
                Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn exists(&self, name: &str) -> Result<bool, Error> {
        let (store, path) = (self.store.clone(), self.path(name));
        self.block(&format!("looking for {name}"), async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let (store, path) = (self.store.clone(), self.path(name));
        let payload = PutPayload::from(bytes.to_vec());
        self.block(&format!("writing {name}"), async move {
            store.put(&path, payload).await.map(|_| ())
        })
    }

    /// A conditional write (`PutMode::Create`: `If-None-Match: *` on S3 and Azure, an
    /// exclusive create on files), so two writers of one key cannot overwrite each other;
    /// where the backend has no conditional write, a look then a write (content
    /// addressing makes a race between two writers harmless: they write the same bytes).
    fn put_if_absent(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let (store, path) = (self.store.clone(), self.path(name));
        let payload = PutPayload::from(bytes.to_vec());
        let created = self.block(&format!("writing {name}"), async move {
            match store.put_opts(&path, payload, PutMode::Create.into()).await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
                Err(object_store::Error::NotImplemented) => Ok(false),
                Err(e) => Err(e),
            }
        })?;
        if created {
            return Ok(());
        }
        if self.exists(name)? {
            return Ok(());
        }
        self.put(name, bytes)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let (store, path) = (self.store.clone(), self.path(prefix));
        let base = self.prefix.clone();
        self.block(&format!("listing {prefix}"), async move {
            let mut names = Vec::new();
            let mut listing = store.list(Some(&path));
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                let parts: Vec<String> = match meta.location.prefix_match(&base) {
                    Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
                    None => continue,
                };
                names.push(parts.join("/"));
            }
            Ok(names)
        })
    }

    fn remove(&self, name: &str) -> Result<(), Error> {
        let (store, path) = (self.store.clone(), self.path(name));
        self.block(&format!("removing {name}"), async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// A bucket that does not answer must not hold a run up for minutes (the default retries
/// for 3 minutes): a failed read is a miss, a failed upload is retried at the next flush.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// Fails a request to a store that does not answer within seconds.
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(60))
}

/// A backend's configuration: the environment's `env_prefix*` variables whose lower-cased
/// names are keys of that backend (as its builder's `from_env` reads them, which cannot be
/// used here: the client options set first would overwrite e.g. `*_ALLOW_HTTP`), then the
/// caller's options, which must all be keys of that backend.
fn settings<K>(
    env_prefix: &str,
    options: &[(String, String)],
) -> Result<Vec<(K, String)>, object_store::Error>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    let from_env = std::env::vars().filter_map(|(key, value)| {
        let key = key
            .starts_with(env_prefix)
            .then(|| key.to_ascii_lowercase().parse().ok())??;
        Some((key, value))
    });
    let mut settings: Vec<(K, String)> = from_env.collect();
    for (key, value) in options {
        settings.push((key.parse()?, value.clone()));
    }
    Ok(settings)
}

/// Whether `url` is the https form of an Azure Blob Storage address.
fn is_azure_blob_host(url: &url::Url) -> bool {
    url.host_str().is_some_and(|host| {
        [".blob.core.windows.net", ".dfs.core.windows.net"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
    })
}

/// The object-name prefix in a URL's `path`, without the container's name in front when
/// `skip_container` (the https form of Azure addresses).
fn path_prefix(path: &str, skip_container: bool) -> Result<ObjectPath, object_store::path::Error> {
    let path = path.trim_start_matches('/');
    let path = match skip_container {
        true => path.split_once('/').map_or("", |(_, rest)| rest),
        false => path,
    };
    ObjectPath::parse(path)
}

/// `url` without a password or query (which may carry credentials), for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_store_keeps_lists_and_removes_objects() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let store = ObjectStoreShared::from_url(url.as_str()).unwrap();
        assert_eq!(store.get("records/a").unwrap(), None);
        assert!(!store.exists("records/a").unwrap());
        store.put_if_absent("records/a", b"one").unwrap();
        store.put_if_absent("records/a", b"two").unwrap();
        assert_eq!(
            store.get("records/a").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        store.put("records/a", b"three").unwrap();
        store.put("blobs/sha256/ff", b"x").unwrap();
        assert_eq!(
            store.list("records").unwrap(),
            vec!["records/a".to_string()]
        );
        store.remove("records/a").unwrap();
        store.remove("records/a").unwrap();
        assert!(store.list("records").unwrap().is_empty());
        assert_eq!(
            store.list("blobs").unwrap(),
            vec!["blobs/sha256/ff".to_string()]
        );
    }

    #[tokio::test]
    async fn it_can_be_called_from_inside_a_runtime() {
        let store = ObjectStoreShared::from_url("memory:///").unwrap();
        let got = tokio::task::spawn_blocking(move || {
            store.put("records/k", b"v").unwrap();
            store.get("records/k").unwrap()
        })
        .await
        .unwrap();
        assert_eq!(got.as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn bad_addresses_are_named_in_the_error() {
        let err = ObjectStoreShared::from_url("ftp://host/x").unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme `ftp`"),
            "{err}"
        );
        let err = ObjectStoreShared::from_url("https://example.com/container/x").unwrap_err();
        assert!(err.to_string().contains("blob.core.windows.net"), "{err}");
        assert!(redacted("s3://user:secret@bucket/p?token=1").contains("bucket/p"));
        assert!(!redacted("s3://user:secret@bucket/p?token=1").contains("secret"));
    }

    #[test]
    fn google_addresses_take_their_configuration_from_the_options() {
        // An emulator's address, given as a service-account key (the one way object_store
        // takes another GCS endpoint); nothing is requested until the store is used.
        let key = r#"{"gcs_base_url": "http://127.0.0.1:9", "disable_oauth": true,
            "client_email": "", "private_key": "", "private_key_id": ""}"#;
        let store = ObjectStoreShared::from_url_with_options(
            "gs://team/a/b",
            [
                ("google_service_account_key", key),
                ("google_allow_http", "true"),
            ],
        )
        .unwrap();
        assert_eq!(store.location(), "gs://team/a/b");
        assert_eq!(store.prefix.as_ref(), "a/b");
        // A key of another backend is refused, naming it.
        let err = ObjectStoreShared::from_url_with_options("gs://team/a", [("aws_region", "x")])
            .unwrap_err();
        assert!(err.to_string().contains("reading the options"), "{err}");
    }

    #[test]
    fn azure_addresses_name_the_prefix_after_the_container() {
        let https = url::Url::parse("https://acct.blob.core.windows.net/team/a/b").unwrap();
        assert!(is_azure_blob_host(&https));
        assert!(!is_azure_blob_host(
            &url::Url::parse("https://example.com/x").unwrap()
        ));
        assert_eq!(path_prefix(https.path(), true).unwrap().as_ref(), "a/b");
        assert_eq!(path_prefix("/team", true).unwrap().as_ref(), "");
        let az = url::Url::parse("az://team/a/b").unwrap();
        assert_eq!(path_prefix(az.path(), false).unwrap().as_ref(), "a/b");
    }
}
