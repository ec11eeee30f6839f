//! Why a node's current result was computed or reused, for its card
//! (`GET /api/sheets/{sheet}/nodes/{node}/why`), and where the wired inputs of a history
//! entry came from (the history list shows them instead of `null`).
//!
//! A result is explained against the result before it in the sheet's history: both cache
//! keys' preimages ([`Cache::explain`](crate::Cache::explain), else the provenance the sheet
//! stored with each entry) are compared field by field, so the card can say "input `text`
//! changed" rather than only "done".
//!
//! A stale result is explained against the inputs it was made from ([`stale_reasons`]):
//! which constant changed (its value before and now), which upstream has another result, or,
//! for a node stale only because something above it is, where upstream the change started;
//! and, for a result a changed program no longer makes under its key (a sheet reopened after
//! an edit), which of the node's code, version, parameters or identity changed.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value as Json};

use crate::cache::{CacheKey, KeyPreimage, KEY_SCHEMA_VERSION};
use crate::sheet::{HistoryEntry, PartsRecord, Provenance};
use crate::value::{canonical_json, ContentHash};
use crate::{Cache, Error, NodeResult, Pipeline};

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
    preimage_from_provenance(&entry.provenance)
}

/// A key preimage rebuilt from the provenance a sheet stored with a result (which has no
/// output types).
fn preimage_from_provenance(p: &Provenance) -> KeyPreimage {
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
            "summary": same_key_summary(current),
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

/// Why a result was computed again under the key it already had: for a map whose items
/// were mostly hits, the items computed (one asked for again by hand, say); else the
/// stored result was not available.
fn same_key_summary(current: &HistoryEntry) -> String {
    if let Some(PartsRecord::Items(items)) = &current.provenance.parts {
        let computed: Vec<String> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.outcome == "computed")
            .map(|(i, _)| i.to_string())
            .collect();
        if !computed.is_empty() && computed.len() < items.len() {
            let which = if computed.len() == 1 {
                format!("item {}", computed[0])
            } else {
                format!("items {}", computed.join(", "))
            };
            return format!(
                "recomputed with the same key: {which} computed again, the other {} from the cache",
                items.len() - computed.len()
            );
        }
    }
    "recomputed with the same key: the stored result was not available".to_string()
}

/// Why a stale result is stale, found where the staleness starts.
enum Stale {
    /// The node has no result (everything below it waits for one).
    NoResult,
    /// The node itself changed (its first `own` texts, each naming it: code, version,
    /// parameters), or its own inputs differ from the ones its result was made from.
    Direct { texts: Vec<String>, own: usize },
    /// Only inputs from stale upstream nodes: the nodes where that started (by index,
    /// at most `ROOTS_KEPT` of them) and whether there are more.
    Upstream {
        ports: Vec<String>,
        roots: Vec<usize>,
        more: bool,
    },
}

/// Upstream origins named in one reason; beyond them the reason says "and more".
const ROOTS_KEPT: usize = 3;

/// For each stale node that has a result (by index): why it is stale, in a line for its
/// card. `stale` holds the names of the stale nodes (`Pipeline::stale_nodes`); `recorded`
/// gives the provenance the sheet stored with a node's current result, so a changed
/// constant can show its value before ("input `sigma` changed: 2.5 → 6"). A node stale
/// only because its upstream is names where upstream it started ("input `stats` is out of
/// date: `sigma` changed: 2.5 → 6"). Nodes are visited in topological order without
/// recursion, so graphs of any depth are fine.
pub(crate) fn stale_reasons(
    pipeline: &Pipeline,
    stale: &HashSet<String>,
    recorded: &mut dyn FnMut(&str) -> Option<Provenance>,
) -> HashMap<usize, String> {
    let nodes: Vec<&dyn crate::Node> = pipeline.nodes().collect();
    let count = nodes.len();
    let is_stale: Vec<bool> = (0..count)
        .map(|i| stale.contains(pipeline.node_name(i)))
        .collect();
    if !is_stale.iter().any(|s| *s) {
        return HashMap::new();
    }
    // Wired inputs by node: (port, upstream node, upstream output).
    let mut wired: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); count];
    let mut downs: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut waiting = vec![0usize; count];
    for (from, from_port, to, to_port) in pipeline.edges() {
        if from >= count || to >= count {
            continue;
        }
        wired[to].push((to_port, from, from_port));
        downs[from].push(to);
        waiting[to] += 1;
    }
    // Kahn's algorithm: each node after all of its upstream nodes.
    let mut order: Vec<usize> = (0..count).filter(|&i| waiting[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let n = order[next];
        next += 1;
        for &d in &downs[n] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                order.push(d);
            }
        }
    }
    // Results are read (cloned out of the pipeline) once each, and only where needed.
    let mut results: HashMap<usize, Option<NodeResult>> = HashMap::new();
    fn read<'a>(
        results: &'a mut HashMap<usize, Option<NodeResult>>,
        pipeline: &Pipeline,
        i: usize,
    ) -> &'a Option<NodeResult> {
        results
            .entry(i)
            .or_insert_with(|| pipeline.result(i).ok().flatten())
    }
    let mut result_of = |i: usize| read(&mut results, pipeline, i).clone();
    let mut why: HashMap<usize, Stale> = HashMap::new();
    for &n in &order {
        if !is_stale[n] {
            continue;
        }
        let Some(result) = result_of(n) else {
            why.insert(n, Stale::NoResult);
            continue;
        };
        let spec = nodes[n].spec();
        let mut before: Option<Option<Provenance>> = None;
        // A result made by other code or parameters (a sheet reopened by a changed
        // program): a run computes it again, whatever its inputs.
        let mut direct = if pipeline.made_by_other_code(n) {
            let provenance = before.get_or_insert_with(|| recorded(&spec.name));
            spec_changes(pipeline.cache(), spec, &result, provenance.as_ref())
        } else {
            Vec::new()
        };
        let own = direct.len();
        for (p, port) in spec.inputs.iter().enumerate() {
            let Some(made_from) = result.inputs.get(p) else {
                continue;
            };
            let Ok(Some(now)) = pipeline.constant_value(n, &port.name) else {
                continue;
            };
            if now.hash() == *made_from {
                continue;
            }
            let provenance = before.get_or_insert_with(|| recorded(&spec.name));
            let was = provenance
                .as_ref()
                .and_then(|pr| pr.inputs.iter().find(|i| i.port == port.name))
                .and_then(|i| i.value.clone());
            let values = match was {
                Some(was) => format!(": {} → {}", short(&was), short(&now.to_json())),
                None => format!(": now {}", short(&now.to_json())),
            };
            direct.push(if spec.kind == crate::graph::INPUT_KIND {
                format!("value changed{values}")
            } else {
                format!("input `{}` changed{values}", port.name)
            });
        }
        let mut ports = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        let mut more = false;
        for &(p, up, up_port) in &wired[n] {
            let name = spec.inputs.get(p).map_or("?", |port| port.name.as_str());
            if is_stale[up] {
                ports.push(format!("`{name}`"));
                match why.get(&up) {
                    Some(Stale::Upstream {
                        roots: theirs,
                        more: also,
                        ..
                    }) => {
                        roots.extend(theirs);
                        more |= also;
                    }
                    _ => roots.push(up),
                }
                continue;
            }
            let made_from = result.inputs.get(p);
            let has = result_of(up).and_then(|r| r.outputs.get(up_port).map(|v| v.hash()));
            if has.as_ref() != made_from {
                direct.push(format!(
                    "input `{name}` changed: `{}` has another result",
                    pipeline.node_name(up)
                ));
            }
        }
        let entry = if !direct.is_empty() || ports.is_empty() {
            Stale::Direct { texts: direct, own }
        } else {
            roots.sort_unstable();
            roots.dedup();
            more |= roots.len() > ROOTS_KEPT;
            roots.truncate(ROOTS_KEPT);
            Stale::Upstream { ports, roots, more }
        };
        why.insert(n, entry);
    }
    // An origin as seen from below: an input's new value, or what happened there.
    let origin = |r: usize| -> String {
        let name = pipeline.node_name(r);
        match why.get(&r) {
            Some(Stale::NoResult) | None => format!("`{name}` has no result yet"),
            Some(Stale::Direct { texts, .. }) if texts.is_empty() => format!("`{name}` is stale"),
            // Its own changes name it already ("code of `blur` changed").
            Some(Stale::Direct { texts, own }) if *own == texts.len() => texts.join("; "),
            Some(Stale::Direct { texts, .. }) => match texts[0].strip_prefix("value changed") {
                Some(rest) if texts.len() == 1 => format!("`{name}` changed{rest}"),
                _ => format!("`{name}`: {}", texts.join("; ")),
            },
            Some(Stale::Upstream { .. }) => format!("`{name}` is stale"),
        }
    };
    why.iter()
        .filter_map(|(&n, w)| {
            let text = match w {
                // A node without a result is pending, not stale: its card says so.
                Stale::NoResult => return None,
                Stale::Direct { texts, .. } if texts.is_empty() => {
                    "an input changed since this result".into()
                }
                Stale::Direct { texts, .. } => texts.join("; "),
                Stale::Upstream { ports, roots, more } => {
                    let (noun, verb) = if ports.len() == 1 {
                        ("input", "is")
                    } else {
                        ("inputs", "are")
                    };
                    let mut from: Vec<String> = roots.iter().map(|&r| origin(r)).collect();
                    if *more {
                        from.push("and more upstream".into());
                    }
                    format!(
                        "{noun} {} {verb} out of date: {}",
                        ports.join(", "),
                        from.join("; ")
                    )
                }
            };
            Some((n, text))
        })
        .collect()
}

/// Parameter changes named one by one in a stale line; beyond them it says how many more.
const PARAMS_KEPT: usize = 3;

/// What changed in node `spec` itself since `result` was made (its key is no longer the
/// one the node makes from the same inputs): its code, version, parameters, identity or
/// input ports, each naming the node ("code of `blur` changed", "parameter `model` of
/// `caption` changed: \"a\" → \"b\""). What the result was made by is read from the
/// sheet's record of it, else from the preimage the cache stored with its key; without
/// either, the line says only that the node changed.
fn spec_changes(
    cache: &Cache,
    spec: &crate::NodeSpec,
    result: &NodeResult,
    recorded: Option<&Provenance>,
) -> Vec<String> {
    let name = &spec.name;
    let unknown = || {
        vec![format!(
            "code or parameters of `{name}` changed since this result"
        )]
    };
    let before = match recorded {
        Some(p) => preimage_from_provenance(p),
        None => match cache.explain(&result.key) {
            Some(p) => p,
            None => return unknown(),
        },
    };
    let mut out = Vec::new();
    if before.code != spec.code_fingerprint {
        out.push(format!("code of `{name}` changed"));
    }
    if before.version != spec.config.version {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        out.push(format!(
            "version of `{name}` changed: {} → {}",
            text(&before.version),
            text(&spec.config.version)
        ));
    }
    let mut params = Vec::new();
    param_changes(&before.params, &spec.params, String::new(), &mut params);
    for (path, was, now) in params.iter().take(PARAMS_KEPT) {
        let value = |v: &Option<Json>| v.as_ref().map_or("none".into(), short);
        out.push(format!(
            "parameter `{path}` of `{name}` changed: {} → {}",
            value(was),
            value(now)
        ));
    }
    if params.len() > PARAMS_KEPT {
        out.push(format!(
            "{} more parameters of `{name}` changed",
            params.len() - PARAMS_KEPT
        ));
    }
    let identity = format!("{}:{}", spec.kind, spec.identity);
    // An identity follows its parameters (a model's name is in both): said once.
    if before.identity != identity && params.is_empty() {
        let (was, now) = differing_tails(&before.identity, &identity);
        out.push(format!("identity of `{name}` changed: {was} → {now}"));
    }
    let ports: Vec<&str> = before.inputs.iter().map(|(p, _)| p.as_str()).collect();
    if ports
        != spec
            .inputs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
    {
        out.push(format!("input ports of `{name}` changed"));
    }
    // Only the cache's preimage has the output types (the sheet's record does not).
    let types: Vec<&str> = spec.outputs.iter().map(|p| p.ty.name()).collect();
    if !before.outputs.is_empty() && before.outputs != types {
        out.push(format!("output types of `{name}` changed"));
    }
    if out.is_empty() {
        return unknown();
    }
    out
}

/// The leaves of two parameter values that differ, as `(path, before, after)` with
/// object members joined by dots (`params.temperature`); values that are not both
/// objects are one leaf.
fn param_changes(
    before: &Json,
    after: &Json,
    path: String,
    out: &mut Vec<(String, Option<Json>, Option<Json>)>,
) {
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (b.get(k), a.get(k)) {
                (Some(x), Some(y)) => param_changes(x, y, at, out),
                (x, y) => out.push((at, x.cloned(), y.cloned())),
            }
        }
    } else if canonical_json(before) != canonical_json(after) {
        let path = if path.is_empty() {
            "params".into()
        } else {
            path
        };
        let some = |v: &Json| (!v.is_null()).then(|| v.clone());
        out.push((path, some(before), some(after)));
    }
}

/// Two identities with the part they share at the start (up to a `:`) left out, so the
/// line shows what differs: `fn:a:x` → `fn:b:y` gives `` `a:x` `` and `` `b:y` ``.
fn differing_tails(before: &str, after: &str) -> (String, String) {
    let shared = before
        .char_indices()
        .zip(after.chars())
        .take_while(|((_, b), a)| b == a)
        .filter(|((_, b), _)| *b == ':')
        .map(|((i, _), _)| i + 1)
        .last()
        .unwrap_or(0);
    let tail = |s: &str| {
        let t = &s[shared..];
        if t.chars().count() > 40 {
            format!("`{}…`", t.chars().take(40).collect::<String>())
        } else {
            format!("`{t}`")
        }
    };
    (tail(before), tail(after))
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

    /// a (input) -> double -> plus(double, b): editing `a` makes all three stale, each
    /// saying so from where it sits; `b` and nodes with a fresh result get no reason.
    #[tokio::test]
    async fn stale_results_name_the_change_that_made_them_stale() {
        use crate::{Cache, FnNode, Graph, Scope};
        let mut g = Graph::new("stale").cache(Cache::temporary().unwrap());
        let a = g.input("a", 1u32);
        let b = g.input("b", 10u32);
        let double = g.add(FnNode::sync("double", |x: u32| x * 2).inputs(["x"]), (a,));
        g.add(
            FnNode::sync("plus", |x: u32, y: u32| x + y).inputs(["left", "right"]),
            (double, b),
        );
        let pipeline = g.build().unwrap();
        pipeline.run(Scope::All).await.unwrap();
        let none =
            |p: &Pipeline| stale_reasons(p, &p.stale_nodes().into_iter().collect(), &mut |_| None);
        assert!(none(&pipeline).is_empty());

        pipeline.set_input(&a, 5).unwrap();
        let recorded = prov(&[("value", Some(json!(1)))]);
        let reasons = stale_reasons(
            &pipeline,
            &pipeline.stale_nodes().into_iter().collect(),
            &mut |node| (node == "a").then(|| recorded.clone()),
        );
        let of = |name: &str| reasons.get(&pipeline.node_index(name).unwrap()).cloned();
        assert_eq!(of("a").as_deref(), Some("value changed: 1 → 5"));
        assert_eq!(
            of("double").as_deref(),
            Some("input `x` is out of date: `a` changed: 1 → 5")
        );
        assert_eq!(
            of("plus").as_deref(),
            Some("input `left` is out of date: `a` changed: 1 → 5")
        );
        assert_eq!(of("b"), None);
        // Without the sheet's record the new value is still named.
        let reasons = none(&pipeline);
        assert_eq!(
            reasons
                .get(&pipeline.node_index("a").unwrap())
                .map(String::as_str),
            Some("value changed: now 5")
        );
    }

    /// `a` (input) -> `blur` -> `plus`, with `blur`'s code, version and parameters given.
    fn program(cache: &Cache, code: &str, version: &str, params: Json) -> Pipeline {
        use crate::{Configure, FnNode, Graph};
        let mut g = Graph::new("reopened").cache(cache.clone());
        let a = g.input("a", 1u32);
        let blur = g.add(
            FnNode::sync("blur", |x: u32| x + 1)
                .inputs(["x"])
                .code_fingerprint(code)
                .params(params)
                .version(version),
            (a,),
        );
        g.add(FnNode::sync("plus", |x: u32| x + 10).inputs(["x"]), (blur,));
        g.build().unwrap()
    }

    /// Results made by one program, restored into another whose `blur` changed.
    async fn reopened(changed: Pipeline) -> Pipeline {
        let first = program(
            changed.cache(),
            "c1",
            "1",
            json!({ "model": "a", "steps": 4 }),
        );
        first.run(crate::Scope::All).await.unwrap();
        assert!(first.cache().flush().is_empty());
        for node in ["a", "blur", "plus"] {
            let result = first.result(node).unwrap().unwrap();
            changed.restore_result(node, result).unwrap();
        }
        changed
    }

    /// A sheet reopened by a program whose node changed: the node is stale (a run computes
    /// it again), its card names what changed, and the node below names it as the origin.
    #[tokio::test]
    async fn a_result_made_by_other_code_or_parameters_is_stale_and_says_why() {
        let reasons = |p: &Pipeline, recorded: Option<Provenance>| {
            let stale: HashSet<String> = p.stale_nodes().into_iter().collect();
            let reasons = stale_reasons(p, &stale, &mut |node| {
                (node == "blur").then(|| recorded.clone()).flatten()
            });
            let of = |name: &str| reasons.get(&p.node_index(name).unwrap()).cloned();
            (stale, of("blur"), of("plus"))
        };
        let cache = Cache::temporary().unwrap();
        // Unchanged: nothing is stale.
        let same = reopened(program(
            &cache,
            "c1",
            "1",
            json!({ "model": "a", "steps": 4 }),
        ))
        .await;
        assert!(same.stale_nodes().is_empty(), "{:?}", same.stale_nodes());

        // Code changed: read from the preimage the cache stored with the key.
        let code = reopened(program(
            &cache,
            "c2",
            "1",
            json!({ "model": "a", "steps": 4 }),
        ))
        .await;
        let (stale, blur, plus) = reasons(&code, None);
        assert!(!stale.contains("a") && stale.contains("blur") && stale.contains("plus"));
        assert_eq!(blur.as_deref(), Some("code of `blur` changed"));
        assert_eq!(
            plus.as_deref(),
            Some("input `x` is out of date: code of `blur` changed")
        );

        // A parameter and the version changed: named with their values before and now,
        // from the sheet's record of the result.
        let params = reopened(program(
            &cache,
            "c1",
            "2",
            json!({ "model": "b", "steps": 4 }),
        ))
        .await;
        let mut record = prov(&[("x", None)]);
        record.identity = format!("fn:{}", params.nodes().nth(1).unwrap().spec().identity);
        record.code = "c1".into();
        record.version = Some("1".into());
        record.params = json!({ "model": "a", "steps": 4 });
        let (_, blur, _) = reasons(&params, Some(record));
        assert_eq!(
            blur.as_deref(),
            Some("version of `blur` changed: 1 → 2; parameter `model` of `blur` changed: \"a\" → \"b\"")
        );

        // Stale agrees with what a run does: `blur` is computed again (`plus`, whose
        // input came out the same, is then served its own result).
        let report = params.run(crate::Scope::All).await.unwrap();
        assert_eq!(report.computed(), ["blur"]);
        assert!(matches!(
            report.outcome("plus"),
            Some(crate::Outcome::Cached(_))
        ));
        assert!(params.stale_nodes().is_empty());
    }

    #[test]
    fn parameter_changes_are_named_by_path_and_identities_by_what_differs() {
        let mut found = Vec::new();
        param_changes(
            &json!({ "model": "a", "params": { "temperature": 0.2, "seed": 1 } }),
            &json!({ "model": "a", "params": { "temperature": 0.7 }, "task": "chat" }),
            String::new(),
            &mut found,
        );
        assert_eq!(
            found,
            [
                ("params.seed".to_string(), Some(json!(1)), None),
                (
                    "params.temperature".to_string(),
                    Some(json!(0.2)),
                    Some(json!(0.7))
                ),
                ("task".to_string(), None, Some(json!("chat"))),
            ]
        );
        assert_eq!(
            differing_tails("gradio:hf:me/app:/predict", "gradio:hf:me/app:/caption"),
            ("`/predict`".to_string(), "`/caption`".to_string())
        );
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

    #[test]
    fn a_map_computed_again_under_its_key_names_the_items_that_ran() {
        let item = |outcome: &str| crate::sheet::ItemRecord {
            key: "k".into(),
            outcome: outcome.into(),
            error: None,
        };
        let mut provenance = prov(&[]);
        provenance.parts = Some(PartsRecord::Items(vec![
            item("disk"),
            item("computed"),
            item("memory"),
        ]));
        let mut entry = HistoryEntry {
            id: 2,
            run: 2,
            key: "same".into(),
            outcome: "computed".into(),
            elapsed_ms: None,
            finished_ms: 0,
            outputs: vec![],
            provenance,
            error: None,
            attempts: None,
            selected: true,
            log_lines: 0,
        };
        assert_eq!(
            same_key_summary(&entry),
            "recomputed with the same key: item 1 computed again, the other 2 from the cache"
        );
        entry.provenance.parts = None;
        assert_eq!(
            same_key_summary(&entry),
            "recomputed with the same key: the stored result was not available"
        );
    }
}
