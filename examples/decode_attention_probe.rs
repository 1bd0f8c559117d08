//! Time of the CPU decode attention of one step of SmolLM2-135M's shape (30 layers of 9 query
//! heads over 3 KV heads of 64), at batch 1 and 16 and a few cache lengths, on rayon's workers
//! as generation runs it (`cargo run --release --example decode_attention_probe`).
use memtrain::kernels::cached_attention::{attend, CachedStep, HostKv};
use memtrain::kernels::head_layout::Rope;
use std::time::Instant;

fn main() {
    let (h, kvh, hd, layers) = (9usize, 3usize, 64usize, 30usize);
    for b in [1usize, 16] {
        for past in [128usize, 512, 1024] {
            let capacity = (past + 1).next_power_of_two();
            let wave = |n: usize, f: f32| (0..n).map(|i| ((i as f32) * f).sin()).collect::<Vec<f32>>();
            let mut caches: Vec<HostKv> = (0..layers).map(|_| HostKv::default()).collect();
            // Fill each layer's cache with `past` columns in one prefill-shaped write.
            let fill = |cache: &mut HostKv| {
                let st = CachedStep { b, s: past, h, kvh, hd, past: 0, capacity, scale: 0.125 };
                let (q, k, v) = (wave(b * past * h * hd, 0.3), wave(b * past * kvh * hd, 0.7), wave(b * past * kvh * hd, 0.2));
                let (cos, sin) = (vec![1.0f32; b * past * hd], vec![0.0f32; b * past * hd]);
                let bias = vec![0.0f32; b * past * capacity];
                let _ = attend(&q, &k, &v, Rope { cos: &cos, sin: &sin }, &bias, cache, st);
            };
            caches.iter_mut().for_each(fill);
            let st = CachedStep { b, s: 1, h, kvh, hd, past, capacity, scale: 0.125 };
            let (q, k, v) = (wave(b * h * hd, 0.5), wave(b * kvh * hd, 0.9), wave(b * kvh * hd, 0.1));
            let (cos, sin) = (vec![1.0f32; b * hd], vec![0.0f32; b * hd]);
            let mut bias = vec![-1e9f32; b * capacity];
            bias.chunks_mut(capacity).for_each(|r| r[..=past].iter_mut().for_each(|x| *x = 0.0));
            let reps = 20;
            let t = Instant::now();
            rayon::scope(|_| {
                for _ in 0..reps {
                    for cache in caches.iter_mut() {
                        let _ = attend(&q, &k, &v, Rope { cos: &cos, sin: &sin }, &bias, cache, st);
                    }
                }
            });
            println!("batch {b:2}, {past:4} cached columns: attention of 30 layers {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
        }
    }
}
