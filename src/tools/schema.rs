//! Checks a model's function-call arguments against the tool's JSON Schema.
//!
//! Only the keywords tool schemas use are enforced: `type`, `properties`, `required`,
//! `additionalProperties: false`, `enum`, `items`, `minLength`/`maxLength`,
//! `minimum`/`maximum`. Other keywords (descriptions, formats) are ignored. The error text goes
//! back to the model so it can retry, so it names the argument and what was expected.

use serde_json::Value;

/// Checks `value` against `schema`; the error says which argument is wrong and why.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "")
}

fn check(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let at = |p: &str| {
        if p.is_empty() {
            "the arguments".to_string()
        } else {
            format!("'{p}'")
        }
    };
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        if !has_type(value, t) {
            return Err(format!(
                "{} must be {} {t}, got {}",
                at(path),
                if t.starts_with(['a', 'i', 'o']) {
                    "an"
                } else {
                    "a"
                },
                type_name(value)
            ));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            return Err(format!("{} must be one of {}", at(path), list.join(", ")));
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        return Err(format!("missing required argument '{}'", join(path, name)));
                    }
                }
            }
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(v, sub, &join(path, k))?,
                    None if closed => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        return Err(format!(
                            "unknown argument '{}' (allowed: {})",
                            join(path, k),
                            known.join(", ")
                        ));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, sub, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    return Err(format!("{} must have at least {min} characters", at(path)));
                }
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    return Err(format!("{} must have at most {max} characters", at(path)));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    return Err(format!("{} must be at least {min}", at(path)));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    return Err(format!("{} must be at most {max}", at(path)));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "summary": { "type": "string", "minLength": 3, "maxLength": 10 },
                "priority": { "type": "string", "enum": ["low", "high"] },
                "count": { "type": "integer", "minimum": 1, "maximum": 5 },
                "tags": { "type": "array", "items": { "type": "string" } }
            },
            "required": ["summary"],
            "additionalProperties": false
        })
    }

    #[test]
    fn each_rule_names_the_argument() {
        let table = [
            (json!({"summary": "ok!"}), None),
            (
                json!([]),
                Some("the arguments must be an object, got an array"),
            ),
            (json!({}), Some("missing required argument 'summary'")),
            (
                json!({"summary": 3}),
                Some("'summary' must be a string, got a number"),
            ),
            (
                json!({"summary": "ab"}),
                Some("'summary' must have at least 3 characters"),
            ),
            (
                json!({"summary": "abcdefghijk"}),
                Some("'summary' must have at most 10 characters"),
            ),
            (
                json!({"summary": "abc", "priority": "urgent"}),
                Some("'priority' must be one of \"low\", \"high\""),
            ),
            (
                json!({"summary": "abc", "count": 1.5}),
                Some("'count' must be an integer, got a number"),
            ),
            (
                json!({"summary": "abc", "count": 9}),
                Some("'count' must be at most 5"),
            ),
            (
                json!({"summary": "abc", "tags": ["a", 1]}),
                Some("'tags[1]' must be a string, got a number"),
            ),
            (
                json!({"summary": "abc", "colour": "red"}),
                Some("unknown argument 'colour' (allowed: count, priority, summary, tags)"),
            ),
        ];
        for (value, want) in table {
            let got = validate(&value, &schema()).err();
            assert_eq!(got.as_deref(), want, "{value}");
        }
    }

    #[test]
    fn open_schemas_accept_extra_arguments() {
        let s = json!({"type": "object", "properties": {}});
        assert!(validate(&json!({"anything": 1}), &s).is_ok());
    }
}
