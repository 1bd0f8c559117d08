//! The `exercises.jsonl` line format: [`Exercise`] to read it, a fast writer to write it.
//!
//! Contract: `write_record` produces exactly the bytes `serde_json` would for `Record`
//! (field order, escaping, number format) followed by `\n`; the test below holds the two
//! side by side. It exists because serde_json's byte-by-byte string escaping was the largest
//! single cost of a build: every line repeats its context's chunks, so output is several times
//! the input. Here runs of bytes that need no escape are found with `memchr` and copied whole.

use super::curriculum::Difficulty;
use super::entities::EntityKind;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One line of `exercises.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exercise {
    pub id: String,
    pub doc_id: String,
    pub split: String,
    pub objective: String,
    pub chunks: Vec<String>,
    pub question: String,
    pub answer: String,
    pub entity_type: EntityKind,
    pub difficulty: Difficulty,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot_chunk: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_chunk: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A person's masked-entity exercise over `chunks` (unit tests of the teacher and evaluation).
#[cfg(test)]
pub(crate) fn masked_for_test(chunks: &[&str], answer: &str) -> Exercise {
    {
        Exercise {
            id: "e".into(),
            doc_id: "d".into(),
            split: "train".into(),
            objective: "masked_entity".into(),
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
            question: "Which entity is [MASK]?".into(),
            answer: answer.into(),
            entity_type: EntityKind::Person,
            difficulty: Difficulty { level: 1, chunks: chunks.len(), distance: 1, distractors: 0, pivot_in_first_chunk: false, answer_words: 1, masked_occurrences: 1 },
            pivot_chunk: Some(1),
            probe_chunk: None,
            probe_text: None,
            parent: None,
        }
    }
}

/// Word count, the token counter of the teacher's unit tests.
#[cfg(test)]
pub(crate) fn words_for_test(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Reads `exercises.jsonl` back (tests, the trainer, the app's Exercises panel).
pub fn read_exercises(path: &Path) -> Result<Vec<Exercise>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: not an exercise", path.display(), i + 1)))
        .collect()
}

/// The borrowed twin of [`Exercise`] that is actually written (no copies of the chunks).
#[derive(Serialize)]
pub(crate) struct Record<'a> {
    pub id: &'a str,
    pub doc_id: &'a str,
    pub split: &'a str,
    pub objective: &'static str,
    pub chunks: &'a [String],
    pub question: &'a str,
    pub answer: &'a str,
    pub entity_type: EntityKind,
    pub difficulty: &'a Difficulty,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pivot_chunk: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_chunk: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<&'a str>,
}

impl Record<'_> {
    pub fn to_owned(&self) -> Exercise {
        Exercise {
            id: self.id.into(),
            doc_id: self.doc_id.into(),
            split: self.split.into(),
            objective: self.objective.into(),
            chunks: self.chunks.to_vec(),
            question: self.question.into(),
            answer: self.answer.into(),
            entity_type: self.entity_type,
            difficulty: self.difficulty.clone(),
            pivot_chunk: self.pivot_chunk,
            probe_chunk: self.probe_chunk,
            probe_text: self.probe_text.map(str::to_string),
            parent: self.parent.map(str::to_string),
        }
    }
}

/// A JSON string literal, escaped exactly like serde_json (short escapes for `\b \f \n \r \t`,
/// `\u00xx` with lower-case hex for other control bytes, nothing else escaped).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    // Control bytes other than '\n' are rare (normalised text has none); check once, branch-free.
    let other_controls = b.iter().fold(false, |acc, &c| acc | ((c < 0x20) & (c != b'\n')));
    let mut start = 0;
    while start < b.len() {
        let next = if other_controls {
            b[start..].iter().position(|&c| c < 0x20 || c == b'"' || c == b'\\')
        } else {
            memchr::memchr3(b'"', b'\\', b'\n', &b[start..])
        };
        let Some(off) = next else { break };
        let i = start + off;
        out.extend_from_slice(&b[start..i]);
        match b[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start.min(b.len())..]);
    out.push(b'"');
}

fn key(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    write_str(out, name);
    out.push(b':');
}

fn num(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// One line: the record as JSON plus `\n`.
pub(crate) fn write_record(out: &mut Vec<u8>, r: &Record<'_>) {
    out.push(b'{');
    for (i, (k, v)) in [("id", r.id), ("doc_id", r.doc_id), ("split", r.split), ("objective", r.objective)].into_iter().enumerate() {
        key(out, k, i == 0);
        write_str(out, v);
    }
    key(out, "chunks", false);
    out.push(b'[');
    for (i, c) in r.chunks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, c);
    }
    out.push(b']');
    key(out, "question", false);
    write_str(out, r.question);
    key(out, "answer", false);
    write_str(out, r.answer);
    key(out, "entity_type", false);
    write_str(out, r.entity_type.name());
    let d = r.difficulty;
    key(out, "difficulty", false);
    out.push(b'{');
    key(out, "level", true);
    num(out, d.level as usize);
    for (k, v) in [("chunks", d.chunks), ("distance", d.distance), ("distractors", d.distractors)] {
        key(out, k, false);
        num(out, v);
    }
    key(out, "pivot_in_first_chunk", false);
    out.extend_from_slice(if d.pivot_in_first_chunk { b"true" } else { b"false" });
    for (k, v) in [("answer_words", d.answer_words), ("masked_occurrences", d.masked_occurrences)] {
        key(out, k, false);
        num(out, v);
    }
    out.push(b'}');
    for (k, v) in [("pivot_chunk", r.pivot_chunk), ("probe_chunk", r.probe_chunk)] {
        if let Some(v) = v {
            key(out, k, false);
            num(out, v);
        }
    }
    for (k, v) in [("probe_text", r.probe_text), ("parent", r.parent)] {
        if let Some(v) = v {
            key(out, k, false);
            write_str(out, v);
        }
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(chunks: &'a [String], d: &'a Difficulty, text: &'a str, probe: bool) -> Record<'a> {
        Record {
            id: "d1-0000-m0",
            doc_id: "d1",
            split: "train",
            objective: if probe { "memory_recall" } else { "masked_entity" },
            chunks,
            question: "Which entity is [MASK]?",
            answer: text,
            entity_type: EntityKind::Place,
            difficulty: d,
            pivot_chunk: (!probe).then_some(1),
            probe_chunk: probe.then_some(0),
            probe_text: probe.then_some(text),
            parent: probe.then_some("d1-0000-m0"),
        }
    }

    #[test]
    fn fast_writer_is_byte_identical_to_serde_json() {
        let nasty = "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \u{0} del \u{7f} é ✓ \u{1f} end";
        let chunks = vec!["plain text".to_string(), nasty.to_string(), String::new(), "Anna\n\nBerg".to_string()];
        let d = Difficulty {
            level: 3,
            chunks: 4,
            distance: 2,
            distractors: 1,
            pivot_in_first_chunk: false,
            answer_words: 2,
            masked_occurrences: 4,
        };
        for probe in [false, true] {
            for text in ["Anna Berg", nasty, ""] {
                let r = record(&chunks, &d, text, probe);
                let mut fast = Vec::new();
                write_record(&mut fast, &r);
                let mut plain = serde_json::to_vec(&r).unwrap();
                plain.push(b'\n');
                assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&plain));
            }
        }
    }
}
