//! Media values: [`Image`], [`Audio`], [`Video`] and [`File`].
//!
//! Each is bytes with a MIME type (and an optional file name). In a value's JSON
//! encoding a media value is a small reference, `{"kind":"image","mime":…,
//! "size":…,"blob":"sha256-…"}`; the bytes live once in the content-addressed
//! store under that integrity hash. Bytes are never base64 inside JSON.
//!
//! ```
//! use daggr::Image;
//! let png = Image::new(vec![0x89, b'P', b'N', b'G'], "image/png");
//! assert_eq!(png.mime(), "image/png");
//! assert_eq!(png.bytes().len(), 4);
//! ```

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use ssri::Integrity;

/// One blob: content bytes and their integrity hash.
#[derive(Clone)]
pub struct Blob {
    /// The cacache integrity (SHA-256) of the bytes.
    pub integrity: Integrity,
    /// The bytes.
    pub bytes: Arc<[u8]>,
}

/// The set of blobs a value refers to (usually empty).
///
/// A thin pointer (8 bytes, not the 16 of an `Arc<[Blob]>`): every value holds one, and
/// it is almost always empty; the extra indirection is paid only by media values.
#[derive(Clone, Default)]
pub struct BlobSet(Option<Arc<Vec<Blob>>>);

impl BlobSet {
    fn from_vec(blobs: Vec<Blob>) -> Self {
        if blobs.is_empty() {
            BlobSet(None)
        } else {
            BlobSet(Some(Arc::new(blobs)))
        }
    }

    /// The blobs.
    pub fn iter(&self) -> impl Iterator<Item = &Blob> {
        self.0.iter().flat_map(|b| b.iter())
    }

    fn find(&self, integrity: &Integrity) -> Option<Arc<[u8]>> {
        self.iter()
            .find(|b| &b.integrity == integrity)
            .map(|b| b.bytes.clone())
    }
}

struct SourceState {
    known: BlobSet,
    disk: Option<PathBuf>,
    loaded: Vec<Blob>,
}

thread_local! {
    static SINK: RefCell<Option<Vec<Blob>>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<SourceState>> = const { RefCell::new(None) };
}

/// Runs `f` (a serialization) and returns the blobs that media values in it registered.
pub(crate) fn collect_blobs<R>(f: impl FnOnce() -> R) -> (R, BlobSet) {
    let outer = SINK.with(|s| s.borrow_mut().replace(Vec::new()));
    let result = f();
    let blobs = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (result, BlobSet::from_vec(blobs.unwrap_or_default()))
}

/// Runs `f` (a deserialization) with media bytes resolved from `blobs`.
pub(crate) fn with_blob_source<R>(blobs: &BlobSet, f: impl FnOnce() -> R) -> R {
    let state = SourceState {
        known: blobs.clone(),
        disk: None,
        loaded: Vec::new(),
    };
    let outer = SOURCE.with(|s| s.borrow_mut().replace(state));
    let result = f();
    SOURCE.with(|s| *s.borrow_mut() = outer);
    result
}

/// Runs `f` (a deserialization) with media bytes read from the cache at `dir`;
/// returns the blobs that were read, so the decoded value keeps them.
pub(crate) fn with_disk_source<R>(dir: &Path, f: impl FnOnce() -> R) -> (R, BlobSet) {
    let state = SourceState {
        known: BlobSet::default(),
        disk: Some(dir.to_path_buf()),
        loaded: Vec::new(),
    };
    let outer = SOURCE.with(|s| s.borrow_mut().replace(state));
    let result = f();
    let state = SOURCE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    let loaded = state.map(|s| s.loaded).unwrap_or_default();
    (result, BlobSet::from_vec(loaded))
}

fn register(integrity: &Integrity, bytes: &Arc<[u8]>) {
    SINK.with(|s| {
        if let Some(sink) = s.borrow_mut().as_mut() {
            if !sink.iter().any(|b| &b.integrity == integrity) {
                sink.push(Blob {
                    integrity: integrity.clone(),
                    bytes: bytes.clone(),
                });
            }
        }
    });
}

fn resolve(integrity: &Integrity) -> Result<Arc<[u8]>, String> {
    SOURCE.with(|s| {
        let mut state = s.borrow_mut();
        let Some(state) = state.as_mut() else {
            return Err(format!(
                "media bytes {integrity} are only available when daggr decodes the value"
            ));
        };
        if let Some(bytes) = state.known.find(integrity) {
            return Ok(bytes);
        }
        if let Some(b) = state.loaded.iter().find(|b| &b.integrity == integrity) {
            return Ok(b.bytes.clone());
        }
        let Some(dir) = &state.disk else {
            return Err(format!("media blob {integrity} is missing"));
        };
        // read_hash_sync verifies the integrity, so a corrupted blob is an error (a cache miss).
        let bytes: Arc<[u8]> = cacache::read_hash_sync(dir, integrity)
            .map_err(|e| format!("media blob {integrity}: {e}"))?
            .into();
        state.loaded.push(Blob {
            integrity: integrity.clone(),
            bytes: bytes.clone(),
        });
        Ok(bytes)
    })
}

struct MediaData {
    mime: String,
    name: Option<String>,
    bytes: Arc<[u8]>,
    integrity: OnceLock<Integrity>,
}

/// The reference that stands for media bytes in JSON.
#[derive(Serialize, Deserialize)]
struct BlobRef<'a> {
    kind: &'a str,
    mime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    size: usize,
    blob: String,
}

#[derive(Clone)]
struct Media(Arc<MediaData>);

impl Media {
    fn new(bytes: impl Into<Arc<[u8]>>, mime: impl Into<String>, name: Option<String>) -> Self {
        Media(Arc::new(MediaData {
            mime: mime.into(),
            name,
            bytes: bytes.into(),
            integrity: OnceLock::new(),
        }))
    }

    fn integrity(&self) -> &Integrity {
        self.0
            .integrity
            .get_or_init(|| Integrity::from(&self.0.bytes[..]))
    }

    fn serialize<S: serde::Serializer>(&self, kind: &str, s: S) -> Result<S::Ok, S::Error> {
        let integrity = self.integrity();
        register(integrity, &self.0.bytes);
        BlobRef {
            kind,
            mime: self.0.mime.clone(),
            name: self.0.name.clone(),
            size: self.0.bytes.len(),
            blob: integrity.to_string(),
        }
        .serialize(s)
    }

    fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let r = BlobRef::deserialize(d)?;
        let integrity = parse_integrity(&r.blob)
            .ok_or_else(|| D::Error::custom(format!("`{}` is not a content hash", r.blob)))?;
        let bytes = resolve(&integrity).map_err(D::Error::custom)?;
        if bytes.len() != r.size {
            return Err(D::Error::custom(format!(
                "media blob {integrity}: expected {} bytes, found {}",
                r.size,
                bytes.len()
            )));
        }
        let media = Media::new(bytes, r.mime, r.name);
        let _ = media.0.integrity.set(integrity);
        Ok(media)
    }
}

macro_rules! media_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $default_mime:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Media);

        impl $name {
            /// Wraps bytes with their MIME type.
            pub fn new(bytes: impl Into<Arc<[u8]>>, mime: impl Into<String>) -> Self {
                $name(Media::new(bytes, mime, None))
            }

            /// Wraps bytes with their MIME type and a file name (kept for downloads and uploads).
            pub fn named(bytes: impl Into<Arc<[u8]>>, mime: impl Into<String>, name: impl Into<String>) -> Self {
                $name(Media::new(bytes, mime, Some(name.into())))
            }

            /// Reads a file; the MIME type is guessed from the extension.
            pub fn from_path(path: impl AsRef<Path>) -> Result<Self, crate::Error> {
                let path = path.as_ref();
                let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let mime = guess_mime(path).unwrap_or($default_mime);
                Ok($name(Media::new(bytes, mime, name)))
            }

            /// The bytes.
            pub fn bytes(&self) -> &[u8] {
                &self.0 .0.bytes
            }

            /// The MIME type.
            pub fn mime(&self) -> &str {
                &self.0 .0.mime
            }

            /// The file name, if known.
            pub fn name(&self) -> Option<&str> {
                self.0 .0.name.as_deref()
            }

            /// The content hash (SRI string, SHA-256) that addresses the bytes in the store.
            pub fn integrity(&self) -> String {
                self.0.integrity().to_string()
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize($kind, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Media::deserialize(d).map($name)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.mime() == other.mime() && self.bytes() == other.bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}, {} bytes)", stringify!($name), self.mime(), self.bytes().len())
            }
        }
    };
}

media_type!(
    /// An image (PNG, JPEG, WebP, …).
    Image, "image", "application/octet-stream"
);
media_type!(
    /// An audio clip (WAV, MP3, OGG, …).
    Audio, "audio", "application/octet-stream"
);
media_type!(
    /// A video (MP4, WebM, …).
    Video, "video", "application/octet-stream"
);
media_type!(
    /// Any other file.
    File, "file", "application/octet-stream"
);

/// A MIME type from a file extension (by `mime_guess`, the table reqwest uses too).
pub fn guess_mime(path: &Path) -> Option<&'static str> {
    mime_guess::from_path(path).first_raw()
}

/// A MIME type from the bytes' magic number (by `infer`), for a file nobody labelled.
/// Named as [`guess_mime`] names that format's extension, so both agree (`audio/wav`,
/// where `infer` alone says `audio/x-wav`).
#[cfg(any(feature = "gradio", feature = "inference"))]
pub(crate) fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    let kind = infer::get(bytes)?;
    Some(
        mime_guess::from_ext(kind.extension())
            .first_raw()
            .unwrap_or(kind.mime_type()),
    )
}

/// The usual file extension of a MIME type (`png`, `jpg`, `mp3`), for naming a file that
/// has no name.
#[cfg_attr(not(feature = "gradio"), allow(dead_code))]
pub(crate) fn extension_for(mime: &str) -> Option<&'static str> {
    let mime = mime.split(';').next().unwrap_or(mime).trim();
    // mime_guess lists a type's extensions alphabetically, and for these the first (or the
    // subtype) is not the one people use.
    match mime {
        "image/jpeg" => return Some("jpg"),
        "audio/mpeg" => return Some("mp3"),
        "text/plain" => return Some("txt"),
        "application/octet-stream" => return Some("bin"),
        _ => {}
    }
    let extensions = mime_guess::get_mime_extensions_str(mime)?;
    // The subtype when it is an extension of the type (`image/png`, `image/svg+xml`).
    let sub = mime.split_once('/')?.1;
    let sub = sub.strip_suffix("+xml").unwrap_or(sub);
    let sub = sub.strip_prefix("x-").unwrap_or(sub);
    extensions
        .iter()
        .find(|e| e.eq_ignore_ascii_case(sub))
        .or_else(|| extensions.first())
        .copied()
}

/// Parses an SRI integrity string strictly: one `sha256-` or `sha512-` hash whose base64
/// digest has the right length. (ssri accepts digests it later cannot turn into a path.)
pub fn parse_integrity(text: &str) -> Option<Integrity> {
    let (algorithm, digest) = text.split_once('-')?;
    let expected_len = match algorithm {
        "sha256" => 44,
        "sha512" => 88,
        _ => return None,
    };
    let valid_char = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=';
    if digest.len() != expected_len || !digest.bytes().all(valid_char) {
        return None;
    }
    let sri: Integrity = text.parse().ok()?;
    // to_hex panics on undecodable base64: check it decodes without panicking.
    std::panic::catch_unwind(|| sri.to_hex()).ok()?;
    Some(sri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn media_encodes_as_a_reference_never_as_base64() {
        let image = Image::new(vec![7u8; 1000], "image/png");
        let value = Value::new(image.clone()).unwrap();
        let json = value.to_json();
        assert_eq!(json["kind"], "image");
        assert_eq!(json["size"], 1000);
        assert!(json["blob"].as_str().unwrap().starts_with("sha256-"));
        assert!(value.encoded().len() < 200, "bytes must not be inlined");
        assert_eq!(value.blobs().iter().count(), 1);
        let back: Image = value.to_owned_value().unwrap().unwrap();
        assert_eq!(back, image);
    }

    #[test]
    fn mime_types_and_extensions_agree() {
        for (file, mime) in [
            ("a.PNG", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.webp", "image/webp"),
            ("a.svg", "image/svg+xml"),
            ("a.wav", "audio/wav"),
            ("a.mp3", "audio/mpeg"),
            ("a.flac", "audio/flac"),
            ("a.mp4", "video/mp4"),
            ("a.webm", "video/webm"),
            ("a.json", "application/json"),
            ("a.txt", "text/plain"),
            ("a.csv", "text/csv"),
            ("a.pdf", "application/pdf"),
        ] {
            assert_eq!(guess_mime(Path::new(file)), Some(mime), "{file}");
            let ext = extension_for(mime).unwrap();
            assert_eq!(
                guess_mime(Path::new(&format!("x.{ext}"))),
                Some(mime),
                "{ext}"
            );
        }
        assert_eq!(guess_mime(Path::new("no_extension")), None);
        assert_eq!(extension_for("image/jpeg"), Some("jpg"));
        assert_eq!(extension_for("image/png; charset=x"), Some("png"));
        assert_eq!(extension_for("application/x-nothing-known"), None);
    }

    #[cfg(any(feature = "gradio", feature = "inference"))]
    #[test]
    fn sniffed_mime_types_agree_with_guessed_ones() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(44, 0);
        for (bytes, mime) in [
            (&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], "image/png"),
            (
                &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'][..],
                "image/jpeg",
            ),
            (&b"GIF89a\x01\0\x01\0"[..], "image/gif"),
            (&b"RIFF\0\0\0\0WEBPVP8 "[..], "image/webp"),
            (&wav[..], "audio/wav"),
        ] {
            assert_eq!(sniff_mime(bytes), Some(mime), "{mime}");
        }
        assert_eq!(sniff_mime(b"plain words"), None);
    }

    #[test]
    fn decoding_outside_daggr_is_a_clear_error() {
        let json = serde_json::to_string(&Image::new(vec![1, 2], "image/png")).unwrap();
        let err = serde_json::from_str::<Image>(&json).unwrap_err();
        assert!(err.to_string().contains("only available"), "{err}");
    }

    #[test]
    fn nested_media_in_user_structs_round_trips() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Pair {
            left: Image,
            right: Audio,
        }
        let pair = Pair {
            left: Image::new(vec![1, 2, 3], "image/png"),
            right: Audio::named(vec![4, 5], "audio/wav", "a.wav"),
        };
        let value = Value::new(pair).unwrap();
        assert_eq!(value.blobs().iter().count(), 2);
        let back: Pair = value.to_owned_value().unwrap().unwrap();
        assert_eq!(back.right.name(), Some("a.wav"));
        assert_eq!(back.left.bytes(), &[1, 2, 3]);
    }
}
