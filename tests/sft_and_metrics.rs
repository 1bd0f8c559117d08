//! The supervised warm start lowers its loss on a fixed batch within a few steps on a tiny
//! random model, and step records survive a JSONL round trip one line per step.

mod common;

use burn::prelude::*;
use common::tiny_model;
use memtrain::train::metrics::{MeanStd, StepRecord, append_record, read_records};
use memtrain::train::sft::{SftExample, sft_loss, sft_step};

#[test]
fn a_few_sft_steps_lower_the_loss_on_their_batch() {
    let device = Device::flex().autodiff();
    let (mut model, inv_freq) = tiny_model(&device, 5);
    let examples = [SftExample::new(vec![1, 2, 3], vec![10, 11, 12, 2]), SftExample::new(vec![4, 5], vec![20, 21])];
    let mut optim = burn::optim::AdamWConfig::new().init();
    let mut losses = vec![];
    for _ in 0..5 {
        let (next, loss) = sft_step(model, &mut optim, 1e-2, &inv_freq, &examples).unwrap();
        model = next;
        losses.push(loss);
    }
    let last = sft_loss(&model, &inv_freq, &examples, &device).unwrap().into_data().try_to_vec::<f32>().unwrap()[0];
    eprintln!("sft losses {losses:?} → {last}");
    // A random tiny model starts near ln(64) ≈ 4.16 nats per token.
    assert!((losses[0] - 64f32.ln()).abs() < 0.5, "{losses:?}");
    assert!(last < losses[0] - 0.5, "loss did not drop clearly: {losses:?} → {last}");
}

#[test]
fn step_records_round_trip_through_jsonl_one_line_each() {
    let dir = std::env::temp_dir().join(format!("memtrain-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&path);
    let records: Vec<StepRecord> = (1..=3).map(|step| StepRecord { step, reward_end_to_end: MeanStd::of(&[1.0, 0.0]), dropped_groups: step as usize, loss: Some(0.5), ..Default::default() }).collect();
    for r in &records {
        append_record(&path, r).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    assert_eq!(read_records(&path).unwrap(), records);
    assert_eq!(records[0].reward_end_to_end, MeanStd { mean: 0.5, std: 0.5 });
    std::fs::remove_dir_all(&dir).unwrap();
}

fn weights(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `trainable_layers`: a step moves the top layer and the final norm only; the embeddings (and
/// with them the tied LM head) and the lower layer keep their exact values, and the loss still
/// drops.
#[test]
fn a_step_with_the_lower_layers_frozen_moves_only_the_top_layer() {
    let device = Device::flex().autodiff();
    let (model, inv_freq) = tiny_model(&device, 5);
    let mut model = memtrain::train::freeze::freeze_below(model, 1).unwrap();
    let before = (weights(model.embed_tokens.weight.val()), weights(model.layers[0].mlp.up_proj.weight.val()), weights(model.layers[1].mlp.up_proj.weight.val()));
    let examples = [SftExample::new(vec![1, 2, 3], vec![10, 11, 12, 2])];
    let mut optim = burn::optim::AdamWConfig::new().init();
    let mut losses = vec![];
    for _ in 0..3 {
        let (next, loss) = sft_step(model, &mut optim, 1e-2, &inv_freq, &examples).unwrap();
        model = next;
        losses.push(loss);
    }
    assert_eq!(weights(model.embed_tokens.weight.val()), before.0, "embeddings moved");
    assert_eq!(weights(model.layers[0].mlp.up_proj.weight.val()), before.1, "the frozen layer moved");
    assert_ne!(weights(model.layers[1].mlp.up_proj.weight.val()), before.2, "the trainable layer did not move");
    assert!(losses[2] < losses[0], "{losses:?}");
    assert!(memtrain::train::freeze::freeze_below(model, 3).unwrap_err().to_string().contains("2 layers"));
}

/// Conversation weighting: the loss is the mean of each conversation's own mean NLL, so a
/// one-token answer counts as much as a long memory turn; token weighting is the plain mean;
/// a conversation of weight 4 counts each of its tokens four times, in both weightings.
#[test]
fn conversation_weighting_averages_each_conversations_mean() {
    use memtrain::train::sft::{SftWeighting, weighted_sft_loss};
    let device = Device::flex();
    let (model, inv_freq) = tiny_model(&device, 9);
    let long = SftExample::new(vec![1, 2], vec![10, 11, 12, 13, 14, 15]);
    let short = SftExample::new(vec![3], vec![20]);
    let value = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0];
    let each = |e: &SftExample| value(sft_loss(&model, &inv_freq, std::slice::from_ref(e), &device).unwrap());
    let (l, s) = (each(&long), each(&short));
    let both = [long.clone(), short.clone()];
    let conv = value(weighted_sft_loss(&model, &inv_freq, &both, SftWeighting::Conversation, &device).unwrap());
    let token = value(weighted_sft_loss(&model, &inv_freq, &both, SftWeighting::Token, &device).unwrap());
    assert!((conv - (l + s) / 2.0).abs() < 1e-4, "{conv} vs {l}, {s}");
    assert!((token - (6.0 * l + s) / 7.0).abs() < 1e-4, "{token} vs {l}, {s}");
    let heavy = [long.clone(), SftExample { weight: 4.0, ..short.clone() }];
    let token = value(weighted_sft_loss(&model, &inv_freq, &heavy, SftWeighting::Token, &device).unwrap());
    assert!((token - (6.0 * l + 4.0 * s) / 10.0).abs() < 1e-4, "{token} vs {l}, {s}");
    let conv = value(weighted_sft_loss(&model, &inv_freq, &heavy, SftWeighting::Conversation, &device).unwrap());
    assert!((conv - (l + 4.0 * s) / 5.0).abs() < 1e-4, "{conv} vs {l}, {s}");
    // A micro-batch's share of the step: its weighted mass over the batch's.
    assert_eq!(SftWeighting::Token.mass(&heavy[1..]) / SftWeighting::Token.mass(&heavy), 0.4);
}
