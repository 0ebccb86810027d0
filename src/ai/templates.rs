//! Prompt templates: named texts with `{{variable}}` placeholders, from `[ai.templates]`.
//!
//! Invariant: a template renders only when every placeholder has a value, so a
//! request with a missing variable is refused before anything is published; values
//! are inserted as they are (never re-scanned), so a value cannot inject a
//! placeholder.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::TemplateSettings;

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No template of that name.
    #[error("unknown prompt_template {0:?}; known: {1}")]
    Unknown(String, String),
    /// A placeholder without a value.
    #[error("variables.{0}: missing (template {1:?} needs {2})")]
    Missing(String, String, String),
}

/// One template.
#[derive(Debug, Clone)]
pub struct Template {
    /// What it is for.
    pub description: String,
    /// The text.
    pub text: String,
    /// Its placeholders, in order of first use.
    pub variables: Vec<String>,
}

/// Every configured template by name.
#[derive(Debug, Clone, Default)]
pub struct Templates(BTreeMap<String, Template>);

impl Templates {
    /// From the configuration.
    pub fn new(settings: &BTreeMap<String, TemplateSettings>) -> Templates {
        Templates(
            settings
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        Template {
                            description: t.description.clone(),
                            text: t.text.clone(),
                            variables: placeholders(&t.text),
                        },
                    )
                })
                .collect(),
        )
    }

    /// A template by name.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.0.get(name)
    }

    /// All of them, by name.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Template)> {
        self.0.iter()
    }

    /// Fills `name` with `vars`.
    pub fn render(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, TemplateError> {
        let t = self.0.get(name).ok_or_else(|| {
            TemplateError::Unknown(
                name.to_string(),
                self.0.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })?;
        for v in &t.variables {
            if !vars.contains_key(v) {
                return Err(TemplateError::Missing(
                    v.clone(),
                    name.to_string(),
                    t.variables.join(", "),
                ));
            }
        }
        let mut out = String::with_capacity(t.text.len() + 64);
        let mut rest = t.text.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}") {
                Some(end) => {
                    let key = after[..end].trim();
                    match vars.get(key) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&rest[start..start + 2 + end + 2]),
                    }
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The placeholder names in `text`, in order of first use.
fn placeholders(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let key = after[..end].trim().to_string();
        if !key.is_empty() && seen.insert(key.clone()) {
            out.push(key);
        }
        rest = &after[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t() -> Templates {
        let mut m = BTreeMap::new();
        m.insert(
            "post".to_string(),
            TemplateSettings {
                description: String::new(),
                text: "About {{topic}} for {{ audience }}; again {{topic}}.".into(),
            },
        );
        Templates::new(&m)
    }

    #[test]
    fn renders_every_placeholder_and_never_rescans_values() {
        let vars: BTreeMap<String, String> = [
            ("topic".to_string(), "{{audience}}".to_string()),
            ("audience".to_string(), "founders".to_string()),
        ]
        .into();
        assert_eq!(
            t().render("post", &vars).unwrap(),
            "About {{audience}} for founders; again {{audience}}."
        );
        assert_eq!(
            t().get("post").unwrap().variables,
            vec!["topic", "audience"]
        );
    }

    #[test]
    fn unknown_templates_and_missing_variables_are_named() {
        let e = t().render("nope", &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("post"));
        let vars: BTreeMap<String, String> = [("topic".to_string(), "x".to_string())].into();
        let e = t().render("post", &vars).unwrap_err();
        assert!(
            e.to_string().starts_with("variables.audience: missing"),
            "{e}"
        );
    }
}
