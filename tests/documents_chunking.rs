//! Token-aware chunking on real documents. With `MEMTRAIN_MODEL` pointing to a GGUF model the
//! budgets are checked with its real tokenizer too; without it, with the approximate counter.

use memtrain::documents::chunk::{ApproxCounter, TokenCounter, chunk_text};
use memtrain::documents::{self, Document};
use std::path::Path;

fn samples() -> Vec<Document> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    documents::load_path(&dir).into_iter().map(|r| r.unwrap()).collect()
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// `slack`: tokens a chunk may exceed the budget by; `tight`: also check that greedy packing
/// left no two neighbours that would fit together (exact only for an additive counter; real
/// BPE counts of joined text are a little lower than the sum of the parts the packer charged).
fn check_budgets(counter: &dyn TokenCounter, slack: usize, tight: bool) {
    for doc in samples() {
        for budget in [48, 128, 384, 5000] {
            let chunks = chunk_text(&doc.text, budget, counter);
            for c in &chunks {
                let n = counter.count(c);
                assert!(
                    n <= budget + slack,
                    "{}: chunk of {n} tokens over the {budget} budget ({}): {c:?}",
                    doc.path.display(),
                    counter.name()
                );
            }
            // Nothing lost, nothing reordered, no word cut in two.
            assert_eq!(words(&chunks.join("\n\n")), words(&doc.text), "{}", doc.path.display());
            // Greedy packing: two neighbours could not have been one chunk.
            for pair in chunks.windows(2).filter(|_| tight) {
                let together = counter.count(&format!("{}\n\n{}", pair[0], pair[1]));
                assert!(
                    together > budget.saturating_sub(8),
                    "{}: two chunks of {together} tokens fit one {budget}-token chunk",
                    doc.path.display()
                );
            }
        }
    }
}

#[test]
fn chunks_fit_the_budget_and_keep_every_word_in_order() {
    check_budgets(&ApproxCounter, 0, true);
}

#[test]
fn paragraph_boundaries_are_preferred_over_sentence_cuts() {
    let doc = samples().into_iter().find(|d| d.path.ends_with("harbour-town-chronicle.md")).unwrap();
    let paragraphs: Vec<&str> = doc.paragraphs().collect();
    let chunks = chunk_text(&doc.text, 384, &ApproxCounter);
    // At 384 tokens every paragraph of this document fits, so no paragraph may be split.
    for p in &paragraphs {
        assert!(ApproxCounter.count(p) <= 384);
        assert!(chunks.iter().any(|c| c.contains(p)), "paragraph split across chunks: {p:?}");
    }
}

/// Needs `MEMTRAIN_MODEL=/path/to/model.gguf`; prints and skips otherwise.
#[test]
fn with_the_model_tokenizer_chunks_fit_its_real_counts() {
    let Ok(path) = std::env::var("MEMTRAIN_MODEL") else {
        eprintln!("MEMTRAIN_MODEL not set: real-tokenizer chunking not checked");
        return;
    };
    let g = memtrain::checkpoint::gguf::GgufFile::open(Path::new(&path)).unwrap();
    let tok = memtrain::checkpoint::tokenizer::TextTokenizer::from_gguf(&g).unwrap();
    // BPE counts are almost additive at whitespace seams; allow the separator's tokens.
    check_budgets(&tok, 2, false);
    // The approximate counter must track the real one on English prose, erring high.
    let (mut approx, mut real) = (0usize, 0usize);
    for doc in samples() {
        approx += ApproxCounter.count(&doc.text);
        real += tok.count(&doc.text);
    }
    let ratio = approx as f64 / real as f64;
    eprintln!("approximate / real token count on the samples: {approx} / {real} = {ratio:.3}");
    assert!((0.95..=1.4).contains(&ratio), "approximate counter off by {ratio:.3}");
}
