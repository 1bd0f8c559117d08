//! `--f16` on the CPU: the real SmolLM2-135M-Instruct with its decode kernels' weight panels in
//! f16, against transformers' f32 reading of the same GGUF
//! (tests/fixtures/models/smollm2/reference.json): next-token logits close, the same next token
//! and the same greedy continuation, through a `Session` opened as the CLI opens it.

mod common;

use burn::prelude::*;
use memtrain::device::DeviceChoice;
use memtrain::generate::SamplingParams;
use memtrain::model::StepLayout;
use memtrain::model::packed::PackedLlama;
use memtrain::session::Session;

/// Next-token logits after `ids` through `packed` (prompts of at most 64 tokens take the panels).
fn panel_logits(s: &Session, packed: &PackedLlama, ids: &[u32]) -> Vec<f32> {
    let lm = &s.loaded;
    let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), &s.device);
    let layout = StepLayout::new(&lm.inv_freq, &[0], 0, ids.len(), &s.device);
    let hidden = lm.model.forward_hidden_packed(tokens, &layout, None, Some(packed)).narrow(1, ids.len() - 1, 1);
    lm.model.logits_packed(hidden, Some(packed)).into_data().try_to_vec().unwrap()
}

#[test]
fn smollm2_with_f16_decode_panels_on_the_cpu_stays_close_to_transformers() {
    let Some(path) = common::real_model() else { return };
    let half = Session::open_with(Some(&path), DeviceChoice::Cpu, true).unwrap();
    let full = Session::open_with(Some(&path), DeviceChoice::Cpu, false).unwrap();
    let (h, f) = (half.loaded.packed().expect("f16 panels"), full.loaded.packed().expect("f32 panels"));
    let halves = |p: &PackedLlama| p.layers.iter().filter_map(|l| l.cpu()).flat_map(|c| [&c.q, &c.k, &c.v, &c.o, &c.gate, &c.up, &c.down]).chain(p.lm_head.as_ref()).map(|m| (m.is_f16(), m.panel_bytes())).collect::<Vec<_>>();
    let (hb, fb) = (halves(h), halves(f));
    assert_eq!(hb.len(), 30 * 7 + 1, "every projection and the LM head are packed");
    assert!(hb.iter().all(|&(is_f16, _)| is_f16) && fb.iter().all(|&(is_f16, _)| !is_f16));
    let bytes = |v: &[(bool, usize)]| v.iter().map(|&(_, b)| b).sum::<usize>();
    eprintln!("panel bytes: f32 {} MB, f16 {} MB", bytes(&fb) >> 20, bytes(&hb) >> 20);
    assert_eq!(bytes(&hb) * 2, bytes(&fb));
    // The model itself stays f32 on the CPU.
    assert_eq!(half.loaded.model.embed_tokens.weight.val().dtype(), burn::tensor::DType::F32);

    for name in ["plain_france", "chat_japan"] {
        let c = common::Smollm2Case::named(name);
        let (input, top_ids, greedy_ids) = (&c.input_ids, &c.top_ids, &c.greedy_ids);
        let (lh, lf) = (panel_logits(&half, h, input), panel_logits(&full, f, input));
        let (worst_half, worst_full) = (c.worst_top_logit(&lh), c.worst_top_logit(&lf));
        let moved = common::max_abs_diff(&lh, &lf);
        eprintln!("{name}: max |Δlogit| over HF's top 20: f16 panels {worst_half:.4}, f32 panels {worst_full:.4}; f16 vs f32 panels over the vocabulary {moved:.4}");
        // f16 weights move the logits (so the f16 panels did run) but stay close to f32's.
        assert!(moved > 1e-3, "{name}: f16 panels gave f32's logits ({moved})");
        assert!(worst_half < 0.05, "{name}: f16-panel logits differ from transformers' f32 by {worst_half}");
        assert_eq!(memtrain::generate::sampler::argmax(&lh), top_ids[0], "{name}: next token");
        let params = SamplingParams { max_new_tokens: greedy_ids.len(), ..Default::default() };
        let ours = half.generate_ids(std::slice::from_ref(input), &params, &mut |_| true).unwrap();
        assert_eq!(&ours[0].tokens, greedy_ids, "{name}: greedy continuation with f16 panels");
    }
}
