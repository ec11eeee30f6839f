//! Why a node's current result was computed or reused, for its card
//! (`GET /api/sheets/{sheet}/nodes/{node}/why`), and where the wired inputs of a history
//! entry came from (the history list shows them instead of `null`).
//!
//! A result is explained against the result before it in the sheet's history: both cache
//! keys' preimages ([`Cache::explain`](crate::Cache::explain), else the provenance the sheet
//! stored with each entry) are compared field by field, so the card can say "input `text`
//! changed" rather than only "done".

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use crate::cache::{CacheKey, KeyPreimage, KEY_SCHEMA_VERSION};
use crate::sheet::{HistoryEntry, Provenance};
use crate::value::{canonical_json, ContentHash};
use crate::{Cache, Error};

/// The output a wired input reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Upstream {
    /// The node.
    pub(crate) node: String,
    /// Its output port.
    pub(crate) port: String,
    /// The port's position among the node's outputs (stored outputs are in that order).
    pub(crate) index: usize,
}

/// Where each wired input port of the graph comes from: `(node, port)` → its upstream.
pub(crate) type Wiring = HashMap<(String, String), Upstream>;

/// The wiring of the graph JSON the inspector serves (`nodes` and `edges`).
pub(crate) fn wiring(graph: &Json) -> Wiring {
    let text = |e: &Json, k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let mut outputs: HashMap<String, Vec<String>> = HashMap::new();
    for n in graph["nodes"].as_array().into_iter().flatten() {
        let ports = n["outputs"].as_array().into_iter().flatten();
        outputs.insert(text(n, "name"), ports.map(|p| text(p, "name")).collect());
    }
    let mut wiring = Wiring::new();
    for e in graph["edges"].as_array().into_iter().flatten() {
        let (node, port) = (text(e, "from"), text(e, "from_port"));
        let index = outputs
            .get(&node)
            .and_then(|ports| ports.iter().position(|p| *p == port))
            .unwrap_or(0);
        wiring.insert(
            (text(e, "to"), text(e, "to_port")),
            Upstream { node, port, index },
        );
    }
    wiring
}

/// One difference between two cache-key preimages.
#[derive(Debug, PartialEq)]
enum Change {
    Input {
        port: String,
        from: Option<String>,
        before: Option<Json>,
        after: Option<Json>,
        generated: bool,
    },
    InputAdded(String),
    InputRemoved(String),
    Params(Vec<String>),
    Code,
    Version(Option<String>, Option<String>),
    Identity,
    Outputs,
}

impl Change {
    fn text(&self) -> String {
        match self {
            Change::Input {
                port,
                from,
                before,
                after,
                generated,
            } => {
                let mut text = if *generated {
                    format!("generated input `{port}` changed")
                } else {
                    format!("input `{port}` changed")
                };
                match (before, after) {
                    (Some(b), Some(a)) => text.push_str(&format!(": {} → {}", short(b), short(a))),
                    _ => {
                        if let Some(from) = from {
                            text.push_str(&format!(" (from `{from}`)"));
                        }
                    }
                }
                text
            }
            Change::InputAdded(port) => format!("new input `{port}`"),
            Change::InputRemoved(port) => format!("input `{port}` removed"),
            Change::Params(keys) if keys.is_empty() => "parameters changed".into(),
            Change::Params(keys) => format!("parameters changed: {}", keys.join(", ")),
            Change::Code => "code changed".into(),
            Change::Version(b, a) => format!(
                "version {} → {}",
                b.as_deref().unwrap_or("none"),
                a.as_deref().unwrap_or("none")
            ),
            Change::Identity => "node identity changed".into(),
            Change::Outputs => "output types changed".into(),
        }
    }

    fn to_json(&self) -> Json {
        let mut j = match self {
            Change::Input {
                port,
                from,
                before,
                after,
                generated,
            } => json!({
                "what": "input", "port": port, "from": from, "before": before, "after": after,
                "generated": generated,
            }),
            Change::InputAdded(port) => json!({ "what": "input_added", "port": port }),
            Change::InputRemoved(port) => json!({ "what": "input_removed", "port": port }),
            Change::Params(keys) => json!({ "what": "params", "keys": keys }),
            Change::Code => json!({ "what": "code" }),
            Change::Version(b, a) => json!({ "what": "version", "before": b, "after": a }),
            Change::Identity => json!({ "what": "identity" }),
            Change::Outputs => json!({ "what": "outputs" }),
        };
        j["text"] = json!(self.text());
        j
    }
}

/// A value shortened for one line.
fn short(v: &Json) -> String {
    let text = match v {
        Json::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The keys of two parameter objects whose values differ (empty when they are not objects).
fn changed_params(before: &Json, after: &Json) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = b
        .keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What differs between the key of `before` and of `after` (entries of one node), field by
/// field. `values` gives the recorded value of a constant or generated input, by entry.
fn changes(
    before: &KeyPreimage,
    after: &KeyPreimage,
    recorded: (&Provenance, &Provenance),
    node: &str,
    wiring: &Wiring,
) -> Vec<Change> {
    let mut out = Vec::new();
    if before.identity != after.identity {
        out.push(Change::Identity);
    }
    if before.code != after.code {
        out.push(Change::Code);
    }
    if before.version != after.version {
        out.push(Change::Version(
            before.version.clone(),
            after.version.clone(),
        ));
    }
    if canonical_json(&before.params) != canonical_json(&after.params) {
        out.push(Change::Params(changed_params(
            &before.params,
            &after.params,
        )));
    }
    let old: HashMap<&str, &ContentHash> =
        before.inputs.iter().map(|(p, h)| (p.as_str(), h)).collect();
    let record = |p: &Provenance, port: &str| p.inputs.iter().find(|i| i.port == port).cloned();
    for (port, hash) in &after.inputs {
        match old.get(port.as_str()) {
            None => out.push(Change::InputAdded(port.clone())),
            Some(h) if *h != hash => {
                let (b, a) = (record(recorded.0, port), record(recorded.1, port));
                out.push(Change::Input {
                    port: port.clone(),
                    from: wiring
                        .get(&(node.to_string(), port.clone()))
                        .map(|up| up.node.clone()),
                    before: b.as_ref().and_then(|r| r.value.clone()),
                    after: a.as_ref().and_then(|r| r.value.clone()),
                    generated: a.is_some_and(|r| r.generated),
                });
            }
            Some(_) => {}
        }
    }
    for (port, _) in &before.inputs {
        if !after.inputs.iter().any(|(p, _)| p == port) {
            out.push(Change::InputRemoved(port.clone()));
        }
    }
    if before.outputs != after.outputs && !before.outputs.is_empty() && !after.outputs.is_empty() {
        out.push(Change::Outputs);
    }
    out
}

fn key_of(hex: &str) -> Option<CacheKey> {
    blake3::Hash::from_hex(hex)
        .ok()
        .map(|h| CacheKey(*h.as_bytes()))
}

/// The preimage of an entry's key: the one the cache stored with the result, else one
/// rebuilt from the provenance the sheet stored (which has no output types).
fn preimage_of(cache: &Cache, entry: &HistoryEntry) -> KeyPreimage {
    if let Some(p) = key_of(&entry.key).and_then(|k| cache.explain(&k)) {
        return p;
    }
    let p = &entry.provenance;
    KeyPreimage {
        schema: KEY_SCHEMA_VERSION,
        identity: p.identity.clone(),
        code: p.code.clone(),
        version: p.version.clone(),
        params: p.params.clone(),
        inputs: p.inputs.iter().map(|i| (i.port.clone(), i.hash)).collect(),
        outputs: Vec::new(),
    }
}

/// The explanation of `node`'s current result in a history (newest first):
/// `{ result, outcome, summary, changes, compared_with }` (`result`: the history entry explained).
/// `live_outcome`: how the last run got the current result (`computed`, `cached:workspace`…):
/// a run that found nothing changed serves the selected entry again without a new entry.
pub(crate) fn explain(
    cache: &Cache,
    node: &str,
    history: &[HistoryEntry],
    wiring: &Wiring,
    live_outcome: Option<&str>,
) -> Json {
    let Some(at) = history.iter().position(|e| e.selected) else {
        return json!({ "result": null, "outcome": null, "summary": "not run yet", "changes": [], "compared_with": null });
    };
    let current = &history[at];
    let outcome = match live_outcome {
        Some(cached) if cached.starts_with("cached:") => cached,
        _ => current.outcome.as_str(),
    };
    if let Some(source) = outcome.strip_prefix("cached:") {
        let summary = match source {
            "workspace" => "cached: same key, unchanged since the last run",
            "memory" => "cached: same key, computed earlier by this process",
            "disk" => "cached: same key, read from the cache directory",
            "shared" => "cached: same key, from the shared cache",
            _ => "cached: same key",
        };
        return json!({ "result": current.id, "outcome": outcome, "summary": summary, "changes": [], "compared_with": null });
    }
    let Some(previous) = history[at + 1..].iter().find(|e| !e.is_failure()) else {
        return json!({
            "result": current.id, "outcome": current.outcome, "summary": "first run: nothing earlier to compare with",
            "changes": [], "compared_with": null,
        });
    };
    let compared_with = json!({ "id": previous.id, "run": previous.run });
    if previous.key == current.key {
        return json!({
            "result": current.id, "outcome": current.outcome,
            "summary": "recomputed with the same key: the stored result was not available",
            "changes": [], "compared_with": compared_with,
        });
    }
    let found = changes(
        &preimage_of(cache, previous),
        &preimage_of(cache, current),
        (&previous.provenance, &current.provenance),
        node,
        wiring,
    );
    let summary = if found.is_empty() {
        "recomputed: the key changed".to_string()
    } else {
        let texts: Vec<String> = found.iter().map(Change::text).collect();
        format!("recomputed: {}", texts.join("; "))
    };
    json!({
        "result": current.id, "outcome": current.outcome, "summary": summary,
        "changes": found.iter().map(Change::to_json).collect::<Vec<_>>(),
        "compared_with": compared_with,
    })
}

/// The inputs of a history entry for the list: each with its hash, its value when the sheet
/// recorded it (constants, generated values), and for a wired input the node it came from
/// and, when that node's history still holds an output with the same hash, that value.
pub(crate) fn entry_inputs(
    node: &str,
    entry: &HistoryEntry,
    wiring: &Wiring,
    upstream_history: &mut dyn FnMut(&str) -> Result<Vec<HistoryEntry>, Error>,
    seen: &mut HashMap<String, Vec<HistoryEntry>>,
) -> Vec<Json> {
    entry
        .provenance
        .inputs
        .iter()
        .map(|i| {
            let mut j = json!({ "port": i.port, "value": i.value, "generated": i.generated, "hash": i.hash });
            let Some(up) = wiring.get(&(node.to_string(), i.port.clone())) else {
                return j;
            };
            j["from"] = json!(up.node);
            j["from_port"] = json!(up.port);
            if i.value.is_none() {
                if !seen.contains_key(&up.node) {
                    let entries = upstream_history(&up.node).unwrap_or_default();
                    seen.insert(up.node.clone(), entries);
                }
                if let Some(v) = value_with_hash(&seen[&up.node], up.index, &i.hash) {
                    j["upstream_value"] = v;
                }
            }
            j
        })
        .collect()
}

/// Output `index` of the first entry in `entries` whose encoding hashes to `hash`. Outputs
/// are stored as their canonical encodings parsed to JSON, so re-encoding them canonically
/// gives the bytes the content hash was taken of (a large output stored as a `$cached`
/// reference does not match, and is not shown).
fn value_with_hash(entries: &[HistoryEntry], index: usize, hash: &ContentHash) -> Option<Json> {
    entries.iter().filter(|e| !e.is_failure()).find_map(|e| {
        let v = e.outputs.get(index)?;
        (ContentHash::of(&canonical_json(v)) == *hash).then(|| v.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sheet::InputRecord;

    fn pre(inputs: &[(&str, u8)], code: &str, params: Json) -> KeyPreimage {
        KeyPreimage {
            schema: KEY_SCHEMA_VERSION,
            identity: "fn:x".into(),
            code: code.into(),
            version: None,
            params,
            inputs: inputs
                .iter()
                .map(|(p, h)| (p.to_string(), ContentHash([*h; 32])))
                .collect(),
            outputs: vec!["u64".into()],
        }
    }

    fn prov(values: &[(&str, Option<Json>)]) -> Provenance {
        Provenance {
            identity: "fn:x".into(),
            code: "c".into(),
            version: None,
            params: Json::Null,
            inputs: values
                .iter()
                .map(|(p, v)| InputRecord {
                    port: p.to_string(),
                    hash: ContentHash([0; 32]),
                    value: v.clone(),
                    generated: false,
                })
                .collect(),
            parts: None,
        }
    }

    #[test]
    fn a_changed_wired_input_names_its_upstream_and_a_constant_its_values() {
        let mut wiring = Wiring::new();
        wiring.insert(
            ("n".into(), "text".into()),
            Upstream {
                node: "upper".into(),
                port: "output".into(),
                index: 0,
            },
        );
        let before = pre(&[("text", 1), ("min", 3)], "c", json!({}));
        let after = pre(&[("text", 2), ("min", 4)], "c", json!({}));
        let b = prov(&[("text", None), ("min", Some(json!(3)))]);
        let a = prov(&[("text", None), ("min", Some(json!(6)))]);
        let found = changes(&before, &after, (&b, &a), "n", &wiring);
        let texts: Vec<String> = found.iter().map(Change::text).collect();
        assert_eq!(
            texts,
            [
                "input `text` changed (from `upper`)",
                "input `min` changed: 3 → 6"
            ]
        );
    }

    #[test]
    fn code_params_and_version_changes_are_named() {
        let before = pre(&[("x", 1)], "c1", json!({ "a": 1, "b": 2 }));
        let mut after = pre(&[("x", 1)], "c2", json!({ "a": 1, "b": 3, "c": 0 }));
        after.version = Some("2".into());
        let p = prov(&[]);
        let texts: Vec<String> = changes(&before, &after, (&p, &p), "n", &Wiring::new())
            .iter()
            .map(Change::text)
            .collect();
        assert_eq!(
            texts,
            [
                "code changed",
                "version none → 2",
                "parameters changed: b, c"
            ]
        );
        assert!(changes(&before, &before, (&p, &p), "n", &Wiring::new()).is_empty());
    }

    #[test]
    fn a_stored_output_is_found_by_the_hash_of_its_encoding() {
        let v = json!({ "b": 1.5, "a": [1, 2] });
        let hash = ContentHash::of(&canonical_json(&v));
        let entry = HistoryEntry {
            id: 1,
            run: 1,
            key: String::new(),
            outcome: "computed".into(),
            elapsed_ms: None,
            finished_ms: 0,
            outputs: vec![v.clone()],
            provenance: prov(&[]),
            error: None,
            attempts: None,
            selected: true,
            log_lines: 0,
        };
        assert_eq!(
            value_with_hash(std::slice::from_ref(&entry), 0, &hash),
            Some(v)
        );
        assert_eq!(value_with_hash(&[entry], 0, &ContentHash([9; 32])), None);
    }
}
