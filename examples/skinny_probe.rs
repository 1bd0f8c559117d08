use rayon::prelude::*;
use std::time::Instant;
const NR: usize = 16;
const MR: usize = 6;
#[inline(always)]
fn panel_body(x: &[f32], m: usize, k: usize, panel: &[f32], out: &mut [f32]) {
    let mut i0 = 0;
    while i0 + MR <= m {
        let mut acc = [[0f32; NR]; MR];
        for kk in 0..k {
            let w: &[f32; NR] = panel[kk * NR..kk * NR + NR].try_into().unwrap();
            for r in 0..MR {
                let xv = x[(i0 + r) * k + kk];
                for c in 0..NR { acc[r][c] = xv.mul_add(w[c], acc[r][c]); }
            }
        }
        for r in 0..MR { out[(i0 + r) * NR..(i0 + r) * NR + NR].copy_from_slice(&acc[r]); }
        i0 += MR;
    }
    while i0 < m {
        let mut acc = [0f32; NR];
        for kk in 0..k {
            let w: &[f32; NR] = panel[kk * NR..kk * NR + NR].try_into().unwrap();
            let xv = x[i0 * k + kk];
            for c in 0..NR { acc[c] = xv.mul_add(w[c], acc[c]); }
        }
        out[i0 * NR..i0 * NR + NR].copy_from_slice(&acc);
        i0 += 1;
    }
}
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_avx2(x: &[f32], m: usize, k: usize, panel: &[f32], out: &mut [f32]) { panel_body(x, m, k, panel, out) }

#[inline(always)]
fn q8_body(x: &[f32], m: usize, k: usize, q: &[i8], s: &[f32], out: &mut [f32]) {
    // q: [k][NR], s: [k/32][NR]
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(4);
        let mut acc = [[0f32; NR]; 4];
        for kb in 0..k / 32 {
            let sc: &[f32; NR] = s[kb * NR..kb * NR + NR].try_into().unwrap();
            let mut bacc = [[0f32; NR]; 4];
            for kk in kb * 32..kb * 32 + 32 {
                let qw: &[i8; NR] = q[kk * NR..kk * NR + NR].try_into().unwrap();
                let mut w = [0f32; NR];
                for c in 0..NR { w[c] = qw[c] as f32; }
                for r in 0..4 {
                    let xv = if r < rows { x[(i0 + r) * k + kk] } else { 0.0 };
                    for c in 0..NR { bacc[r][c] += xv * w[c]; }
                }
            }
            for r in 0..4 { for c in 0..NR { acc[r][c] += bacc[r][c] * sc[c]; } }
        }
        for r in 0..rows { out[(i0 + r) * NR..(i0 + r) * NR + NR].copy_from_slice(&acc[r]); }
        i0 += 4;
    }
}
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_avx2(x: &[f32], m: usize, k: usize, q: &[i8], s: &[f32], out: &mut [f32]) { q8_body(x, m, k, q, s, out) }

struct Packed { k: usize, n: usize, p: Vec<f32>, q: Vec<i8>, s: Vec<f32> }
fn pack(w: &[f32], k: usize, n: usize) -> Packed {
    let mut p = vec![0f32; k * n];
    let mut q = vec![0i8; k * n];
    let mut s = vec![0f32; k / 32 * n];
    for jb in 0..n / NR {
        for kk in 0..k { for c in 0..NR { p[jb * k * NR + kk * NR + c] = w[kk * n + jb * NR + c]; } }
        for kb in 0..k / 32 { for c in 0..NR {
            let amax = (kb * 32..kb * 32 + 32).map(|kk| w[kk * n + jb * NR + c].abs()).fold(0f32, f32::max);
            let d = amax / 127.0;
            s[jb * (k / 32) * NR + kb * NR + c] = d;
            for kk in kb * 32..kb * 32 + 32 {
                q[jb * k * NR + kk * NR + c] = if d > 0.0 { (w[kk * n + jb * NR + c] / d).round() as i8 } else { 0 };
            }
        }}
    }
    Packed { k, n, p, q, s }
}
fn matmul(x: &[f32], m: usize, w: &Packed, quant: bool) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    let panels: Vec<Vec<f32>> = (0..n / NR).into_par_iter().with_min_len(4).map(|jb| {
        let mut out = vec![0f32; m * NR];
        unsafe {
            if quant { q8_avx2(x, m, k, &w.q[jb * k * NR..(jb + 1) * k * NR], &w.s[jb * (k / 32) * NR..(jb + 1) * (k / 32) * NR], &mut out) }
            else { panel_avx2(x, m, k, &w.p[jb * k * NR..(jb + 1) * k * NR], &mut out) }
        }
        out
    }).collect();
    let mut y = vec![0f32; m * n];
    for (jb, o) in panels.iter().enumerate() { for i in 0..m { y[i * n + jb * NR..i * n + jb * NR + NR].copy_from_slice(&o[i * NR..i * NR + NR]); } }
    y
}
fn main() {
    let shapes = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)];
    let mut layers = vec![];
    let mut seed = 1u64;
    let mut rnd = || { seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5 };
    for _ in 0..30 { for &(k, n) in &shapes { let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect(); layers.push((w.clone(), pack(&w, k, n))); } }
    for m in [128usize, 512, 2048] {
        use burn::prelude::*;
        let (device, _) = memtrain::device::cpu();
        let min_of = |f: &dyn Fn()| (0..5).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() * 1e3 }).fold(f64::MAX, f64::min);
        let (w, p) = &layers[4];
        let x: Vec<f32> = (0..m * p.k).map(|i| (i % 13) as f32 * 0.1).collect();
        let lib = memtrain::kernels::cpu_matmul::PackedMatrix::from_in_out(w, p.k, p.n);
        let a = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, p.k]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(w.clone(), [p.k, p.n]), &device);
        println!("m={m} gate_proj min ms: gemm {:.2}, library {:.2}", min_of(&|| { let _ = a.clone().matmul(b.clone()).into_data(); }), min_of(&|| { lib.matmul(&x, m); }));
    }
    for m in [1usize, 16] {
        let x: Vec<f32> = (0..m * 1536).map(|_| rnd()).collect();
        // check
        let (w, p) = &layers[4];
        let y = matmul(&x, m, p, false);
        let yq = matmul(&x, m, p, true);
        let mut err = 0f32; let mut errq = 0f32;
        for i in 0..m { for j in 0..p.n { let r: f32 = (0..p.k).map(|kk| x[i * p.k + kk] * w[kk * p.n + j]).sum(); err = err.max((r - y[i * p.n + j]).abs()); errq = errq.max((r - yq[i * p.n + j]).abs()); } }
        println!("m={m} max err f32 {err:.2e} q8 {errq:.2e}");
        {
            let min_of = |f: &dyn Fn()| (0..30).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() * 1e3 }).fold(f64::MAX, f64::min);
            let (w, p) = &layers[4];
            let lib = memtrain::kernels::cpu_matmul::PackedMatrix::from_in_out(w, p.k, p.n);
            let xs = &x[..m * p.k];
            println!("m={m} gate_proj min ms: probe {:.3}, library {:.3}", min_of(&|| { matmul(xs, m, p, false); }), min_of(&|| { lib.matmul(xs, m); }));
        }
        for quant in [false, true] {
            let t = Instant::now();
            for _ in 0..5 { for (_, p) in &layers { let _ = matmul(&x[..m * p.k], m, p, quant); } }
            println!("m={m} quant={quant}: all linears {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / 5.0);
        }
    }
}
