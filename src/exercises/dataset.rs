//! A folder of documents → `exercises.jsonl` + `manifest.ron`.
//!
//! Serves `memtrain exercises --docs PATH... --out DIR [--preset tiny|small|paper] [--seed N]
//! [--model PATH]` and the app's Exercises panel.
//!
//! Output contract:
//! - `DIR/exercises.jsonl`: one JSON object per line ([`Exercise`]): `id`, `doc_id`, `split`
//!   ("train" or "held_out"), `objective` ("masked_entity" or "memory_recall"), `chunks` (the
//!   chunk texts as the model reads them), `question`, `answer`, `entity_type`, `difficulty`
//!   (object), `pivot_chunk` (objective 1), and for recall probes `probe_chunk`, `probe_text`
//!   and `parent` (the masked exercise whose rollouts provide the memory).
//! - `DIR/manifest.ron`: the configuration, seed, token counter, every source file with its
//!   SHA-256 and split, counts per objective and split, entity types, and per-file errors.
//! - The same inputs and seed give byte-identical files: files are read in sorted order, every
//!   random choice comes from a ChaCha RNG seeded by (seed, document hash, context index), and
//!   only ordered maps are written.
//! - Documents are split by content hash, never one document across splits; identical files
//!   are read once. Distractors come from documents of the same split only.
//! - Memory stays bounded: one document at a time plus a fixed-size distractor reservoir; the
//!   output is streamed. Files are written under temporary names and renamed at the end, so a
//!   cancelled or failed run leaves no half-written dataset.

use super::context::{self, Context, DistractorPool};
use super::curriculum::{Curriculum, Difficulty, MaskScope, Preset};
use super::entities::{EntityTagger, RuleTagger, Vocab};
use super::jsonl::{self, Record};
pub use super::jsonl::{Exercise, read_exercises};
pub use super::manifest::{DatasetSummary, Duplicate, FileError, Manifest, SourceEntry, read_manifest};
use super::{masked_entity, recall_probe, scoring};
use crate::documents::chunk::{ApproxCounter, TokenCounter};
use crate::documents::{self, DocError, DocErrorKind, Document, LoadOptions};
use anyhow::{Context as _, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const EXERCISES_FILE: &str = "exercises.jsonl";
pub const MANIFEST_FILE: &str = "manifest.ron";
/// Units kept per split for distractors (a few hundred kB of text at most for small presets).
const POOL_CAPACITY: usize = 2048;

/// What `build` reads and writes.
#[derive(Clone)]
pub struct DatasetOptions {
    /// Files or folders (read recursively).
    pub docs: Vec<PathBuf>,
    pub out: PathBuf,
    pub preset: Preset,
    pub seed: u64,
    /// The model's tokenizer; `None` uses the approximate counter.
    pub counter: Option<Arc<dyn TokenCounter + Send + Sync>>,
    pub load: LoadOptions,
    /// Overrides the preset's curriculum when set.
    pub curriculum: Option<Curriculum>,
    /// The entity finder; `None` uses [`RuleTagger`]. The seam for a model-based tagger.
    pub tagger: Option<Arc<dyn EntityTagger + Send + Sync>>,
}

impl DatasetOptions {
    pub fn new(docs: Vec<PathBuf>, out: PathBuf) -> DatasetOptions {
        DatasetOptions {
            docs,
            out,
            preset: Preset::default(),
            seed: 0,
            counter: None,
            load: LoadOptions::default(),
            curriculum: None,
            tagger: None,
        }
    }

    pub fn curriculum(&self) -> Curriculum {
        self.curriculum.clone().unwrap_or_else(|| Curriculum::preset(self.preset))
    }

    /// Masks objective 1 with `scope` in the curriculum in use (the preset's, unless overridden:
    /// set the preset first).
    pub fn set_mask_scope(&mut self, scope: MaskScope) {
        self.curriculum = Some(Curriculum { mask_scope: scope, ..self.curriculum() });
    }
}

/// The tokenizer of a model (`.gguf` file or Hugging Face folder) as a token counter.
pub fn counter_from_model(path: &Path) -> Result<Arc<dyn TokenCounter + Send + Sync>> {
    use crate::checkpoint::tokenizer::TextTokenizer;
    let tok = if path.is_dir() {
        TextTokenizer::from_hf_dir(path)?
    } else {
        TextTokenizer::from_gguf(&crate::checkpoint::gguf::GgufFile::open(path)?)?
    };
    Ok(Arc::new(tok))
}

/// Reported after each file; return `false` from the callback to cancel.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub exercises: usize,
    pub current: Option<PathBuf>,
}

/// The error `build` returns when the progress callback asked to stop.
#[derive(Debug, thiserror::Error)]
#[error("cancelled; nothing was written")]
pub struct Cancelled;

pub const MASKED: &str = "masked_entity";
pub const RECALL: &str = "memory_recall";
pub const TRAIN: &str = "train";
pub const HELD_OUT: &str = "held_out";

/// splitmix64 finaliser: independent RNG streams from (seed, document, context, purpose).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e3779b97f4a7c15).wrapping_add(a << 6).wrapping_add(a >> 2);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

fn sha_prefix(sha_hex: &str) -> u64 {
    u64::from_str_radix(&sha_hex[..16.min(sha_hex.len())], 16).unwrap_or(0)
}

/// Split by content: documents ranked by a seeded hash of their SHA-256; the lowest
/// `held_out_percent` (at least one when there are two or more) are held out.
fn held_out_set(shas: &[String], seed: u64, percent: u32) -> std::collections::BTreeSet<String> {
    let mut distinct: Vec<&String> = shas.iter().collect();
    distinct.sort();
    distinct.dedup();
    let n = distinct.len();
    if n < 2 || percent == 0 {
        return Default::default();
    }
    let k = ((n as u64 * percent as u64).div_ceil(100) as usize).clamp(1, n - 1);
    let mut ranked: Vec<(u64, &String)> = distinct.into_iter().map(|s| (mix(seed, sha_prefix(s)), s)).collect();
    ranked.sort();
    ranked.into_iter().take(k).map(|(_, s)| s.clone()).collect()
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((documents::hex(&h.finalize()), n))
}

/// Exercises of one document, handed to `emit` in order. Returns the contexts' count and the
/// document's units (for the distractor pool of later documents).
#[allow(clippy::too_many_arguments)]
pub fn document_exercises(
    doc: &Document,
    split: &str,
    cfg: &Curriculum,
    seed: u64,
    counter: &dyn TokenCounter,
    tagger: &dyn EntityTagger,
    pool: &DistractorPool,
    emit: &mut dyn FnMut(&Exercise) -> Result<()>,
) -> Result<usize> {
    let mut owned = |r: &Record<'_>| emit(&r.to_owned());
    let units = context::document_units(doc.paragraphs(), cfg, counter);
    process(doc, split, cfg, seed, counter, tagger, pool, &units, &mut owned, &mut || true).map(|(n, _)| n)
}

#[allow(clippy::too_many_arguments)]
fn process(
    doc: &Document,
    split: &str,
    cfg: &Curriculum,
    seed: u64,
    counter: &dyn TokenCounter,
    tagger: &dyn EntityTagger,
    pool: &DistractorPool,
    units: &[crate::documents::chunk::Unit],
    emit: &mut dyn FnMut(&Record<'_>) -> Result<()>,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<(usize, [usize; 2])> {
    let doc_seed = mix(seed, sha_prefix(&doc.sha256));
    let vocab = Vocab::from_text(&doc.text);
    let mut counts = [0usize; 2];
    let mut contexts = 0;
    // A short document gives few contexts; it is read again (other stages, distractors and
    // pivots) until it has `min_masked_per_document` exercises or the passes run out.
    for pass in 0..cfg.max_passes.max(1) {
        if pass > 0 && counts[0] >= cfg.min_masked_per_document {
            break;
        }
        let pass_seed = mix(doc_seed, pass as u64);
        let rng_for = |i: usize| ChaCha8Rng::seed_from_u64(mix(pass_seed, 2 * i as u64));
        contexts += context::for_each_context(units, cfg, pool, counter, rng_for, |ctx| {
            // A long document can take a while: let the caller cancel between contexts.
            if ctx.index % 256 == 255 && !keep_going() {
                return Err(Cancelled.into());
            }
            let mut rng = ChaCha8Rng::seed_from_u64(mix(pass_seed, 2 * ctx.index as u64 + 1));
            let mut found = context::UnitEntities::new(&ctx, tagger, &vocab);
            let masked = masked_entity::make(&ctx, &mut found, cfg.masked_per_context, cfg.mask_scope, &mut rng);
            for (k, ex) in masked.iter().enumerate() {
                let id = format!("{}-p{pass}-c{:04}-m{k}", doc.id, ctx.index);
                let level = difficulty(&ctx, ex.pivot_chunk, &ex.answer, ex.occurrences);
                emit(&Record {
                    id: &id,
                    doc_id: &doc.id,
                    split,
                    objective: MASKED,
                    chunks: &ex.chunks,
                    question: masked_entity::QUESTION,
                    answer: &ex.answer,
                    entity_type: ex.kind,
                    difficulty: &level,
                    pivot_chunk: Some(ex.pivot_chunk),
                    probe_chunk: None,
                    probe_text: None,
                    parent: None,
                })?;
                counts[0] += 1;
                for (j, p) in recall_probe::make(ex, &mut found, &ctx.chunks, cfg.probes_per_exercise, &mut rng).iter().enumerate() {
                    let pid = format!("{id}-r{j}");
                    let probe_level = difficulty(&ctx, p.chunk, &p.answer, p.occurrences);
                    emit(&Record {
                        id: &pid,
                        doc_id: &doc.id,
                        split,
                        objective: RECALL,
                        chunks: &ex.chunks,
                        question: recall_probe::QUESTION,
                        answer: &p.answer,
                        entity_type: p.kind,
                        difficulty: &probe_level,
                        pivot_chunk: None,
                        probe_chunk: Some(p.chunk),
                        probe_text: Some(&p.text),
                        parent: Some(&id),
                    })?;
                    counts[1] += 1;
                }
            }
            Ok(())
        })?;
    }
    Ok((contexts, counts))
}

fn difficulty(ctx: &Context, chunk: usize, answer: &str, occurrences: usize) -> Difficulty {
    Difficulty {
        level: ctx.level,
        chunks: ctx.chunks.len(),
        distance: ctx.chunks.len() - 1 - chunk,
        distractors: ctx.distractors(),
        pivot_in_first_chunk: chunk == 0,
        answer_words: answer.split_whitespace().count(),
        masked_occurrences: occurrences,
    }
}

/// Builds the dataset (see the module contract). `progress` is called before each file and
/// once at the end; returning `false` cancels with [`Cancelled`] and writes nothing.
pub fn build(opts: &DatasetOptions, progress: &mut dyn FnMut(Progress) -> bool) -> Result<DatasetSummary> {
    let cfg = opts.curriculum();
    if cfg.stages.is_empty() || cfg.stages.iter().any(|s| s.min_chunks == 0 || s.min_chunks > s.max_chunks) {
        bail!("the curriculum needs at least one stage with 1 ≤ min_chunks ≤ max_chunks");
    }
    let approx = ApproxCounter;
    let counter: &dyn TokenCounter = match &opts.counter {
        Some(c) => c.as_ref(),
        None => &approx,
    };
    let rules = RuleTagger;
    let tagger: &dyn EntityTagger = match &opts.tagger {
        Some(t) => t.as_ref(),
        None => &rules,
    };
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create the output folder {}", opts.out.display()))?;

    // Pass 1: list and hash (streaming), so splits depend on content and not on file order.
    let (files, list_errors) = documents::list_files(&opts.docs);
    // An output folder inside a documents folder must not feed a previous run's files back in.
    let out_dir = std::fs::canonicalize(&opts.out).unwrap_or_else(|_| opts.out.clone());
    let files: Vec<PathBuf> = files.into_iter().filter(|f| std::fs::canonicalize(f).map_or(true, |c| !c.starts_with(&out_dir))).collect();
    let mut errors: Vec<DocError> = list_errors;
    let mut hashed: Vec<(PathBuf, String, u64)> = Vec::new();
    let mut bytes_total = 0u64;
    for f in &files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        if size > opts.load.max_file_bytes {
            errors.push(DocError {
                path: f.clone(),
                kind: DocErrorKind::TooLarge,
                message: format!("{size} bytes is over the {}-byte limit", opts.load.max_file_bytes),
            });
            continue;
        }
        match hash_file(f) {
            Ok((sha, n)) => {
                bytes_total += n;
                hashed.push((f.clone(), sha, n));
            }
            Err(e) => errors.push(DocError { path: f.clone(), kind: DocErrorKind::Unreadable, message: e.to_string() }),
        }
    }
    let shas: Vec<String> = hashed.iter().filter(|(_, _, n)| *n > 0).map(|(_, s, _)| s.clone()).collect();
    let held_out = held_out_set(&shas, opts.seed, cfg.held_out_percent);

    // Pass 2: read, build, stream out.
    let tmp = opts.out.join(format!("{EXERCISES_FILE}.partial"));
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let result = (|| -> Result<(Manifest, DatasetSummary)> {
        let mut pools = [DistractorPool::new(mix(opts.seed, 11), POOL_CAPACITY), DistractorPool::new(mix(opts.seed, 12), POOL_CAPACITY)];
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut sources = Vec::new();
        let mut duplicates = Vec::new();
        let mut without = Vec::new();
        let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        let mut prog = Progress { files_total: hashed.len(), bytes_total, ..Default::default() };
        let mut chars_read = 0u64;
        let mut line = Vec::with_capacity(1 << 16);
        for (path, sha, size) in &hashed {
            prog.current = Some(path.clone());
            if !progress(prog.clone()) {
                return Err(Cancelled.into());
            }
            prog.files_done += 1;
            prog.bytes_done += size;
            if let Some(first) = seen.get(sha) {
                duplicates.push((path.clone(), first.clone()));
                continue;
            }
            seen.insert(sha.clone(), path.clone());
            let doc = match documents::load_file_hashed(path, &opts.load, sha) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            chars_read += doc.chars as u64;
            let split = if held_out.contains(&doc.sha256) { HELD_OUT } else { TRAIN };
            let pool_i = usize::from(split == HELD_OUT);
            let units = context::document_units(doc.paragraphs(), &cfg, counter);
            let mut write = |r: &Record<'_>| -> Result<()> {
                line.clear();
                jsonl::write_record(&mut line, r);
                out.write_all(&line)?;
                *counts.entry((r.objective, split)).or_default() += 1;
                *kinds.entry(r.entity_type.name()).or_default() += 1;
                Ok(())
            };
            let mut keep_going = || progress(prog.clone());
            let (contexts, [m, r]) =
                process(&doc, split, &cfg, opts.seed, counter, tagger, &pools[pool_i], &units, &mut write, &mut keep_going)?;
            pools[pool_i].offer(&units);
            prog.exercises += m + r;
            if m + r == 0 {
                without.push(path.clone());
            }
            sources.push(SourceEntry {
                path: path.display().to_string(),
                doc_id: doc.id.clone(),
                sha256: doc.sha256.clone(),
                format: doc.format.name().to_string(),
                title: doc.title.clone(),
                split: split.to_string(),
                bytes: doc.bytes,
                chars: doc.chars,
                contexts,
                masked_entity: m,
                memory_recall: r,
            });
        }
        prog.current = None;
        progress(prog.clone());
        let mut nested: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for ((objective, split), n) in counts {
            nested.entry(objective.to_string()).or_default().insert(split.to_string(), n);
        }
        let counts = nested;
        let kinds: BTreeMap<String, usize> = kinds.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        let manifest = Manifest {
            format_version: 1,
            generator: format!("memtrain {}", env!("CARGO_PKG_VERSION")),
            seed: opts.seed,
            curriculum: cfg.clone(),
            token_counter: counter.name(),
            entity_tagger: tagger.name().to_string(),
            questions: BTreeMap::from([
                (MASKED.to_string(), masked_entity::QUESTION.to_string()),
                (RECALL.to_string(), recall_probe::QUESTION.to_string()),
            ]),
            scorers: vec![scoring::EXACT_MATCH.to_string(), scoring::TOKEN_F1.to_string()],
            sources,
            counts: counts.clone(),
            entity_types: kinds,
            errors: errors
                .iter()
                .map(|e| FileError { path: e.path.display().to_string(), kind: e.kind, message: e.message.clone() })
                .collect(),
            duplicates: duplicates
                .iter()
                .map(|(p, o)| Duplicate { path: p.display().to_string(), same_as: o.display().to_string() })
                .collect(),
        };
        let summary = DatasetSummary {
            out: opts.out.clone(),
            preset: cfg.preset,
            token_counter: counter.name(),
            files_read: manifest.sources.len(),
            files_failed: errors.clone(),
            duplicates,
            without_exercises: without,
            bytes_read: manifest.sources.iter().map(|s| s.bytes).sum(),
            chars_read,
            exercises: prog.exercises,
            counts,
        };
        Ok((manifest, summary))
    })();
    let (manifest, summary) = match result.and_then(|r| out.flush().map(|_| r).map_err(Into::into)) {
        Ok(r) => r,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    drop(out);
    let ron = ron::ser::to_string_pretty(&manifest, ron::ser::PrettyConfig::default())?;
    let manifest_tmp = opts.out.join(format!("{MANIFEST_FILE}.partial"));
    std::fs::write(&manifest_tmp, ron + "\n").with_context(|| format!("cannot write {}", manifest_tmp.display()))?;
    std::fs::rename(&tmp, opts.out.join(EXERCISES_FILE))?;
    std::fs::rename(&manifest_tmp, opts.out.join(MANIFEST_FILE))?;
    Ok(summary)
}
