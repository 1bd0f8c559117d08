//! Time of the CPU decode attention of one step of SmolLM2-135M's shape (30 layers of 9 query
//! heads over 3 KV heads of 64), at batch 1 and 16 and a few cache lengths, on rayon's workers
//! as generation runs it (`cargo run --release --example decode_attention_probe`); with
//! `-- --shared`, GRPO's batches with and without the prompts' shared prefix read once.
use memtrain::kernels::cached_attention::{attend, CachedStep, HostKv};
use memtrain::kernels::head_layout::Rope;
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--shared") {
        return shared_prefix_rows();
    }
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

/// One decode step's attention (30 layers) as the GRPO step's calls run it, each sequence
/// reading its own copy of the prompts' shared prefix and its padding (rows padded by up to 70
/// and 60 columns), against the prefix read once and the padding skipped ([`decode_with_shared`]): batch 32 over ~300 columns sharing 125, and batch 128 over
/// ~280 sharing 80 (the memory-update and recall calls of `memtrain bench train`).
fn shared_prefix_rows() {
    use memtrain::kernels::causal_attention::AttnShape;
    use memtrain::kernels::decode_attention::{SharedColumns, decode, decode_with_shared};
    let (h, kvh, hd, layers) = (9usize, 3usize, 64usize, 30usize);
    for (b, past, columns, widest_pad) in [(32usize, 300usize, 125usize, 70usize), (128, 280, 80, 60)] {
        let sh = AttnShape { b, h, kvh, s: 1, cols: 512, hd, past, scale: 0.125 };
        let wave = |n: usize, f: f32| (0..n).map(|i| ((i as f32) * f).sin()).collect::<Vec<f32>>();
        // Every layer its own cache and prefix, as in generation (one would stay in the CPU's
        // caches).
        let caches: Vec<(Vec<f32>, Vec<f32>)> = (0..layers).map(|l| (wave(b * kvh * sh.cols * hd, 0.7 + l as f32 * 1e-3), wave(b * kvh * sh.cols * hd, 0.2))).collect();
        let prefixes: Vec<(Vec<f32>, Vec<f32>)> = (0..layers).map(|l| (wave(kvh * columns * hd, 0.3 + l as f32 * 1e-3), wave(kvh * columns * hd, 0.5))).collect();
        let q = wave(b * h * hd, 0.9);
        let starts: Vec<usize> = (0..b).map(|r| r * 7 % (widest_pad + 1)).collect();
        let mut bias = vec![0.0f32; b * sh.cols];
        for (r, &start) in starts.iter().enumerate() {
            bias[r * sh.cols..][..sh.cols].iter_mut().enumerate().for_each(|(j, x)| *x = if j < start || j > past { -1e9 } else { 0.0 });
        }
        let reps = 5;
        let time = |f: &(dyn Fn(&(Vec<f32>, Vec<f32>), &(Vec<f32>, Vec<f32>)) -> Vec<f32> + Sync)| {
            let t = Instant::now();
            rayon::scope(|_| (0..reps).for_each(|_| caches.iter().zip(&prefixes).for_each(|(cache, prefix)| drop(f(cache, prefix)))));
            t.elapsed().as_secs_f64() * 1e3 / reps as f64
        };
        for round in 1..=2 {
            let own = time(&|(k, v), _| decode(&q, k, v, &bias, sh));
            let once = time(&|(k, v), (pk, pv)| decode_with_shared(&q, k, v, &bias, sh, SharedColumns { keys: pk, values: pv, columns, starts: &starts }));
            println!("round {round}: batch {b:3}, {past} columns, {columns} shared: each row's copy {own:.1} ms, the prefix once {once:.1} ms (30 layers)");
        }
    }
}
