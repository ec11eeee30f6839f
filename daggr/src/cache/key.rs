//! The cache key: what a node result depends on ([`KeyPreimage`]) and its hash ([`CacheKey`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::{canonical_json, ContentHash};

/// Bumped whenever the key layout or the stored record format changes: every old entry becomes a miss.
pub const KEY_SCHEMA_VERSION: u32 = 1;

const NODE_KEY_PREFIX: &str = "daggr/v1/node/";

/// A cache key: BLAKE3 of the canonical [`KeyPreimage`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The key's name in cacache's index.
    pub(super) fn index_key(&self) -> String {
        format!("{NODE_KEY_PREFIX}{}", self.to_hex())
    }

    /// The key an index name stands for, if it names a node result.
    pub(super) fn from_index_key(key: &str) -> Option<Self> {
        Self::from_hex(key.strip_prefix(NODE_KEY_PREFIX)?)
    }

    /// The key of its [`CacheKey::to_hex`] form.
    pub(super) fn from_hex(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

impl Serialize for CacheKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Everything a node result depends on. Its canonical JSON is hashed into the
/// [`CacheKey`] and stored beside the entry, so a miss can be explained field by field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyPreimage {
    /// [`KEY_SCHEMA_VERSION`].
    pub schema: u32,
    /// Node kind and identity (function path, Space + endpoint, model + provider).
    pub identity: String,
    /// Code fingerprint (hash of the function's tokens, or the remote revision).
    pub code: String,
    /// Manual version.
    pub version: Option<String>,
    /// Parameters; they enter the key as canonical JSON (members sorted by key), so the
    /// order an object's members were inserted in does not matter.
    pub params: serde_json::Value,
    /// Per input port: its name and the content hash of the value it received. Upstream
    /// values enter by their *output* hash, so a byte-identical rerun upstream changes nothing here.
    pub inputs: Vec<(String, ContentHash)>,
    /// Output port types (a change of output type must not decode old bytes).
    pub outputs: Vec<String>,
}

impl KeyPreimage {
    /// The key: BLAKE3 over every field, each length-prefixed (so no two preimages share an
    /// encoding). Hashing fields directly, rather than a JSON rendering, keeps it cheap on
    /// the executor's path; the JSON form is what is stored to explain a miss.
    pub fn key(&self) -> CacheKey {
        fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let mut h = blake3::Hasher::new();
        h.update(b"daggr-cache-key");
        h.update(&self.schema.to_le_bytes());
        field(&mut h, self.identity.as_bytes());
        field(&mut h, self.code.as_bytes());
        match &self.version {
            Some(v) => {
                h.update(&[1]);
                field(&mut h, v.as_bytes());
            }
            None => {
                h.update(&[0]);
            }
        }
        // Canonical JSON, not `to_string()`: serde_json keeps insertion order when any crate
        // in the build turns its `preserve_order` feature on. Without it the bytes are the
        // same as `to_string()`'s, so keys did not change (no schema bump).
        field(&mut h, &canonical_json(&self.params));
        h.update(&(self.inputs.len() as u64).to_le_bytes());
        for (name, hash) in &self.inputs {
            field(&mut h, name.as_bytes());
            h.update(&hash.0);
        }
        h.update(&(self.outputs.len() as u64).to_le_bytes());
        for ty in &self.outputs {
            field(&mut h, ty.as_bytes());
        }
        CacheKey(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::ser::SerializeMap;

    use super::*;
    use crate::cache::tests::preimage;

    #[test]
    fn keys_change_with_every_field() {
        let base = preimage(1);
        let mut other = base.clone();
        other.code = "d".into();
        assert_ne!(base.key(), other.key());
        let mut other = base.clone();
        other.version = Some("2".into());
        assert_ne!(base.key(), other.key());
        assert_ne!(base.key(), preimage(2).key());
        assert_eq!(base.key(), preimage(1).key());
    }

    /// Members serialized in the order given, as a `HashMap` (or a `serde_json::Map` under
    /// `preserve_order`) hands them over.
    struct Pairs(Vec<(String, u32)>);

    impl Serialize for Pairs {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }

    fn with_params(params: impl Serialize) -> KeyPreimage {
        KeyPreimage {
            params: serde_json::to_value(params).unwrap(),
            ..preimage(1)
        }
    }

    #[test]
    fn objects_with_the_same_members_in_other_orders_give_the_same_key() {
        let pairs: Vec<(String, u32)> = (0..64).map(|i| (format!("p{i}"), i)).collect();
        let forward = with_params(Pairs(pairs.clone()));
        let backward = with_params(Pairs(pairs.iter().rev().cloned().collect()));
        assert_eq!(forward.key(), backward.key());
        // Nested, and through HashMaps filled in opposite orders at different capacities.
        let mut small: HashMap<String, HashMap<String, u32>> = HashMap::new();
        let mut large: HashMap<String, HashMap<String, u32>> = HashMap::with_capacity(1024);
        for (k, v) in &pairs {
            small
                .entry("inner".into())
                .or_default()
                .insert(k.clone(), *v);
        }
        for (k, v) in pairs.iter().rev() {
            large
                .entry("inner".into())
                .or_insert_with(|| HashMap::with_capacity(512))
                .insert(k.clone(), *v);
        }
        assert_eq!(with_params(&small).key(), with_params(&large).key());
        // A different member value is a different key.
        small.get_mut("inner").unwrap().insert("p0".into(), 99);
        assert_ne!(with_params(&small).key(), with_params(&large).key());
    }

    #[test]
    fn keys_of_sorted_params_are_what_they_were() {
        // The key of `preimage(1)` as computed before params were canonicalised by hand
        // (from `serde_json::Value::to_string()` with sorted maps): it must not move, or
        // every existing cache entry would become a miss without a schema bump.
        let mut h = blake3::Hasher::new();
        let p = preimage(1);
        h.update(b"daggr-cache-key");
        h.update(&p.schema.to_le_bytes());
        for bytes in [p.identity.as_bytes(), p.code.as_bytes()] {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.update(&[0]);
        let params = br#"{"a":2,"b":1}"#;
        h.update(&(params.len() as u64).to_le_bytes());
        h.update(params);
        h.update(&1u64.to_le_bytes());
        h.update(&1u64.to_le_bytes());
        h.update(b"x");
        h.update(&p.inputs[0].1 .0);
        h.update(&1u64.to_le_bytes());
        h.update(&3u64.to_le_bytes());
        h.update(b"u32");
        assert_eq!(p.key(), CacheKey(*h.finalize().as_bytes()));
    }
}
