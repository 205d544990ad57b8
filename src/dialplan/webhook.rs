//! Webhook tool parameters: a JSON Schema written in YAML, converted to JSON and checked lightly.
//!
//! The model receives this schema as the tool's `parameters`, so it must be an object schema. The
//! checks catch what authors get wrong most: a missing `type: object`, a property without a
//! known `type`, and `required` naming a property that does not exist. Anything else in the
//! schema (descriptions, enums, formats) is passed through unchanged.

use serde_json::{Map, Number, Value};

use super::ctx::{join, Ctx, Fields};
use super::problem::did_you_mean;
use super::yaml::{Kind, Node};

/// JSON Schema types a property may have.
const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// The `parameters` of a webhook as JSON; an empty object schema when absent.
pub(crate) fn json_parameters(
    ctx: &mut Ctx<'_>,
    node: Option<&Node>,
    parent: &Fields<'_>,
    path: &str,
) -> Option<Value> {
    let path = join(path, "parameters");
    let Some(node) = node else {
        return Some(serde_json::json!({ "type": "object", "properties": {} }));
    };
    let Kind::Map(entries) = &node.kind else {
        ctx.err(
            node.pos,
            format!(
                "'{path}' must be a JSON Schema mapping starting with 'type: object', got {}",
                node.kind_name()
            ),
        );
        return None;
    };
    let before = ctx.problems.len();
    let get = |k: &str| entries.iter().find(|(key, _)| key.scalar() == Some(k));
    match get("type") {
        Some((_, t)) if t.scalar() == Some("object") => {}
        Some((_, t)) => ctx.err(
            t.pos,
            format!("'{path}.type' must be 'object' (the tool's arguments are an object)"),
        ),
        None => ctx.err(
            parent.key_pos("parameters"),
            format!("'{path}' must start with 'type: object'"),
        ),
    }
    let mut names: Vec<String> = Vec::new();
    if let Some((_, props)) = get("properties") {
        let props_path = join(&path, "properties");
        for (name, key, value) in
            ctx.entries(props, &props_path, "{ order_number: { type: string } }")
        {
            names.push(name.clone());
            let prop_path = join(&props_path, &name);
            let Kind::Map(fields) = &value.kind else {
                ctx.err(
                    value.pos,
                    format!(
                        "'{prop_path}' must be a mapping like {{ type: string, description: ... }}"
                    ),
                );
                continue;
            };
            match fields.iter().find(|(k, _)| k.scalar() == Some("type")) {
                Some((_, t)) => {
                    let got = t.scalar().unwrap_or("");
                    if !TYPES.contains(&got) {
                        let hint = did_you_mean(got, TYPES);
                        ctx.err(
                            t.pos,
                            format!(
                                "'{prop_path}.type' must be one of {} (got '{got}'){hint}",
                                TYPES.join(", ")
                            ),
                        );
                    }
                }
                None => ctx.err(
                    key.pos,
                    format!("'{prop_path}' needs a 'type' ({})", TYPES.join(", ")),
                ),
            }
        }
    }
    if let Some((_, req)) = get("required") {
        let req_path = join(&path, "required");
        for (name, item) in ctx.strings(req, &req_path, "[order_number]") {
            if !names.contains(&name) {
                let hint = did_you_mean(&name, names.iter().map(String::as_str));
                ctx.err(
                    item.pos,
                    format!("'{req_path}' lists '{name}' but there is no such property{hint}"),
                );
            }
        }
    }
    (ctx.problems.len() == before).then(|| to_json(node))
}

/// Convert a node to JSON: plain scalars are typed (`true`, `12`, `null`), quoted ones are strings.
pub(crate) fn to_json(node: &Node) -> Value {
    match &node.kind {
        Kind::Scalar { text, plain: false } => Value::String(text.clone()),
        Kind::Scalar { text, plain: true } => {
            if node.is_null() {
                Value::Null
            } else if text == "true" || text == "false" {
                Value::Bool(text == "true")
            } else if let Ok(i) = text.parse::<i64>() {
                Value::Number(i.into())
            } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                Value::Number(n)
            } else {
                Value::String(text.clone())
            }
        }
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar().unwrap_or_default().to_string(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}
