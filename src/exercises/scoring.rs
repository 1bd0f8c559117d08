//! Answer scoring. Every report names both scores: [`EXACT_MATCH`] (strict, the MemTrain reward)
//! and [`TOKEN_F1`] (lenient, partial credit for small models).
//!
//! Normalisation (SQuAD/HotpotQA style): lower case, punctuation removed, the articles
//! "a", "an", "the" removed, whitespace collapsed. A `\boxed{...}` answer is unwrapped first.

pub const EXACT_MATCH: &str = "exact match (normalised)";
pub const TOKEN_F1: &str = "token F1 (normalised)";

/// Both scores of one prediction.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Score {
    pub exact: bool,
    pub f1: f64,
}

/// The text inside the last `\boxed{...}` (braces balanced), or the whole answer.
pub fn unbox(answer: &str) -> &str {
    let Some(start) = answer.rfind("\\boxed{") else { return answer };
    let inner = &answer[start + 7..];
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &inner[..i];
                }
            }
            _ => {}
        }
    }
    inner
}

/// Lower case, no punctuation, no articles, single spaces (of the boxed part, if any).
pub fn normalise(answer: &str) -> String {
    normalise_words(unbox(answer)).join(" ")
}

/// The words of `text` as the scorer compares them: lower case, punctuation dropped, articles
/// dropped (also what the Memory inspector looks for in a memory).
pub fn normalise_words(text: &str) -> Vec<String> {
    let lower: String = text.chars().flat_map(char::to_lowercase).map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    lower.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).map(str::to_string).collect()
}

pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalise(prediction) == normalise(gold)
}

/// Harmonic mean of token precision and recall over normalised tokens (multiset overlap).
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalise(prediction);
    let g = normalise(gold);
    let pt: Vec<&str> = p.split(' ').filter(|s| !s.is_empty()).collect();
    let gt: Vec<&str> = g.split(' ').filter(|s| !s.is_empty()).collect();
    if pt.is_empty() || gt.is_empty() {
        return if pt.is_empty() && gt.is_empty() { 1.0 } else { 0.0 };
    }
    let mut remaining: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for t in &gt {
        *remaining.entry(t).or_default() += 1;
    }
    let mut common = 0usize;
    for t in &pt {
        if let Some(n) = remaining.get_mut(t)
            && *n > 0
        {
            *n -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / pt.len() as f64;
    let recall = common as f64 / gt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

pub fn score(prediction: &str, gold: &str) -> Score {
    Score { exact: exact_match(prediction, gold), f1: token_f1(prediction, gold) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_squad() {
        assert_eq!(normalise("  The  North-Sea Ferry Co.! "), "north sea ferry co");
        assert!(exact_match("\\boxed{the Salt Road}", "Salt Road"));
        assert!(!exact_match("Salt", "Salt Road"));
    }

    #[test]
    fn f1_gives_partial_credit() {
        assert!((token_f1("Anna", "Anna Berg") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(token_f1("Berg Anna", "Anna Berg"), 1.0);
        assert_eq!(token_f1("Oslo", "Anna Berg"), 0.0);
    }
}
