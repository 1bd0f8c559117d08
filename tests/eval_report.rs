//! `memtrain eval --compare`: the report, its CSV, records and PNG charts, on the real model.

mod common;

use memtrain::eval::report::{CompareOptions, CompareReport, Record, TEACHER_MEMORY, compare};
use memtrain::train::config::MemoryStyle;
use memtrain::train::reference::TeacherStyle;
use memtrain::train::rewards::score_answer;
use std::path::{Path, PathBuf};

/// Two held-out documents of three chunks, each with one masked exercise and one recall probe
/// of chunk 0 (so the probe can be asked at distances 0, 1 and 2).
fn held_out(dir: &Path) -> PathBuf {
    let out = dir.join("data");
    std::fs::create_dir_all(&out).unwrap();
    let difficulty = r#"{"level":1,"chunks":3,"distance":2,"distractors":0,"pivot_in_first_chunk":true,"answer_words":1,"masked_occurrences":1}"#;
    let mut lines = String::new();
    for (i, (city, person)) in [("Oslo", "Anna Berg"), ("Lisbon", "Tomas Silva")].iter().enumerate() {
        let chunks = format!(r#"["{person} sailed to {city} in May 1901.","The winter was long and the harbour froze.","Later [MASK] was remembered for its ships."]"#);
        lines += &format!(r#"{{"id":"e{i}","doc_id":"d{i}","split":"held_out","objective":"masked_entity","chunks":{chunks},"question":"Which entity is [MASK]?","answer":"{city}","entity_type":"place","difficulty":{difficulty},"pivot_chunk":2}}"#);
        lines += "\n";
        lines += &format!(r#"{{"id":"e{i}-r0","doc_id":"d{i}","split":"held_out","objective":"memory_recall","chunks":{chunks},"question":"Which entity is [TARGET]?","answer":"{person}","entity_type":"person","difficulty":{difficulty},"probe_chunk":0,"probe_text":"[TARGET] sailed to {city} in May 1901.","parent":"e{i}"}}"#);
        lines += "\n";
    }
    std::fs::write(out.join("exercises.jsonl"), lines).unwrap();
    out
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn comparing_a_model_with_itself_writes_every_artefact_and_a_zero_gain() {
    let Some(model) = common::real_model() else { return };
    let dir = std::env::temp_dir().join(format!("memtrain-eval-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = held_out(&dir);
    let out = dir.join("report");
    let device = memtrain::device::DeviceChoice::Cpu;
    // 40 memory tokens: the teacher's sentence memory keeps the name's sentence and the blank's.
    let options = CompareOptions { limit: 0, max_distance: 2, memory_tokens: 40, answer_tokens: 8, teacher: TeacherStyle { memory: MemoryStyle::Sentences, ..Default::default() }, no_repeat_ngram: 0 };
    let report = compare(Some(&model), Some(&model), &data, &out, options, device, &mut |_| {}, &|| true).unwrap();

    // Same weights, greedy decoding: the two sides answer identically, so the paired gain is
    // exactly zero with a zero-width interval.
    let trained = report.trained.as_ref().unwrap();
    assert_eq!(report.baseline.masked, trained.masked);
    let gains = report.gains.as_ref().unwrap();
    assert_eq!((gains.masked_exact_match.n, gains.masked_exact_match.low, gains.masked_exact_match.high), (2, 0.0, 0.0));
    assert_eq!(gains.recall_exact_match.n, 6, "2 probes × distances 0, 1 and 2");
    assert_eq!(report.baseline.recall_by_distance.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);

    // report.json reads back; records hold the scored predictions and the memory asked.
    let back: CompareReport = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, report);
    let records: Vec<Record> = std::fs::read_to_string(out.join("records-baseline.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.iter().filter(|r| r.objective == "masked").count(), 2);
    assert_eq!(records.iter().filter(|r| r.objective == "recall").count(), 6);
    // Objective 1 is asked again from the teacher's final memory, which keeps the sentence
    // naming the city and the [MASK] sentence; those answers stay out of the breakdowns.
    let from_teacher: Vec<&Record> = records.iter().filter(|r| r.objective == TEACHER_MEMORY).collect();
    assert_eq!(from_teacher.len(), 2, "{from_teacher:?}");
    for r in &from_teacher {
        assert!(r.memory.contains(&r.gold) && r.memory.contains("[MASK]") && !r.memory.contains("winter"), "{r:?}");
    }
    assert_eq!(report.baseline.masked_from_teacher_memory.exact_match.n, 2);
    assert_eq!(gains.masked_from_teacher_memory_exact_match.n, 2);
    assert_eq!(report.baseline.by_entity_type.values().map(|s| s.exact_match.n).sum::<usize>(), 2 + 6);
    for r in &records {
        assert_eq!(r.exact, score_answer(&r.prediction, &r.gold).exact, "{r:?}");
        assert!(!r.memory.is_empty(), "{r:?}");
    }
    // Distance 2 from chunk 0 of a three-chunk document is the last memory: the one the final
    // answer of objective 1 was made from.
    let at = |d| records.iter().find(|r| r.id == "e0-r0" && r.distance == Some(d)).unwrap().memory.clone();
    let last = records.iter().find(|r| r.id == "e0" && r.objective == "masked").unwrap().memory.clone();
    assert_eq!(at(2), last);

    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert!(csv.starts_with("model,breakdown,key,n,exact_match"));
    assert_eq!(csv.lines().filter(|l| l.contains(",objective,masked,")).count(), 2, "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",objective,masked_from_teacher_memory,2,")).count(), 2, "{csv}");
    for chart in ["recall_by_distance.png", "objectives.png", "entity_types.png"] {
        assert_eq!(png_size(&out.join(chart)), (900, 540), "{chart}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
