//! Where a decode step's time goes on the CPU (issue 7 profile): the whole step, the packed
//! projections alone, the LM head alone, at batch 1 and 16, SmolLM2-135M (the default model).
//! `cargo run --release --example decode_probe`; `PROBE_F16=1` packs the panels in f16 (`--f16`
//! on the CPU), `PROBE_IN_POOL=1` runs the timed steps on a rayon worker, as `generate` does
//! (without it, each parallel call from the main thread sleeps on a futex until it is done).
use burn::prelude::*;
use memtrain::model::kv_cache::KvCache;
use memtrain::model::packed::{PackedLlama, PanelPrecision};
use memtrain::model::StepLayout;
use std::time::Instant;

fn ms(t: Instant, reps: usize) -> f64 {
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn main() {
    let (device, _) = memtrain::device::cpu();
    let loaded = memtrain::checkpoint::load(&memtrain::checkpoint::default_model::path(), &device).unwrap();
    let (model, inv) = (&loaded.model, &loaded.inv_freq);
    let t = Instant::now();
    // PROBE_F16=1: the panels in f16 (`--f16` on the CPU).
    let precision = if std::env::var_os("PROBE_F16").is_some() { PanelPrecision::F16 } else { PanelPrecision::F32 };
    let packed = PackedLlama::pack(model, precision).unwrap();
    println!("packing the weights in {precision:?}: {:.0} ms", ms(t, 1));
    for b in [1usize, 16] {
        for p in [None, Some(&packed)] {
            let plen = 128;
            let rows: Vec<i64> = (0..b * plen).map(|i| ((i * 7919) % 49152) as i64).collect();
            let input = Tensor::<2, Int>::from_data(TensorData::new(rows, [b, plen]), &device);
            let mut cache = KvCache::new(model.layers.len(), vec![0; b]);
            cache.reserve(plen);
            let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, plen, cache.capacity, &device);
            let _ = model.forward_hidden(input, &layout, Some(&mut cache)).into_data();
            let steps = 12;
            let in_pool = std::env::var_os("PROBE_IN_POOL").is_some();
            let t = Instant::now();
            let mut run = || {
                for s in 0..steps {
                    let tok = Tensor::<2, Int>::from_data(TensorData::new(vec![(s as i64) + 5; b], [b, 1]), &device);
                    cache.reserve(1);
                    let layout = StepLayout::with_columns(inv, &cache.pad, cache.len, 1, cache.capacity, &device);
                    let h = model.forward_hidden_packed(tok, &layout, Some(&mut cache), p);
                    let _ = model.logits_packed(h, p).into_data();
                }
            };
            if in_pool { rayon::scope(|_| run()) } else { run() }
            println!("batch {b:2}, decode kernels {:5} (in pool {in_pool}): decode step (forward + logits) {:.1} ms", p.is_some(), ms(t, steps));
        }
        let x: Vec<f32> = (0..b * 1536).map(|i| (i % 17) as f32 * 0.01).collect();
        let in_pool = std::env::var_os("PROBE_IN_POOL").is_some();
        let timed = |f: &(dyn Fn() + Sync)| {
            let t = Instant::now();
            if in_pool { rayon::scope(|_| f()) } else { f() }
            ms(t, 5)
        };
        let projections = timed(&|| {
            for _ in 0..5 {
                for l in packed.layers.iter().filter_map(|l| l.cpu()) {
                    for m in [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down] {
                        let _ = m.matmul(&x[..b * m.inputs()], b);
                    }
                }
            }
        });
        println!("batch {b:2}: packed projections of 30 layers {projections:.1} ms");
        let head = timed(&|| {
            for _ in 0..5 {
                let _ = packed.lm_head.as_ref().expect("the CPU packs the LM head").matmul(&x[..b * 576], b);
            }
        });
        println!("batch {b:2}: packed LM head {head:.1} ms");
    }
}
