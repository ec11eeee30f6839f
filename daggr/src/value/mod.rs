//! Values that cross ports: typed at the edges, type-erased inside the engine.
//!
//! Every value is encoded once, canonically (compact JSON with every object's
//! members sorted by key, see [`canonical_json`]), when it is produced. The
//! encoding gives its content hash, which is what downstream cache keys are made
//! of (so a byte-identical rerun cuts invalidation off), and what the cache stores.
//! Media bytes are never inside that JSON: media values serialize as a reference
//! to a content-addressed blob (see [`crate::value::media`]).

pub mod media;
#[cfg(feature = "inspector")]
mod schema;

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
///
/// One pointer to a table made once per type at compile time: every port spec and every
/// value carries one, and a graph of 100 000 nodes has hundreds of thousands of them, so
/// the five entries are not copied into each (8 bytes a port type instead of 48).
#[derive(Clone, Copy)]
pub struct PortType(&'static PortVTable);

/// What [`PortType`] points to: one per port value type.
struct PortVTable {
    type_id: fn() -> TypeId,
    // A function: `type_name` cannot be called in a constant on stable Rust.
    name: fn() -> &'static str,
    decode: fn(&[u8]) -> Result<ErasedValue, serde_json::Error>,
    reencode: fn(&(dyn Any + Send + Sync)) -> Option<serde_json::Value>,
    #[cfg(feature = "inspector")]
    schema: fn() -> serde_json::Value,
}

/// Holds `T`'s table as an associated constant: `&Table::<T>::VTABLE` is promoted to a
/// `'static` (the constant has no interior mutability and nothing to drop).
struct Table<T>(std::marker::PhantomData<T>);

impl<T: PortValue> Table<T> {
    const VTABLE: PortVTable = PortVTable {
        type_id: TypeId::of::<T>,
        name: std::any::type_name::<T>,
        decode: decode_erased::<T>,
        reencode: reencode_erased::<T>,
        #[cfg(feature = "inspector")]
        schema: schema::schema_of::<T>,
    };
}

const _: () = assert!(std::mem::size_of::<PortType>() == 8);

impl PortType {
    /// The port type of `T`.
    pub fn of<T: PortValue>() -> Self {
        PortType(&Table::<T>::VTABLE)
    }

    /// The JSON Schema of the type's JSON form (for the workflow API's OpenAPI document),
    /// read from its serde implementation; `{}` (any JSON) when it cannot be traced.
    #[cfg(feature = "inspector")]
    pub fn json_schema(&self) -> serde_json::Value {
        (self.0.schema)()
    }

    /// The Rust type name, for messages (not stable across compilers: never used in persistent keys
    /// except as part of a hash that a compiler change may harmlessly invalidate).
    pub fn name(&self) -> &'static str {
        (self.0.name)()
    }

    /// Whether two port types are the same Rust type.
    pub fn same_as(&self, other: &PortType) -> bool {
        (self.0.type_id)() == (other.0.type_id)()
    }

    /// Whether this is the port type of `T`.
    pub fn is<T: 'static>(&self) -> bool {
        (self.0.type_id)() == TypeId::of::<T>()
    }

    /// Decodes an encoded value of this type; media bytes are resolved from `blobs`.
    ///
    /// The bytes may come from outside (a server's response), in any member order: the value
    /// keeps their canonical form, so its content hash does not depend on that order.
    pub fn decode(&self, encoded: &[u8], blobs: BlobSet) -> Result<Value, serde_json::Error> {
        let any = media::with_blob_source(&blobs, || (self.0.decode)(encoded))?;
        let given = serde_json::from_slice(encoded)?;
        self.check_round_trip(&*any, &given)?;
        let canonical = canonical_json(&given);
        Ok(self.wrap(any, &canonical, blobs))
    }

    /// Like [`PortType::decode_from_disk`], for bytes from outside (the inspector's inputs):
    /// refuses a number the type cannot hold (see [`PortType::decode`]).
    pub(crate) fn decode_outside_from_disk(
        &self,
        encoded: &[u8],
        dir: &std::path::Path,
    ) -> Result<Value, serde_json::Error> {
        let value = self.decode_from_disk(encoded, dir)?;
        self.check_round_trip(&*value.0.any, &serde_json::from_slice(encoded)?)?;
        Ok(value)
    }

    /// serde_json turns `1e39` into an f32 `inf` (and `1e-50` into `0`) without an error: a
    /// decode must give back the numbers it was given, or the value silently differs from
    /// the one sent (and `inf` encodes as `null`, which no longer decodes).
    fn check_round_trip(
        &self,
        any: &(dyn Any + Send + Sync),
        given: &serde_json::Value,
    ) -> Result<(), serde_json::Error> {
        match (self.0.reencode)(any) {
            Some(again) => numbers_kept(given, &again).map_err(|n| {
                serde::de::Error::custom(format!("the number {n} is out of range for this type"))
            }),
            None => Ok(()),
        }
    }

    /// Decodes an encoded value of this type; media bytes are read from the cache at `dir`.
    /// The bytes are taken as they are: daggr wrote them, already canonical.
    pub(crate) fn decode_from_disk(
        &self,
        encoded: &[u8],
        dir: &std::path::Path,
    ) -> Result<Value, serde_json::Error> {
        let (any, blobs) = media::with_disk_source(dir, || (self.0.decode)(encoded));
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
        f.write_str(self.name())
    }
}

fn decode_erased<T: PortValue>(
    encoded: &[u8],
) -> Result<Arc<dyn Any + Send + Sync>, serde_json::Error> {
    let value: T = serde_json::from_slice(encoded)?;
    Ok(Arc::new(value))
}

fn reencode_erased<T: PortValue>(any: &(dyn Any + Send + Sync)) -> Option<serde_json::Value> {
    serde_json::to_value(any.downcast_ref::<T>()?).ok()
}

/// `Err(number)` for the first number of `given` that `again` (its decode re-encoded) lost:
/// one that became `null` (not finite) or `0` (underflow). Only the paths both share are
/// compared: a type may skip or add fields.
fn numbers_kept(given: &serde_json::Value, again: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value as J;
    match (given, again) {
        (J::Number(n), J::Null) => Err(n.to_string()),
        (J::Number(n), J::Number(m)) if n.as_f64() != Some(0.0) && m.as_f64() == Some(0.0) => {
            Err(n.to_string())
        }
        (J::Array(a), J::Array(b)) => a.iter().zip(b).try_for_each(|(x, y)| numbers_kept(x, y)),
        (J::Object(a), J::Object(b)) => a
            .iter()
            .filter_map(|(k, x)| Some((x, b.get(k)?)))
            .try_for_each(|(x, y)| numbers_kept(x, y)),
        _ => Ok(()),
    }
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
    encoded: Encoded,
    hash: ContentHash,
    blobs: BlobSet,
}

// A graph keeps a value per output: with its `Arc` counts, 104 bytes are one 112-byte
// block of glibc's allocator; a byte more takes 128.
const _: () = assert!(std::mem::size_of::<ValueInner>() <= 88);

/// A value's canonical encoding: kept inside the value when short (a number, a flag, a
/// short string: most values of a big graph), else in an allocation of its own.
///
/// Inline, the bytes take no block of their own (32 bytes at least, for the smallest
/// encoding), and 8 bytes more than a pointer to them leave `ValueInner` within its block.
enum Encoded {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// The longest encoding kept inline: what fits in 24 bytes beside the length and the tag.
const INLINE: usize = 22;

const _: () = assert!(std::mem::size_of::<Encoded>() == 24);

impl From<&[u8]> for Encoded {
    fn from(encoded: &[u8]) -> Self {
        if encoded.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..encoded.len()].copy_from_slice(encoded);
            Encoded::Inline {
                len: encoded.len() as u8,
                bytes,
            }
        } else {
            Encoded::Heap(encoded.into())
        }
    }
}

impl From<Vec<u8>> for Encoded {
    /// A long encoding keeps the vector's allocation (shrunk to fit) instead of a copy.
    fn from(encoded: Vec<u8>) -> Self {
        if encoded.len() <= INLINE {
            encoded.as_slice().into()
        } else {
            Encoded::Heap(encoded.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for Encoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Encoded::Inline { len, bytes } => &bytes[..*len as usize],
            Encoded::Heap(bytes) => bytes,
        }
    }
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
        write!(f, "Value<{}>({shown})", self.0.ty.name())
    }
}

/// Encodes canonically (see [`canonical_json`]), so a `HashMap`'s iteration order never
/// changes a hash.
fn encode<T: Serialize>(value: &T) -> Result<(Vec<u8>, BlobSet), serde_json::Error> {
    let (json, blobs) = media::collect_blobs(|| serde_json::to_value(value));
    Ok((canonical_json(&json?), blobs))
}

/// The canonical JSON of `json`: compact, every object's members sorted by key (byte order),
/// recursively. Content hashes and cache keys are made of these bytes.
///
/// Written here rather than left to `serde_json::to_vec`, whose object order is not ours to
/// fix: any crate in a user's build may turn on serde_json's `preserve_order` feature, and
/// then a `serde_json::Map` keeps insertion order, so a `HashMap` would hash differently in
/// every process. Scalars are still written by serde_json, so without that feature the bytes
/// are exactly what `serde_json::to_vec` writes (the key layout did not change). Not a
/// canonical-JSON crate such as `serde_jcs`: RFC 8785 also rewrites numbers (ECMAScript
/// form) and orders keys by UTF-16 units, which would change every existing key for no gain
/// here, where the only drift to rule out is member order.
pub(crate) fn canonical_json(json: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_canonical(json, &mut out);
    out
}

fn write_canonical(json: &serde_json::Value, out: &mut Vec<u8>) {
    match json {
        serde_json::Value::Object(map) => write_object(map.iter(), out),
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// Writes an object's members sorted by key, whatever order `members` come in.
fn write_object<'a>(
    members: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    out: &mut Vec<u8>,
) {
    let mut members: Vec<_> = members.collect();
    // Keys of one object are distinct, so an unstable sort is deterministic; on members that
    // are already sorted (serde_json's default `BTreeMap`) it is one linear pass.
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn write_str(text: &str, out: &mut Vec<u8>) {
    // Serializing a string into memory cannot fail.
    serde_json::to_writer(&mut *out, text).expect("a JSON string writes to memory");
}

fn write_scalar(scalar: &serde_json::Value, out: &mut Vec<u8>) {
    // A null, bool, number or string: serializing one into memory cannot fail.
    serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar writes to memory");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn short_and_long_encodings_read_back_whole() {
        // 22 bytes (the most kept inline), 23 (the least kept apart), and far longer.
        for text in ["a".repeat(20), "a".repeat(21), "a".repeat(500)] {
            let value = Value::new(text.clone()).unwrap();
            assert_eq!(value.encoded(), serde_json::to_vec(&text).unwrap());
            assert_eq!(value.hash(), ContentHash::of(value.encoded()));
            let again = value
                .port_type()
                .decode(value.encoded(), BlobSet::default());
            assert_eq!(again.unwrap().downcast_ref::<String>(), Some(&text));
        }
        assert_eq!(Value::new(()).unwrap().encoded(), b"null");
    }

    #[test]
    fn port_types_compare_by_type_and_name_it() {
        let a = PortType::of::<Vec<u8>>();
        assert!(a.same_as(&PortType::of::<Vec<u8>>()) && a.is::<Vec<u8>>());
        assert!(!a.same_as(&PortType::of::<String>()) && !a.is::<String>());
        assert_eq!(a.name(), std::any::type_name::<Vec<u8>>());
        assert_eq!(format!("{a:?}"), a.name());
    }

    #[test]
    fn a_decode_that_loses_a_number_is_refused() {
        let f32s = PortType::of::<Vec<f32>>();
        let err = f32s.decode(b"[1.5, 1e39]", BlobSet::default()).unwrap_err();
        assert!(err.to_string().contains("1e+39 is out of range"), "{err}");
        assert!(f32s.decode(b"[1e-50]", BlobSet::default()).is_err());
        assert!(f32s.decode(b"[0, -2.5, 3e38]", BlobSet::default()).is_ok());
        let map = PortType::of::<HashMap<String, f64>>();
        assert!(map.decode(br#"{"a": 1e300}"#, BlobSet::default()).is_ok());
    }

    /// A map that serializes its members in the order given, as a `HashMap` (or a
    /// `preserve_order` `serde_json::Map`) may.
    struct Pairs(Vec<(&'static str, u32)>);

    impl Serialize for Pairs {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }

    #[test]
    fn objects_are_written_with_sorted_members_whatever_their_order() {
        let (one, two, nested) = (
            serde_json::json!(1),
            serde_json::json!(2),
            serde_json::json!({"z": [{"y": null, "x": "\u{e9}\"q\""}], "a": 1.5}),
        );
        let (a, b, c) = ("a".to_string(), "b".to_string(), "c".to_string());
        // Straight into the object writer, so the sort is exercised even where serde_json's
        // own maps are sorted already.
        let mut out = Vec::new();
        write_object(
            [(&c, &nested), (&b, &two), (&a, &one)].into_iter(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"b":2,"c":{"a":1.5,"z":[{"x":"é\"q\"","y":null}]}}"#
        );
        // Where serde_json's maps are sorted (its default), the bytes are exactly the ones it
        // writes: keys made before this writer existed still match.
        let json = serde_json::json!({"c": nested, "b": 2, "a": 1});
        let plain = serde_json::to_vec(&json).unwrap();
        if plain.starts_with(br#"{"a""#) {
            assert_eq!(canonical_json(&json), plain);
        }
    }

    #[test]
    fn hashes_do_not_depend_on_member_order() {
        let forward = Pairs((0..50).map(|i| (NAMES[i], i as u32)).collect());
        let backward = Pairs((0..50).rev().map(|i| (NAMES[i], i as u32)).collect());
        // Through `encode`, the path `Value::new` takes (`Pairs` is no port value: it does
        // not deserialize).
        let (forward, backward) = (encode(&forward).unwrap().0, encode(&backward).unwrap().0);
        assert_eq!(forward, backward);
        // Two HashMaps of one content, filled in opposite orders at different capacities.
        let mut small: HashMap<String, u32> = HashMap::new();
        let mut large: HashMap<String, u32> = HashMap::with_capacity(4096);
        for i in 0..50 {
            small.insert(NAMES[i].into(), i as u32);
            large.insert(NAMES[49 - i].into(), (49 - i) as u32);
        }
        let (small, large) = (Value::new(small).unwrap(), Value::new(large).unwrap());
        assert_eq!(small.hash(), large.hash());
        assert_eq!(small.encoded(), large.encoded());
        // Bytes from outside in another order decode to the same canonical value.
        let ty = PortType::of::<HashMap<String, u32>>();
        let reversed = format!(
            "{{{}}}",
            (0..50)
                .rev()
                .map(|i| format!("\"{}\":{i}", NAMES[i]))
                .collect::<Vec<_>>()
                .join(",")
        );
        let decoded = ty.decode(reversed.as_bytes(), BlobSet::default()).unwrap();
        assert_eq!(decoded.hash(), small.hash());
    }

    const NAMES: [&str; 50] = [
        "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11", "k12",
        "k13", "k14", "k15", "k16", "k17", "k18", "k19", "k20", "k21", "k22", "k23", "k24", "k25",
        "k26", "k27", "k28", "k29", "k30", "k31", "k32", "k33", "k34", "k35", "k36", "k37", "k38",
        "k39", "k40", "k41", "k42", "k43", "k44", "k45", "k46", "k47", "k48", "k49",
    ];
}
