//! Every supported format, read from real files made by real tools (LibreOffice, pandoc; see
//! scripts/make_document_fixtures.sh): the same source text must come out of each.

use memtrain::documents::{self, Format, LoadOptions};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents").join(name)
}

fn load(name: &str) -> documents::Document {
    documents::load_file(&fixture(name), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The paragraphs of the Markdown source, as the reader of every format should give them.
fn source_paragraphs() -> Vec<String> {
    let md = load("fixture.md");
    md.paragraphs().map(str::to_string).collect()
}

#[test]
fn every_format_gives_the_source_paragraphs_in_order() {
    let want = source_paragraphs();
    assert_eq!(want.len(), 8, "{want:#?}");
    for (name, format) in [
        ("fixture.txt", Format::Txt),
        ("fixture.html", Format::Html),
        ("fixture.docx", Format::Docx),
        ("fixture-pandoc.docx", Format::Docx),
        ("fixture.pdf", Format::Pdf),
        ("fixture.epub", Format::Epub),
    ] {
        let doc = load(name);
        assert_eq!(doc.format, format, "{name}");
        let got: Vec<&str> = doc.paragraphs().collect();
        // Pandoc repeats the title as a title block; every source paragraph must still appear,
        // in order, as a whole paragraph.
        let mut at = 0;
        for w in &want {
            match got[at..].iter().position(|g| g == w) {
                Some(i) => at += i + 1,
                None => panic!("{name}: paragraph missing or out of order: {w:?}\ngot: {got:#?}"),
            }
        }
        assert!(got.len() <= want.len() + 1, "{name}: extra paragraphs: {got:#?}");
    }
}

#[test]
fn pdf_running_headers_and_page_numbers_are_removed() {
    let doc = load("fixture.pdf");
    // LibreOffice printed the title as a header and "Page N" as a footer on each of 3 pages.
    assert_eq!(doc.text.matches("The Pier at Marrow Bay").count(), 1, "{}", doc.text);
    assert!(!doc.text.contains("Page 1") && !doc.text.contains("Page 3"), "{}", doc.text);
    assert_eq!(doc.title, "The Pier at Marrow Bay");
}

#[test]
fn titles_come_from_the_document_itself() {
    for name in ["fixture.md", "fixture.html", "fixture.docx", "fixture.epub", "fixture.txt"] {
        assert_eq!(load(name).title, "The Pier at Marrow Bay", "{name}");
    }
}

#[test]
fn latin1_and_utf16_files_decode_to_the_same_text_as_utf8() {
    let utf8 = load("src/latin1-source.txt");
    assert!(utf8.text.contains("Søren Ækerø") && utf8.text.contains("crème brûlée"));
    for name in ["latin1.txt", "utf16le-bom.txt"] {
        assert_eq!(load(name).text, utf8.text, "{name}");
    }
}

#[test]
fn paragraphs_are_normalised() {
    for name in ["fixture.txt", "fixture.pdf", "fixture.docx", "fixture.html", "fixture.epub", "fixture.md"] {
        let doc = load(name);
        for p in doc.text.split("\n\n") {
            assert!(!p.is_empty() && p.trim() == p && !p.contains('\n') && !p.contains("  "), "{name}: {p:?}");
        }
        assert_eq!(doc.chars, doc.text.chars().count());
    }
}

#[test]
fn folders_are_read_recursively_in_a_stable_sorted_order() {
    let dir = fixture("");
    let a: Vec<PathBuf> = documents::load_path(&dir).into_iter().map(|r| r.map(|d| d.path).unwrap_or_else(|e| e.path)).collect();
    let b: Vec<PathBuf> = documents::load_path(&dir).into_iter().map(|r| r.map(|d| d.path).unwrap_or_else(|e| e.path)).collect();
    assert_eq!(a, b);
    assert!(a.iter().any(|p| p.ends_with("src/fixture.md")), "subfolders are read: {a:#?}");
    let top: Vec<&PathBuf> = a.iter().filter(|p| p.parent() == Some(dir.as_path()) || p.parent() == Some(&dir.join(""))).collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted);
}

#[test]
fn identical_content_gives_the_same_document_id() {
    let a = load("fixture.md");
    let b = documents::load_file(&fixture("src/fixture.md"), &LoadOptions::default()).unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.sha256.len(), 64);
    assert_ne!(a.id, load("fixture.txt").id);
}

#[test]
fn the_first_run_samples_all_load_with_real_prose() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let docs: Vec<_> = documents::load_path(&dir).into_iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
    let formats: std::collections::BTreeSet<Format> = docs.iter().map(|d| d.format).collect();
    assert_eq!(formats.len(), 6, "one sample per format: {formats:?}");
    let words: usize = docs.iter().map(|d| d.text.split_whitespace().count()).sum();
    assert!(words >= 2500, "{words} words in the samples");
    for d in &docs {
        assert!(d.text.split_whitespace().count() > 300, "{}", d.path.display());
        assert!(!d.text.contains("<script") && !d.text.contains("console.log"), "{}", d.path.display());
    }
}
