//! `x · W` for the few rows of a decode step on the CPU, with `W` packed once into column
//! panels.
//!
//! Why not the backend's gemm: at decode time `x` has one row per sequence (1–64), and a
//! general gemm spends its time packing `W` again on every call — measured on the 2-core
//! machine, SmolLM2-135M's 210 projections at 16 rows took 236 ms per decode step through flex's
//! gemm and 75–84 ms with these panels (`examples/decode_probe.rs`). Here `W` is reordered once
//! into panels of [`NR`] columns (`[panel][k][NR]`, zero-padded), so one panel stays in L1/L2
//! while a block of [`MR`] rows of `x` is multiplied against it, and panels are split across
//! cores. Every output element is a plain sequential sum over `k` (fused multiply-add where the
//! CPU has it), so results match a reference dot product to float rounding.

use rayon::prelude::*;

/// Columns per panel: two 8-lane AVX registers per row of the register block.
pub const NR: usize = 16;
/// Rows per register block: 6 rows × 2 registers = 12 accumulators, which leaves room for
/// the panel loads in the 16 AVX registers (6 measured faster than 4 and 8).
pub const MR: usize = 6;

/// A matrix `W: [k, n]` reordered for `x · W`, with an optional bias added to every row.
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    panels: Panels,
    bias: Option<Vec<f32>>,
}

/// The panels' values: f32, or f16 bits ([`PackedMatrix::to_f16`]) — half the bytes to stream
/// per decode step, which is what a step with few rows waits on; products still sum in f32.
#[derive(Clone, Debug)]
enum Panels {
    F32(Vec<f32>),
    F16(Vec<u16>),
}

/// One panel's `[k][NR]` values, in the matrix's storage.
#[derive(Clone, Copy)]
enum Panel<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

impl PackedMatrix {
    /// From row-major `W: [k, n]` (Burn's `Linear` layout: input rows, output columns).
    pub fn from_in_out(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight of {} values is not [{k}, {n}]", w.len());
        Self::pack(k, n, |kk, j| w[kk * n + j])
    }

    /// From row-major `Wᵀ: [n, k]` (Hugging Face projections, a tied embedding table).
    pub fn from_out_in(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight of {} values is not [{n}, {k}]", w.len());
        Self::pack(k, n, |kk, j| w[j * k + kk])
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let panels_n = n.div_ceil(NR);
        let mut panels = vec![0.0f32; panels_n * k * NR];
        panels.par_chunks_mut(k * NR).enumerate().for_each(|(p, panel)| {
            for kk in 0..k {
                for c in 0..NR.min(n - p * NR) {
                    panel[kk * NR + c] = at(kk, p * NR + c);
                }
            }
        });
        PackedMatrix { k, n, panels: Panels::F32(panels), bias: None }
    }

    /// The same matrix with its panels rounded to f16 (round to nearest even; the bias stays
    /// f32). Products are those of the rounded weights, summed in f32.
    pub fn to_f16(self) -> Self {
        let panels = match self.panels {
            Panels::F32(v) => Panels::F16(v.par_iter().map(|&x| half::f16::from_f32(x).to_bits()).collect()),
            half @ Panels::F16(_) => half,
        };
        PackedMatrix { panels, ..self }
    }

    /// Whether the panels hold f16 values.
    pub fn is_f16(&self) -> bool {
        matches!(self.panels, Panels::F16(_))
    }

    /// Bytes the panels take (what a call with few rows streams from memory).
    pub fn panel_bytes(&self) -> usize {
        match &self.panels {
            Panels::F32(v) => v.len() * 4,
            Panels::F16(v) => v.len() * 2,
        }
    }

    pub fn with_bias(mut self, bias: Vec<f32>) -> Self {
        assert_eq!(bias.len(), self.n, "bias of {} values for {} outputs", bias.len(), self.n);
        self.bias = Some(bias);
        self
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    /// `x · W (+ bias)` for row-major `x: [m, k]`; returns row-major `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.matmul_on(x, m, Isa::detect())
    }

    fn matmul_on(&self, x: &[f32], m: usize, isa: Isa) -> Vec<f32> {
        let [y] = Self::group_on([self], x, m, isa);
        y
    }

    /// `[x · W₁, x · W₂, …]` for matrices sharing their input size, in one parallel call over
    /// all their panels: a layer's q/k/v (and gate/up) products at decode time are a few
    /// microseconds of work per thread, and each parallel call costs about as much to start
    /// and join (4 calls a layer instead of 7 saved ~0.5 ms of a 6–7 ms batch-1 f16 step's
    /// projections in a probe).
    pub fn matmul_group<const N: usize>(ms: [&PackedMatrix; N], x: &[f32], m: usize) -> [Vec<f32>; N] {
        Self::group_on(ms, x, m, Isa::detect())
    }

    fn group_on<const N: usize>(ms: [&PackedMatrix; N], x: &[f32], m: usize, isa: Isa) -> [Vec<f32>; N] {
        let k = ms.first().map_or(0, |w| w.k);
        assert!(ms.iter().all(|w| w.k == k), "matrices of one group share their input size");
        assert_eq!(x.len(), m * k, "input of {} values is not [{m}, {k}]", x.len());
        if m == 0 {
            return ms.map(|_| Vec::new());
        }
        let rows = RowBlocks::new(x, m, k);
        // Each task owns one panel's output block `[m, NR]`; blocks are scattered into rows after.
        let mut blocks: [Vec<f32>; N] = ms.map(|w| vec![0.0f32; w.n.div_ceil(NR) * m * NR]);
        if k > 0 {
            let mut tasks: Vec<(&mut [f32], Panel)> = Vec::new();
            for (w, b) in ms.iter().zip(blocks.iter_mut()) {
                tasks.extend(b.chunks_mut(m * NR).zip(w.panels(k)));
            }
            tasks.into_par_iter().with_min_len(2).for_each(|(out, panel)| panel_product(&rows, panel, out, isa));
        }
        std::array::from_fn(|i| ms[i].scatter(&blocks[i], m))
    }

    /// The panels in order, each `k * NR` values.
    fn panels(&self, k: usize) -> Box<dyn Iterator<Item = Panel<'_>> + '_> {
        match &self.panels {
            Panels::F32(v) => Box::new(v.chunks(k * NR).map(Panel::F32)),
            Panels::F16(v) => Box::new(v.chunks(k * NR).map(Panel::F16)),
        }
    }

    /// Row-major `[m, n]` (plus the bias) from the panels' output blocks.
    fn scatter(&self, blocks: &[f32], m: usize) -> Vec<f32> {
        let n = self.n;
        let mut y = vec![0.0f32; m * n];
        for (p, block) in blocks.chunks(m * NR).enumerate() {
            let cols = NR.min(n - p * NR);
            for i in 0..m {
                y[i * n + p * NR..i * n + p * NR + cols].copy_from_slice(&block[i * NR..i * NR + cols]);
            }
        }
        if let Some(bias) = &self.bias {
            for row in y.chunks_mut(n) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        y
    }
}

/// The rows of `x` cut into register blocks (sizes [`MR`], then 4, 2, 1), each stored
/// column-major (`[k][rows]`), so the inner loop broadcasts from one pointer instead of
/// keeping one per row (which spilled registers and cost a third of the time).
struct RowBlocks {
    /// `(first row, rows, offset into data)` per block.
    blocks: Vec<(usize, usize, usize)>,
    data: Vec<f32>,
}

impl RowBlocks {
    fn new(x: &[f32], m: usize, k: usize) -> Self {
        let mut blocks = Vec::new();
        let mut data = Vec::with_capacity(m * k);
        let mut row = 0;
        for size in [MR, 4, 2, 1] {
            while row + size <= m {
                blocks.push((row, size, data.len()));
                for kk in 0..k {
                    data.extend((row..row + size).map(|r| x[r * k + kk]));
                }
                row += size;
            }
        }
        RowBlocks { blocks, data }
    }
}

/// Which register block runs: chosen once per call from what the CPU reports.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    fn detect() -> Self {
        // F16C (f16 → f32 loads) came with AVX2 on every x86 CPU; asking keeps one path (a
        // virtual CPU that hides it runs the portable blocks).
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c") {
            return Isa::Avx2Fma;
        }
        Isa::Portable
    }
}

/// One panel against all rows.
fn panel_product(rows: &RowBlocks, panel: Panel, out: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: `Isa::detect` saw the CPU support the features the functions are compiled for;
        // each panel holds `k * NR` values of its format.
        unsafe {
            match panel {
                Panel::F32(p) => avx2::panel_rows::<false>(rows, p.as_ptr().cast(), p.len() / NR, out),
                Panel::F16(p) => avx2::panel_rows::<true>(rows, p.as_ptr().cast(), p.len() / NR, out),
            }
        }
        return;
    }
    // Each weight is widened where it is used, never copied.
    match panel {
        Panel::F32(p) => portable_rows(rows, p.len() / NR, |i| p[i], out),
        Panel::F16(p) => portable_rows(rows, p.len() / NR, |i| half::f16::from_bits(p[i]).to_f32(), out),
    }
}

/// `weight(i)`: the panel's `i`-th value (`[k][NR]` order) as f32.
fn portable_rows(rows: &RowBlocks, k: usize, weight: impl Fn(usize) -> f32 + Copy, out: &mut [f32]) {
    for (xs, size, out) in row_blocks(rows, k, out) {
        match size {
            MR => block::<MR>(xs, k, weight, out),
            4 => block::<4>(xs, k, weight, out),
            2 => block::<2>(xs, k, weight, out),
            _ => block::<1>(xs, k, weight, out),
        }
    }
}

/// Each row block's `[k][rows]` inputs, its size and its slice of the panel's output block.
fn row_blocks<'a>(rows: &'a RowBlocks, k: usize, out: &'a mut [f32]) -> impl Iterator<Item = (&'a [f32], usize, &'a mut [f32])> {
    let mut rest = out;
    rows.blocks.iter().map(move |&(_, size, at)| {
        let (here, tail) = std::mem::take(&mut rest).split_at_mut(size * NR);
        rest = tail;
        (&rows.data[at..at + size * k], size, here)
    })
}

/// Portable `R` rows (column-major `xs: [k][R]`) times one panel: a sequential sum over `k`.
fn block<const R: usize>(xs: &[f32], k: usize, weight: impl Fn(usize) -> f32, out: &mut [f32]) {
    let mut acc = [[0.0f32; NR]; R];
    for (kk, xcol) in xs.chunks_exact(R).take(k).enumerate() {
        for c in 0..NR {
            let w = weight(kk * NR + c);
            for r in 0..R {
                acc[r][c] += xcol[r] * w;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        out[r * NR..(r + 1) * NR].copy_from_slice(row);
    }
}

/// The AVX2 + FMA register block, written with intrinsics: left to the auto-vectoriser, the
/// same loop came out as scalar FMAs and stack spills. `HALF`: the panel holds f16 bits,
/// widened to f32 as they are loaded (F16C), so the sums are the same f32 FMAs.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR, RowBlocks, row_blocks};
    use std::arch::x86_64::*;

    /// `panel` points at `k * NR` values (f16 when `HALF`, else f32).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn panel_rows<const HALF: bool>(rows: &RowBlocks, panel: *const u8, k: usize, out: &mut [f32]) {
        for (xs, size, out) in row_blocks(rows, k, out) {
            // SAFETY (all arms): `row_blocks` hands out `k * size` inputs and `size * NR` outputs;
            // the caller vouches for the panel.
            unsafe {
                match size {
                    MR => block::<MR, HALF>(xs, panel, k, out),
                    4 => block::<4, HALF>(xs, panel, k, out),
                    2 => block::<2, HALF>(xs, panel, k, out),
                    _ => block::<1, HALF>(xs, panel, k, out),
                }
            }
        }
    }

    /// Eight panel values from index `i` as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8<const HALF: bool>(panel: *const u8, i: usize) -> __m256 {
        // SAFETY: the caller keeps `i + 8` within the panel.
        unsafe {
            if HALF {
                _mm256_cvtph_ps(_mm_loadu_si128(panel.add(i * 2).cast()))
            } else {
                _mm256_loadu_ps(panel.add(i * 4).cast())
            }
        }
    }

    /// Requires `xs.len() >= k * R`, `panel` holding `k * NR` values, `out.len() >= R * NR`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const R: usize, const HALF: bool>(xs: &[f32], panel: *const u8, k: usize, out: &mut [f32]) {
        assert!(xs.len() >= k * R && out.len() >= R * NR);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let x = xs.as_ptr();
        for kk in 0..k {
            // SAFETY: kk < k, so every read is inside the slices checked above and the panel.
            unsafe {
                let w0 = load8::<HALF>(panel, kk * NR);
                let w1 = load8::<HALF>(panel, kk * NR + 8);
                for r in 0..R {
                    let xv = _mm256_broadcast_ss(&*x.add(kk * R + r));
                    acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: r < R, and out holds R * NR values.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr().add(r * NR), a[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(r * NR + 8), a[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|kk| x[i * k + kk] as f64 * w[kk * n + j] as f64).sum();
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matches_a_reference_product_for_ragged_shapes() {
        // Rows hit every block size (6, 4, 2, 1); columns leave a partial last panel.
        for &(m, k, n) in &[(1, 7, 5), (3, 64, 16), (13, 96, 37), (16, 576, 192), (64, 33, 17)] {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let want = reference(&x, &w, m, k, n);
            let packed = PackedMatrix::from_in_out(&w, k, n);
            // The portable block always; the SIMD one when this CPU has it.
            for isa in [Isa::Portable, Isa::detect()] {
                let got = packed.matmul_on(&x, m, isa);
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-5 * (k as f32).sqrt(), "{m}x{k}x{n} {isa:?}: {a} vs {b}");
                }
            }
        }
    }

    /// f16 panels give the product of the weights rounded to f16 (summed in f32, so to the same
    /// float rounding as f32 panels), stream half the bytes, and keep the bias in f32.
    #[test]
    fn f16_panels_multiply_the_rounded_weights() {
        for &(m, k, n) in &[(1, 7, 5), (3, 64, 16), (13, 96, 37), (16, 576, 192), (64, 33, 17)] {
            // Weights up to ±8 so that rounding to f16 moves them by up to 2⁻⁸, far above the
            // f32 sums' rounding: a kernel reading f32 values would fail the check below.
            let x = values(m * k, 6);
            let w: Vec<f32> = values(k * n, 7).iter().map(|v| v * 16.0).collect();
            let rounded: Vec<f32> = w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            let bias = values(n, 8);
            let want: Vec<f32> = reference(&x, &rounded, m, k, n).iter().enumerate().map(|(i, v)| v + bias[i % n]).collect();
            let unrounded: Vec<f32> = reference(&x, &w, m, k, n).iter().enumerate().map(|(i, v)| v + bias[i % n]).collect();
            let f32_panels = PackedMatrix::from_in_out(&w, k, n).with_bias(bias);
            let packed = f32_panels.clone().to_f16();
            assert!(packed.is_f16() && !f32_panels.is_f16());
            assert_eq!(packed.panel_bytes() * 2, f32_panels.panel_bytes());
            let tolerance = 1e-5 * (k as f32).sqrt() * 16.0;
            let apart = want.iter().zip(&unrounded).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(apart > 2.0 * tolerance, "{m}x{k}x{n}: rounding to f16 should show ({apart})");
            for isa in [Isa::Portable, Isa::detect()] {
                let got = packed.matmul_on(&x, m, isa);
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() <= tolerance, "{m}x{k}x{n} {isa:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn both_layouts_and_the_bias_give_the_same_product() {
        let (m, k, n) = (5, 40, 23);
        let x = values(m * k, 3);
        let w = values(k * n, 4);
        let mut wt = vec![0.0; k * n];
        for kk in 0..k {
            for j in 0..n {
                wt[j * k + kk] = w[kk * n + j];
            }
        }
        let bias = values(n, 5);
        let a = PackedMatrix::from_in_out(&w, k, n).with_bias(bias.clone()).matmul(&x, m);
        let b = PackedMatrix::from_out_in(&wt, n, k).matmul(&x, m);
        for i in 0..m {
            for j in 0..n {
                assert_eq!(a[i * n + j], b[i * n + j] + bias[j], "row {i} column {j}");
            }
        }
    }

    #[test]
    fn a_group_gives_each_matrix_its_own_product() {
        // Three matrices of one input size: ragged widths, one with a bias, one in f16.
        let (m, k) = (7, 48);
        let x = values(m * k, 9);
        let (wa, wb, wc) = (values(k * 37, 10), values(k * 16, 11), values(k * 5, 12));
        let a = PackedMatrix::from_in_out(&wa, k, 37).with_bias(values(37, 13));
        let b = PackedMatrix::from_in_out(&wb, k, 16).to_f16();
        let c = PackedMatrix::from_in_out(&wc, k, 5);
        let [ya, yb, yc] = PackedMatrix::matmul_group([&a, &b, &c], &x, m);
        assert_eq!((ya, yb, yc), (a.matmul(&x, m), b.matmul(&x, m), c.matmul(&x, m)));
        // No rows: empty products, not a panic.
        assert_eq!(PackedMatrix::matmul_group([&a, &b], &[], 0), [Vec::<f32>::new(), Vec::new()]);
    }
}
