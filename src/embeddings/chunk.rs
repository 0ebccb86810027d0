//! Splitting a document into passages small enough to embed one at a time.
//!
//! A chunk ends, by preference, where a paragraph ends (a blank line), else where a
//! sentence ends, else between words (UAX #29 boundaries from
//! `unicode-segmentation`), looking only in the back half of the room left so that
//! an early paragraph break does not make a tiny chunk. A single word longer than a
//! chunk is cut between grapheme clusters, and only a lone cluster longer than a
//! chunk (which no real text has) between chars. The next chunk starts about
//! `overlap_chars` before the previous one ended, on a sentence or word start, so
//! that a passage cut in two still appears whole in one of them.
//!
//! Invariants (checked by the property tests below):
//! - Offsets are in chars, not bytes: `text.chars().skip(start).take(end - start)`
//!   is exactly the chunk's `text`, and `index` is its position in the result.
//! - Every chunk holds at most `max_chars` chars, is non-empty, and neither starts
//!   nor ends with whitespace (whitespace-only text gives no chunk at all).
//! - Starts and ends strictly increase; every non-whitespace char of the text is in
//!   some chunk (what lies between two chunks is whitespace only); two consecutive
//!   chunks share at most `overlap_chars` chars.
//! - The result depends on the arguments only.

use unicode_segmentation::UnicodeSegmentation;

/// One passage of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the text's chunk list, from 0.
    pub index: u32,
    /// Offset of its first char in the text, counted in chars.
    pub start: usize,
    /// Offset just past its last char, counted in chars.
    pub end: usize,
    /// The passage: the text's chars `start..end`.
    pub text: String,
}

/// How good a place to cut a char offset is; higher is better.
const NO_BREAK: u8 = 0;
const GRAPHEME: u8 = 1;
const WORD: u8 = 2;
const SENTENCE: u8 = 3;
const PARAGRAPH: u8 = 4;

/// Splits `text` into chunks of at most `max_chars` chars overlapping by about
/// `overlap_chars`, as the module documentation describes.
///
/// `max_chars` 0 is taken as 1 (a chunk must hold something), and `overlap_chars`
/// is capped at half of `max_chars` so that every chunk brings at least as much new
/// text as it repeats.
pub fn chunk(text: &str, max_chars: usize, overlap_chars: usize) -> Vec<Chunk> {
    let max = max_chars.max(1);
    let overlap = overlap_chars.min(max / 2);
    let chars: Vec<char> = text.chars().collect();
    let Some(first) = chars.iter().position(|c| !c.is_whitespace()) else {
        return Vec::new();
    };
    let last_end = chars
        .iter()
        .rposition(|c| !c.is_whitespace())
        .map_or(first + 1, |i| i + 1);
    let levels = break_levels(text, &chars);
    let byte_at: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();

    let mut chunks = Vec::new();
    let mut start = first;
    // The first char no chunk holds yet (never whitespace): each chunk must take it,
    // which is what makes the loop progress and covers every char.
    let mut must_take = first;
    loop {
        let end = if last_end - start <= max {
            last_end
        } else {
            pick_break(&levels, start, must_take, max)
        };
        let (cs, ce) = trimmed(&chars, start, end);
        chunks.push(Chunk {
            index: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            start: cs,
            end: ce,
            text: text[byte_at[cs]..byte_at[ce]].to_owned(),
        });
        if end >= last_end {
            return chunks;
        }
        // There is a non-whitespace char at or after `end`, since `end < last_end`.
        let next_new = (end..last_end)
            .find(|&i| !chars[i].is_whitespace())
            .unwrap_or(last_end - 1);
        start = overlap_start(&levels, &chars, (cs, ce), overlap, next_new, max);
        must_take = next_new;
    }
}

/// Where the chunk starting at `start` ends: the best break in `(must_take, start +
/// max]`, preferring paragraph, then sentence, then word breaks in the back half.
/// The caller guarantees `must_take < start + max <= chars`.
fn pick_break(levels: &[u8], start: usize, must_take: usize, max: usize) -> usize {
    let hi = start + max;
    let lo = must_take + 1;
    let back_half = lo.max(start + max / 2);
    let last_at = |from: usize, level: u8| (from..=hi).rev().find(|&b| levels[b] >= level);
    [PARAGRAPH, SENTENCE, WORD]
        .into_iter()
        .find_map(|level| last_at(back_half, level))
        .or_else(|| last_at(lo, WORD))
        .or_else(|| last_at(lo, GRAPHEME))
        .unwrap_or(hi)
}

/// Where the chunk after `prev` starts: on a sentence or else a word start no more
/// than `overlap` chars before `prev`'s end, or at `next_new` (no overlap) when
/// there is none or when the overlap and the whitespace after it would leave too
/// little room for new text.
fn overlap_start(
    levels: &[u8],
    chars: &[char],
    prev: (usize, usize),
    overlap: usize,
    next_new: usize,
    max: usize,
) -> usize {
    let (cs, ce) = prev;
    if overlap == 0 {
        return next_new;
    }
    let target = ce.saturating_sub(overlap).max(cs + 1);
    let starts_at = |i: usize, level: u8| levels[i] >= level && !chars[i].is_whitespace();
    // A sentence start near the target reads better than a word start; one much
    // later would shrink the overlap for little gain.
    let sentence = (target..ce.min(target + overlap / 2 + 1)).find(|&i| starts_at(i, SENTENCE));
    let start = sentence.or_else(|| (target..ce).find(|&i| starts_at(i, WORD)));
    match start {
        Some(s) if next_new - s < max - max / 4 => s,
        _ => next_new,
    }
}

/// `start..end` without whitespace at either end.
fn trimmed(chars: &[char], start: usize, end: usize) -> (usize, usize) {
    let mut s = start;
    let mut e = end;
    while s < e && chars[s].is_whitespace() {
        s += 1;
    }
    while e > s && chars[e - 1].is_whitespace() {
        e -= 1;
    }
    (s, e)
}

/// The break level at every char offset `0..=chars.len()`.
fn break_levels(text: &str, chars: &[char]) -> Vec<u8> {
    let n = chars.len();
    let mut levels = vec![NO_BREAK; n + 1];
    // Byte offsets from the segmenters map to char offsets by counting chars as the
    // offsets (which come in increasing order) go by.
    let mut mark = |offsets: &mut dyn Iterator<Item = usize>, level: u8| {
        let mut chars_seen = 0;
        let mut bytes_seen = 0;
        for byte in offsets {
            while bytes_seen < byte {
                bytes_seen += chars[chars_seen].len_utf8();
                chars_seen += 1;
            }
            let slot = &mut levels[chars_seen];
            *slot = (*slot).max(level);
        }
    };
    mark(&mut text.grapheme_indices(true).map(|(b, _)| b), GRAPHEME);
    mark(&mut text.split_word_bound_indices().map(|(b, _)| b), WORD);
    mark(
        &mut text.split_sentence_bound_indices().map(|(b, _)| b),
        SENTENCE,
    );
    // A paragraph break is a whitespace run holding a blank line (two line breaks)
    // or a paragraph separator; both its ends are good places to cut.
    let mut i = 0;
    while i < n {
        if !chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let run_start = i;
        let mut line_breaks = 0;
        while i < n && chars[i].is_whitespace() {
            match chars[i] {
                '\n' => line_breaks += 1,
                '\u{2029}' => line_breaks += 2,
                _ => {}
            }
            i += 1;
        }
        if line_breaks >= 2 {
            levels[run_start] = PARAGRAPH;
            levels[i] = PARAGRAPH;
        }
    }
    levels[n] = PARAGRAPH;
    levels
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn texts(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.text.as_str()).collect()
    }

    /// Every invariant of the module documentation.
    fn check(text: &str, max: usize, overlap: usize, chunks: &[Chunk]) -> Result<(), String> {
        let chars: Vec<char> = text.chars().collect();
        let mut covered = vec![false; chars.len()];
        for (i, c) in chunks.iter().enumerate() {
            let len = c.end - c.start;
            if c.index as usize != i {
                return Err(format!("chunk {i} has index {}", c.index));
            }
            if len == 0 || len > max.max(1) {
                return Err(format!("chunk {i} has {len} chars (max {max})"));
            }
            let own: String = chars[c.start..c.end].iter().collect();
            if own != c.text {
                return Err(format!(
                    "chunk {i}: {:?} is not chars {}..{}",
                    c.text, c.start, c.end
                ));
            }
            if c.text.trim() != c.text {
                return Err(format!("chunk {i} {:?} has whitespace at an end", c.text));
            }
            if let Some(prev) = i.checked_sub(1).map(|p| &chunks[p]) {
                if c.start <= prev.start || c.end <= prev.end {
                    return Err(format!("chunk {i} does not move forward"));
                }
                let shared = prev.end.saturating_sub(c.start);
                if shared > overlap {
                    return Err(format!("chunks {} and {i} share {shared} chars", i - 1));
                }
            }
            covered[c.start..c.end].iter_mut().for_each(|x| *x = true);
        }
        match (0..chars.len()).find(|&i| !covered[i] && !chars[i].is_whitespace()) {
            Some(i) => Err(format!("char {i} ({:?}) is in no chunk", chars[i])),
            None => Ok(()),
        }
    }

    #[test]
    fn blank_text_gives_no_chunk_and_short_text_one() {
        assert!(chunk("", 100, 10).is_empty());
        assert!(chunk(" \n\t\u{2029} ", 100, 10).is_empty());
        assert_eq!(
            chunk("  Hello there.\n", 100, 10),
            vec![Chunk {
                index: 0,
                start: 2,
                end: 14,
                text: "Hello there.".into()
            }]
        );
    }

    #[test]
    fn paragraphs_are_preferred_then_sentences_then_words() {
        let text = "First paragraph here.\n\nSecond one is longer. It has two sentences.";
        assert_eq!(
            texts(&chunk(text, 45, 0)),
            [
                "First paragraph here.",
                "Second one is longer. It has two sentences."
            ]
        );
        let text = "One sentence here. Another sentence follows it closely.";
        assert_eq!(
            texts(&chunk(text, 30, 0)),
            [
                "One sentence here.",
                "Another sentence follows it",
                "closely."
            ]
        );
        // A word longer than a chunk is cut, and nothing is lost.
        let text = "a supercalifragilisticexpialidocious word";
        let chunks = chunk(text, 10, 0);
        assert_eq!(
            texts(&chunks),
            ["a", "supercalif", "ragilistic", "expialidoc", "ious word"]
        );
        check(text, 10, 0, &chunks).unwrap();
    }

    #[test]
    fn an_early_paragraph_break_does_not_make_a_tiny_chunk() {
        let text = "Hi.\n\nThis paragraph is long enough that it must be split somewhere.";
        let chunks = chunk(text, 40, 0);
        assert!(chunks[0].text.len() > 20, "{:?}", texts(&chunks));
        check(text, 40, 0, &chunks).unwrap();
    }

    #[test]
    fn consecutive_chunks_overlap_on_word_starts() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let chunks = chunk(&text, 120, 30);
        assert!(chunks.len() > 5);
        check(&text, 120, 30, &chunks).unwrap();
        for pair in chunks.windows(2) {
            let shared = pair[0].end.saturating_sub(pair[1].start);
            assert!((10..=30).contains(&shared), "{shared}: {:?}", texts(pair));
            // The overlap starts on a word, never inside one.
            let before = text.chars().nth(pair[1].start - 1).unwrap();
            assert!(!before.is_alphanumeric(), "{:?}", pair[1].text);
        }
    }

    #[test]
    fn offsets_are_chars_not_bytes_and_clusters_stay_whole() {
        let text = "Grüße aus Köln! 👩‍👩‍👧 e\u{301}tude 日本語のテキストです。";
        let chunks = chunk(text, 8, 2);
        check(text, 8, 2, &chunks).unwrap();
        // The family emoji is one grapheme cluster of 5 chars and is never cut.
        assert!(chunks.iter().any(|c| c.text.contains("👩‍👩‍👧")));
    }

    #[test]
    fn degenerate_sizes_still_cover_everything() {
        let text = "ab cd\n\nef";
        for (max, overlap) in [(0, 0), (1, 0), (1, 5), (2, 2), (3, 100)] {
            let chunks = chunk(text, max, overlap);
            check(text, max, overlap.min(max.max(1) / 2), &chunks).unwrap();
        }
    }

    #[test]
    fn the_same_input_gives_the_same_chunks() {
        let text = "Sentence one. Sentence two!\n\nParagraph two, sentence three? Yes.".repeat(5);
        assert_eq!(chunk(&text, 50, 15), chunk(&text, 50, 15));
    }

    fn arbitrary_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Zéßж]{1,9}",
            1 => "[a-z]{15,40}",
            3 => Just(" ".to_owned()),
            1 => Just("\n".to_owned()),
            1 => Just("\n\n".to_owned()),
            1 => Just(" \t\r\n  \n".to_owned()),
            1 => Just(". ".to_owned()),
            1 => Just("?! ".to_owned()),
            1 => Just("😀".to_owned()),
            1 => Just("👩\u{200d}👩\u{200d}👧".to_owned()),
            1 => Just("e\u{301}\u{302}".to_owned()),
            1 => Just("日本語。".to_owned()),
            1 => Just("\u{2029}".to_owned()),
        ];
        proptest::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn chunks_cover_the_text_within_max_with_consistent_offsets(
            text in arbitrary_text(),
            max in 1usize..90,
            overlap in 0usize..60,
        ) {
            let chunks = chunk(&text, max, overlap);
            if let Err(e) = check(&text, max, overlap.min(max / 2), &chunks) {
                return Err(TestCaseError::fail(format!("{e}\n{:?}", texts(&chunks))));
            }
            prop_assert_eq!(chunks.is_empty(), text.trim().is_empty());
            prop_assert_eq!(&chunks, &chunk(&text, max, overlap));
        }
    }
}
