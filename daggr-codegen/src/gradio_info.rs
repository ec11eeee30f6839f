//! What a Gradio app says about itself: the endpoints of its `GET {api_prefix}/info`
//! answer ([`parse_info`]), as the runtime's `GradioNode` checks its wiring against them
//! and `cargo daggr codegen gradio` writes bindings from them. Pure functions: one copy,
//! so the two read an app alike; the requests are the runtime's.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// One parameter of an endpoint, as `/info` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// `parameter_name` (or the label, on servers without parameter names).
    pub name: String,
    /// The component's label.
    pub label: String,
    /// Whether the parameter may be left out (its default is then sent).
    pub has_default: bool,
    /// The default value.
    pub default: Json,
    /// Whether the parameter takes a file (a FileData object).
    pub is_file: bool,
    /// The component, e.g. `Textbox`, `Image`.
    pub component: String,
    /// The JSON schema of the value (`type`); `null` when not given.
    pub schema: Json,
    /// The Python type gradio_client shows (`python_type.type`: `str`, `filepath`,
    /// `list[str]`); empty when not given.
    pub python_type: String,
}

impl ParamInfo {
    /// The strings the parameter takes, when `/info` lists them: the choices of a
    /// Dropdown or Radio (`"enum"` in its schema), or of each item of a list (a
    /// CheckboxGroup, a multiselect Dropdown: `"items": {"enum": …}`). `None` when there
    /// is no list, it is empty, or a choice is not a string (Gradio lists a choice's value,
    /// which may be a number). Gradio lists the choices of a Dropdown made with
    /// `allow_custom_value=True` too, though it then takes other strings as well.
    pub fn choices(&self) -> Option<Vec<String>> {
        let list = self
            .schema
            .get("enum")
            .or_else(|| self.schema.pointer("/items/enum"))?
            .as_array()?;
        let choices: Option<Vec<String>> = list
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect();
        choices.filter(|c| !c.is_empty())
    }

    /// The least and greatest value a Slider takes, from the description Gradio gives its
    /// schema (`"numeric value between 8 and 64"`, Gradio 4, 5 and 6 alike); `None` for
    /// other parameters.
    pub fn range(&self) -> Option<(f64, f64)> {
        let text = self.schema.get("description")?.as_str()?;
        let (low, high) = text
            .trim()
            .strip_prefix("numeric value between ")?
            .split_once(" and ")?;
        let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        Some((low, high))
    }
}

/// One return value of an endpoint, as `/info` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReturnInfo {
    /// The component's label.
    pub label: String,
    /// Whether the value is a file (or holds files).
    pub is_file: bool,
    /// The component, e.g. `Image`.
    pub component: String,
    /// The JSON schema of the value (`type`); `null` when not given.
    pub schema: Json,
    /// The Python type gradio_client shows (`python_type.type`); empty when not given.
    pub python_type: String,
}

/// An endpoint's description, parameters and returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointInfo {
    /// The endpoint's docs (its function's docstring), trimmed; empty when none.
    pub description: String,
    /// Parameters, in call order.
    pub parameters: Vec<ParamInfo>,
    /// Return values, in order.
    pub returns: Vec<ReturnInfo>,
}

/// The named endpoints of an app's `GET {api_prefix}/info` answer (Gradio 4, 5 and 6
/// answer in the same shape), by API name with one leading slash. An answer without a
/// `named_endpoints` object is an error saying what it is instead.
///
/// The map is sorted by name whatever the JSON's order (serde_json keeps insertion order
/// when some crate of the build turns on its `preserve_order` feature).
pub fn parse_info(info: &Json) -> Result<BTreeMap<String, EndpointInfo>, String> {
    let named = info
        .get("named_endpoints")
        .and_then(Json::as_object)
        .ok_or_else(|| match info {
            Json::Object(map) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
                format!("no `named_endpoints` object (keys: {})", keys.join(", "))
            }
            other => format!("expected a JSON object, got {}", kind_of(other)),
        })?;
    let list = |e: &Json, key: &str| e.get(key).and_then(Json::as_array).cloned();
    Ok(named
        .iter()
        .map(|(api, e)| {
            let endpoint = EndpointInfo {
                description: str_at(e, "description").trim().to_string(),
                parameters: list(e, "parameters")
                    .unwrap_or_default()
                    .iter()
                    .map(param_info)
                    .collect(),
                returns: list(e, "returns")
                    .unwrap_or_default()
                    .iter()
                    .map(return_info)
                    .collect(),
            };
            (format!("/{}", api.trim_start_matches('/')), endpoint)
        })
        .collect())
}

fn param_info(p: &Json) -> ParamInfo {
    let label = str_at(p, "label").to_string();
    let python_type = python_type(p);
    ParamInfo {
        name: p
            .get("parameter_name")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| label.clone()),
        label,
        has_default: p.get("parameter_has_default").and_then(Json::as_bool) == Some(true),
        default: p.get("parameter_default").cloned().unwrap_or(Json::Null),
        // gradio_client treats a `filepath` parameter as a file even when its schema does
        // not say so.
        is_file: p.get("type").is_some_and(schema_has_file) || python_type == "filepath",
        component: str_at(p, "component").to_string(),
        schema: p.get("type").cloned().unwrap_or(Json::Null),
        python_type,
    }
}

fn return_info(r: &Json) -> ReturnInfo {
    ReturnInfo {
        label: str_at(r, "label").to_string(),
        is_file: r.get("type").is_some_and(schema_has_file),
        component: str_at(r, "component").to_string(),
        schema: r.get("type").cloned().unwrap_or(Json::Null),
        python_type: python_type(r),
    }
}

fn str_at<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or("")
}

fn python_type(v: &Json) -> String {
    v.pointer("/python_type/type")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string()
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Whether a JSON schema describes a file (a FileData object) anywhere inside, as
/// gradio_client decides it: a title ending in `FileData` (or `ImageData`), or an object
/// with `path` and `meta` properties.
pub fn schema_has_file(schema: &Json) -> bool {
    match schema {
        Json::Object(map) => {
            let title = map.get("title").and_then(Json::as_str).unwrap_or("");
            if title.ends_with("FileData") || title == "ImageData" {
                return true;
            }
            if let Some(props) = map.get("properties").and_then(Json::as_object) {
                if props.contains_key("path") && props.contains_key("meta") {
                    return true;
                }
            }
            map.values().any(schema_has_file)
        }
        Json::Array(items) => items.iter().any(schema_has_file),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_parameters_are_recognised_in_schemas() {
        assert!(schema_has_file(
            &json!({"title": "ImageData", "type": "object"})
        ));
        assert!(schema_has_file(
            &json!({"$defs": {"FileData": {"title": "FileData"}}, "items": {"$ref": "#/$defs/FileData"}})
        ));
        assert!(schema_has_file(
            &json!({"properties": {"path": {}, "meta": {}}})
        ));
        assert!(!schema_has_file(&json!({"type": "string"})));
    }

    fn param_with(schema: Json) -> ParamInfo {
        ParamInfo {
            name: "p".into(),
            label: "p".into(),
            has_default: false,
            default: Json::Null,
            is_file: false,
            component: String::new(),
            schema,
            python_type: String::new(),
        }
    }

    #[test]
    fn choices_and_ranges_come_from_the_schema() {
        // As Gradio 4.44, 5.50 and 6.31 describe a Dropdown, a Radio, a CheckboxGroup.
        let dropdown = param_with(json!({"type": "string", "enum": ["red", "green"]}));
        assert_eq!(dropdown.choices(), Some(vec!["red".into(), "green".into()]));
        let radio = param_with(json!({"enum": ["Sky Blue"], "title": "Radio", "type": "string"}));
        assert_eq!(radio.choices(), Some(vec!["Sky Blue".into()]));
        let group = param_with(
            json!({"items": {"enum": ["a", "b"], "type": "string"}, "title": "Checkbox Group", "type": "array"}),
        );
        assert_eq!(group.choices(), Some(vec!["a".into(), "b".into()]));
        // Choices whose values are numbers, no choices, no list: not string choices.
        assert_eq!(param_with(json!({"enum": [1, 2]})).choices(), None);
        assert_eq!(param_with(json!({"enum": []})).choices(), None);
        assert_eq!(param_with(json!({"type": "string"})).choices(), None);

        let slider =
            param_with(json!({"type": "number", "description": "numeric value between 8 and 64"}));
        assert_eq!(slider.range(), Some((8.0, 64.0)));
        let floats = param_with(
            json!({"type": "number", "description": "numeric value between -0.5 and 1.5"}),
        );
        assert_eq!(floats.range(), Some((-0.5, 1.5)));
        assert_eq!(
            param_with(json!({"type": "number", "description": "a weight"})).range(),
            None
        );
        assert_eq!(param_with(json!({"type": "number"})).range(), None);
    }

    #[test]
    fn info_describes_endpoints() {
        let info = json!({
            "named_endpoints": {
                "/upper": {
                    "description": "  Shouts.  ",
                    "parameters": [
                        {"label": "Text", "parameter_name": "text", "parameter_has_default": false,
                         "parameter_default": null, "type": {"type": "string"},
                         "python_type": {"type": "str", "description": ""}, "component": "Textbox"},
                        {"label": "Path", "parameter_has_default": true, "parameter_default": "x",
                         "type": {"type": "string"}, "python_type": {"type": "filepath"},
                         "component": "File"}
                    ],
                    "returns": [
                        {"label": "out", "type": {"title": "FileData"}, "component": "Image"}
                    ]
                },
                "no_slash": {}
            },
            "unnamed_endpoints": {"0": {}}
        });
        let endpoints = parse_info(&info).unwrap();
        assert_eq!(
            endpoints.keys().collect::<Vec<_>>(),
            ["/no_slash", "/upper"]
        );
        assert_eq!(endpoints["/no_slash"], EndpointInfo::default());
        let upper = &endpoints["/upper"];
        assert_eq!(upper.description, "Shouts.");
        assert_eq!(
            upper.parameters[0],
            ParamInfo {
                name: "text".into(),
                label: "Text".into(),
                has_default: false,
                default: Json::Null,
                is_file: false,
                component: "Textbox".into(),
                schema: json!({"type": "string"}),
                python_type: "str".into(),
            }
        );
        // No parameter name (older servers): the label; a `filepath` is a file.
        let path = &upper.parameters[1];
        assert_eq!((path.name.as_str(), path.is_file), ("Path", true));
        assert_eq!((path.has_default, &path.default), (true, &json!("x")));
        let out = &upper.returns[0];
        assert_eq!((out.label.as_str(), out.is_file), ("out", true));
        assert_eq!(out.python_type, "");

        assert_eq!((upper.parameters[0].choices(), path.range()), (None, None));

        assert_eq!(
            parse_info(&json!({"detail": "Not Found"})),
            Err("no `named_endpoints` object (keys: detail)".into())
        );
        assert_eq!(
            parse_info(&json!([1])),
            Err("expected a JSON object, got an array".into())
        );
    }
}
