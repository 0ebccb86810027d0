//! `strategist schema export DIR`: one JSON Schema per event type and version, for
//! the services written in other languages.

use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use crate::events;

/// Writes `DIR/<type>.v<version>.json` for every type, `DIR/envelope.json`, and
/// `DIR/index.json` listing types with their streams and versions. Returns the
/// number of files written.
pub fn export(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut index = Vec::new();
    let mut written = 0;
    for d in events::all() {
        let mut schema = serde_json::to_value((d.schema)())?;
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "$id".into(),
                json!(format!("{}.v{}.json", d.name, d.version)),
            );
            o.insert("x-stream".into(), json!(d.stream));
            o.insert("x-event-type".into(), json!(d.name));
            o.insert("x-version".into(), json!(d.version));
        }
        let file = dir.join(format!("{}.v{}.json", d.name, d.version));
        write(&file, &schema)?;
        written += 1;
        index.push(
            json!({"type": d.name, "stream": d.stream, "version": d.version,
                          "schema": format!("{}.v{}.json", d.name, d.version)}),
        );
    }
    let envelope = serde_json::to_value(schemars::schema_for!(EnvelopeSchema))?;
    write(&dir.join("envelope.json"), &envelope)?;
    write(&dir.join("index.json"), &json!({"types": index}))?;
    Ok(written + 2)
}

fn write(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// The wire form of one stream entry: every field is a string.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct EnvelopeSchema {
    /// The event's ULID.
    id: String,
    /// The event type.
    #[schemars(rename = "type")]
    event_type: String,
    /// Schema version, an integer as text.
    #[schemars(regex(pattern = r"^[1-9][0-9]*$"))]
    version: String,
    /// RFC 3339 UTC with milliseconds.
    timestamp: String,
    /// The payload as JSON text; see the per-type schema.
    data: String,
    /// Ties related events together.
    correlation_id: Option<String>,
    /// The id of the event that caused this one.
    causation_id: Option<String>,
    /// The user the event concerns.
    user_id: Option<String>,
    /// A JSON object as text.
    metadata: Option<String>,
    /// W3C trace context.
    traceparent: Option<String>,
    /// W3C trace state.
    tracestate: Option<String>,
}
