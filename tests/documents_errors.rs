//! Bad input: every broken file gives a clear error that names the file and the problem, never
//! a panic, and never stops the other files.

use memtrain::documents::{self, DocErrorKind, LoadOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents").join(name)
}

fn error_of(name: &str) -> documents::DocError {
    match documents::load_file(&fixture(name), &LoadOptions::default()) {
        Ok(d) => panic!("{name} loaded as a document: {:?}", d.title),
        Err(e) => e,
    }
}

#[test]
fn each_bad_file_gets_its_own_reason_and_names_the_file() {
    let cases = [
        ("empty.txt", DocErrorKind::Empty),
        ("whitespace.md", DocErrorKind::Empty),
        ("no-text-layer.pdf", DocErrorKind::Empty),
        ("binary.txt", DocErrorKind::Unsupported),
        ("unsupported.odt", DocErrorKind::Unsupported),
        ("legacy-word.docx", DocErrorKind::Unsupported),
        ("encrypted.pdf", DocErrorKind::Encrypted),
        ("encrypted.docx", DocErrorKind::Encrypted),
        ("drm.epub", DocErrorKind::Encrypted),
        ("corrupt.docx", DocErrorKind::Corrupt),
        ("corrupt.pdf", DocErrorKind::Corrupt),
    ];
    for (name, kind) in cases {
        let e = error_of(name);
        assert_eq!(e.kind, kind, "{name}: {e}");
        let shown = e.to_string();
        assert!(shown.contains(name), "the message must name the file: {shown}");
        assert!(shown.contains(kind.name()), "the message must name the problem: {shown}");
        assert!(e.message.len() > 10, "{name}: a reason a person can act on: {shown}");
    }
}

#[test]
fn a_missing_path_is_unreadable() {
    let e = documents::load_path(&fixture("no-such-file.txt")).pop().unwrap().unwrap_err();
    assert_eq!(e.kind, DocErrorKind::Unreadable);
    assert!(e.to_string().contains("no-such-file.txt"));
}

#[test]
fn an_oversized_file_is_refused_without_being_read() {
    let dir = std::env::temp_dir().join(format!("memtrain-oversized-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.txt");
    // A sparse 3 GB file: reading it would take seconds and gigabytes, the size check does not.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(3 << 30).unwrap();
    let t = std::time::Instant::now();
    let e = documents::load_file(&path, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.kind, DocErrorKind::TooLarge, "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // The limit is configurable, and applies to real files too.
    let small = LoadOptions { max_file_bytes: 100, ..Default::default() };
    assert_eq!(documents::load_file(&fixture("fixture.md"), &small).unwrap_err().kind, DocErrorKind::TooLarge);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_zip_whose_contents_unpack_beyond_the_limit_is_too_large() {
    let tight = LoadOptions { max_unpacked_bytes: 1000, ..Default::default() };
    for name in ["fixture.docx", "fixture.epub"] {
        let e = documents::load_file(&fixture(name), &tight).unwrap_err();
        assert_eq!(e.kind, DocErrorKind::TooLarge, "{name}: {e}");
    }
}

#[test]
fn a_pdf_that_takes_too_long_times_out_instead_of_hanging() {
    let impatient = LoadOptions { pdf_timeout: Duration::ZERO, ..Default::default() };
    let t = std::time::Instant::now();
    let e = documents::load_file(&fixture("fixture.pdf"), &impatient).unwrap_err();
    assert_eq!(e.kind, DocErrorKind::Timeout, "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn bad_files_do_not_stop_the_good_ones_in_a_folder() {
    let results = documents::load_path(&fixture(""));
    let good: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let bad: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(bad.len() >= 11, "{bad:#?}");
    for name in ["fixture.pdf", "fixture.docx", "fixture.epub", "fixture.html", "fixture.md", "fixture.txt", "latin1.txt"] {
        assert!(good.iter().any(|d| d.path.ends_with(name)), "{name} missing among the documents");
    }
}

/// Seeded byte mutations of real files: whatever the damage, every reader returns a document or
/// an error (a panic inside the PDF library is caught and reported as `Corrupt`).
#[test]
fn damaged_files_never_panic() {
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let opts = LoadOptions { pdf_timeout: Duration::from_secs(10), ..Default::default() };
    let mut outcomes = std::collections::BTreeMap::new();
    for name in ["fixture.pdf", "fixture.docx", "fixture.epub", "fixture.html", "latin1.txt"] {
        let original = std::fs::read(fixture(name)).unwrap();
        for _ in 0..40 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            if next() % 4 == 0 {
                bytes.truncate((next() as usize) % bytes.len());
            }
            let r = std::panic::catch_unwind(|| documents::load_bytes(Path::new(name), &bytes, &opts));
            let r = r.unwrap_or_else(|_| panic!("{name}: a damaged file panicked through the guard"));
            let key = match &r {
                Ok(_) => "document".to_string(),
                // The PDF library panicked on this one and the guard turned it into an error.
                Err(e) if e.message.contains("gave up") => "caught panic".to_string(),
                Err(e) => e.kind.name().to_string(),
            };
            *outcomes.entry(key).or_insert(0) += 1;
        }
    }
    eprintln!("outcomes of 200 damaged files: {outcomes:?}");
    assert!(outcomes.contains_key("corrupt"), "truncation must be detected: {outcomes:?}");
    // With this seed the PDF library panics on several of the damaged PDFs; the guard must
    // have turned each of those into an error.
    assert!(outcomes.contains_key("caught panic"), "{outcomes:?}");
}
