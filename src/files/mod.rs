//! Uploaded files: what they are and what text they hold.
//!
//! - [`extract`]: sniffing a file's type from its bytes and pulling its text out of
//!   plain text, Markdown, HTML, PDF, DOCX, CSV and JSON, in bounded time and memory
//!   and without ever panicking to the caller. Pure: no Redis, no database, no HTTP.

pub mod extract;
