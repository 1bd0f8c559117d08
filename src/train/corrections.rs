//! On-policy teacher corrections (`sft.student_rollouts`, DAgger-style): the teacher's reply to
//! the memories the *student* wrote, not only to its own.
//!
//! Why: the SFT warm start shows every turn from the teacher's memory, which always holds what
//! the document's entities need; the student's memories do not (README, Training: repeated
//! sentences, "The. The.", the naming sentence kept without the `[MASK]` one, or the reverse),
//! and it was never shown what to write from such a memory, so one slip lasts to the answer.
//! Here the student reads a training exercise greedily (its own memories, as held-out
//! evaluation sees them), and each of its turns gets the teacher's reply from the student's
//! memory:
//! - memory turn t ≥ 1: the units of the student's memory that the teacher would keep (naming an
//!   entity, holding `[MASK]`, the blank's note; each once: repeats and plain sentences go),
//!   then the teacher's update with chunk t — the same writer as the reference trace;
//! - answer turn: the teacher's answer from the student's final memory, only when that memory
//!   names the answer and holds a `[MASK]` (the teacher does not guess either);
//! - recall turns: the teacher's recall reply from the student's memory after the probed chunk,
//!   only when it holds the probed entity.
//!
//! Turn 0 reads "No previous memory", the reference trace's own first turn: not repeated.

use super::reference::{Conversation, TeacherMemory, TeacherStyle, answer_turn_reply, recall_reply, sentences};
use crate::agent::{TurnKind, prompts};
use crate::eval::inspect::holds;
use crate::exercises::jsonl::Exercise;
use crate::exercises::masked_entity::MASK;

/// The teacher's replies to the turns of a student that wrote `memories` (one per chunk) on
/// `exercise` with recall `probes` (module docs).
pub fn corrections(exercise: &Exercise, probes: &[Exercise], memories: &[String], memory_tokens: usize, teacher: TeacherStyle, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Conversation> {
    let writer = TeacherMemory::new(exercise, probes, memory_tokens, teacher, count_tokens);
    let mut out = Vec::new();
    for (t, chunk) in exercise.chunks.iter().enumerate().skip(1) {
        let Some(before) = memories.get(t - 1) else { break };
        let mut kept: Vec<String> = Vec::new();
        for unit in sentences(before).filter(|u| writer.keeps(u)) {
            if !kept.iter().any(|k| k == unit) {
                kept.push(unit.to_string());
            }
        }
        let reply = writer.update(&mut kept, chunk, before);
        out.push(Conversation { turn: TurnKind::Memory { chunk: t }, prompt: prompts::memory_update(&exercise.question, before, chunk), reply });
    }
    if let Some(last) = memories.last().filter(|m| m.contains(MASK) && holds(m, &exercise.answer)) {
        out.push(Conversation { turn: TurnKind::Answer, prompt: prompts::final_answer(&exercise.question, last), reply: answer_turn_reply(last, &exercise.answer, teacher) });
    }
    for p in probes {
        if let (Some(chunk), Some(text)) = (p.probe_chunk, &p.probe_text)
            && let Some(memory) = memories.get(chunk).filter(|m| holds(m, &p.answer))
        {
            out.push(Conversation { turn: TurnKind::Recall, prompt: prompts::memory_recall(memory, text), reply: recall_reply(text, &p.answer, teacher.recall) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercises::jsonl::{masked_for_test as exercise, words_for_test as words};
    use crate::train::config::MemoryStyle;

    #[test]
    fn the_teacher_mends_a_student_memory_keeping_its_named_sentence_once_and_adding_the_blank() {
        let e = exercise(&["The mayor Olav Dahl rowed out to the boats. Rain fell.", "The gulls cried. Everyone agreed that the mayor [MASK] knew the tides."], "Olav Dahl");
        // The student repeated a sentence and wrote a stub; it kept the named one.
        let student = ["The. The. The mayor Olav Dahl rowed out to the boats. The mayor Olav Dahl rowed out to the boats. Rain fell.".to_string(), "The gulls cried.".to_string()];
        let c = corrections(&e, &[], &student, 40, TeacherStyle { answer_inline_box: true, ..Default::default() }, &words);
        assert_eq!(c.len(), 1, "one memory turn; no answer turn, since the student's final memory lost both");
        assert_eq!(c[0].turn, TurnKind::Memory { chunk: 1 });
        assert!(c[0].prompt.contains(&student[0]) && c[0].prompt.contains("[MASK] knew the tides"));
        assert_eq!(c[0].reply, "The mayor Olav Dahl rowed out to the boats. Everyone agreed that the mayor [MASK] knew the tides.");
        // A final memory with the name and the blank gets the teacher's answer from it.
        let good = [student[0].clone(), c[0].reply.clone()];
        let c = corrections(&e, &[], &good, 40, TeacherStyle { answer_inline_box: true, ..Default::default() }, &words);
        assert_eq!(c.last().unwrap().turn, TurnKind::Answer);
        assert_eq!(c.last().unwrap().reply, "Everyone agreed that the mayor \\boxed{Olav Dahl} knew the tides.");
        // Ledger: the kept student sentence counts as the name's clause; only the blank's is new.
        let c = corrections(&e, &[], &student, 40, TeacherStyle { memory: MemoryStyle::Ledger, ..Default::default() }, &words);
        assert_eq!(c[0].reply, "The mayor Olav Dahl rowed out to the boats. agreed that the mayor [MASK] knew the tides.");
    }

    #[test]
    fn a_recall_turn_is_mended_only_from_a_memory_that_holds_the_probed_entity() {
        let e = exercise(&["Kari Lund built a boat in Norby.", "The gulls cried."], "Kari Lund");
        let mut probe = exercise(&[], "Norby");
        probe.probe_chunk = Some(0);
        probe.probe_text = Some("Kari Lund built a boat in [TARGET].".into());
        let style = TeacherStyle { recall: super::super::reference::RecallStyle::InlineBox, ..Default::default() };
        let with = corrections(&e, std::slice::from_ref(&probe), &["Kari Lund built a boat in Norby.".into(), "x".into()], 40, style, &words);
        let recall: Vec<_> = with.iter().filter(|c| c.turn == TurnKind::Recall).collect();
        assert_eq!(recall.len(), 1);
        assert_eq!(recall[0].reply, "Kari Lund built a boat in \\boxed{Norby}.");
        let without = corrections(&e, std::slice::from_ref(&probe), &["Kari Lund built a boat.".into(), "x".into()], 40, style, &words);
        assert!(without.iter().all(|c| c.turn != TurnKind::Recall));
    }
}
