//! Text extraction on real files of every supported format, made here and written to a
//! temporary directory, and on the broken, hostile and oversized files an upload
//! service receives: each must end in a typed error, quickly, never in a panic.

#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::samples::{CONTENT_TYPES, docx_bytes, pdf_bytes, pdf_document, zip_bytes};
use lopdf::dictionary;
use strategist::files::extract::{
    ExtractError, Extracted, Kind, Limits, MIME_DOCX, MIME_UNKNOWN, extract, extract_file, sniff,
};
use tempfile::TempDir;

/// Writes `bytes` as `name` in `dir`.
fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Sniffs `bytes` as the upload `name`, writes them and extracts them with `limits`:
/// what an upload handler does.
fn sniff_and_extract(
    name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> (Option<Kind>, Result<Extracted, ExtractError>) {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, name, bytes);
    let (mime, kind) = sniff(&bytes[..bytes.len().min(8192)], name);
    (kind, extract_file(&path, &mime, limits))
}

fn text_of(name: &str, bytes: &[u8]) -> Extracted {
    let (kind, result) = sniff_and_extract(name, bytes, &Limits::default());
    let extracted = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(Some(extracted.kind), kind);
    assert!(!extracted.truncated);
    extracted
}

// ---- builders ----------------------------------------------------------------------

/// A PDF with one page per entry of `sentences`, each shown in Helvetica, and the
/// trailer `/ID` that encryption needs.
// ---- every format ------------------------------------------------------------------

#[test]
fn pdf_text_is_extracted_page_by_page() {
    let bytes = pdf_bytes(pdf_document(&[
        "The quick brown fox jumps over the lazy dog.",
        "Second page (with parentheses) says goodbye.",
    ]));
    let extracted = text_of("report.pdf", &bytes);
    assert_eq!(extracted.kind, Kind::Pdf);
    let first = extracted
        .text
        .find("The quick brown fox jumps over the lazy dog.")
        .unwrap();
    let second = extracted
        .text
        .find("Second page (with parentheses) says goodbye.")
        .unwrap();
    assert!(first < second, "pages in order: {:?}", extracted.text);
}

#[test]
fn a_pdf_named_txt_is_still_read_as_a_pdf() {
    let bytes = pdf_bytes(pdf_document(&["Named like text, but a PDF."]));
    let extracted = text_of("notes.txt", &bytes);
    assert_eq!(extracted.kind, Kind::Pdf);
    assert!(
        extracted.text.contains("Named like text, but a PDF."),
        "{:?}",
        extracted.text
    );
    assert!(!extracted.text.contains("%PDF"), "not the raw bytes");
}

#[test]
fn docx_paragraphs_tabs_and_entities() {
    let bytes = docx_bytes(
        r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
             <w:r><w:t>Quarterly</w:t></w:r><w:r><w:t xml:space="preserve"> plan</w:t></w:r></w:p>
           <w:p><w:r><w:t>Revenue</w:t><w:tab/><w:t>R&amp;D &lt;2026&gt;</w:t></w:r></w:p>
           <w:p><w:r><w:delText>deleted words</w:delText><w:t>Kept</w:t></w:r></w:p>"#,
    );
    let extracted = text_of("plan.docx", &bytes);
    assert_eq!(extracted.kind, Kind::Docx);
    assert_eq!(
        extracted.text,
        "Quarterly plan\nRevenue\tR&D <2026>\nKept\n"
    );
}

#[test]
fn html_keeps_visible_text_only() {
    let html = br#"<!DOCTYPE html>
<html><head><title>Page title</title>
<style>body { color: SECRET_STYLE_RULE; }</style>
<script>var secret = "SECRET_SCRIPT_TEXT";</script></head>
<body>
  <h1>Welcome &amp; hello</h1>
  <p>First <b>visible</b> paragraph.</p>
  <script type="module">console.log("SECRET_BODY_SCRIPT")</script>
  <noscript>SECRET_NOSCRIPT_TEXT</noscript>
  <template><p>SECRET_TEMPLATE_TEXT</p></template>
  <style>.x { content: "SECRET_BODY_STYLE" }</style>
  <table><tr><td>cell one</td><td>cell two</td></tr></table>
  <ul><li>item A</li><li>item B</li></ul>
</body></html>"#;
    let extracted = text_of("page.html", html);
    assert_eq!(extracted.kind, Kind::Html);
    let text = &extracted.text;
    for visible in [
        "Welcome & hello",
        "First visible paragraph.",
        "cell one",
        "cell two",
        "item A",
        "item B",
    ] {
        assert!(text.contains(visible), "{visible:?} missing from {text:?}");
    }
    assert!(!text.contains("SECRET"), "hidden content leaked: {text:?}");
    assert!(!text.contains('<'), "no markup: {text:?}");
    assert!(
        !text.lines().any(|l| l.ends_with(' ')),
        "no padding: {text:?}"
    );
}

#[test]
fn csv_rows_become_lines() {
    let csv = b"name,city,note\nAlice,Paris,\"likes, commas\"\nBob,Berlin,\"two\nlines\"\n";
    let extracted = text_of("people.csv", csv);
    assert_eq!(extracted.kind, Kind::Csv);
    assert_eq!(
        extracted.text,
        "name, city, note\nAlice, Paris, likes, commas\nBob, Berlin, two\nlines\n"
    );
    let semicolons = text_of("excel.csv", "\u{FEFF}Produkt;Preis\nKäse;3,50\n".as_bytes());
    assert_eq!(semicolons.text, "Produkt, Preis\nKäse, 3,50\n");
}

#[test]
fn json_values_become_key_value_lines() {
    let json = br#"{"title": "Launch plan", "budget": 12500.5, "approved": true, "owner": null,
        "steps": ["draft", "review"], "team": {"lead": "Dana", "size": 4}}"#;
    let extracted = text_of("plan.json", json);
    assert_eq!(extracted.kind, Kind::Json);
    assert_eq!(
        extracted.text,
        "title: Launch plan\nbudget: 12500.5\napproved: true\nsteps:\n  draft\n  review\nteam:\n  lead: Dana\n  size: 4\n"
    );
}

#[test]
fn markdown_is_kept_as_written() {
    let md = "# Roadmap\n\n- **Q1**: ship *search*\n- Q2: `files`\n";
    let extracted = text_of("roadmap.md", md.as_bytes());
    assert_eq!(extracted.kind, Kind::Markdown);
    assert_eq!(extracted.text, md);
}

#[test]
fn plain_text_drops_the_bom_and_replaces_invalid_utf8() {
    let extracted = text_of("notes.txt", b"\xEF\xBB\xBFcaf\xC3\xA9 ok\nbad \xFF byte\n");
    assert_eq!(extracted.kind, Kind::PlainText);
    assert_eq!(extracted.text, "café ok\nbad \u{FFFD} byte\n");

    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("Grüße\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    assert_eq!(text_of("windows.txt", &utf16).text, "Grüße\n");
}

#[test]
fn long_text_is_truncated_at_the_limit() {
    let limits = Limits {
        max_text_chars: 10,
        ..Limits::default()
    };
    let (_, result) = sniff_and_extract("long.txt", "ééééé ààààà ùùùùù".as_bytes(), &limits);
    let extracted = result.unwrap();
    assert!(extracted.truncated);
    assert_eq!(extracted.text, "ééééé àààà");

    let bytes = docx_bytes(&"<w:p><w:r><w:t>paragraph</w:t></w:r></w:p>".repeat(1000));
    let (_, result) = sniff_and_extract("long.docx", &bytes, &limits);
    let extracted = result.unwrap();
    assert!(extracted.truncated);
    assert_eq!(extracted.text, "paragraph\n");
}

// ---- broken and hostile files ------------------------------------------------------

#[test]
fn truncated_pdf_is_corrupt_not_a_panic() {
    let bytes = pdf_bytes(pdf_document(&["This sentence is cut off."]));
    for cut in [bytes.len() / 2, 40, 9] {
        let (kind, result) = sniff_and_extract("cut.pdf", &bytes[..cut], &Limits::default());
        assert_eq!(kind, Some(Kind::Pdf), "the magic is still there");
        match result {
            Err(ExtractError::Corrupt(message)) => {
                assert!(message.starts_with("not a readable PDF"), "{message}")
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn random_bytes_named_pdf() {
    let mut rng = fastrand::Rng::with_seed(7);
    let bytes: Vec<u8> = (0..64 * 1024).map(|_| rng.u8(..)).collect();
    let (kind, result) = sniff_and_extract("invoice.pdf", &bytes, &Limits::default());
    assert_eq!(kind, None);
    assert_eq!(
        result,
        Err(ExtractError::Unsupported(MIME_UNKNOWN.to_owned()))
    );

    // Told it is a PDF anyway, the parser says no.
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "invoice.pdf", &bytes);
    assert!(matches!(
        extract_file(&path, "application/pdf", &Limits::default()),
        Err(ExtractError::Corrupt(_))
    ));
}

#[test]
fn password_protected_pdf_is_encrypted() {
    let mut doc = pdf_document(&["Top secret sentence."]);
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-pass",
        user_password: "user-pass",
        key_length: 128,
        permissions: lopdf::Permissions::default(),
    })
    .unwrap();
    doc.encrypt(&state).unwrap();
    let bytes = pdf_bytes(doc);
    let (kind, result) = sniff_and_extract("secret.pdf", &bytes, &Limits::default());
    assert_eq!(kind, Some(Kind::Pdf));
    let error = result.unwrap_err();
    assert_eq!(error, ExtractError::Encrypted);
    assert_eq!(
        error.to_string(),
        "the file is encrypted (password-protected)"
    );
}

#[test]
fn pdf_encrypted_with_an_empty_user_password_is_read() {
    // Only an owner password: any reader opens it, and so do we.
    let mut doc = pdf_document(&["Readable by anyone."]);
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-pass",
        user_password: "",
        key_length: 128,
        permissions: lopdf::Permissions::default(),
    })
    .unwrap();
    doc.encrypt(&state).unwrap();
    let bytes = pdf_bytes(doc);
    assert!(bytes.windows(8).any(|w| w == b"/Encrypt"));
    assert!(
        text_of("open.pdf", &bytes)
            .text
            .contains("Readable by anyone.")
    );
}

#[test]
fn pdf_with_a_bogus_encrypt_entry_is_encrypted() {
    let mut doc = pdf_document(&["Never shown."]);
    let bogus = doc.add_object(dictionary! { "Filter" => "Standard", "V" => 9, "R" => 9 });
    doc.trailer.set("Encrypt", bogus);
    let bytes = pdf_bytes(doc);
    let (kind, result) = sniff_and_extract("odd.pdf", &bytes, &Limits::default());
    assert_eq!(kind, Some(Kind::Pdf));
    // lopdf cannot authenticate against it, so it is treated as needing a password.
    assert_eq!(result, Err(ExtractError::Encrypted));
}

#[test]
fn docx_zip_bomb_is_too_large_quickly() {
    // 60 MB of zeros deflate to about 60 KB.
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    writer.start_file("[Content_Types].xml", options).unwrap();
    writer.write_all(CONTENT_TYPES).unwrap();
    writer.start_file("word/document.xml", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..60 {
        writer.write_all(&zeros).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    assert!(
        bytes.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bytes.len()
    );

    let started = Instant::now();
    let (kind, result) = sniff_and_extract("bomb.docx", &bytes, &Limits::default());
    assert_eq!(kind, Some(Kind::Docx));
    match result {
        Err(ExtractError::TooLarge(message)) => {
            assert!(message.contains("word/document.xml"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn docx_entry_lying_about_its_size_is_stopped_while_reading() {
    // A deflated entry of 4 MiB whose headers claim 100 bytes: the declared size passes
    // the check, so only the bounded read can stop it.
    let body = format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "a".repeat(4 << 20));
    let mut bytes = docx_bytes(&body);
    let mut patched = 0;
    for (signature, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(4).position(|w| w == signature) {
            let header = at + found;
            let name_at = if signature == b"PK\x03\x04" {
                header + 30
            } else {
                header + 46
            };
            if bytes[name_at..].starts_with(b"word/document.xml") {
                bytes[header + offset..header + offset + 4].copy_from_slice(&100u32.to_le_bytes());
                patched += 1;
            }
            at = header + 4;
        }
    }
    assert_eq!(patched, 2, "local and central headers");
    let limits = Limits {
        max_zip_entry_bytes: 1 << 20,
        ..Limits::default()
    };
    let (kind, result) = sniff_and_extract("liar.docx", &bytes, &limits);
    assert_eq!(kind, Some(Kind::Docx));
    // The zip reader itself refuses to inflate past the declared size (Corrupt); the
    // bounded read is the second line (TooLarge). Never 4 MiB of text.
    match result {
        Err(ExtractError::TooLarge(m) | ExtractError::Corrupt(m)) => {
            assert!(m.contains("word/document.xml"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn docx_without_a_body_or_not_a_zip_is_corrupt() {
    let no_body = zip_bytes(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/styles.xml", b"<x/>"),
    ]);
    let (kind, result) = sniff_and_extract("empty.docx", &no_body, &Limits::default());
    assert_eq!(kind, Some(Kind::Docx));
    assert_eq!(
        result,
        Err(ExtractError::Corrupt(
            "no word/document.xml in the archive".to_owned()
        ))
    );

    let dir = TempDir::new().unwrap();
    let path = write(&dir, "fake.docx", b"PK\x03\x04 but nothing after");
    let error = extract_file(&path, MIME_DOCX, &Limits::default()).unwrap_err();
    assert!(
        matches!(&error, ExtractError::Corrupt(m) if m.starts_with("not a zip archive")),
        "{error:?}"
    );

    let broken_xml = docx_bytes("<w:p><w:r><w:t>cut</w:t></w:r></w:p><!-- a comment never closed");
    let (_, result) = sniff_and_extract("broken.docx", &broken_xml, &Limits::default());
    assert!(
        matches!(result, Err(ExtractError::Corrupt(_))),
        "{result:?}"
    );
}

#[test]
fn a_file_over_max_bytes_is_too_large_before_reading() {
    let limits = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let (_, result) = sniff_and_extract("big.txt", &[b'x'; 1001], &limits);
    assert_eq!(
        result,
        Err(ExtractError::TooLarge(
            "the file has 1001 bytes, more than the limit of 1000".to_owned()
        ))
    );
    let (_, result) = sniff_and_extract("fits.txt", &[b'x'; 1000], &limits);
    assert_eq!(result.unwrap().text.len(), 1000);
}

#[test]
fn unsupported_types_say_which() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let (kind, result) = sniff_and_extract("photo.png", png, &Limits::default());
    assert_eq!(kind, None);
    assert_eq!(
        result,
        Err(ExtractError::Unsupported("image/png".to_owned()))
    );

    let plain_zip = zip_bytes(&[("a.txt", b"hello")]);
    let (_, result) = sniff_and_extract("archive.zip", &plain_zip, &Limits::default());
    assert_eq!(
        result,
        Err(ExtractError::Unsupported("application/zip".to_owned()))
    );
}

#[test]
fn deeply_nested_input_is_an_error_or_text_not_a_crash() {
    let json = "[".repeat(100_000);
    let (kind, result) = sniff_and_extract("deep.json", json.as_bytes(), &Limits::default());
    assert_eq!(kind, Some(Kind::Json));
    assert!(matches!(result, Err(ExtractError::Corrupt(m)) if m.contains("recursion")));

    let html = format!(
        "<html><body>{}deep text{}</body></html>",
        "<div>".repeat(2_000),
        "</div>".repeat(2_000)
    );
    let (_, result) = sniff_and_extract("deep.html", html.as_bytes(), &Limits::default());
    assert!(result.unwrap().text.contains("deep text"));
}

#[test]
fn deeply_nested_html_stops_at_the_deadline() {
    // html5ever's time grows with the square of the nesting depth: 100 000 nested
    // elements would take minutes. The parser is fed in chunks and stops at the deadline.
    let html = format!(
        "<html><body>{}deep text</body></html>",
        "<div>".repeat(100_000)
    );
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let started = Instant::now();
    let (kind, result) = sniff_and_extract("deep.html", html.as_bytes(), &limits);
    assert_eq!(kind, Some(Kind::Html));
    assert_eq!(result, Err(ExtractError::TimedOut(limits.timeout)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = TempDir::new().unwrap();
    let result = extract_file(
        &dir.path().join("gone.txt"),
        "text/plain",
        &Limits::default(),
    );
    assert!(matches!(result, Err(ExtractError::Io(m)) if m.contains("gone.txt")));
}

// ---- the async wrapper -------------------------------------------------------------

#[tokio::test]
async fn extract_runs_on_the_blocking_pool() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "hello.md", b"# Hello\n");
    let extracted = extract(path, "text/markdown".to_owned(), Limits::default())
        .await
        .unwrap();
    assert_eq!(
        extracted,
        Extracted {
            kind: Kind::Markdown,
            text: "# Hello\n".to_owned(),
            truncated: false
        }
    );
}

#[tokio::test]
async fn extract_times_out() {
    let dir = TempDir::new().unwrap();
    let bytes = pdf_bytes(pdf_document(&["Too slow."]));
    let path = write(&dir, "slow.pdf", &bytes);
    let limits = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    let result = extract(path, "application/pdf".to_owned(), limits).await;
    assert_eq!(result, Err(ExtractError::TimedOut(Duration::ZERO)));
}

#[tokio::test]
async fn extract_reports_errors_unchanged() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "photo.png", b"\x89PNG\r\n\x1a\n");
    let result = extract(path, "image/png".to_owned(), Limits::default()).await;
    assert_eq!(
        result,
        Err(ExtractError::Unsupported("image/png".to_owned()))
    );
}

#[tokio::test]
async fn a_hung_read_times_out_and_its_thread_finishes_later() {
    // Opening a FIFO blocks until someone writes to it: a real hang inside the blocking
    // code, which no deadline check inside extract_file can see.
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("upload.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let result = extract(fifo.clone(), "text/plain".to_owned(), limits).await;
    assert_eq!(
        result,
        Err(ExtractError::TimedOut(Duration::from_millis(300)))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The abandoned thread is still blocked; a writer that closes at once gives it end of
    // file, so it finishes and the runtime can shut down.
    drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
}
