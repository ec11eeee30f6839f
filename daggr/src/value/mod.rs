//! Values that cross ports: typed at the edges, type-erased inside the engine.
//!
//! Every value is encoded once, canonically (JSON with sorted map keys), when it
//! is produced. The encoding gives its content hash, which is what downstream
//! cache keys are made of (so a byte-identical rerun cuts invalidation off), and
//! what the cache stores. Media bytes are never inside that JSON: media values
//! serialize as a reference to a content-addressed blob (see [`crate::value::media`]).

pub mod media;

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use media::BlobSet;

/// A type that can cross a daggr port.
///
/// Implemented for every `T: Serialize + DeserializeOwned + Send + Sync + 'static`;
/// you never implement it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a daggr port",
    label = "not a port value",
    note = "port values must implement serde's `Serialize` and `DeserializeOwned`, and be `Send + Sync + 'static`"
)]
pub trait PortValue: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> PortValue for T {}

/// A type-erased decoded value.
type ErasedValue = Arc<dyn Any + Send + Sync>;

/// The run-time description of a port's Rust type: its identity for edge checks,
/// its name for messages, and how to encode and decode it.
#[derive(Clone, Copy)]
pub struct PortType {
    type_id: fn() -> TypeId,
    name: &'static str,
    decode: fn(&[u8]) -> Result<ErasedValue, serde_json::Error>,
}

impl PortType {
    /// The port type of `T`.
    pub fn of<T: PortValue>() -> Self {
        PortType {
            type_id: TypeId::of::<T>,
            name: std::any::type_name::<T>(),
            decode: decode_erased::<T>,
        }
    }

    /// The Rust type name, for messages (not stable across compilers: never used in persistent keys
    /// except as part of a hash that a compiler change may harmlessly invalidate).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether two port types are the same Rust type.
    pub fn same_as(&self, other: &PortType) -> bool {
        (self.type_id)() == (other.type_id)()
    }

    /// Whether this is the port type of `T`.
    pub fn is<T: 'static>(&self) -> bool {
        (self.type_id)() == TypeId::of::<T>()
    }

    /// Decodes an encoded value of this type; media bytes are resolved from `blobs`.
    pub fn decode(&self, encoded: &[u8], blobs: BlobSet) -> Result<Value, serde_json::Error> {
        let any = media::with_blob_source(&blobs, || (self.decode)(encoded))?;
        Ok(self.wrap(any, encoded, blobs))
    }

    /// Decodes an encoded value of this type; media bytes are read from the cache at `dir`.
    pub(crate) fn decode_from_disk(
        &self,
        encoded: &[u8],
        dir: &std::path::Path,
    ) -> Result<Value, serde_json::Error> {
        let (any, blobs) = media::with_disk_source(dir, || (self.decode)(encoded));
        Ok(self.wrap(any?, encoded, blobs))
    }

    fn wrap(&self, any: Arc<dyn Any + Send + Sync>, encoded: &[u8], blobs: BlobSet) -> Value {
        Value(Arc::new(ValueInner {
            any,
            ty: *self,
            encoded: encoded.into(),
            hash: ContentHash::of(encoded),
            blobs,
        }))
    }
}

impl fmt::Debug for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

fn decode_erased<T: PortValue>(
    encoded: &[u8],
) -> Result<Arc<dyn Any + Send + Sync>, serde_json::Error> {
    let value: T = serde_json::from_slice(encoded)?;
    Ok(Arc::new(value))
}

/// A BLAKE3 hash of a value's canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Hashes bytes.
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses lower-case hex as written by [`ContentHash::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| ContentHash(*h.as_bytes()))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ContentHash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a content hash"))
    }
}

/// A type-erased port value with its canonical encoding and content hash.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Value(Arc<ValueInner>);

struct ValueInner {
    any: Arc<dyn Any + Send + Sync>,
    ty: PortType,
    encoded: Arc<[u8]>,
    hash: ContentHash,
    blobs: BlobSet,
}

impl Value {
    /// Wraps a typed value, encoding it canonically.
    pub fn new<T: PortValue>(value: T) -> Result<Self, serde_json::Error> {
        let (encoded, blobs) = encode(&value)?;
        Ok(Value(Arc::new(ValueInner {
            hash: ContentHash::of(&encoded),
            any: Arc::new(value),
            ty: PortType::of::<T>(),
            encoded: encoded.into(),
            blobs,
        })))
    }

    /// The value's port type.
    pub fn port_type(&self) -> PortType {
        self.0.ty
    }

    /// The content hash of the canonical encoding.
    pub fn hash(&self) -> ContentHash {
        self.0.hash
    }

    /// The canonical encoding (JSON; media as blob references).
    pub fn encoded(&self) -> &[u8] {
        &self.0.encoded
    }

    /// The value as JSON (media as blob references).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.encoded).unwrap_or(serde_json::Value::Null)
    }

    /// The media blobs the value refers to.
    pub fn blobs(&self) -> &BlobSet {
        &self.0.blobs
    }

    /// A shared reference to the typed value, if it is a `T`.
    pub fn downcast<T: PortValue>(&self) -> Option<Arc<T>> {
        self.0.any.clone().downcast::<T>().ok()
    }

    /// A borrowed reference to the typed value, if it is a `T`.
    pub fn downcast_ref<T: PortValue>(&self) -> Option<&T> {
        self.0.any.downcast_ref::<T>()
    }

    /// An owned copy of the typed value, made by decoding its canonical encoding
    /// (so port values need not be `Clone`). `None` if it is not a `T`.
    pub fn to_owned_value<T: PortValue>(&self) -> Option<Result<T, serde_json::Error>> {
        if !self.0.ty.is::<T>() {
            return None;
        }
        Some(media::with_blob_source(&self.0.blobs, || {
            serde_json::from_slice(&self.0.encoded)
        }))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.0.encoded);
        let shown: String = text.chars().take(120).collect();
        write!(f, "Value<{}>({shown})", self.0.ty.name)
    }
}

/// Encodes canonically: through `serde_json::Value`, whose maps are sorted, so a
/// `HashMap`'s iteration order never changes a hash.
fn encode<T: Serialize>(value: &T) -> Result<(Vec<u8>, BlobSet), serde_json::Error> {
    let (json, blobs) = media::collect_blobs(|| serde_json::to_value(value));
    let json = json?;
    Ok((serde_json::to_vec(&json)?, blobs))
}
