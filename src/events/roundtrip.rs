//! Property test: for every event type, a random payload that fits its JSON Schema
//! survives encode → stream fields → decode → catalog check → typed decode unchanged.
//! Generating from the schema also checks that the exported schemas and the Rust
//! types agree.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use strategist_actors::Envelope;

use super::{all, catalog};

/// A tiny deterministic generator driven by proptest's seed.
struct Gen(fastrand::Rng);

impl Gen {
    fn value(&mut self, schema: &Value, root: &Value) -> Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            return self.value(&root["$defs"][name], root);
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return options[self.0.usize(..options.len())].clone();
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let pick = &options[self.0.usize(..options.len())];
                return self.value(pick, root);
            }
        }
        let ty = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => {
                let t = &ts[self.0.usize(..ts.len())];
                t.as_str().unwrap_or("null").to_owned()
            }
            _ => return self.any(2),
        };
        match ty.as_str() {
            "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                let ms = self.0.i64(0..4_000_000_000_000);
                let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
            "string" => json!(self.text()),
            "integer" => {
                let max = schema
                    .get("maximum")
                    .and_then(Value::as_u64)
                    .unwrap_or(u32::MAX as u64);
                json!(self.0.u64(0..=max.min(1 << 53)))
            }
            "number" => json!(self.0.f64() * 1e6),
            "boolean" => json!(self.0.bool()),
            "null" => Value::Null,
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                (0..self.0.usize(0..4))
                    .map(|_| self.value(&items, root))
                    .collect()
            }
            "object" => self.object(schema, root),
            _ => Value::Null,
        }
    }

    fn object(&mut self, schema: &Value, root: &Value) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, s) in props {
                if required.contains(&name.as_str()) || self.0.bool() {
                    let v = self.value(s, root);
                    // An absent optional field and a null one decode alike; keep
                    // the generated payload canonical.
                    if !v.is_null() {
                        out.insert(name.clone(), v);
                    }
                }
            }
        } else if let Some(item) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            // A map with typed values (e.g. template variables: string to string).
            for _ in 0..self.0.usize(0..4) {
                let v = self.value(item, root);
                out.insert(self.text(), v);
            }
        } else {
            for _ in 0..self.0.usize(0..4) {
                out.insert(self.text(), self.any(2));
            }
        }
        Value::Object(out)
    }

    fn any(&mut self, depth: u32) -> Value {
        match self.0.u8(0..if depth == 0 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => json!(self.0.bool()),
            2 => json!(self.0.i64(-1000..1000)),
            3 => json!(self.text()),
            4 => (0..self.0.usize(0..3))
                .map(|_| self.any(depth - 1))
                .collect(),
            _ => {
                let m: Map<String, Value> = (0..self.0.usize(0..3))
                    .map(|_| (self.text(), self.any(depth - 1)))
                    .collect();
                Value::Object(m)
            }
        }
    }

    fn text(&mut self) -> String {
        const CHARS: &[char] = &['a', 'Z', '0', ' ', '"', '\\', '\n', 'é', '✓', '{', '😀'];
        (0..self.0.usize(0..12))
            .map(|_| CHARS[self.0.usize(..CHARS.len())])
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_type_round_trips(seed in any::<u64>()) {
        let cat = catalog();
        for d in all() {
            let schema = serde_json::to_value((d.schema)()).unwrap_or_default();
            let data = Gen(fastrand::Rng::with_seed(seed)).value(&schema, &schema);
            let typed = (d.reencode)(&data);
            prop_assert!(typed.is_ok(), "{}: generated payload rejected: {:?}\n{}", d.name, typed, data);
            let mut env = Envelope::new(d.name, d.version, data.clone()).with_user("u1");
            env.metadata = Some(Map::from_iter([("k".to_string(), json!(seed))]));
            prop_assert!(cat.check_publish(d.stream, &env).is_ok());
            let fields = env.to_fields();
            let back = Envelope::from_pairs(fields.iter().map(|(k, v)| (*k, v.as_bytes())));
            prop_assert_eq!(back.as_ref(), Ok(&env));
            let checked = cat.check(back.unwrap_or(env.clone()));
            prop_assert_eq!(checked.as_ref().map(|e| &e.data), Ok(&data));
            // Typed decode and encode is stable (defaults filled in once stay put).
            let once = (d.reencode)(&data).unwrap_or_default();
            prop_assert_eq!((d.reencode)(&once), Ok(once.clone()), "{}", d.name);
        }
    }
}

#[test]
fn a_known_type_with_a_wrong_payload_is_refused_with_the_field_named() {
    let cat = catalog();
    let env = Envelope::new(
        "file.uploaded",
        1,
        json!({"file_id": "f", "user_id": "u", "contextual_core_id": "c", "filename": "a.pdf",
               "file_size": "big", "mime_type": "application/pdf", "is_browser_viewable": true}),
    );
    let err = cat
        .check(env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("file_size") || err.contains("invalid type"),
        "{err}"
    );
    let bad_enum = Envelope::new(
        "ai.consultation.requested",
        1,
        json!({"session_id": "s", "user_id": "u", "contextual_core_id": "c", "query": "q",
               "session_type": "fortune_telling"}),
    );
    let err = cat
        .check(bad_enum)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("fortune_telling"), "{err}");
}
