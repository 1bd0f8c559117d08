//! Reading the answer out of a recall reply or of the final answer to a `[MASK]`.
//!
//! Why a reader of its own: asked to fill `[TARGET]`, a small model often writes the section's
//! sentence back with the blank filled ("…the new school in Bramholt Island should stand.")
//! instead of boxing the entity — 3 to 5 of 14 held-out replies after 20–40 SFT steps (README,
//! Training). The words standing where `[TARGET]` stood are its answer, as a person grading the
//! reply would read them. A boxed answer still wins; a reply that restores nothing is read as
//! [`super::extract_answer`] reads any reply. The final answer of objective 1 is read the same
//! way against every `[MASK]` of the chunks the agent read.

use crate::exercises::masked_entity::MASK;
use crate::exercises::recall_probe::TARGET;

/// Words of context matched on each side of the blank.
const CONTEXT_WORDS: usize = 3;
/// Longer fills are not an entity: the reply wandered off between the two contexts.
const MAX_ANSWER_CHARS: usize = 80;

/// The answer of a recall reply to `masked_section` (module docs).
pub fn extract_recall_answer(reply: &str, masked_section: &str) -> String {
    extract_filled(reply, &[masked_section], TARGET)
}

/// The final answer to objective 1's question about the `[MASK]`s in `chunks` (module docs).
pub fn extract_masked_answer(reply: &str, chunks: &[String]) -> String {
    // The last chunks first: what the memory holds last is what a reply restores most often.
    let texts: Vec<&str> = chunks.iter().rev().map(String::as_str).collect();
    extract_filled(reply, &texts, MASK)
}

/// A box; else the words of `reply` standing at a `placeholder` of one of `texts`; else the
/// reply read as any reply.
fn extract_filled(reply: &str, texts: &[&str], placeholder: &str) -> String {
    if !reply.contains("\\boxed{") {
        let squashed = squash(reply);
        for text in texts {
            for (at, _) in text.match_indices(placeholder) {
                if let Some(filled) = filled_blank(&squashed, text, at, placeholder) {
                    return filled;
                }
            }
        }
    }
    super::extract_answer(reply)
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `text[at..]` starts a sentence end: `.`, `!` or `?` followed by whitespace or the end.
fn ends_sentence(text: &str, at: usize) -> bool {
    let rest = &text.as_bytes()[at..];
    matches!(rest.first(), Some(b'.' | b'!' | b'?')) && rest.get(1).is_none_or(|b| b.is_ascii_whitespace())
}

/// The context around the blank `placeholder` at byte `pos` of `section`, within its sentence:
/// up to [`CONTEXT_WORDS`] words before (may be empty: the blank starts the sentence) and after
/// (with whether a space separates it from the blank; "'s boat" or "." are glued to it).
fn contexts(section: &str, pos: usize, placeholder: &str) -> Option<(String, String, bool)> {
    let before = &section[..pos];
    let start = (0..before.len()).rev().find(|&i| before.is_char_boundary(i) && (ends_sentence(before, i) || before.as_bytes()[i] == b'\n')).map_or(0, |i| i + 1);
    let words: Vec<&str> = before[start..].split_whitespace().collect();
    let left = words[words.len().saturating_sub(CONTEXT_WORDS)..].join(" ");
    let after = &section[pos + placeholder.len()..];
    let end = (0..after.len()).find(|&i| after.is_char_boundary(i) && ends_sentence(after, i)).map_or(after.len(), |i| i + 1);
    let right: Vec<&str> = after[..end].split_whitespace().take(CONTEXT_WORDS).collect();
    (!right.is_empty()).then(|| (left, right.join(" "), after.starts_with(char::is_whitespace)))
}

/// The text of `reply` (whitespace squashed) between the two contexts of the blank at byte `at`
/// of `section`, if it restores that sentence.
fn filled_blank(reply: &str, section: &str, at: usize, placeholder: &str) -> Option<String> {
    let (left, right, spaced) = contexts(section, at, placeholder)?;
    // Where the fill may start: after the left context, or at a sentence start when it is empty.
    let starts: Vec<usize> = if left.is_empty() {
        std::iter::once(0).chain((0..reply.len()).filter(|&i| reply.is_char_boundary(i) && ends_sentence(reply, i)).map(|i| i + 2)).filter(|&i| i < reply.len()).collect()
    } else {
        let needle = format!("{left} ");
        reply.match_indices(&needle).filter(|(i, _)| *i == 0 || reply.as_bytes()[i - 1] == b' ').map(|(i, _)| i + needle.len()).collect()
    };
    let right = if spaced { format!(" {right}") } else { right };
    for start in starts {
        let rest = &reply[start..];
        // The right context must end on a word boundary ("5.4" is not the sentence's ".").
        let Some((at, _)) = rest.match_indices(&right).find(|(at, _)| *at > 0 && rest.as_bytes().get(at + right.len()).is_none_or(|b| *b == b' ')) else { continue };
        let fill = rest[..at].trim();
        if !fill.is_empty() && fill.len() <= MAX_ANSWER_CHARS && !(0..fill.len()).any(|i| fill.is_char_boundary(i) && ends_sentence(fill, i) && i + 1 < fill.len()) {
            return Some(fill.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_words_standing_where_the_target_stood() {
        let section = "Rain fell. Tobias Holm and Silas Halloran argued for weeks about where the new school in [TARGET] should stand. The gulls cried.";
        let reply = "Tobias Holm and Silas Halloran argued for weeks about where the new school in Bramholt Island should stand.";
        assert_eq!(extract_recall_answer(reply, section), "Bramholt Island");
        // Line breaks and doubled spaces in the reply do not matter.
        assert_eq!(extract_recall_answer("where the new school in\nBramholt  Island should stand.", section), "Bramholt Island");
    }

    #[test]
    fn handles_a_blank_that_starts_or_ends_its_sentence_and_glued_suffixes() {
        let start = "Anna Berg sailed north. [TARGET] sold 40 sheep. Rain fell.";
        assert_eq!(extract_recall_answer("Olav Dahl sold 40 sheep.", start), "Olav Dahl");
        assert_eq!(extract_recall_answer("Anna Berg sailed north. Olav Dahl sold 40 sheep.", start), "Olav Dahl");
        let end = "The guild was poor. In 1907 it borrowed [TARGET]. Then it rained.";
        assert_eq!(extract_recall_answer("In 1907 it borrowed €5.4 million.", end), "€5.4 million");
        assert_eq!(extract_recall_answer("Olav Dahl's boat sank.", "Rain. [TARGET]'s boat sank."), "Olav Dahl");
    }

    #[test]
    fn a_box_wins_and_a_reply_that_restores_nothing_is_read_as_before() {
        let section = "Then [TARGET] sold 40 sheep.";
        assert_eq!(extract_recall_answer("Then Olav sold 40 sheep. \\boxed{Olav Dahl}", section), "Olav Dahl");
        assert_eq!(extract_recall_answer("Tobias Holm", section), "Tobias Holm");
        assert_eq!(extract_recall_answer("The wind came off the water.", section), "The wind came off the water.");
        // A fill that runs over a sentence end is not an answer: the last line is read instead.
        assert_eq!(extract_recall_answer("Then Olav left. Kari sold 40 sheep.", section), "Then Olav left. Kari sold 40 sheep.");
        assert_eq!(extract_recall_answer("No blank here.", "No target at all."), "No blank here.");
    }

    #[test]
    fn the_final_answer_is_read_at_any_mask_of_the_chunks() {
        let chunks = ["Tobias Holm and Silas Halloran argued about the school.".to_string(), "On March 1961, [MASK] arrived in Norby Cove. [MASK] and Silas Halloran argued about the school.".to_string()];
        // A memory sentence restored at the second [MASK] of the last chunk.
        assert_eq!(extract_masked_answer("Tobias Holm and Silas Halloran argued about the school.", &chunks), "Tobias Holm");
        assert_eq!(extract_masked_answer("On March 1961, Tobias Holm arrived in Norby Cove.", &chunks), "Tobias Holm");
        assert_eq!(extract_masked_answer("\\boxed{Silas Halloran}", &chunks), "Silas Halloran");
        assert_eq!(extract_masked_answer("Norby Cove", &chunks), "Norby Cove");
        // The recall blank is not objective 1's: a [TARGET] in the chunks is not read.
        assert_eq!(extract_masked_answer("Olav sold 40 sheep.", &["[TARGET] sold 40 sheep.".to_string()]), "Olav sold 40 sheep.");
    }
}
