//! Text extraction from uploaded files: what a file is, and what text it holds.
//!
//! [`sniff`] names a file's type from its first bytes (magic numbers through the
//! `infer` crate, plus text heuristics), using the file name's extension only to choose
//! between readings the bytes allow (CSV or Markdown or plain text; a DOCX or a plain
//! zip). A PDF named `notes.txt` is a PDF; random bytes named `report.pdf` are
//! `application/octet-stream`.
//!
//! [`extract_file`] pulls the text out of one file of a supported [`Kind`]:
//! plain text, Markdown (kept as written), HTML (visible text only), PDF (`lopdf`),
//! DOCX (`zip` + `quick-xml`, by hand), CSV and JSON. [`extract`] is the async wrapper a
//! handler calls.
//!
//! Invariants, for any input bytes:
//! - **Never panics to the caller.** Every parser's failure is an [`ExtractError`];
//!   [`extract`] also catches a panic inside a parser and returns
//!   [`ExtractError::Panicked`] (this relies on `panic = "unwind"`, the default
//!   profile setting). A stack overflow cannot be caught by anyone: the parsers used
//!   here bound their nesting (lopdf, serde_json's 128 levels) or do not recurse over
//!   the input (quick-xml, the DOCX walk, html5ever and html2text: 50 000 nested
//!   elements were tried).
//! - **Bounded memory.** A file over [`Limits::max_bytes`] is refused before it is
//!   read; a compressed part (DOCX zip entry, PDF stream) is refused once it would
//!   inflate past [`Limits::max_zip_entry_bytes`]; the text kept is at most
//!   [`Limits::max_text_chars`] characters (then [`Extracted::truncated`] is set).
//!   Peak memory is a small multiple of the file's size plus one inflated part.
//! - **Bounded time.** [`extract`] returns [`ExtractError::TimedOut`] once
//!   [`Limits::timeout`] has passed. [`extract_file`] also checks the same deadline
//!   between pages, rows, XML events and 16 KiB chunks of HTML and stops there; only
//!   a single call into a parser (loading a PDF's object table, rendering a parsed
//!   HTML tree) runs to its end.
//!
//! No Redis, no database, no HTTP: the caller stores what this returns.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Cursor, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The registered MIME type of a Word (Office Open XML) document.
pub const MIME_DOCX: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// What [`sniff`] answers for bytes it cannot name.
pub const MIME_UNKNOWN: &str = "application/octet-stream";

/// How much work one extraction may do. Every bound holds whatever the file contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read at all, in bytes: a larger one is [`ExtractError::TooLarge`]
    /// before any of it is read. Default 100 MiB.
    pub max_bytes: u64,
    /// Most characters of text kept; the rest is dropped and
    /// [`Extracted::truncated`] is set. Default 20 000 000.
    pub max_text_chars: usize,
    /// Wall-clock bound on one extraction: [`extract`] gives up after it and
    /// [`extract_file`] stops at its next check. Default 60 s.
    pub timeout: Duration,
    /// Largest size one compressed part may inflate to, in bytes: a DOCX zip entry
    /// (checked against its declared size and again while reading) or a PDF stream
    /// (enforced by lopdf while decoding). A decompression bomb is
    /// [`ExtractError::TooLarge`]. Default 50 MiB.
    pub max_zip_entry_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 100 * 1024 * 1024,
            max_text_chars: 20_000_000,
            timeout: Duration::from_secs(60),
            max_zip_entry_bytes: 50 * 1024 * 1024,
        }
    }
}

/// The formats whose text can be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// UTF-8 text (UTF-16 with a byte-order mark is read too).
    PlainText,
    /// Markdown, kept as written: its markup is readable text already.
    Markdown,
    /// HTML: the visible text, never script, style, noscript or template contents.
    Html,
    /// PDF: the text of each page's content streams.
    Pdf,
    /// Word (Office Open XML): the body's text runs, one line per paragraph.
    Docx,
    /// CSV: one line per row, cells separated by `, `.
    Csv,
    /// JSON: one `key: value` line per scalar, nested values indented.
    Json,
}

impl Kind {
    /// The MIME type [`sniff`] gives this kind.
    pub fn mime(self) -> &'static str {
        match self {
            Kind::PlainText => "text/plain",
            Kind::Markdown => "text/markdown",
            Kind::Html => "text/html",
            Kind::Pdf => "application/pdf",
            Kind::Docx => MIME_DOCX,
            Kind::Csv => "text/csv",
            Kind::Json => "application/json",
        }
    }

    /// The kind a MIME type is extracted as, or `None` if it is unsupported.
    ///
    /// Parameters (`; charset=...`) and case are ignored. Besides each kind's own type
    /// this accepts common aliases (`text/x-markdown`, `application/xhtml+xml`,
    /// `application/x-pdf`, `application/csv`, `text/json`, any `+json` type), and any
    /// other `text/*` type (XML, source code, scripts) is read as plain text.
    pub fn from_mime(mime: &str) -> Option<Kind> {
        let base = mime_base(mime);
        let kind = match base.as_str() {
            "text/plain" => Kind::PlainText,
            "text/markdown" | "text/x-markdown" => Kind::Markdown,
            "text/html" | "application/xhtml+xml" => Kind::Html,
            "application/pdf" | "application/x-pdf" => Kind::Pdf,
            MIME_DOCX => Kind::Docx,
            "text/csv" | "application/csv" => Kind::Csv,
            "application/json" | "text/json" => Kind::Json,
            b if b.starts_with("application/") && b.ends_with("+json") => Kind::Json,
            b if b.starts_with("text/") => Kind::PlainText,
            _ => return None,
        };
        Some(kind)
    }
}

/// The text of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// What the file was read as.
    pub kind: Kind,
    /// The text, at most [`Limits::max_text_chars`] characters.
    pub text: String,
    /// True when text was dropped to stay within [`Limits::max_text_chars`].
    pub truncated: bool,
}

/// Why a file's text could not be extracted. All but [`ExtractError::Io`] and
/// [`ExtractError::TimedOut`] are properties of the file: trying again gives the same
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The MIME type has no extractor (images, archives, unknown binary data).
    #[error("unsupported file type {0}")]
    Unsupported(String),
    /// The file does not parse as what its type says.
    #[error("corrupt file: {0}")]
    Corrupt(String),
    /// The file is password-protected.
    #[error("the file is encrypted (password-protected)")]
    Encrypted,
    /// The file, or a part of it once inflated, is over a limit; says which.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The extraction took longer than [`Limits::timeout`].
    #[error("text extraction timed out after {0:?}")]
    TimedOut(Duration),
    /// A parser panicked; the panic's message. A bug in a parser, caught by [`extract`].
    #[error("text extraction panicked: {0}")]
    Panicked(String),
    /// The file could not be read (missing, no permission, a disk error).
    #[error("could not read the file: {0}")]
    Io(String),
}

// ---------------------------------------------------------------------------------
// Sniffing
// ---------------------------------------------------------------------------------

/// Names a file's type from its first bytes, and the [`Kind`] to extract it as
/// (`None`: unsupported).
///
/// `bytes_head` is the start of the file (a few KiB is plenty; the whole file works
/// too). The bytes decide: magic numbers (PDF, zip, images, archives, office formats,
/// through `infer`), then, for text, a parse as JSON and an `<html`/`<!doctype html`
/// prefix. The extension of `filename` only chooses among what the bytes allow: text
/// named `.csv` is CSV and `.md` Markdown, a zip named `.docx` is a DOCX. It never
/// turns binary bytes into a supported kind, nor text into a binary one.
///
/// Never panics (a panic inside `infer` is caught and treated as "no magic number").
pub fn sniff(bytes_head: &[u8], filename: &str) -> (String, Option<Kind>) {
    let ext = extension(filename);
    let known = |kind: Kind| (kind.mime().to_owned(), Some(kind));

    if bytes_head.starts_with(b"%PDF-") {
        return known(Kind::Pdf);
    }
    // infer, like PDF readers, also finds `%PDF` later in the first KiB (after junk such
    // as mail headers); in bytes that are otherwise text, that is a mention, not a PDF.
    let inferred = std::panic::catch_unwind(|| infer::get(bytes_head))
        .ok()
        .flatten()
        .filter(|t| t.mime_type() != "application/pdf" || !looks_like_text(bytes_head));
    if let Some(t) = inferred
        && t.matcher_type() != infer::MatcherType::Text
    {
        let mime = t.mime_type();
        let zip_with_word = mime == "application/zip"
            && (find(bytes_head, b"word/").is_some() || ext.as_deref() == Some("docx"));
        if mime == MIME_DOCX || zip_with_word {
            return known(Kind::Docx);
        }
        return (mime.to_owned(), Kind::from_mime(mime));
    }

    if !looks_like_text(bytes_head) {
        return (MIME_UNKNOWN.to_owned(), None);
    }
    let text = decode_text(bytes_head);
    let start = text.trim_start();
    if (start.starts_with('{') || start.starts_with('[')) && parses_as_json_prefix(start) {
        return known(Kind::Json);
    }
    let lower: String = start
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return known(Kind::Html);
    }
    match ext.as_deref() {
        Some("md" | "markdown" | "mdown" | "mkd") => known(Kind::Markdown),
        Some("csv") => known(Kind::Csv),
        Some("htm" | "html" | "xhtml") => known(Kind::Html),
        Some("txt" | "text" | "log" | "json") => known(Kind::PlainText),
        _ => match inferred {
            // infer's text matchers: HTML fragments (`<div`, `<p`, `<!--`), XML, scripts.
            Some(t) if t.mime_type() == "text/html" => known(Kind::Html),
            Some(t) => (t.mime_type().to_owned(), Some(Kind::PlainText)),
            None => known(Kind::PlainText),
        },
    }
}

/// Whether a browser can show a file of this type inline, served from our origin,
/// without running anything the file contains.
///
/// Yes: `text/plain`, `application/json`, `application/pdf` (the browser's sandboxed
/// viewer) and raster images (`image/*`).
/// No: `image/svg+xml` and `text/html` (both run scripts: stored XSS on our origin),
/// `text/markdown` and `text/csv` (browsers download them rather than show them;
/// show the extracted text instead), and everything else. The caller still sends
/// `X-Content-Type-Options: nosniff` so the browser does not guess otherwise.
pub fn is_browser_viewable(mime: &str) -> bool {
    let base = mime_base(mime);
    match base.as_str() {
        "text/plain" | "application/json" | "application/pdf" => true,
        "image/svg+xml" => false,
        b => b.starts_with("image/"),
    }
}

/// The type without parameters, lower case: `Text/HTML; charset=utf-8` is `text/html`.
fn mime_base(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The lower-case extension of a file name, if it has one.
fn extension(filename: &str) -> Option<String> {
    Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Text: a UTF-16 byte-order mark, or no NUL byte and few control characters.
/// Invalid UTF-8 (a legacy 8-bit encoding) still counts as text; it is read lossily.
fn looks_like_text(head: &[u8]) -> bool {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return true;
    }
    if head.contains(&0) {
        return false;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B))
        .count();
    controls * 100 <= head.len() * 2
}

/// Whether `s` is JSON, or the start of JSON cut off by the end of the head.
fn parses_as_json_prefix(s: &str) -> bool {
    match serde_json::from_str::<serde::de::IgnoredAny>(s) {
        Ok(_) => true,
        Err(e) => e.is_eof(),
    }
}

/// Bytes as text: a UTF-8 byte-order mark is dropped, UTF-16 with a byte-order mark
/// is decoded, anything else is UTF-8 with invalid sequences replaced by U+FFFD.
fn decode_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest);
    }
    let utf16 = |rest: &[u8], from: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = rest
            .chunks(2)
            .map(|c| from([c[0], c.get(1).copied().unwrap_or(0)]))
            .collect();
        Cow::Owned(String::from_utf16_lossy(&units))
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    String::from_utf8_lossy(bytes)
}

// ---------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------

/// Extracts the text of the file at `path`, read as `mime` (normally what [`sniff`]
/// said). Blocking: run it inside `spawn_blocking`, or call [`extract`].
///
/// An unsupported `mime` is [`ExtractError::Unsupported`] without reading the file; a
/// file over [`Limits::max_bytes`] is [`ExtractError::TooLarge`] before it is read.
/// Stops with [`ExtractError::TimedOut`] at its next check once [`Limits::timeout`]
/// has passed. Does not catch panics: [`extract`] does.
pub fn extract_file(path: &Path, mime: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let deadline = Deadline::after(limits.timeout);
    let kind = Kind::from_mime(mime).ok_or_else(|| ExtractError::Unsupported(mime.to_owned()))?;
    let bytes = read_bounded(path, limits.max_bytes)?;
    deadline.check()?;
    let mut out = TextSink::new(limits.max_text_chars);
    match kind {
        Kind::PlainText | Kind::Markdown => {
            out.push(&decode_text(&bytes));
        }
        Kind::Html => html_text(&bytes, &deadline, &mut out)?,
        Kind::Pdf => pdf_text(&bytes, limits, &deadline, &mut out)?,
        Kind::Docx => docx_text(&bytes, limits, &deadline, &mut out)?,
        Kind::Csv => csv_text(&bytes, &deadline, &mut out)?,
        Kind::Json => json_text(&bytes, &deadline, &mut out)?,
    }
    Ok(Extracted {
        kind,
        truncated: out.truncated,
        text: out.text,
    })
}

/// [`extract_file`] on the blocking pool, with its panics caught and its time bounded.
///
/// A panic in a parser is [`ExtractError::Panicked`]. After [`Limits::timeout`] this
/// returns [`ExtractError::TimedOut`] without waiting for the blocking thread: that
/// thread cannot be killed and is left to finish on its own. It usually stops soon
/// after, at its own next deadline check, but a single parser call that hangs keeps
/// its thread (and the file's bytes) until it returns.
pub async fn extract(
    path: PathBuf,
    mime: String,
    limits: Limits,
) -> Result<Extracted, ExtractError> {
    let timeout = limits.timeout;
    let task = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(AssertUnwindSafe(|| extract_file(&path, &mime, &limits)))
    });
    match tokio::time::timeout(timeout, task).await {
        Err(_elapsed) => Err(ExtractError::TimedOut(timeout)),
        Ok(Err(join)) => Err(ExtractError::Panicked(join.to_string())),
        Ok(Ok(Err(panic))) => Err(ExtractError::Panicked(panic_message(panic.as_ref()))),
        Ok(Ok(Ok(result))) => result,
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The file's bytes, refused before reading if over `max` (and if it grew past `max`
/// while being read).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let too_large = |len: u64| {
        ExtractError::TooLarge(format!(
            "the file has {len} bytes, more than the limit of {max}"
        ))
    };
    if len > max {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// When [`extract_file`] gives up: its start plus [`Limits::timeout`].
struct Deadline {
    /// `None` when the timeout is too large to add to now: no deadline.
    at: Option<Instant>,
    /// Reported in [`ExtractError::TimedOut`].
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    fn check(&self) -> Result<(), ExtractError> {
        match self.at {
            Some(at) if Instant::now() >= at => Err(ExtractError::TimedOut(self.timeout)),
            _ => Ok(()),
        }
    }
}

/// The text being built, which keeps at most `max` characters.
struct TextSink {
    text: String,
    /// Characters in `text`.
    chars: usize,
    max: usize,
    /// Something was dropped.
    truncated: bool,
}

impl TextSink {
    fn new(max: usize) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            max,
            truncated: false,
        }
    }

    /// Appends what fits; false once text has been dropped (the caller may stop).
    fn push(&mut self, s: &str) -> bool {
        if self.truncated {
            return false;
        }
        let room = self.max - self.chars;
        // A string of at most `room` bytes has at most `room` characters.
        if s.len() <= room {
            self.chars += s.chars().count();
            self.text.push_str(s);
            return true;
        }
        match s.char_indices().nth(room) {
            None => {
                self.chars += s.chars().count();
                self.text.push_str(s);
                true
            }
            Some((cut, _)) => {
                self.text.push_str(&s[..cut]);
                self.chars = self.max;
                self.truncated = true;
                false
            }
        }
    }

    fn ends_with_newline_or_empty(&self) -> bool {
        self.text.is_empty() || self.text.ends_with('\n')
    }
}

// ---------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------

/// Lines are wrapped at this many columns: wide enough that a paragraph stays a line.
const HTML_WIDTH: usize = 10_000;

/// Bytes of HTML handed to the parser between two deadline checks.
const HTML_CHUNK: usize = 16 * 1024;

fn html_text(bytes: &[u8], deadline: &Deadline, out: &mut TextSink) -> Result<(), ExtractError> {
    let corrupt = |e: html2text::Error| ExtractError::Corrupt(format!("HTML: {e}"));
    let source = decode_text(bytes);
    let dom = parse_html(&source, deadline)?;
    drop(source);
    drop_invisible(&dom.document);
    deadline.check()?;
    let config = html2text::config::plain_no_decorate()
        .raw_mode(true)
        .allow_width_overflow();
    let tree = config.dom_to_render_tree(&dom).map_err(corrupt)?;
    let text = config.render_to_string(tree, HTML_WIDTH).map_err(corrupt)?;
    // Lines are padded to the width of their block; the padding is no text.
    for line in text.lines() {
        if !out.push(line.trim_end()) || !out.push("\n") {
            break;
        }
    }
    Ok(())
}

/// Parses HTML as html2text does, but fed in chunks with a deadline check between
/// them: html5ever's tree builder takes time quadratic in the nesting depth (each
/// start tag scans the stack of open elements), so half a megabyte of nested `<div>`s
/// would otherwise hold a thread for minutes.
fn parse_html(source: &str, deadline: &Deadline) -> Result<html2text::RcDom, ExtractError> {
    use html5ever::tendril::{StrTendril, TendrilSink};
    let options = html5ever::ParseOpts {
        tree_builder: html5ever::tree_builder::TreeBuilderOpts {
            // As html2text parses: `<noscript>` holds markup (dropped below anyway).
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut parser = html5ever::parse_document(html2text::RcDom::default(), options);
    let mut rest = source;
    while !rest.is_empty() {
        deadline.check()?;
        let mut cut = rest.len().min(HTML_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parser.process(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
    }
    Ok(parser.finish())
}

/// Removes the elements whose contents a reader never sees. html2text already skips
/// `<script>` and `<style>` (and `<head>`); `<noscript>` is parsed as markup with
/// scripting off and would show, and `<template>` is inert.
fn drop_invisible(root: &html2text::Handle) {
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        node.children
            .borrow_mut()
            .retain(|child| match &child.data {
                html2text::Element { name, .. } => {
                    !matches!(&*name.local, "script" | "style" | "noscript" | "template")
                }
                _ => true,
            });
        stack.extend(node.children.borrow().iter().cloned());
    }
}

// ---------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------

fn pdf_error(e: lopdf::Error) -> ExtractError {
    use lopdf::Error as E;
    match e {
        E::Decryption(_)
        | E::InvalidPassword
        | E::UnsupportedSecurityHandler(_)
        | E::AlreadyEncrypted => ExtractError::Encrypted,
        E::Decompress(lopdf::DecompressError::MemoryLimitExceeded { limit }) => {
            ExtractError::TooLarge(format!("a PDF stream inflates past {limit} bytes"))
        }
        other => ExtractError::Corrupt(format!("not a readable PDF: {other}")),
    }
}

fn pdf_text(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Deadline,
    out: &mut TextSink,
) -> Result<(), ExtractError> {
    let stream_cap = usize::try_from(limits.max_zip_entry_bytes).unwrap_or(usize::MAX);
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(stream_cap),
        ..Default::default()
    };
    let doc = lopdf::Document::load_mem_with_options(bytes, options).map_err(pdf_error)?;
    // An empty user password is tried while loading; still encrypted means it needs one.
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages: Vec<u32> = doc.get_pages().into_keys().collect();
    // Each lopdf call walks the whole page tree again, so ask for pages in batches:
    // few calls for a long document, yet a check of the deadline between them.
    let batch = (pages.len() / 64).max(16);
    let (mut read, mut first_error) = (0usize, None);
    for numbers in pages.chunks(batch) {
        deadline.check()?;
        for chunk in doc.extract_text_chunks_with_limit(numbers, stream_cap) {
            match chunk {
                Ok(text) => {
                    read += 1;
                    if !out.push(&text) {
                        return Ok(());
                    }
                }
                Err(e) => match pdf_error(e) {
                    // A font whose encoding lopdf cannot read costs that font's text only.
                    ExtractError::Corrupt(message) => {
                        tracing::debug!(%message, "skipped unreadable PDF text");
                        first_error.get_or_insert(ExtractError::Corrupt(message));
                    }
                    fatal => return Err(fatal),
                },
            }
        }
        if !out.ends_with_newline_or_empty() && !out.push("\n") {
            return Ok(());
        }
    }
    match first_error {
        Some(error) if read == 0 => Err(error),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------
// DOCX
// ---------------------------------------------------------------------------------

/// The main part of a Word document (what `_rels/.rels` points to in every producer
/// seen in practice).
const DOCX_BODY: &str = "word/document.xml";

fn docx_text(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Deadline,
    out: &mut TextSink,
) -> Result<(), ExtractError> {
    let xml = read_zip_entry(bytes, DOCX_BODY, limits.max_zip_entry_bytes)?;
    deadline.check()?;
    let xml = decode_text(&xml);
    wordml_text(&xml, deadline, out)
}

/// One entry of a zip archive, inflated, refused once it passes `max` bytes.
fn read_zip_entry(bytes: &[u8], name: &str, max: u64) -> Result<Vec<u8>, ExtractError> {
    use zip::result::ZipError;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Corrupt(format!("not a zip archive: {e}")))?;
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => {
            return Err(ExtractError::Corrupt(format!("no {name} in the archive")));
        }
        Err(ZipError::UnsupportedArchive(why)) if why == ZipError::PASSWORD_REQUIRED => {
            return Err(ExtractError::Encrypted);
        }
        Err(e) => return Err(ExtractError::Corrupt(format!("{name}: {e}"))),
    };
    if entry.encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let too_large = |size: u64| {
        ExtractError::TooLarge(format!(
            "{name} inflates to {size} bytes, more than the limit of {max}"
        ))
    };
    // The declared size is checked first (cheap), then enforced while reading (it can lie).
    if entry.size() > max {
        return Err(too_large(entry.size()));
    }
    let mut inflated = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    (&mut entry)
        .take(max.saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|e| ExtractError::Corrupt(format!("{name}: {e}")))?;
    if inflated.len() as u64 > max {
        return Err(too_large(inflated.len() as u64));
    }
    Ok(inflated)
}

/// The text of WordprocessingML: `w:t` runs, a line break after each `w:p`, a tab for
/// each `w:tab` in a run and a line break for each `w:br`/`w:cr`. Deleted text
/// (`w:delText`) and field codes (`w:instrText`) are not text a reader sees. Prefixes are
/// ignored, so DrawingML text (`a:t` in `a:p`, text boxes) is read the same way.
fn wordml_text(xml: &str, deadline: &Deadline, out: &mut TextSink) -> Result<(), ExtractError> {
    use quick_xml::events::Event;
    let corrupt = |e: quick_xml::Error| ExtractError::Corrupt(format!("{DOCX_BODY}: {e}"));
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    // Depths of the elements we are inside; > 0 means inside.
    let (mut in_text, mut in_run) = (0usize, 0usize);
    let mut events = 0u64;
    loop {
        events += 1;
        if events.is_multiple_of(4096) {
            deadline.check()?;
        }
        let more = match reader.read_event().map_err(corrupt)? {
            Event::Eof => return Ok(()),
            Event::Start(e) => match e.local_name().as_ref() {
                "t" => {
                    in_text += 1;
                    true
                }
                "r" => {
                    in_run += 1;
                    true
                }
                "tab" if in_run > 0 => out.push("\t"),
                "br" | "cr" if in_run > 0 => out.push("\n"),
                _ => true,
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" if in_run > 0 => out.push("\t"),
                "br" | "cr" if in_run > 0 => out.push("\n"),
                "p" => out.push("\n"),
                _ => true,
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => {
                    in_text = in_text.saturating_sub(1);
                    true
                }
                "r" => {
                    in_run = in_run.saturating_sub(1);
                    true
                }
                "p" => out.push("\n"),
                _ => true,
            },
            Event::Text(t) if in_text > 0 => out.push(&t.xml10_content()),
            Event::CData(t) if in_text > 0 => out.push(&t),
            Event::GeneralRef(r) if in_text > 0 => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .map(str::to_owned),
                };
                match resolved {
                    Some(s) => out.push(&s),
                    None => true,
                }
            }
            _ => true,
        };
        if !more {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------

fn csv_text(bytes: &[u8], deadline: &Deadline, out: &mut TextSink) -> Result<(), ExtractError> {
    let text = decode_text(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(guess_delimiter(&text))
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut line = String::new();
    for row in 1u64.. {
        if row.is_multiple_of(1024) {
            deadline.check()?;
        }
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ExtractError::Corrupt(format!("CSV: {e}"))),
        }
        line.clear();
        for (i, cell) in record.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(cell);
        }
        line.push('\n');
        if !out.push(&line) {
            break;
        }
    }
    Ok(())
}

/// `,` unless the first line has more `;` or tabs (spreadsheets in many locales).
fn guess_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or_default();
    let count = |c: char| first.matches(c).count();
    let (commas, semicolons, tabs) = (count(','), count(';'), count('\t'));
    if tabs > commas && tabs >= semicolons {
        b'\t'
    } else if semicolons > commas {
        b';'
    } else {
        b','
    }
}

// ---------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------

fn json_text(bytes: &[u8], deadline: &Deadline, out: &mut TextSink) -> Result<(), ExtractError> {
    let text = decode_text(bytes);
    // serde_json refuses nesting deeper than 128, which bounds the walk's recursion.
    let value: Json =
        serde_json::from_str(&text).map_err(|e| ExtractError::Corrupt(format!("JSON: {e}")))?;
    drop(text);
    let mut walk = JsonWalk {
        out,
        deadline,
        steps: 0,
    };
    walk.value(&value, 0)?;
    Ok(())
}

/// A JSON value as text, members in document order (`serde_json::Value` sorts them).
enum Json {
    /// `null`: no text.
    Null,
    /// A string, number or boolean, as it reads.
    Scalar(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Null, `[]` and `{}`: nothing to write.
    fn is_empty(&self) -> bool {
        match self {
            Json::Null => true,
            Json::Scalar(_) => false,
            Json::Array(items) => items.is_empty(),
            Json::Object(members) => members.is_empty(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        // As JSON writes it (`1e300`, not three hundred digits).
        Ok(Json::Scalar(
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Scalar(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Scalar(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

/// Writes JSON as indented lines: `key: value` for a scalar member, `key:` then the
/// members of a nested value indented by two spaces, one line per scalar array item and
/// a blank line between nested array items. Strings are written as they are (no
/// quotes), numbers and booleans as in JSON; nulls and empty values give no line.
struct JsonWalk<'a> {
    out: &'a mut TextSink,
    deadline: &'a Deadline,
    /// Values visited, to check the deadline now and then.
    steps: u64,
}

impl JsonWalk<'_> {
    /// Writes `value` at `depth`; Ok(false) once the text limit is reached.
    fn value(&mut self, value: &Json, depth: usize) -> Result<bool, ExtractError> {
        self.steps += 1;
        if self.steps.is_multiple_of(4096) {
            self.deadline.check()?;
        }
        match value {
            Json::Null => Ok(true),
            Json::Scalar(text) => Ok(self.line(depth, text)),
            Json::Object(members) => {
                for (key, member) in members {
                    let more = match member {
                        Json::Scalar(text) => self.line(depth, &format!("{key}: {text}")),
                        empty if empty.is_empty() => true,
                        nested => {
                            self.line(depth, &format!("{key}:")) && self.value(nested, depth + 1)?
                        }
                    };
                    if !more {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Json::Array(items) => {
                let mut previous_nested = false;
                for item in items {
                    let more = match item {
                        Json::Scalar(text) => {
                            previous_nested = false;
                            self.line(depth, text)
                        }
                        empty if empty.is_empty() => true,
                        nested => {
                            let gap = !previous_nested || self.out.push("\n");
                            previous_nested = true;
                            gap && self.value(nested, depth)?
                        }
                    };
                    if !more {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    fn line(&mut self, depth: usize, text: &str) -> bool {
        self.out.push(&"  ".repeat(depth)) && self.out.push(text) && self.out.push("\n")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A zip archive holding `entries`, stored without compression.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn kind(head: &[u8], name: &str) -> Option<Kind> {
        sniff(head, name).1
    }

    #[test]
    fn pdf_is_sniffed_by_its_magic_whatever_the_name() {
        let pdf = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
        assert_eq!(
            sniff(pdf, "report.pdf"),
            ("application/pdf".to_owned(), Some(Kind::Pdf))
        );
        assert_eq!(
            kind(pdf, "notes.txt"),
            Some(Kind::Pdf),
            "a lying .txt extension"
        );
        assert_eq!(kind(pdf, "no-extension"), Some(Kind::Pdf));
        // A header after some binary junk, within the first KiB, as readers accept it.
        let mut late = b"\0\x01junk\r\n".to_vec();
        late.extend_from_slice(pdf);
        assert_eq!(kind(&late, "x.bin"), Some(Kind::Pdf));
        // Text that mentions the header is text.
        assert_eq!(
            kind(b"# Notes\n\nA PDF starts with %PDF-1.7.\n", "notes.md"),
            Some(Kind::Markdown)
        );
    }

    #[test]
    fn a_pdf_name_does_not_make_bytes_a_pdf() {
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(
            sniff(&random, "report.pdf"),
            (MIME_UNKNOWN.to_owned(), None)
        );
        // Text named .pdf is text.
        assert_eq!(
            kind(b"just some words\n", "report.pdf"),
            Some(Kind::PlainText)
        );
    }

    #[test]
    fn docx_is_a_zip_with_word_parts() {
        let docx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w:document/>"),
        ]);
        assert_eq!(
            sniff(&docx, "letter.docx"),
            (MIME_DOCX.to_owned(), Some(Kind::Docx))
        );
        assert_eq!(
            kind(&docx, "letter.bin"),
            Some(Kind::Docx),
            "word/ in the bytes is enough"
        );

        let plain_zip = zip_of(&[("a.txt", b"hello")]);
        assert_eq!(
            sniff(&plain_zip, "archive.zip"),
            ("application/zip".to_owned(), None)
        );
        // The bytes say zip; only then does the name choose DOCX.
        assert_eq!(kind(&plain_zip, "weird.docx"), Some(Kind::Docx));
    }

    #[test]
    fn html_is_sniffed_by_doctype_or_html_tag() {
        assert_eq!(
            kind(b"<!DOCTYPE html><html><body>x</body></html>", "page.txt"),
            Some(Kind::Html)
        );
        assert_eq!(
            kind(b"\xEF\xBB\xBF  <html lang=en><p>x</p></html>", "index"),
            Some(Kind::Html)
        );
        assert_eq!(kind(b"<div>fragment</div>", "snippet"), Some(Kind::Html));
        assert_eq!(kind(b"<p>hi</p>", "page.htm"), Some(Kind::Html));
        // A README that opens with an HTML comment is still Markdown.
        assert_eq!(
            kind(b"<!-- badge -->\n# Title\n", "README.md"),
            Some(Kind::Markdown)
        );
    }

    #[test]
    fn json_is_sniffed_by_parsing() {
        assert_eq!(
            sniff(br#"{"a": [1, 2, "x"]}"#, "data"),
            ("application/json".to_owned(), Some(Kind::Json))
        );
        assert_eq!(kind(b"  [1, 2, 3]", "numbers.txt"), Some(Kind::Json));
        // A head cut off in the middle of a document is still JSON.
        assert_eq!(
            kind(br#"{"items": [{"name": "a"}, {"na"#, "big.json"),
            Some(Kind::Json)
        );
        // Brackets that do not parse are not JSON, whatever the name.
        assert_eq!(
            kind(b"[link](http://example.com) text", "notes.md"),
            Some(Kind::Markdown)
        );
        assert_eq!(
            kind(b"{not json at all}", "broken.json"),
            Some(Kind::PlainText)
        );
    }

    #[test]
    fn csv_and_markdown_are_text_chosen_by_extension() {
        let csv = b"name,age\nalice,30\n";
        assert_eq!(
            sniff(csv, "people.csv"),
            ("text/csv".to_owned(), Some(Kind::Csv))
        );
        assert_eq!(kind(csv, "people.txt"), Some(Kind::PlainText));
        assert_eq!(
            kind(csv, "PEOPLE.CSV"),
            Some(Kind::Csv),
            "extensions are case-insensitive"
        );
        assert_eq!(kind(b"# Title\n\nbody\n", "notes.md"), Some(Kind::Markdown));
        assert_eq!(kind(b"# Title\n\nbody\n", "notes"), Some(Kind::PlainText));
        // Binary named .csv stays unsupported.
        assert_eq!(
            kind(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01", "table.csv"),
            None
        );
    }

    #[test]
    fn images_and_archives_are_unsupported_with_their_mime() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        assert_eq!(sniff(png, "photo.png"), ("image/png".to_owned(), None));
        assert_eq!(
            sniff(b"\x1f\x8b\x08\0\0\0\0\0", "a.gz"),
            ("application/gzip".to_owned(), None)
        );
        assert_eq!(
            sniff(b"\0\x01\x02\x03", "blob"),
            (MIME_UNKNOWN.to_owned(), None)
        );
    }

    #[test]
    fn text_heuristics_accept_utf16_and_legacy_bytes() {
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("a,b\n1,2\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(kind(&utf16, "sheet.csv"), Some(Kind::Csv));
        assert_eq!(decode_text(&utf16), "a,b\n1,2\n");
        assert_eq!(
            kind(b"caf\xE9 cr\xE8me\n", "menu.txt"),
            Some(Kind::PlainText),
            "Latin-1 is text"
        );
        assert_eq!(kind(b"", "empty.txt"), Some(Kind::PlainText));
    }

    #[test]
    fn from_mime_ignores_parameters_and_case() {
        assert_eq!(
            Kind::from_mime("Text/HTML; charset=UTF-8"),
            Some(Kind::Html)
        );
        assert_eq!(Kind::from_mime("application/ld+json"), Some(Kind::Json));
        assert_eq!(Kind::from_mime("text/x-python"), Some(Kind::PlainText));
        assert_eq!(Kind::from_mime("image/png"), None);
        assert_eq!(Kind::from_mime("application/zip"), None);
        for k in [
            Kind::PlainText,
            Kind::Markdown,
            Kind::Html,
            Kind::Pdf,
            Kind::Docx,
            Kind::Csv,
            Kind::Json,
        ] {
            assert_eq!(Kind::from_mime(k.mime()), Some(k));
        }
    }

    #[test]
    fn browser_viewable_types() {
        for yes in [
            "text/plain; charset=utf-8",
            "application/pdf",
            "image/png",
            "image/jpeg",
            "application/json",
        ] {
            assert!(is_browser_viewable(yes), "{yes}");
        }
        for no in [
            "text/html",
            "image/svg+xml",
            "text/markdown",
            "text/csv",
            MIME_DOCX,
            "application/zip",
            MIME_UNKNOWN,
        ] {
            assert!(!is_browser_viewable(no), "{no}");
        }
    }

    #[test]
    fn sink_truncates_on_a_character_boundary() {
        let mut sink = TextSink::new(5);
        assert!(sink.push("héé"));
        assert!(!sink.push("éllo"));
        assert_eq!(sink.text, "hééél");
        assert!(sink.truncated);
        assert!(!sink.push("more"));
        assert_eq!(sink.text.chars().count(), 5);

        let mut exact = TextSink::new(3);
        assert!(exact.push("abc"));
        assert!(!exact.truncated, "exactly the limit is not truncated");
    }

    #[test]
    fn wordml_runs_paragraphs_and_tabs() {
        let xml = r#"<?xml version="1.0"?><w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
              <w:r><w:t>Hello</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">world &amp; co&#33;</w:t></w:r></w:p>
            <w:p><w:r><w:t>Second</w:t><w:delText>gone</w:delText><w:instrText>PAGE</w:instrText></w:r></w:p>
            </w:body></w:document>"#;
        let mut out = TextSink::new(1000);
        wordml_text(xml, &Deadline::after(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(out.text, "Hello\tworld & co!\nSecond\n");
    }

    #[test]
    fn json_walk_writes_key_value_lines() {
        let json = br#"{"name": "Ada", "age": 36, "tags": ["math", "poetry"], "address": {"city": "London"}, "none": null, "list": [{"a": 1}, {"a": 2}]}"#;
        let mut out = TextSink::new(1000);
        json_text(json, &Deadline::after(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(
            out.text,
            "name: Ada\nage: 36\ntags:\n  math\n  poetry\naddress:\n  city: London\nlist:\n  a: 1\n\n  a: 2\n"
        );
    }

    #[test]
    fn csv_delimiter_is_guessed_from_the_first_line() {
        assert_eq!(guess_delimiter("a;b;c\n1;2;3"), b';');
        assert_eq!(guess_delimiter("a\tb\n"), b'\t');
        assert_eq!(guess_delimiter("a,b;c,d\n"), b',');
        assert_eq!(guess_delimiter(""), b',');
    }
}
