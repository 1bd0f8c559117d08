//! The real SmolLM2-135M-Instruct run in f16 on wgpu (`--f16`: weights, activations and KV
//! cache in half precision) against transformers' f32 reading of the same GGUF
//! (tests/fixtures/models/smollm2/reference.json): next-token logits close, the same next token,
//! the same greedy continuation, through our wgpu kernels in f16 (with and without the fused
//! projections). Its own test binary: the f16 setting holds for the whole
//! process's wgpu device.

mod common;

use burn::prelude::*;
use memtrain::checkpoint;
use memtrain::generate::{SamplingParams, generate};
use memtrain::model::StepLayout;

#[test]
fn smollm2_in_f16_on_wgpu_stays_close_to_transformers() {
    let Some(path) = common::real_model() else { return };
    let Some(device) = common::wgpu_device() else { return };
    let (_, info) = memtrain::device::wgpu().unwrap();
    memtrain::device::use_f16(&device, &info).unwrap();
    let lm = checkpoint::load(&path, &device).unwrap();
    // Sampling runs in our kernel although the device's default float type is now f16 (its
    // seeds are made f32 explicitly).
    let logits = Tensor::<3>::from_floats([[[0.5, 1.0, -2.0]]], &device);
    assert_eq!(logits.dtype(), burn::tensor::DType::F16);
    let mut rngs = vec![memtrain::generate::sampler::sequence_rng(1, 0)];
    assert!(memtrain::generate::sample_on_device(&logits, &memtrain::generate::SamplingParams { temperature: 1.0, ..Default::default() }, &[Some(0)], &mut rngs).unwrap().is_some(), "the sampling kernel runs under --f16");
    // Generation gets the fused q/k/v and gate/up projections in f16 (our kernels take f16).
    let packed = lm.packed().expect("fused projections in f16");
    assert!(packed.layers.iter().all(|l| l.gpu().is_some()));
    for name in ["plain_france", "chat_japan"] {
        let c = common::Smollm2Case::named(name);
        let (input, top_ids, greedy_ids) = (c.input_ids.clone(), c.top_ids.clone(), c.greedy_ids.clone());
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(input.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, input.len()]), &device);
        let layout = StepLayout::new(&lm.inv_freq, &[0], 0, input.len(), &device);
        let hidden = lm.model.forward_hidden_packed(tokens, &layout, None, None).narrow(1, input.len() - 1, 1);
        assert_eq!(hidden.dtype(), burn::tensor::DType::F16, "the model runs in f16");
        let logits: Vec<f32> = lm.model.logits_packed(hidden, None).cast(burn::tensor::DType::F32).into_data().try_to_vec().unwrap();
        let worst = c.worst_top_logit(&logits);
        eprintln!("{name}: f16 max |Δlogit| over HF's top 20 = {worst:.3}");
        assert!(worst < 0.25, "{name}: f16 logits differ from transformers' f32 by {worst}");
        assert_eq!(memtrain::generate::sampler::argmax(&logits), top_ids[0], "{name}: next token");
        let params = SamplingParams { max_new_tokens: greedy_ids.len(), ..Default::default() };
        for packed in [None, Some(packed)] {
            let ours = generate(&lm.model, packed, &lm.inv_freq, &[input.clone()], &params, &lm.tokenizer.stop_ids, &mut |_| true).unwrap();
            let same = ours[0].tokens.iter().zip(&greedy_ids).take_while(|(a, b)| a == b).count();
            eprintln!("{name}: greedy in f16 (fused projections: {}) follows transformers for {same} of {} tokens", packed.is_some(), greedy_ids.len());
            assert_eq!(ours[0].tokens, greedy_ids, "{name}: greedy continuation in f16");
        }
    }
}
