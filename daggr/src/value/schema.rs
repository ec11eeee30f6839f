//! JSON Schemas of port types, for the workflow API's OpenAPI document.
//!
//! A type's schema is read from its own serde implementation (`serde-reflection` traces
//! what `Deserialize` asks for: field names as serde sees them, renames included), then
//! written as JSON Schema for serde_json's encoding of it. No derive is asked of users'
//! types. What cannot be traced (a type that deserializes "any" value, such as
//! `serde_json::Value`, untagged enums or `#[serde(flatten)]`) gets the schema `{}` (any
//! JSON), which is true if unhelpful. Media types get the schema of their blob reference.

use std::any::TypeId;

use serde::de::DeserializeOwned;
use serde_json::{json, Value as Json};
use serde_reflection::{
    ContainerFormat, Format, FormatHolder, Named, Registry, Samples, Tracer, TracerConfig,
    VariantFormat,
};

use super::media::{Audio, File, Image, Video};

/// The JSON Schema of `T` as serde_json encodes it.
pub(crate) fn schema_of<T: DeserializeOwned + 'static>() -> Json {
    let media = [
        (TypeId::of::<Image>(), "image"),
        (TypeId::of::<Audio>(), "audio"),
        (TypeId::of::<Video>(), "video"),
        (TypeId::of::<File>(), "file"),
    ];
    if let Some((_, kind)) = media.iter().find(|(id, _)| *id == TypeId::of::<T>()) {
        return media_schema(kind);
    }
    // A Deserialize implementation may panic on the tracer's unusual requests: any JSON.
    std::panic::catch_unwind(trace::<T>)
        .ok()
        .flatten()
        .unwrap_or_else(|| json!({}))
}

fn trace<T: DeserializeOwned>() -> Option<Json> {
    let samples = Samples::new();
    // The enums whose variants are to be traced one pass each: serde-reflection marks an
    // enum met in a pass as incomplete, and visits only its first variant while it is
    // marked; clearing the marks after each pass lets the next pass take the next variant.
    // Nested enums are not known until a registry is refused for missing their variants,
    // hence the rounds.
    let mut enums: Vec<String> = Vec::new();
    for _round in 0..MAX_ROUNDS {
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut format = None;
        for _ in 0..MAX_PASSES {
            let traced = tracer.trace_type_once::<T>(&samples).ok()?.0;
            let root = match &traced {
                Format::TypeName(name) => Some(name.clone()),
                _ => None,
            };
            format = Some(traced);
            let mut incomplete = false;
            for name in enums.iter().chain(&root) {
                incomplete |= tracer.check_incomplete_enum(name).is_some();
            }
            if !incomplete {
                break;
            }
        }
        match tracer.registry() {
            Ok(registry) => {
                let mut format = format?;
                format.normalize().ok()?;
                let writer = Writer {
                    registry: &registry,
                    depth: 0,
                };
                return Some(writer.format(&format));
            }
            Err(serde_reflection::Error::MissingVariants(missing))
                if missing.iter().any(|m| !enums.contains(m)) =>
            {
                enums.extend(missing);
            }
            Err(_) => return None,
        }
    }
    None
}

/// Tracing passes per round: enough for enums of up to this many variants.
const MAX_PASSES: usize = 256;
/// Rounds: how deep enums may nest inside one another.
const MAX_ROUNDS: usize = 8;

/// A media value: a reference to content-addressed bytes (upload them with
/// `POST /api/blobs`; outputs also carry a `url` to download them).
fn media_schema(kind: &str) -> Json {
    json!({
        "type": "object",
        "description": format!("{kind} bytes by reference: upload them with POST /api/blobs, which answers this object"),
        "required": ["kind", "mime", "blob"],
        "properties": {
            "kind": { "const": kind },
            "mime": { "type": "string" },
            "name": { "type": "string" },
            "size": { "type": "integer", "minimum": 0 },
            "blob": { "type": "string", "description": "the content's integrity string (sha256-…)" },
            "url": { "type": "string", "description": "where to download the bytes (outputs only)" },
        },
    })
}

/// Nesting deeper than this (a recursive type) is left as any JSON.
const MAX_DEPTH: usize = 32;

struct Writer<'a> {
    registry: &'a Registry,
    depth: usize,
}

impl Writer<'_> {
    fn nested(&self) -> Writer<'_> {
        Writer {
            registry: self.registry,
            depth: self.depth + 1,
        }
    }

    fn format(&self, format: &Format) -> Json {
        if self.depth > MAX_DEPTH {
            return json!({});
        }
        let int = |min: Option<i64>| match min {
            Some(min) => json!({ "type": "integer", "minimum": min }),
            None => json!({ "type": "integer" }),
        };
        match format {
            Format::Variable(_) => json!({}),
            Format::TypeName(name) => match self.registry.get(name) {
                Some(container) => self.nested().container(container),
                None => json!({}),
            },
            Format::Unit => json!({ "type": "null" }),
            Format::Bool => json!({ "type": "boolean" }),
            Format::I8 | Format::I16 | Format::I32 | Format::I64 | Format::I128 => int(None),
            Format::U8 | Format::U16 | Format::U32 | Format::U64 | Format::U128 => int(Some(0)),
            Format::F32 | Format::F64 => json!({ "type": "number" }),
            Format::Char => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
            Format::Str => json!({ "type": "string" }),
            Format::Bytes => {
                json!({ "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": 255 } })
            }
            Format::Option(inner) => {
                json!({ "anyOf": [self.nested().format(inner), { "type": "null" }] })
            }
            Format::Seq(inner) => json!({ "type": "array", "items": self.nested().format(inner) }),
            Format::Map { value, .. } => {
                json!({ "type": "object", "additionalProperties": self.nested().format(value) })
            }
            Format::Tuple(items) => self.tuple(items),
            Format::TupleArray { content, size } => json!({
                "type": "array", "items": self.nested().format(content),
                "minItems": size, "maxItems": size,
            }),
        }
    }

    fn tuple(&self, items: &[Format]) -> Json {
        let items: Vec<Json> = items.iter().map(|f| self.nested().format(f)).collect();
        json!({
            "type": "array", "prefixItems": items,
            "minItems": items.len(), "maxItems": items.len(),
        })
    }

    fn fields(&self, fields: &[Named<Format>]) -> Json {
        let properties: serde_json::Map<String, Json> = fields
            .iter()
            .map(|f| (f.name.clone(), self.nested().format(&f.value)))
            .collect();
        // An `Option` field may be left out (serde fills `None`); the others are required.
        let required: Vec<&str> = fields
            .iter()
            .filter(|f| !matches!(f.value, Format::Option(_)))
            .map(|f| f.name.as_str())
            .collect();
        json!({ "type": "object", "properties": properties, "required": required })
    }

    fn container(&self, container: &ContainerFormat) -> Json {
        match container {
            ContainerFormat::UnitStruct => json!({ "type": "null" }),
            ContainerFormat::NewTypeStruct(inner) => self.format(inner),
            ContainerFormat::TupleStruct(items) => self.tuple(items),
            ContainerFormat::Struct(fields) => self.fields(fields),
            ContainerFormat::Enum(variants) => {
                // serde_json: a unit variant is its name; the others `{ "Name": … }`.
                let one_of: Vec<Json> = variants
                    .values()
                    .map(|v| {
                        let body = match &v.value {
                            VariantFormat::Unit => return json!({ "const": v.name }),
                            VariantFormat::Variable(_) => json!({}),
                            VariantFormat::NewType(inner) => self.format(inner),
                            VariantFormat::Tuple(items) => self.tuple(items),
                            VariantFormat::Struct(fields) => self.fields(fields),
                        };
                        json!({
                            "type": "object", "properties": { v.name.clone(): body },
                            "required": [v.name], "additionalProperties": false,
                        })
                    })
                    .collect();
                json!({ "oneOf": one_of })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Caption {
        text_body: String,
        score: f32,
        tags: Vec<String>,
        lang: Option<String>,
        mode: Mode,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    enum Mode {
        Fast,
        Exact { tolerance: f64 },
    }

    #[test]
    fn structs_enums_and_primitives_follow_serde() {
        let schema = schema_of::<Caption>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["textBody"]["type"], "string");
        assert_eq!(schema["properties"]["score"]["type"], "number");
        assert_eq!(schema["properties"]["tags"]["items"]["type"], "string");
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&json!("textBody")));
        assert!(!required.contains(&json!("lang")), "{schema}");
        let modes = schema["properties"]["mode"]["oneOf"].as_array().unwrap();
        assert_eq!(modes[0], json!({ "const": "Fast" }));
        assert_eq!(
            modes[1]["properties"]["Exact"]["properties"]["tolerance"]["type"],
            "number"
        );
        assert_eq!(
            schema_of::<u32>(),
            json!({ "type": "integer", "minimum": 0 })
        );
        assert_eq!(
            schema_of::<(String, i64)>()["prefixItems"][1]["type"],
            "integer"
        );
        assert_eq!(schema_of::<Image>()["properties"]["kind"]["const"], "image");
        // Not traceable: any JSON.
        assert_eq!(schema_of::<serde_json::Value>(), json!({}));
    }
}
