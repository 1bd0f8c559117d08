//! The learning test of the `tiny-cpu` preset (issue 5 item 10), within a CPU budget CI can
//! afford: a from-scratch model (the preset's shape, SmolLM2's tokenizer) trained with the SFT
//! warm start on synthetic documents, then two GRPO steps, and evaluated on *held-out*
//! documents it never saw.
//!
//! What it asserts: the held-out teacher-trace NLL (how well the model predicts what a good
//! memory agent writes on unseen documents: memory updates that keep the entity sentences, the
//! boxed answer, the recall answer) falls from the untrained ~10.8 nats (ln 49152) to under
//! half of that. What it reports but cannot assert at this budget: held-out masked-entity and
//! recall EM, which stay at 0 for a 7M-parameter model after 40 steps (see the issue note for
//! the long run's curve).

mod common;

use memtrain::exercises::{DatasetOptions, Preset, build};
use memtrain::train::config::ModelSource;
use memtrain::train::{TrainConfig, TrainEvent, Trainer};
use std::sync::atomic::AtomicBool;

#[test]
fn tiny_preset_learns_the_memory_agent_format_on_held_out_documents() {
    let dir = std::env::temp_dir().join(format!("memtrain-learning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tokenizer = common::fixtures().join("tokenizer/smollm2_hf");
    memtrain::exercises::synth::write_documents(&dir.join("docs"), 30, 1).unwrap();
    let mut opts = DatasetOptions::new(vec![dir.join("docs")], dir.join("exercises"));
    opts.preset = Preset::Tiny;
    opts.counter = Some(memtrain::exercises::dataset::counter_from_model(&tokenizer).unwrap());
    build(&opts, &mut |_| true).unwrap();

    let mut cfg = TrainConfig::tiny_cpu();
    if let ModelSource::Scratch { tokenizer_from, .. } = &mut cfg.model {
        *tokenizer_from = Some(tokenizer);
    }
    cfg.sft.steps = 40;
    cfg.grpo_steps = 2;
    cfg.eval.every = 40;
    cfg.eval.exercises = 16;
    let mut trainer = Trainer::open(cfg, &dir.join("exercises"), &dir.join("run"), false).unwrap();
    let mut evals = Vec::new();
    let start = std::time::Instant::now();
    trainer
        .run(&AtomicBool::new(false), &mut |e| {
            if let TrainEvent::Evaluated(e) = e {
                eprintln!("step {}: held-out reference NLL {:?}, masked EM {:.3} F1 {:.3}, recall EM {:.3} F1 {:.3}", e.step, e.reference_nll, e.masked.exact_match, e.masked.f1, e.recall.exact_match, e.recall.f1);
                evals.push(e.clone());
            }
        })
        .unwrap();
    eprintln!("trained {} steps in {:.0} s", trainer.total_steps(), start.elapsed().as_secs_f64());
    let (first, last) = (evals.first().unwrap(), evals.last().unwrap());
    assert_eq!((first.step, last.step), (0, 42));
    let (before, after) = (first.reference_nll.unwrap(), last.reference_nll.unwrap());
    assert!((before - 49152f32.ln()).abs() < 0.5, "an untrained model should be near-uniform: {before}");
    assert!(after < before / 2.0, "held-out teacher-trace NLL did not halve: {before} → {after}");
    assert!(dir.join("run/samples/step-000042.jsonl").exists(), "evaluation samples for the inspector");
    let _ = std::fs::remove_dir_all(&dir);
}
