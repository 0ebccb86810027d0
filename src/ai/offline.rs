//! The offline composer: the provider that needs no network, so generation and
//! consultations work on a fresh machine and in tests.
//!
//! It is not a language model. It assembles a draft from the filled-in prompt and
//! the passages of the user's contextual core: a title from the request, the
//! request restated, the first sentence of each passage as a point, and a line that
//! says it was composed offline. Same input, same output. Token counts are words
//! times 4/3 (about what a BPE tokenizer gives for English prose); it costs nothing.

use futures_util::future::BoxFuture;

use super::provider::{Generation, Prompt, Provider, ProviderError};

/// The model name it reports.
pub const MODEL: &str = "offline-composer-1";

/// The offline composer.
#[derive(Debug, Default, Clone)]
pub struct Offline;

/// Tokens of `text`, estimated.
pub fn estimate_tokens(text: &str) -> u32 {
    let words = text.split_whitespace().count() as u64;
    (words * 4).div_ceil(3).min(u64::from(u32::MAX)) as u32
}

fn first_sentence(text: &str, max_chars: usize) -> String {
    let t = text.trim();
    let end = t
        .char_indices()
        .find(|(_, c)| matches!(c, '.' | '!' | '?' | '\n'))
        .map(|(i, _)| i + 1)
        .unwrap_or(t.len());
    let s = t[..end].trim();
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// Composes the draft (public for the README's example and tests).
pub fn compose(prompt: &Prompt) -> String {
    let title = first_sentence(&prompt.user, 80);
    let mut out = String::new();
    out.push_str(title.trim_end_matches(['.', '!', '?']));
    out.push_str("\n\n");
    out.push_str(prompt.user.trim());
    out.push('\n');
    if !prompt.context.is_empty() {
        out.push_str("\nFrom your material:\n");
        for p in prompt.context.iter().take(5) {
            out.push_str("- ");
            out.push_str(&first_sentence(p, 160));
            out.push('\n');
        }
    }
    out.push_str("\n(Composed offline by the offline composer: no AI model was called.)");
    // Honour max_tokens by words, as a model would stop.
    let max_words = (u64::from(prompt.max_tokens) * 3 / 4).max(1) as usize;
    if out.split_whitespace().count() > max_words {
        let mut kept = Vec::new();
        for w in out.split_whitespace().take(max_words) {
            kept.push(w);
        }
        out = kept.join(" ");
    }
    out
}

impl Provider for Offline {
    fn name(&self) -> &str {
        "offline"
    }

    fn model(&self) -> &str {
        MODEL
    }

    fn generate<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> BoxFuture<'a, Result<Generation, ProviderError>> {
        Box::pin(async move {
            let text = compose(prompt);
            let input: String = [prompt.system.as_str(), prompt.user.as_str()]
                .into_iter()
                .chain(prompt.context.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            Ok(Generation {
                output_tokens: estimate_tokens(&text),
                input_tokens: estimate_tokens(&input),
                text,
                model: MODEL.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn prompt(max_tokens: u32) -> Prompt {
        Prompt {
            system: "You write a social post.".into(),
            user: "Write a post about our launch for founders. Keep it short.".into(),
            context: vec!["Our launch is on Monday. It adds exports.".into()],
            max_tokens,
        }
    }

    #[test]
    fn the_draft_uses_the_request_and_the_context_and_says_it_is_offline() {
        let text = compose(&prompt(500));
        assert!(text.starts_with("Write a post about our launch for founders"));
        assert!(text.contains("- Our launch is on Monday."));
        assert!(text.contains("offline"));
        assert_eq!(text, compose(&prompt(500)), "deterministic");
    }

    #[test]
    fn max_tokens_bounds_the_draft() {
        let text = compose(&prompt(8));
        assert!(text.split_whitespace().count() <= 6, "{text}");
    }
}
