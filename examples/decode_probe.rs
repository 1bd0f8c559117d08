use burn::prelude::*;
use memtrain::model::kv_cache::KvCache;
use memtrain::model::StepLayout;
use std::time::Instant;
fn main() {
    let (device, _) = memtrain::device::cpu();
    let path = memtrain::checkpoint::default_model::path();
    let loaded = memtrain::checkpoint::load(&path, &device).unwrap();
    let (model, inv) = (&loaded.model, &loaded.inv_freq);
    let b = 16;
    let plen = 128;
    let rows: Vec<i64> = (0..b * plen).map(|i| ((i * 7919) % 49152) as i64).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(rows, [b, plen]), &device);
    let mut cache = KvCache::new(model.layers.len(), vec![0; b]);
    cache.reserve(plen);
    let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, plen, cache.capacity, &device);
    let _ = model.forward_hidden(input, &layout, Some(&mut cache)).into_data();
    let steps = 12;
    let t = Instant::now();
    for s in 0..steps {
        let tok = Tensor::<2, Int>::from_data(TensorData::new(vec![(s as i64) + 5; b], [b, 1]), &device);
        cache.reserve(1);
        let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, 1, cache.capacity, &device);
        let h = model.forward_hidden(tok, &layout, Some(&mut cache));
        let _ = model.logits(h).into_data();
    }
    println!("decode step (forward+logits): {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / steps as f64);
    let x = Tensor::<3>::random([b, 1, 576], burn::tensor::Distribution::Default, &device);
    let t = Instant::now();
    for _ in 0..3 {
        for l in &model.layers {
            let a = &l.self_attn;
            for lin in [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &l.mlp.gate_proj, &l.mlp.up_proj] {
                let _ = lin.forward(x.clone()).into_data();
            }
            let y = Tensor::<3>::random([b, 1, 1536], burn::tensor::Distribution::Default, &device);
            let _ = l.mlp.down_proj.forward(y).into_data();
        }
    }
    println!("all linears of 30 layers: {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / 3.0);
    let h = Tensor::<3>::random([b, 1, 576], burn::tensor::Distribution::Default, &device);
    let t = Instant::now();
    for _ in 0..3 { let _ = model.logits(h.clone()).into_data(); }
    println!("lm head: {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / 3.0);
    let t = Instant::now();
    for _ in 0..3 { let _ = burn::tensor::activation::log_softmax(model.logits(h.clone()), 2).argmax(2).into_data(); }
    println!("lm head + log_softmax + argmax: {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / 3.0);
}
