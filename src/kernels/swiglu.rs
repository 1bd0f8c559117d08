//! The SwiGLU product `silu(gate) · up` of the MLP, forward and backward, for training on the CPU.
//!
//! Why: composed from Burn ops it is a sigmoid (a scalar libm `exp` per value), two multiplies
//! and their backward — about eight single-threaded passes over `[tokens, 1536]` per layer, each
//! output kept or freshly allocated. Here the forward and the backward are one parallel pass
//! each, with our vectorised `exp`, keeping only the two inputs (σ is recomputed).
//!
//! `out = g·σ(g)·u`; `du = dout · g·σ(g)`; `dg = dout · u · σ(g) · (1 + g·(1 − σ(g)))`.

use super::fast_exp::exp_shifted_in_place;
use rayon::prelude::*;

/// Values per parallel task.
const CHUNK: usize = 8192;

fn check(gate: &[f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gate and up differ in length");
}

/// `silu(gate) · up`, element-wise.
pub fn forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    check(gate, up);
    let mut out = vec![0.0f32; gate.len()];
    out.par_chunks_mut(CHUNK).zip(gate.par_chunks(CHUNK)).zip(up.par_chunks(CHUNK)).for_each(|((out, g), u)| {
        // out ← exp(−g), then g·u / (1 + exp(−g)).
        out.iter_mut().zip(g).for_each(|(o, &g)| *o = -g);
        exp_shifted_in_place(out, 0.0);
        for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
            *o = g * u / (1.0 + *o);
        }
    });
    out
}

/// `(dgate, dup)` for the upstream gradient `dout`.
pub fn backward(gate: &[f32], up: &[f32], dout: &[f32]) -> (Vec<f32>, Vec<f32>) {
    check(gate, up);
    assert_eq!(dout.len(), gate.len(), "dout is not shaped like gate");
    let (mut dg, mut du) = (vec![0.0f32; gate.len()], vec![0.0f32; gate.len()]);
    dg.par_chunks_mut(CHUNK).zip(du.par_chunks_mut(CHUNK)).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))).zip(dout.par_chunks(CHUNK)).for_each(
        |(((dg, du), (g, u)), dout)| {
            dg.iter_mut().zip(g).for_each(|(o, &g)| *o = -g);
            exp_shifted_in_place(dg, 0.0);
            for ((((dg, du), &g), &u), &d) in dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(dout) {
                let sig = 1.0 / (1.0 + *dg);
                *du = d * g * sig;
                *dg = d * u * sig * (1.0 + g * (1.0 - sig));
            }
        },
    );
    (dg, du)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_match_the_formulas_in_f64_and_survive_large_gates() {
        // Two tasks and a ragged tail; gates from −100 (exp(100) overflows to inf) to +100.
        let n = CHUNK + 1001;
        let g: Vec<f32> = (0..n).map(|i| -100.0 + 200.0 * i as f32 / n as f32).collect();
        let u: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0).collect();
        let dout: Vec<f32> = (0..n).map(|i| ((i * 11) % 53) as f32 / 13.0 - 2.0).collect();
        let out = forward(&g, &u);
        let (dg, du) = backward(&g, &u, &dout);
        for i in 0..n {
            let (gg, uu, dd) = (g[i] as f64, u[i] as f64, dout[i] as f64);
            let sig = 1.0 / (1.0 + (-gg).exp());
            let want = [gg * sig * uu, dd * uu * sig * (1.0 + gg * (1.0 - sig)), dd * gg * sig];
            for (what, got, want) in [("out", out[i], want[0]), ("dgate", dg[i], want[1]), ("dup", du[i], want[2])] {
                assert!(got.is_finite() && (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "{what} at gate {gg}: {got} vs {want}");
            }
        }
    }
}
