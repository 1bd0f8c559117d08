//! Documents in: people's own files become plain text with paragraph boundaries.
//!
//! Contract:
//! - Every file yields either a [`Document`] or a [`DocError`] that names the file, a
//!   [`DocErrorKind`] and a human message. Nothing here panics on bad input and one bad file never
//!   stops the others (PDF extraction runs under `catch_unwind` and a timeout, see `pdf.rs`).
//! - `Document::text` holds normalised paragraphs joined by exactly `"\n\n"`; a paragraph never
//!   contains a newline, never starts or ends with whitespace and has single spaces only.
//! - Folders are walked recursively in byte order of the file names, so the same folder always
//!   gives the same sequence; hidden files (`.name`) and symlinked folders are skipped.
//! - Formats: txt, md, html, pdf, docx, epub (one file each). The extension decides; files
//!   without a known extension are sniffed.
//!
//! Serves `memtrain exercises --docs PATH...` and the app's Documents panel.

pub mod chunk;
mod docx;
mod epub;
mod html;
mod markdown;
pub mod normalise;
mod pdf;
mod text;

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file formats we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Txt,
    Md,
    Html,
    Pdf,
    Docx,
    Epub,
}

impl Format {
    /// Every extension [`Self::from_extension`] knows (the Open dialog's filter).
    pub const EXTENSIONS: &'static [&'static str] = &["txt", "text", "md", "markdown", "mdown", "html", "htm", "xhtml", "pdf", "docx", "epub"];

    /// The format a file name promises, from its extension (case-insensitive).
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Format::Txt,
            "md" | "markdown" | "mdown" => Format::Md,
            "html" | "htm" | "xhtml" => Format::Html,
            "pdf" => Format::Pdf,
            "docx" => Format::Docx,
            "epub" => Format::Epub,
            _ => return None,
        })
    }

    /// Guesses the format from the first bytes (for files without a known extension).
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"%PDF-") {
            return Some(Format::Pdf);
        }
        if bytes.starts_with(b"PK\x03\x04") {
            // EPUB stores an uncompressed `mimetype` entry first; anything else zipped we try as docx.
            return Some(if bytes.get(30..58) == Some(&b"mimetypeapplication/epub+zip"[..]) { Format::Epub } else { Format::Docx });
        }
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
        if head.trim_start().starts_with("<!doctype html") || head.contains("<html") {
            return Some(Format::Html);
        }
        None
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Md => "md",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Epub => "epub",
        }
    }
}

/// One readable file, as text.
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    /// `d` + the first 12 hex digits of the file's SHA-256: stable across renames and moves.
    pub id: String,
    pub path: PathBuf,
    pub format: Format,
    pub title: String,
    /// Paragraphs joined by `"\n\n"` (see the module contract).
    pub text: String,
    /// Unicode scalar values in `text`.
    pub chars: usize,
    /// Size of the file on disk.
    pub bytes: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl Document {
    pub fn paragraphs(&self) -> impl Iterator<Item = &str> {
        self.text.split("\n\n").filter(|p| !p.is_empty())
    }
}

/// Why a file gave no document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocErrorKind {
    /// It could not be opened or read (missing, permissions, I/O).
    Unreadable,
    /// It is password-protected or DRM-encrypted.
    Encrypted,
    /// It holds no text (zero bytes, only whitespace, or a scanned PDF without a text layer).
    Empty,
    /// Not a format we read, or binary data under a text extension.
    Unsupported,
    /// Larger than the configured limit (file size or unpacked size).
    TooLarge,
    /// The container or markup is broken (bad zip, bad XML, unparsable PDF).
    Corrupt,
    /// The extractor did not finish in time (PDF only).
    Timeout,
}

impl DocErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            DocErrorKind::Unreadable => "unreadable",
            DocErrorKind::Encrypted => "encrypted",
            DocErrorKind::Empty => "empty",
            DocErrorKind::Unsupported => "unsupported",
            DocErrorKind::TooLarge => "too large",
            DocErrorKind::Corrupt => "corrupt",
            DocErrorKind::Timeout => "timeout",
        }
    }
}

/// A file that gave no document: which file, what kind of problem, and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DocError {
    pub path: PathBuf,
    pub kind: DocErrorKind,
    pub message: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.kind.name(), self.message)
    }
}

impl std::error::Error for DocError {}

/// A failure inside a format reader, before the path is attached.
#[derive(Debug)]
pub(crate) struct Fail {
    pub kind: DocErrorKind,
    pub message: String,
}

impl Fail {
    pub fn new(kind: DocErrorKind, message: impl Into<String>) -> Fail {
        Fail { kind, message: message.into() }
    }
    pub fn corrupt(message: impl Into<String>) -> Fail {
        Fail::new(DocErrorKind::Corrupt, message)
    }
}

/// What a format reader returns: an optional title and raw paragraphs (normalised afterwards).
pub(crate) struct Extracted {
    pub title: Option<String>,
    pub paragraphs: Vec<String>,
}

/// Limits that keep one hostile file from eating the machine.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct LoadOptions {
    /// Files larger than this on disk are refused as `TooLarge` without being read.
    pub max_file_bytes: u64,
    /// Refuse zip containers (docx, epub) whose entries unpack to more than this.
    pub max_unpacked_bytes: u64,
    /// PDF extraction is abandoned after this long (the worker thread is left to finish alone).
    pub pdf_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { max_file_bytes: 256 << 20, max_unpacked_bytes: 512 << 20, pdf_timeout: Duration::from_secs(60) }
    }
}

/// All files under `paths` (files as given, folders recursively), sorted within each folder.
/// Paths that do not exist come back as `Unreadable` errors.
pub fn list_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<DocError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        walk(p, true, &mut files, &mut errors);
    }
    (files, errors)
}

fn walk(path: &Path, top: bool, files: &mut Vec<PathBuf>, errors: &mut Vec<DocError>) {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    if hidden && !top {
        return;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(io_error(path, &e)),
    };
    // Follow a symlink only when the user named it; inside folders they could loop.
    let meta = if meta.file_type().is_symlink() {
        if !top {
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return errors.push(io_error(path, &e)),
        }
    } else {
        meta
    };
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => return errors.push(io_error(path, &e)),
        };
        entries.sort();
        for e in entries {
            walk(&e, false, files, errors);
        }
    } else {
        files.push(path.to_path_buf());
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> DocError {
    let message = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    DocError { path: path.to_path_buf(), kind: DocErrorKind::Unreadable, message }
}

/// Reads every file under `path` with default limits (for the app's Documents panel).
pub fn load_path(path: &Path) -> Vec<Result<Document, DocError>> {
    load_paths(&[path.to_path_buf()], &LoadOptions::default())
}

/// Reads every file under `paths`; errors and documents come back in walk order.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Vec<Result<Document, DocError>> {
    let (files, errors) = list_files(paths);
    let mut out: Vec<Result<Document, DocError>> = errors.into_iter().map(Err).collect();
    out.extend(files.iter().map(|f| load_file(f, opts)));
    out
}

/// Reads one file into a [`Document`].
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Document, DocError> {
    let err = |f: Fail| DocError { path: path.to_path_buf(), kind: f.kind, message: f.message };
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if meta.len() > opts.max_file_bytes {
        return Err(err(Fail::new(DocErrorKind::TooLarge, format!("{} bytes is over the {}-byte limit", meta.len(), opts.max_file_bytes))));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
    load_bytes(path, &bytes, opts)
}

/// Reads a file that is already in memory; `path` names it in errors and picks the format.
pub fn load_bytes(path: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Document, DocError> {
    load_bytes_hashed(path, bytes, opts, None)
}

/// [`load_file`] for a caller that already hashed the file (the dataset builder hashes every
/// file first to decide splits, and hashing twice showed up in its profile).
pub fn load_file_hashed(path: &Path, opts: &LoadOptions, sha256: &str) -> Result<Document, DocError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if meta.len() > opts.max_file_bytes {
        return Err(DocError {
            path: path.to_path_buf(),
            kind: DocErrorKind::TooLarge,
            message: format!("{} bytes is over the {}-byte limit", meta.len(), opts.max_file_bytes),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
    load_bytes_hashed(path, &bytes, opts, Some(sha256))
}

fn load_bytes_hashed(path: &Path, bytes: &[u8], opts: &LoadOptions, sha256: Option<&str>) -> Result<Document, DocError> {
    let err = |f: Fail| DocError { path: path.to_path_buf(), kind: f.kind, message: f.message };
    if bytes.is_empty() {
        return Err(err(Fail::new(DocErrorKind::Empty, "the file has zero bytes")));
    }
    if bytes.len() as u64 > opts.max_file_bytes {
        return Err(err(Fail::new(DocErrorKind::TooLarge, format!("{} bytes is over the limit", bytes.len()))));
    }
    let format = match Format::from_extension(path) {
        Some(f) => f,
        None => match (path.extension(), Format::sniff(bytes)) {
            // No extension at all: sniff, else plain text if it decodes as text.
            (None, Some(f)) => f,
            (None, None) => Format::Txt,
            (Some(ext), _) => {
                return Err(err(Fail::new(
                    DocErrorKind::Unsupported,
                    format!(".{} files are not read (supported: txt, md, html, pdf, docx, epub)", ext.to_string_lossy()),
                )));
            }
        },
    };
    let extracted = match format {
        Format::Txt => text::read(bytes),
        Format::Md => markdown::read(bytes),
        Format::Html => html::read(bytes),
        Format::Pdf => pdf::read(bytes, opts),
        Format::Docx => docx::read(bytes, opts),
        Format::Epub => epub::read(bytes, opts),
    }
    .map_err(err)?;
    let text = normalise::join_paragraphs(extracted.paragraphs.iter().map(String::as_str));
    if text.is_empty() {
        let why = if format == Format::Pdf { "no text layer (a scanned PDF?)" } else { "no text after extraction" };
        return Err(err(Fail::new(DocErrorKind::Empty, why)));
    }
    let title =
        extracted.title.map(|t| normalise::clean_inline(&t)).filter(|t| !t.is_empty()).unwrap_or_else(|| fallback_title(path, &text));
    let sha256 = sha256.map(str::to_string).unwrap_or_else(|| hex(&Sha256::digest(bytes)));
    Ok(Document {
        id: format!("d{}", &sha256[..12]),
        path: path.to_path_buf(),
        format,
        title,
        chars: text.chars().count(),
        text,
        bytes: bytes.len() as u64,
        sha256,
    })
}

/// A short first paragraph without closing punctuation (a title line), else the file stem, else
/// the first words of the text.
fn fallback_title(path: &Path, text: &str) -> String {
    let first = text.split("\n\n").next().unwrap_or("");
    if !first.is_empty() && first.chars().count() <= 100 && !first.ends_with(['.', '!', '?', ',', ';', ':']) {
        return first.to_string();
    }
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => text.split_whitespace().take(8).collect::<Vec<_>>().join(" "),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Open dialog offers exactly what the loader reads by extension.
    #[test]
    fn every_listed_extension_has_a_format() {
        for ext in Format::EXTENSIONS {
            assert!(Format::from_extension(Path::new(&format!("a.{ext}"))).is_some(), "{ext}");
        }
        assert!(Format::from_extension(Path::new("a.exe")).is_none());
    }
}
