//! Uploaded files, from upload to searchable knowledge.
//!
//! - [`extract`]: sniffing a file's type from its bytes and pulling its text out of
//!   plain text, Markdown, HTML, PDF, DOCX, CSV and JSON, in bounded time and memory
//!   and without ever panicking to the caller. Pure: no Redis, no database, no HTTP.
//! - [`storage`]: the files directory, content-addressed by SHA-256.
//! - [`workers`]: the pipeline's handlers (extraction, embeddings, search index, and
//!   their compensations).
//! - [`search`]: exact cosine search over a contextual core.

pub mod extract;
pub mod search;
pub mod storage;
pub mod workers;
