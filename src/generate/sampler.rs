//! Token sampling from one row of logits: greedy, temperature, top-k, top-p, with a seeded RNG
//! per sequence so that a sequence samples the same tokens alone or inside a batch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Greedy only, 0 = off: never emit a token that would repeat an n-gram of this many tokens
    /// *already generated in this call* (the prompt may be copied freely: a memory turn copies
    /// its chunk). A small model's greedy memory can loop on one sentence until the budget is
    /// spent, pushing out every fact it kept (README, Training).
    #[serde(default)]
    pub no_repeat_ngram: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0, max_new_tokens: 128, no_repeat_ngram: 0 }
    }
}

/// The RNG of sequence `index` in a call seeded with `seed`.
pub fn sequence_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The tokens that would complete an `n`-gram already present in `generated` (whose last
/// `n - 1` tokens are the n-gram's start). Empty when `n` is 0 or too few tokens were generated.
pub fn repeated_ngram_tokens(generated: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || generated.len() < n {
        return vec![];
    }
    let prefix = &generated[generated.len() + 1 - n..];
    generated.windows(n).filter(|w| &w[..n - 1] == prefix).map(|w| w[n - 1]).collect()
}

/// Log-probability of `token` under softmax(logits) at temperature 1 (what GRPO needs).
pub fn log_prob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (_, sum) = exponentials(logits, max, 1.0);
    (logits[token as usize] - max) - sum.ln() as f32
}

/// `exp((l − max) / temperature)` for every logit, and their sum in f64.
///
/// Why: a row of SmolLM2's 49k logits took ~0.25 ms through f64 `exp` one value at a time, and
/// a sampled CPU step paid it twice per row (the draw's weights, the token's log-prob; once at
/// temperature 1 without top-k / top-p since [`sample_with_log_prob`]); the
/// vectorised f32 `exp` (relative error ≤ 2e-7, [`crate::kernels::fast_exp`]) takes a fraction
/// of that, and summing its results in f64 keeps the log-prob's error at that size.
fn exponentials(logits: &[f32], max: f32, temperature: f32) -> (Vec<f32>, f64) {
    let mut e: Vec<f32> = logits.iter().map(|&l| (l - max) / temperature).collect();
    crate::kernels::fast_exp::exp_shifted_in_place(&mut e, 0.0);
    let sum = e.iter().map(|&x| f64::from(x)).sum();
    (e, sum)
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token: greedy at temperature 0, else a draw from [`candidates`].
pub fn sample(logits: &[f32], p: &SamplingParams, rng: &mut ChaCha8Rng) -> u32 {
    if p.temperature <= 0.0 {
        return argmax(logits);
    }
    let (idx, probs) = candidates(logits, p);
    let total: f64 = probs.iter().sum();
    draw(probs.iter().copied(), total, rng).map_or(*idx.last().unwrap_or(&0), |n| idx[n])
}

/// [`sample`] and the picked token's [`log_prob`], the same values. At temperature 1 without
/// top-k or top-p (GRPO's rollouts) the draw's weights are the log-prob's exponentials, so one
/// pass over the vocabulary serves both (exponentials were ~2 % of a GRPO step's generation,
/// paid twice per row and token).
pub fn sample_with_log_prob(logits: &[f32], p: &SamplingParams, rng: &mut ChaCha8Rng) -> (u32, f32) {
    let top_k = p.top_k > 0 && p.top_k < logits.len();
    // Written as `candidates` tests it, so that a NaN top_p goes the same way.
    if p.temperature != 1.0 || top_k || !(p.top_p >= 1.0) {
        let token = sample(logits, p, rng);
        return (token, log_prob(logits, token));
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (e, total) = exponentials(logits, max, 1.0);
    let token = draw(e.iter().map(|&x| f64::from(x)), total, rng).unwrap_or(logits.len().saturating_sub(1)) as u32;
    (token, (logits[token as usize] - max) - total.ln() as f32)
}

/// The index a uniform draw in `[0, total)` lands on among `weights` (`None` when rounding
/// carried it past the last).
fn draw(weights: impl Iterator<Item = f64>, total: f64, rng: &mut ChaCha8Rng) -> Option<usize> {
    let mut r = rng.random::<f64>() * total;
    for (n, x) in weights.enumerate() {
        if r < x {
            return Some(n);
        }
        r -= x;
    }
    None
}

/// The tokens a draw at temperature `p.temperature` (> 0) may pick and their unnormalised
/// probabilities: under top-k / top-p the kept ones in order (logit descending, lower id first
/// on ties), else every token in id order. The device's sampling kernel keeps the same set
/// (`shaders/nucleus.rs`, tested against this).
///
/// Why no full sort: sorting the whole vocabulary (49k entries) per token per sequence cost
/// more than a GPU decode step, and 26 ms of a batch-32 CPU step under top-p. Plain
/// temperature sampling needs no order at all, top-k only the k best, and top-p only as many
/// of the best as its nucleus holds — for SmolLM2 at temperature 1 from one token to about a
/// thousand of 49k — so tokens are bucketed by logit and only the buckets down to the one where
/// the nucleus ends are sorted.
pub fn candidates(logits: &[f32], p: &SamplingParams) -> (Vec<u32>, Vec<f64>) {
    // Descending logit, ties by lower id: a total order, so the kept set never depends on the path.
    let order = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let top_k = (p.top_k > 0 && p.top_k < idx.len()).then_some(p.top_k);
    if let Some(k) = top_k {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    let max = idx.iter().map(|&i| logits[i as usize]).fold(f32::NEG_INFINITY, f32::max);
    // Each exponential once, by id: the whole row in one vectorised pass unless top-k kept few.
    let (weights, total): (Vec<f64>, f64) = match top_k {
        None => {
            let (e, total) = exponentials(logits, max, p.temperature);
            (e.into_iter().map(f64::from).collect(), total)
        }
        Some(_) => {
            let kept: Vec<f32> = idx.iter().map(|&i| logits[i as usize]).collect();
            let (e, total) = exponentials(&kept, max, p.temperature);
            let mut by_id = vec![0.0f64; logits.len()];
            idx.iter().zip(e).for_each(|(&i, x)| by_id[i as usize] = f64::from(x));
            (by_id, total)
        }
    };
    if p.top_p >= 1.0 {
        if top_k.is_none() {
            // Every token in id order: the weights as they are.
            return (idx, weights);
        }
        idx.sort_unstable_by(order);
        let probs = idx.iter().map(|&i| weights[i as usize]).collect();
        return (idx, probs);
    }
    let target = p.top_p as f64 * total;
    // The nucleus's lowest logit falls in the first bucket (from the top) where the mass
    // reaches top_p; only the tokens of that bucket and those above are sorted. Buckets and
    // their sums only narrow the search: the cut itself is made on the sorted candidates, in
    // a full sort's order, so rounding in a bucket's sum cannot move it (a miss falls back to
    // every token). `total` is summed in id order, not sorted order: the kept set can differ
    // from a full sort's only where the running sum meets top_p to within an ulp.
    let logit = |i: u32| logits[i as usize];
    let lo = idx.iter().map(|&i| logit(i)).filter(|l| l.is_finite()).fold(f32::INFINITY, f32::min);
    let width = (max - lo) / NUCLEUS_BUCKETS as f32;
    let bucket = |l: f32| if width > 0.0 { (((max - l) / width) as usize).min(NUCLEUS_BUCKETS - 1) } else { 0 };
    let mut mass = vec![0.0f64; NUCLEUS_BUCKETS];
    for &i in &idx {
        mass[bucket(logit(i))] += weights[i as usize];
    }
    let mut cum = 0.0;
    let last = mass.iter().position(|&m| {
        cum += m;
        cum >= target
    });
    let mut kept: Vec<u32> = match last {
        Some(b) if max.is_finite() && width.is_finite() => idx.iter().copied().filter(|&i| bucket(logit(i)) <= b).collect(),
        _ => idx.clone(),
    };
    loop {
        sort_in_order(&mut kept, logits);
        let probs: Vec<f64> = kept.iter().map(|&i| weights[i as usize]).collect();
        let mut cum = 0.0;
        if let Some(n) = probs.iter().position(|&x| {
            cum += x / total;
            cum >= p.top_p as f64
        }) {
            kept.truncate(n + 1);
            return (kept, probs[..=n].to_vec());
        }
        if kept.len() == idx.len() {
            // Rounding kept the sum of all below top_p: every token stays.
            return (kept, probs);
        }
        kept = idx.clone();
    }
}

/// `ids` sorted as `candidates`' order (logit descending by `total_cmp`, then id ascending),
/// through one integer key per token: a nucleus of SmolLM2 at temperature 1 holds up to about a
/// thousand tokens, and integer keys sort in place without looking each logit up per comparison.
fn sort_in_order(ids: &mut [u32], logits: &[f32]) {
    let mut keys: Vec<u64> = ids.iter().map(|&i| order_key(logits[i as usize], i)).collect();
    keys.sort_unstable();
    ids.iter_mut().zip(keys).for_each(|(id, key)| *id = key as u32);
}

/// A key whose ascending order is `candidates`' order: the logit's `total_cmp` integer, as
/// unsigned and inverted (descending), above the id.
fn order_key(logit: f32, id: u32) -> u64 {
    let bits = logit.to_bits() as i32;
    let total = bits ^ ((((bits >> 31) as u32) >> 1) as i32);
    let ascending = (total as u32) ^ 0x8000_0000;
    (u64::from(!ascending) << 32) | u64::from(id)
}

/// Buckets of logit the top-p search sorts by before sorting tokens (equal widths from the
/// largest logit down to the smallest finite one).
const NUCLEUS_BUCKETS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        let p = SamplingParams::default();
        assert_eq!(sample(&[0.1, 3.0, -1.0, 2.9], &p, &mut sequence_rng(0, 0)), 1);
    }

    #[test]
    fn top_k_one_is_greedy_even_when_hot() {
        let p = SamplingParams { temperature: 5.0, top_k: 1, ..Default::default() };
        let mut rng = sequence_rng(7, 0);
        for _ in 0..50 {
            assert_eq!(sample(&[0.1, 3.0, -1.0, 2.9], &p, &mut rng), 1);
        }
    }

    #[test]
    fn repeated_ngrams_ban_only_what_would_repeat_generated_text() {
        // generated 5 6 7 5 6: a 3-gram "5 6 ?" was seen once, followed by 7.
        assert_eq!(repeated_ngram_tokens(&[5, 6, 7, 5, 6], 3), vec![7]);
        assert_eq!(repeated_ngram_tokens(&[5, 6, 7, 5, 6], 4), Vec::<u32>::new());
        assert_eq!(repeated_ngram_tokens(&[5, 6, 7, 5, 6], 0), Vec::<u32>::new());
        // a run of one token: "1 1" bans a third 1 at n = 3, not at n = 4.
        assert_eq!(repeated_ngram_tokens(&[1, 1, 1], 3), vec![1]);
        assert_eq!(repeated_ngram_tokens(&[2, 1, 1], 3), Vec::<u32>::new());
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // probabilities ~ [0.665, 0.245, 0.09]: top_p 0.5 keeps only the first token.
        let logits = [2.0, 1.0, 0.0];
        let p = SamplingParams { temperature: 1.0, top_p: 0.5, ..Default::default() };
        let mut rng = sequence_rng(3, 1);
        assert!((0..100).all(|_| sample(&logits, &p, &mut rng) == 0));
        // top_p 0.8 allows the second token too, and it does show up.
        let p = SamplingParams { temperature: 1.0, top_p: 0.8, ..Default::default() };
        let seen: Vec<u32> = (0..200).map(|_| sample(&logits, &p, &mut rng)).collect();
        assert!(seen.contains(&1) && !seen.contains(&2));
    }

    #[test]
    fn temperature_sampling_follows_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let p = SamplingParams { temperature: 1.0, ..Default::default() };
        let mut rng = sequence_rng(11, 0);
        let ones = (0..4000).filter(|_| sample(&logits, &p, &mut rng) == 1).count();
        assert!((2850..3150).contains(&ones), "{ones}");
    }

    #[test]
    fn top_k_keeps_the_k_best_whatever_their_position() {
        // The best three are spread over the row; ties at the boundary go to the lower id.
        let mut logits = vec![0.0f32; 1000];
        logits[917] = 5.0;
        logits[3] = 4.0;
        logits[500] = 3.0;
        logits[600] = 3.0;
        let p = SamplingParams { temperature: 10.0, top_k: 3, ..Default::default() };
        let mut rng = sequence_rng(5, 0);
        let seen: std::collections::BTreeSet<u32> = (0..400).map(|_| sample(&logits, &p, &mut rng)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![3, 500, 917]);
    }

    /// `candidates` as it was: the whole vocabulary sorted, then the nucleus cut.
    fn sorted_candidates(logits: &[f32], p: &SamplingParams) -> (Vec<u32>, Vec<f64>) {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        idx.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b)));
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = logits[idx[0] as usize];
        let mut probs: Vec<f64> = idx.iter().map(|&i| (((logits[i as usize] - max) / p.temperature) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        let mut cum = 0.0;
        let keep = probs.iter().position(|&x| {
            cum += x / total;
            cum >= p.top_p as f64
        });
        let keep = keep.map_or(probs.len(), |n| n + 1);
        probs.truncate(keep);
        idx.truncate(keep);
        (idx, probs)
    }

    #[test]
    fn top_p_keeps_the_nucleus_of_a_full_sort_whatever_its_size() {
        // Vocabulary-sized rows, from peaked (a nucleus of a few tokens) to flat (thousands, past
        // several growths of the sorted head), with tied logits, under top-k too.
        let mut rng = sequence_rng(21, 0);
        for (spread, top_p, top_k) in [(8.0f32, 0.9f32, 0usize), (3.0, 0.95, 0), (0.5, 0.9, 0), (0.05, 0.99, 0), (3.0, 0.9, 40), (0.5, 0.5, 2000)] {
            let logits: Vec<f32> = (0..49_152).map(|_| (rng.random::<f32>() * spread * 8.0).round() / 8.0).collect();
            let p = SamplingParams { temperature: 0.8, top_p, top_k, ..Default::default() };
            let (want, got) = (sorted_candidates(&logits, &p), candidates(&logits, &p));
            assert_eq!(got.0, want.0, "spread {spread}, top_p {top_p}, top_k {top_k}: kept tokens");
            let worst = got.1.iter().zip(&want.1).map(|(a, b)| (a - b).abs() / b).fold(0.0f64, f64::max);
            // f32 exponentials (fast_exp: relative error ≤ 2e-7) against the reference's f64 ones.
            assert!(worst < 3e-7, "weights differ by {worst}");
        }
    }

    #[test]
    fn order_keys_sort_as_the_comparator_does_special_values_included() {
        let logits = [1.5, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -2.0, 1.5, f32::MIN_POSITIVE, -f32::NAN];
        let mut want: Vec<u32> = (0..logits.len() as u32).collect();
        want.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b)));
        let mut got: Vec<u32> = (0..logits.len() as u32).collect();
        sort_in_order(&mut got, &logits);
        assert_eq!(got, want);
    }

    #[test]
    fn sampling_with_the_log_prob_gives_the_token_and_log_prob_of_the_two_calls() {
        let mut rng = sequence_rng(5, 0);
        let rows: Vec<Vec<f32>> = (0..6).map(|r| (0..49_152).map(|_| rng.random::<f32>() * (2.0 + r as f32 * 3.0) - 4.0).collect()).collect();
        // The fast path (temperature 1, nothing cut, top-k of the whole vocabulary), and the
        // others through `sample` (a NaN top_p as `candidates` reads it).
        for p in [SamplingParams { temperature: 1.0, ..Default::default() }, SamplingParams { temperature: 0.7, ..Default::default() }, SamplingParams { temperature: 1.0, top_p: 0.9, ..Default::default() }, SamplingParams { temperature: 1.0, top_k: 40, ..Default::default() }, SamplingParams { temperature: 1.0, top_k: 49_152, ..Default::default() }, SamplingParams { temperature: 1.0, top_p: f32::NAN, ..Default::default() }] {
            for (i, row) in rows.iter().enumerate() {
                for seed in 0..20 {
                    let (mut a, mut b) = (sequence_rng(seed, i), sequence_rng(seed, i));
                    let token = sample(row, &p, &mut a);
                    let want = (token, log_prob(row, token));
                    assert_eq!(sample_with_log_prob(row, &p, &mut b), want, "{p:?}, row {i}, seed {seed}");
                    assert_eq!(a.random::<u64>(), b.random::<u64>(), "the same draws taken");
                }
            }
        }
    }

    #[test]
    fn log_prob_matches_the_closed_form() {
        let lp = log_prob(&[1.0, 2.0, 3.0], 2);
        let expect = 3.0 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        assert!((lp - expect).abs() < 1e-6);
    }
}
