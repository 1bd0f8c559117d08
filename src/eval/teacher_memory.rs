//! Objective 1 split in two: the model's final answer asked from the *teacher's* final memory
//! (the reference trace's, which keeps the sentence naming the answer and a `[MASK]` sentence
//! when they fit) instead of its own. Masked-entity EM needs both skills — writing a memory that
//! keeps name and blank together, and linking them in the answer turn; this score measures the
//! second alone, so a run whose EM stays flat shows which of the two it has not learned.

use super::report::Record;
use crate::agent::{Policy, TurnKind, extract_masked_answer, prompts};
use crate::exercises::masked_entity::MASK;
use crate::exercises::jsonl::Exercise;
use crate::generate::SamplingParams;
use crate::train::reference::{TeacherStyle, reference_conversations};
use crate::train::rewards::score_answer;
use anyhow::Result;

/// Greedy answers from the teacher's final memory of each of `masked` that holds both the
/// answer's name and a `[MASK]` (the others cannot be answered from it and are left out),
/// one record each (objective [`super::report::TEACHER_MEMORY`], the memory being the teacher's).
pub fn answers_from_teacher_memories(policy: &Policy, masked: &[Exercise], memory_tokens: usize, teacher: TeacherStyle, answer_tokens: usize) -> Result<Vec<Record>> {
    let count = crate::train::reference::token_counter(policy.tokenizer);
    let mut asked: Vec<(&Exercise, String)> = Vec::new();
    let mut prompt_ids = Vec::new();
    for e in masked {
        let memory = final_memory(e, memory_tokens, teacher, &count);
        if memory.contains(MASK) && super::inspect::holds(&memory, &e.answer) {
            prompt_ids.push(policy.chat_prompt_ids(&prompts::final_answer(&e.question, &memory))?);
            asked.push((e, memory));
        }
    }
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let sampling = SamplingParams { temperature: 0.0, max_new_tokens: answer_tokens, ..Default::default() };
    let generations = policy.generate_batch(&prompt_ids, &sampling)?;
    generations
        .iter()
        .zip(asked)
        .map(|(g, (e, memory))| {
            let prediction = extract_masked_answer(&policy.decode(&g.tokens)?, &e.chunks);
            let s = score_answer(&prediction, &e.answer);
            Ok(Record { id: e.id.clone(), objective: super::report::TEACHER_MEMORY.into(), entity_type: e.entity_type.name().to_string(), doc_chunks: e.chunks.len(), distance: None, question: e.question.clone(), gold: e.answer.clone(), prediction, exact: s.exact, f1: s.f1, memory })
        })
        .collect()
}

/// The memory the teacher writes after the last chunk of `e` (its answer turn's memory).
fn final_memory(e: &Exercise, memory_tokens: usize, teacher: TeacherStyle, count: &dyn Fn(&str) -> usize) -> String {
    // Only the memory turns matter here: no probes, no drills.
    let style = TeacherStyle { drills: 0, answer_drills: 0, memory_drills: 0, ..teacher };
    let conversations = reference_conversations(e, &[], memory_tokens, style, count);
    let memories = conversations.iter().filter(|c| matches!(c.turn, TurnKind::Memory { .. }));
    memories.last().map(|c| c.reply.clone()).unwrap_or_else(|| prompts::INITIAL_MEMORY.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercises::jsonl::{masked_for_test as exercise, words_for_test as words};
    use crate::train::config::MemoryStyle;

    #[test]
    fn the_teacher_memory_asked_is_the_one_its_answer_turn_sees_in_the_style_trained() {
        let e = exercise(&["Rain fell on the quay all week. The mayor Olav Dahl rowed out to the boats.", "The gulls cried. Everyone agreed that the mayor [MASK] knew the tides."], "Olav Dahl");
        let teacher = |memory| TeacherStyle { memory, answer_drills: 3, memory_drills: 2, ..Default::default() };
        // Sentences: both sentences with an entity or a blank, the rest dropped.
        let sentences = final_memory(&e, 40, teacher(MemoryStyle::Sentences), &words);
        assert_eq!(sentences, "The mayor Olav Dahl rowed out to the boats. Everyone agreed that the mayor [MASK] knew the tides.");
        // Ledger: the clauses around the name and the blank, drills ignored.
        let ledger = final_memory(&e, 40, teacher(MemoryStyle::Ledger), &words);
        assert!(ledger.contains("mayor Olav Dahl rowed out") && ledger.contains("the mayor [MASK] knew") && !ledger.contains("Everyone"), "{ledger}");
        // A memory too small for both loses one, and such an exercise is not asked.
        let small = final_memory(&e, 8, teacher(MemoryStyle::Sentences), &words);
        assert!(!(small.contains(MASK) && crate::eval::inspect::holds(&small, "Olav Dahl")), "{small}");
    }
}
