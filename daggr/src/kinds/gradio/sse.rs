//! Server-sent events as Gradio writes them, and the diffs of its queue protocol.
//!
//! Gradio frames each event as `event: <name>\ndata: <json>\n\n` on the `/call` route and as
//! `data: <json>\n\n` on `/queue/data`. [`SseParser`] (the one event-stream parser of the
//! remote node kinds, shared with inference streams) turns the byte chunks of a response
//! into [`SseEvent`]s, whatever the chunk boundaries; [`apply_diff`] applies the
//! `[[op, path, value], …]` edits that `/queue/data` sends for generator outputs after
//! the first one.

use serde_json::Value as Json;

#[cfg(doc)]
use crate::kinds::http::sse::{SseEvent, SseParser};

/// Applies a Gradio diff (`[[op, path, value], …]`, ops `replace`, `append`, `add`,
/// `delete`) to `target`, as `gradio_client.utils.apply_diff` does.
pub(crate) fn apply_diff(target: Json, diff: &Json) -> Result<Json, String> {
    let Some(edits) = diff.as_array() else {
        return Err(format!("a diff must be a list, got {diff}"));
    };
    let mut target = target;
    for edit in edits {
        let (Some(op), Some(path), Some(value)) = (
            edit.get(0).and_then(Json::as_str),
            edit.get(1).and_then(Json::as_array),
            edit.get(2),
        ) else {
            // `delete` edits may omit the value.
            match (
                edit.get(0).and_then(Json::as_str),
                edit.get(1).and_then(Json::as_array),
            ) {
                (Some("delete"), Some(path)) => {
                    target = apply_edit(target, path, "delete", &Json::Null)?;
                    continue;
                }
                _ => return Err(format!("malformed diff edit {edit}")),
            }
        };
        target = apply_edit(target, path, op, value)?;
    }
    Ok(target)
}

fn apply_edit(mut target: Json, path: &[Json], op: &str, value: &Json) -> Result<Json, String> {
    let Some((last, parents)) = path.split_last() else {
        return match op {
            "replace" => Ok(value.clone()),
            "append" => append(target, value),
            _ => Err(format!("diff op `{op}` needs a path")),
        };
    };
    let mut current = &mut target;
    for step in parents {
        current = index_mut(current, step)?;
    }
    match op {
        "replace" => *index_mut(current, last)? = value.clone(),
        "append" => {
            let slot = index_mut(current, last)?;
            *slot = append(slot.take(), value)?;
        }
        "add" => match current {
            Json::Array(items) => {
                let i = as_index(last)?.min(items.len());
                items.insert(i, value.clone());
            }
            Json::Object(map) => {
                map.insert(key(last), value.clone());
            }
            other => return Err(format!("cannot add into {other}")),
        },
        "delete" => match current {
            Json::Array(items) => {
                let i = as_index(last)?;
                if i < items.len() {
                    items.remove(i);
                }
            }
            Json::Object(map) => {
                map.remove(&key(last));
            }
            other => return Err(format!("cannot delete from {other}")),
        },
        other => return Err(format!("unknown diff op `{other}`")),
    }
    Ok(target)
}

fn append(target: Json, value: &Json) -> Result<Json, String> {
    match (target, value) {
        (Json::String(mut a), Json::String(b)) => {
            a.push_str(b);
            Ok(Json::String(a))
        }
        (Json::Array(mut a), Json::Array(b)) => {
            a.extend(b.iter().cloned());
            Ok(Json::Array(a))
        }
        (Json::Null, v) => Ok(v.clone()),
        (t, v) => Err(format!("cannot append {v} to {t}")),
    }
}

fn key(step: &Json) -> String {
    match step {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_index(step: &Json) -> Result<usize, String> {
    step.as_u64()
        .map(|i| i as usize)
        .or_else(|| step.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| format!("`{step}` is not a list index"))
}

fn index_mut<'a>(current: &'a mut Json, step: &Json) -> Result<&'a mut Json, String> {
    match current {
        Json::Array(items) => {
            let i = as_index(step)?;
            let len = items.len();
            items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} out of range (length {len})"))
        }
        Json::Object(map) => Ok(map.entry(key(step)).or_insert(Json::Null)),
        other => Err(format!("cannot index {other} with {step}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_apply_like_gradio_client() {
        let v = apply_diff(json!("ab0"), &json!([["append", [], " ab1"]])).unwrap();
        assert_eq!(v, json!("ab0 ab1"));
        let v = apply_diff(
            json!({"a": [1, 2]}),
            &json!([["add", ["a", 1], 9], ["replace", ["b"], true]]),
        )
        .unwrap();
        assert_eq!(v, json!({"a": [1, 9, 2], "b": true}));
        let v = apply_diff(v, &json!([["delete", ["a", 0]], ["append", ["a"], [3]]])).unwrap();
        assert_eq!(v, json!({"a": [9, 2, 3], "b": true}));
        assert_eq!(
            apply_diff(json!(1), &json!([["replace", [], 2]])).unwrap(),
            json!(2)
        );
        assert!(apply_diff(json!(1), &json!([["frobnicate", [], 2]])).is_err());
    }
}
