//! Our CPU training attention alone (`kernels::causal_attention`, issue 7): forward and backward
//! of one layer of SmolLM2-135M's shape (9 query heads over 3 KV heads, head size 64) at
//! `S` tokens, on random data. `cargo run --release --example attention_probe -- [S] [REPEATS]`.
use memtrain::kernels::causal_attention::{AttnShape, backward, forward};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: S REPEATS"));
    let s = args.next().unwrap_or(2048);
    let repeats = args.next().unwrap_or(3);
    let sh = AttnShape { b: 1, h: 9, kvh: 3, s, cols: s, hd: 64, past: 0, scale: 0.125 };
    let fill = |n: usize, seed: usize| (0..n).map(|i| ((i * 7919 + seed * 104729) % 2001) as f32 / 1000.0 - 1.0).collect::<Vec<f32>>();
    let (q, k, v, dout) = (fill(9 * s * 64, 1), fill(3 * s * 64, 2), fill(3 * s * 64, 3), fill(9 * s * 64, 4));
    let bias: Vec<f32> = (0..s * s).map(|i| if i % s <= i / s { 0.0 } else { -1e9 }).collect();
    for _ in 0..repeats {
        let t = Instant::now();
        let (out, lse) = forward(&q, &k, &v, &bias, sh);
        let f = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (dq, _, _) = backward(&q, &k, &v, &bias, &out, &lse, &dout, sh);
        let b = t.elapsed().as_secs_f64();
        println!("s {s}: forward {:.1} ms, backward {:.1} ms (out[0] {:.4}, dq[0] {:.4})", f * 1e3, b * 1e3, out[0], dq[0]);
    }
}
