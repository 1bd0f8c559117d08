//! Reference traces for the SFT warm start (method notes §8.2 item 1): what a good memory agent
//! would have written for an exercise, built by a heuristic teacher.
//!
//! Contract: the teacher's memory after each chunk is the previous memory plus every sentence
//! of the chunk that mentions `[MASK]`, an entity a recall probe will ask about, or any other
//! entity the rule tagger finds, with the oldest sentences dropped until it fits
//! `memory_tokens`: plain ones first, then those with `[MASK]`, the ones naming the masked
//! answer last; the answer turn replies `\boxed{answer}`
//! (with `answer_inline_box`: the memory's first `[MASK]` sentence with the box in the blank, as
//! the inline-box recall reply below); each recall probe gets a turn from the memory written
//! after its chunk, plus `drills` *recall drills* (below). Prompts are exactly the agent's
//! ([`crate::agent::prompts`]), so SFT teaches the real format. With `sft.memory_style:
//! Ledger` the memory's units are short clauses around each entity instead of whole sentences
//! ([`super::ledger`]); keeping, dropping, drills and replies work on them unchanged.
//!
//! Recall drills: the same question asked from a small memory made of the teacher memory's
//! sentence that holds the answer alone (drill 0), then with 1, 2, … other sentences of that
//! memory around it in a seeded random order. Why: trained models answer with the wrong entity
//! of a memory that holds the right one (README, Training); a drill isolates the missing step,
//! finding the sentence that matches the `[TARGET]` context, and breaks position shortcuts.
//!
//! Answer drills: objective 1's question asked again from a small memory of a sentence naming
//! the masked answer (seen before the pivot), a `[MASK]` sentence, then 1, 2, … other sentences
//! of the document, shuffled, with the answer turn's reply. Why: with after-pivot masking the
//! answer turn must link the blank to the remembered name by the words around both (synthetic
//! documents write an epithet beside every name for this), and the real answer turn, one per
//! trace, shows that link only when the memory kept both sentences.
//!
//! Memory drills: a memory turn on a chunk with `[MASK]` again, from a small memory made of a
//! sentence naming the masked answer (after-pivot masking names it before the pivot) and 0, 1,
//! 2, … other entity sentences of the earlier chunks, shuffled; the reply is the teacher's own
//! update of that memory, which keeps the naming sentence and adds the `[MASK]` sentences. Why:
//! trained memory writers keep either the naming sentence or the new `[MASK]` sentence, almost
//! never both (README, Training: the 96-token run), and the real trace shows that step once per
//! exercise; the drill repeats it with varied company.
//!
//! Resolving the blank (`resolve_mask`): on the first chunk with `[MASK]` read while the memory
//! (or the chunk itself) names the masked answer, the teacher's memory adds "Note: [MASK] is
//! Priya Fenwick." at the start of the memory and keeps it there, over every other sentence;
//! the answer turn then only copies it. Why: the link between the blank and the name is
//! easiest to make while both are in view — the `[MASK]` chunk and the memory holding the naming sentence — and trained memory
//! writers kept one of the two sentences, almost never both, so the answer turn never saw
//! them together (README, Training). The note is written only from what the student was given.
//!
//! Recall rationale: the recall reply first restores the section's `[TARGET]` sentence with
//! the answer in place, then boxes the answer ("…the new school in Bramholt Island should
//! stand. \boxed{Bramholt Island}"). Why: writing the section's sentence out lets the model
//! copy the missing words from the matching memory sentence (what a pretrained model does well)
//! instead of picking an entity; the box still ends the reply, so scoring is unchanged.
//!
//! Inline box: the reply is that restored sentence with the box in the target's place ("…the
//! new school in \boxed{Bramholt Island} should stand."). Why: with the rationale, replies at 30
//! SFT steps restored the right sentence (gold inside) but never reached the separate box, and
//! by 60 steps fell back to short entity guesses (README, Training); here the answer is boxed
//! at the moment it is copied, so restoring the sentence *is* answering.
//!
//! Keeping the answer's sentence: under after-pivot masking (`MaskScope::AfterPivot`) the
//! masked entity is named in one earlier chunk, and a teacher that dropped plain sentences first
//! threw exactly that sentence out for the later `[MASK]` ones, so its answer turns taught a guess
//! (an H100 run, docs/bench/h100-2026-11-28.md: final memories with "[MASK] and Silas Halloran
//! argued…" and no "Tobias Holm and Silas Halloran argued…"). Once a `[MASK]` sentence is in view
//! the student can learn the rule (keep the sentence the `[MASK]` sentences repeat); before that
//! the protection is an oracle's choice, as keeping a probed entity would be. Under everywhere
//! masking no sentence names the answer and nothing changes.

use crate::agent::{TurnKind, prompts};
use crate::checkpoint::tokenizer::TextTokenizer;
use crate::exercises::jsonl::Exercise;
use crate::train::sft::SftExample;
use anyhow::Result;
use crate::exercises::masked_entity::MASK;
use crate::exercises::recall_probe::TARGET;
use crate::exercises::{entities, textmatch};
use super::ledger::{self, MemoryStyle};

/// How the teacher writes its recall and answer turns (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TeacherStyle {
    /// Recall drills per probe.
    pub drills: usize,
    /// Answer drills per masked-entity exercise.
    pub answer_drills: usize,
    pub recall: RecallStyle,
    /// The answer turn restores a `[MASK]` sentence of its memory with the box in place.
    pub answer_inline_box: bool,
    /// Memory drills per masked-entity exercise.
    pub memory_drills: usize,
    /// The memory adds the note [`mask_note`] once it can resolve the blank.
    pub resolve_mask: bool,
    /// Whole sentences or a ledger of clauses ([`super::ledger`]).
    pub memory: MemoryStyle,
}

impl TeacherStyle {
    pub fn from_config(sft: &crate::train::config::SftConfig) -> Self {
        TeacherStyle { drills: sft.recall_drills, answer_drills: sft.answer_drills, recall: RecallStyle::from_config(sft), answer_inline_box: sft.answer_inline_box, memory_drills: sft.memory_drills, resolve_mask: sft.resolve_mask, memory: sft.memory_style }
    }
}

/// How much each token of a conversation weighs in the SFT loss, by turn (memory turns 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurnWeights {
    /// Answer and recall turns (`sft.answer_weight`).
    pub answer: f32,
    /// Memory turns whose reply keeps a `[MASK]` sentence (`sft.mask_memory_weight`). Why: on
    /// after-pivot data the trained student's final memories kept the entity's sentence but
    /// almost never a `[MASK]` sentence beside it, so its answer turn had no blank to fill
    /// (README, Training); these turns are where the teacher shows keeping them.
    pub mask_memory: f32,
}

impl Default for TurnWeights {
    fn default() -> Self {
        TurnWeights { answer: 1.0, mask_memory: 1.0 }
    }
}

impl TurnWeights {
    pub fn from_config(sft: &crate::train::config::SftConfig) -> Self {
        TurnWeights { answer: sft.answer_weight, mask_memory: sft.mask_memory_weight }
    }

    /// The per-token weight of `c`.
    pub fn of(&self, c: &Conversation) -> f32 {
        match c.turn {
            TurnKind::Memory { .. } if c.reply.contains(MASK) => self.mask_memory,
            TurnKind::Memory { .. } => 1.0,
            _ => self.answer,
        }
    }
}

/// The shape of a recall reply (module docs), for a section whose `[TARGET]` sentence is
/// "[TARGET] sold 40 sheep." and the answer "Olav Dahl".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum RecallStyle {
    /// `\boxed{Olav Dahl}`
    #[default]
    Box,
    /// `Olav Dahl sold 40 sheep. \boxed{Olav Dahl}`
    Rationale,
    /// `\boxed{Olav Dahl} sold 40 sheep.`
    InlineBox,
}

impl RecallStyle {
    pub fn from_config(sft: &crate::train::config::SftConfig) -> Self {
        match (sft.recall_rationale, sft.recall_inline_box) {
            (_, true) => Self::InlineBox,
            (true, false) => Self::Rationale,
            (false, false) => Self::Box,
        }
    }
}

/// One user turn and the assistant reply to learn.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub turn: TurnKind,
    pub prompt: String,
    pub reply: String,
}

/// The teacher's memory writer for one exercise (module docs): what it keeps of a memory and a
/// chunk, within `memory_tokens`.
pub(super) struct TeacherMemory<'a> {
    exercise: &'a Exercise,
    /// `[MASK]` and the probed answers: strings that count as entities wherever they occur.
    keys: Vec<&'a str>,
    note: String,
    teacher: TeacherStyle,
    memory_tokens: usize,
    count_tokens: &'a dyn Fn(&str) -> usize,
}

impl<'a> TeacherMemory<'a> {
    pub(super) fn new(exercise: &'a Exercise, probes: &'a [Exercise], memory_tokens: usize, teacher: TeacherStyle, count_tokens: &'a dyn Fn(&str) -> usize) -> Self {
        // Probed entities alone would teach a choice the student cannot make (it never sees which
        // entities will be probed); every tagged entity is a rule it can learn from the text.
        let keys: Vec<&str> = std::iter::once(MASK).chain(probes.iter().map(|p| p.answer.as_str())).collect();
        TeacherMemory { exercise, keys, note: mask_note(&exercise.answer), teacher, memory_tokens, count_tokens }
    }

    /// Whether the teacher would keep `unit` (a sentence or clause) of a memory it is given.
    pub(super) fn keeps(&self, unit: &str) -> bool {
        unit == self.note || self.names_a_key_or_entity(unit)
    }

    /// Whether `text` holds a key (`[MASK]`, a probed answer) or an entity the tagger finds.
    fn names_a_key_or_entity(&self, text: &str) -> bool {
        self.keys.iter().any(|k| textmatch::contains(text, k)) || !entities::find(text).is_empty()
    }

    /// Adds what the teacher keeps of `chunk` to the units `kept`, makes room, and returns the
    /// new memory (`before` when nothing is kept).
    pub(super) fn update(&self, kept: &mut Vec<String>, chunk: &str, before: &str) -> String {
        let (exercise, note, memory_tokens, count_tokens) = (self.exercise, &self.note, self.memory_tokens, self.count_tokens);
        match self.teacher.memory {
            MemoryStyle::Sentences => kept.extend(sentences(chunk).filter(|s| self.names_a_key_or_entity(s)).map(str::to_string)),
            MemoryStyle::Ledger => add_ledger_clauses(kept, chunk, &self.keys),
        }
        // Resolve only from what the student sees: the memory it was given and this chunk.
        if self.teacher.resolve_mask && chunk.contains(MASK) && !kept.contains(note) && kept.iter().any(|s| textmatch::contains(s, &exercise.answer)) {
            // First, where every later memory turn starts by copying it.
            kept.insert(0, note.clone());
        }
        while kept.len() > 1 && count_tokens(&kept.join(" ")) > memory_tokens {
            // The oldest sentence of the lowest keep rank goes (module docs).
            let drop = (0..kept.len()).min_by_key(|&i| (keep_rank(&kept[i], &exercise.answer, note), i)).unwrap_or(0);
            kept.remove(drop);
        }
        if kept.is_empty() { before.to_string() } else { truncate_to(&kept.join(" "), memory_tokens, count_tokens) }
    }

    /// The units of the teacher's memory (`keys` for the ledger's clause windows).
    pub(super) fn units(&self) -> Vec<String> {
        match self.teacher.memory {
            MemoryStyle::Sentences => self.exercise.chunks.clone(),
            MemoryStyle::Ledger => ledger_chunks(&self.exercise.chunks, &self.keys),
        }
    }
}

/// Every conversation of the teacher's trace of `exercise` (memory turns, the answer, recalls).
pub fn reference_conversations(exercise: &Exercise, probes: &[Exercise], memory_tokens: usize, teacher: TeacherStyle, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Conversation> {
    let writer = TeacherMemory::new(exercise, probes, memory_tokens, teacher, count_tokens);
    let mut kept: Vec<String> = Vec::new();
    let mut memories: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for chunk in &exercise.chunks {
        let before = memories.last().cloned().unwrap_or_else(|| prompts::INITIAL_MEMORY.to_string());
        let memory = writer.update(&mut kept, chunk, &before);
        out.push(Conversation { turn: TurnKind::Memory { chunk: memories.len() }, prompt: prompts::memory_update(&exercise.question, &before, chunk), reply: memory.clone() });
        memories.push(memory);
    }
    // Drill memories are cut from the same units as the teacher's memories.
    let units = writer.units();
    for (chunk, before) in memory_drills(&units, &exercise.answer, teacher.memory_drills, &exercise.id) {
        let mut drill_kept: Vec<String> = sentences(&before).map(str::to_string).collect();
        let reply = writer.update(&mut drill_kept, &exercise.chunks[chunk], &before);
        out.push(Conversation { turn: TurnKind::Memory { chunk }, prompt: prompts::memory_update(&exercise.question, &before, &exercise.chunks[chunk]), reply });
    }
    let last = memories.last().map(String::as_str).unwrap_or(prompts::INITIAL_MEMORY);
    let answer_turn = |memory: &str| {
        Conversation { turn: TurnKind::Answer, prompt: prompts::final_answer(&exercise.question, memory), reply: answer_turn_reply(memory, &exercise.answer, teacher) }
    };
    out.push(answer_turn(last));
    for memory in answer_drill_memories(&units, &exercise.answer, teacher.answer_drills, &exercise.id) {
        out.push(answer_turn(&memory));
    }
    for p in probes {
        if let (Some(chunk), Some(text)) = (p.probe_chunk, &p.probe_text)
            && let Some(memory) = memories.get(chunk)
        {
            let reply = recall_reply(text, &p.answer, teacher.recall);
            out.push(Conversation { turn: TurnKind::Recall, prompt: prompts::memory_recall(memory, text), reply: reply.clone() });
            for drill_memory in drill_memories(memory, &p.answer, teacher.drills, &p.id) {
                out.push(Conversation { turn: TurnKind::Recall, prompt: prompts::memory_recall(&drill_memory, text), reply: reply.clone() });
            }
        }
    }
    out
}

/// Each chunk as the ledger clauses it adds to a memory that has kept every earlier clause
/// ([`super::ledger`]), one clause per "sentence".
fn ledger_chunks(chunks: &[String], keys: &[&str]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    chunks
        .iter()
        .map(|chunk| {
            let from = kept.len();
            add_ledger_clauses(&mut kept, chunk, keys);
            kept[from..].join(" ")
        })
        .collect()
}

/// Adds to `kept` the clauses of `chunk` that it does not hold yet, sentence by sentence.
fn add_ledger_clauses(kept: &mut Vec<String>, chunk: &str, keys: &[&str]) {
    for s in sentences(chunk) {
        let new = ledger::new_clauses(s, keys, kept);
        kept.extend(new);
    }
}

/// The teacher's recall reply in `style` ([`RecallStyle`]); `\boxed{gold}` alone when the
/// section has no `[TARGET]` sentence.
pub fn recall_reply(masked_section: &str, gold: &str, style: RecallStyle) -> String {
    let sentence = sentences(masked_section).find(|s| s.contains(TARGET));
    match (style, sentence) {
        (RecallStyle::Rationale, Some(s)) => format!("{} {}", s.replace(TARGET, gold), boxed(gold)),
        (RecallStyle::InlineBox, Some(s)) => s.replace(TARGET, &boxed(gold)),
        _ => boxed(gold),
    }
}

/// How long the teacher's memory keeps `sentence`: plain 0, with `[MASK]` 1, naming the masked
/// `answer` 2, the `note` resolving the blank ([`mask_note`]) 3 (module docs).
fn keep_rank(sentence: &str, answer: &str, note: &str) -> u8 {
    if sentence == note {
        3
    } else if textmatch::contains(sentence, answer) {
        2
    } else {
        u8::from(sentence.contains(MASK))
    }
}

/// The teacher memory's note resolving the blank (`sft.resolve_mask`, module docs).
pub fn mask_note(answer: &str) -> String {
    format!("Note: {MASK} is {answer}.")
}

/// The teacher's answer to objective 1 from `memory`: [`answer_reply`] with
/// `answer_inline_box`, else `\boxed{gold}`.
pub(super) fn answer_turn_reply(memory: &str, gold: &str, teacher: TeacherStyle) -> String {
    if teacher.answer_inline_box { answer_reply(memory, gold) } else { boxed(gold) }
}

/// The inline-box answer to objective 1: the first `[MASK]` sentence of the final `memory` with
/// `\boxed{gold}` at its first blank and `gold` at any other; `\boxed{gold}` alone when the
/// memory kept no `[MASK]` sentence (the note resolving the blank does not count).
pub fn answer_reply(memory: &str, gold: &str) -> String {
    let note = mask_note(gold);
    match sentences(memory).find(|s| s.contains(MASK) && *s != note) {
        Some(s) => s.replacen(MASK, &boxed(gold), 1).replace(MASK, gold),
        None => boxed(gold),
    }
}

/// The memories of `count` recall drills for the answer `gold` (module docs): drill d holds the
/// first sentence of `memory` that contains `gold` and min(d, others) other sentences of it,
/// shuffled with a seed taken from `probe_id`. None when no sentence holds `gold` (the teacher
/// memory dropped it).
pub fn drill_memories(memory: &str, gold: &str, count: usize, probe_id: &str) -> Vec<String> {
    let all: Vec<&str> = sentences(memory).collect();
    let Some(holder) = all.iter().position(|s| textmatch::contains(s, gold)) else { return vec![] };
    let others: Vec<&str> = all.iter().enumerate().filter(|&(i, _)| i != holder).map(|(_, s)| *s).collect();
    shuffled_drills(&others, count, probe_id, |_| vec![all[holder]])
}

/// `count` drill memories: drill d is `core(d)` and min(d, others) sentences of `others`, in a
/// random order seeded from `id` (FNV-1a, stable across runs and platforms).
fn shuffled_drills<'a>(others: &[&'a str], count: usize, id: &str, core: impl Fn(usize) -> Vec<&'a str>) -> Vec<String> {
    use rand::SeedableRng;
    use rand::seq::{IndexedRandom, SliceRandom};
    let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|d| {
            let mut picked: Vec<&str> = others.choose_multiple(&mut rng, d.min(others.len())).copied().collect();
            picked.extend(core(d));
            picked.shuffle(&mut rng);
            picked.join(" ")
        })
        .collect()
}

/// The memories of `count` answer drills for the masked answer `gold` (module docs): drill d
/// holds a sentence of `chunks` naming `gold`, a `[MASK]` sentence and min(d, others) other
/// sentences that name an entity, in a seeded random order (seed from `exercise_id`); the
/// naming and `[MASK]` sentences rotate through those the document has. None when the chunks
/// lack either (everywhere-masked exercises never name the answer).
pub fn answer_drill_memories(chunks: &[String], gold: &str, count: usize, exercise_id: &str) -> Vec<String> {
    let all: Vec<&str> = chunks.iter().flat_map(|c| sentences(c)).collect();
    let naming: Vec<&str> = all.iter().copied().filter(|s| textmatch::contains(s, gold)).collect();
    let masked: Vec<&str> = all.iter().copied().filter(|s| s.contains(MASK)).collect();
    if naming.is_empty() || masked.is_empty() {
        return vec![];
    }
    let others: Vec<&str> = all.iter().copied().filter(|s| !naming.contains(s) && !masked.contains(s) && !entities::find(s).is_empty()).collect();
    shuffled_drills(&others, count, exercise_id, |d| vec![naming[d % naming.len()], masked[d % masked.len()]])
}

/// The memory drills for the masked answer `gold` (module docs): drill d pairs a chunk with
/// `[MASK]` (rotating through those after the first chunk naming `gold`) with a small memory
/// made of a sentence naming `gold` and min(d, others) other entity sentences of the chunks
/// before it, in a seeded random order (seed from `exercise_id`). Returns (chunk index, memory);
/// none when no chunk names `gold` before a `[MASK]` chunk (everywhere masking).
pub fn memory_drills(chunks: &[String], gold: &str, count: usize, exercise_id: &str) -> Vec<(usize, String)> {
    let Some(first_naming) = chunks.iter().position(|c| sentences(c).any(|s| textmatch::contains(s, gold))) else { return vec![] };
    let masked: Vec<usize> = (first_naming + 1..chunks.len()).filter(|&i| chunks[i].contains(MASK)).collect();
    if masked.is_empty() {
        return vec![];
    }
    let seed_id = format!("{exercise_id}/memory");
    (0..count)
        .map(|d| {
            let chunk = masked[d % masked.len()];
            let earlier: Vec<&str> = chunks[..chunk].iter().flat_map(|c| sentences(c)).collect();
            let naming: Vec<&str> = earlier.iter().copied().filter(|s| textmatch::contains(s, gold)).collect();
            let others: Vec<&str> = earlier.iter().copied().filter(|s| !textmatch::contains(s, gold) && (s.contains(MASK) || !entities::find(s).is_empty())).collect();
            // One drill per call keeps drill d's shuffle independent of the count asked for.
            let memory = shuffled_drills(&others, d + 1, &seed_id, |_| vec![naming[d % naming.len()]]).pop().unwrap_or_default();
            (chunk, memory)
        })
        .collect()
}

/// The teacher's conversations as token ids: the agent's chat prompt, and the reply followed by
/// the end-of-turn token (the policy must learn to stop). Replies as `teacher` says, each turn's
/// tokens weighted as `weights` says (module docs).
pub fn tokenized(exercise: &Exercise, probes: &[Exercise], memory_tokens: usize, teacher: TeacherStyle, weights: TurnWeights, tokenizer: &TextTokenizer) -> Result<Vec<SftExample>> {
    reference_conversations(exercise, probes, memory_tokens, teacher, &token_counter(tokenizer)).iter().map(|c| tokenized_conversation(c, weights, tokenizer)).collect()
}

/// `tokenizer`'s token count of a text, the teacher's memory budget unit (a text it cannot
/// encode counts as too long).
pub fn token_counter(tokenizer: &TextTokenizer) -> impl Fn(&str) -> usize + '_ {
    |s: &str| tokenizer.encode(s, false).map(|ids| ids.len()).unwrap_or(usize::MAX)
}

/// One conversation as token ids (the chat prompt; the reply and end-of-turn), weighted.
pub fn tokenized_conversation(c: &Conversation, weights: TurnWeights, tokenizer: &TextTokenizer) -> Result<SftExample> {
    Ok(SftExample { prompt: crate::agent::chat_prompt_ids(tokenizer, &c.prompt)?, target: reply_ids(tokenizer, &c.reply)?, weight: weights.of(c) })
}

/// A reply as the ids the policy must produce: the text, then the end-of-turn token.
pub fn reply_ids(tokenizer: &TextTokenizer, reply: &str) -> Result<Vec<u32>> {
    let mut ids = tokenizer.encode(reply, false)?;
    ids.extend(tokenizer.stop_ids.first().copied().or(tokenizer.eos_id));
    Ok(ids)
}

pub fn boxed(answer: &str) -> String {
    format!("\\boxed{{{answer}}}")
}

/// Sentences with their closing punctuation; paragraph breaks also end a sentence.
pub(super) fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut cuts = Vec::new();
    for i in 0..bytes.len() {
        let end = matches!(bytes[i], b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
        if end || bytes[i] == b'\n' {
            cuts.push((start, i + 1));
            start = i + 1;
        }
    }
    cuts.push((start, bytes.len()));
    cuts.into_iter().map(move |(a, b)| text[a..b].trim()).filter(|s| !s.is_empty())
}

/// The longest prefix (on a word boundary) of `text` that fits `max_tokens`.
fn truncate_to(text: &str, max_tokens: usize, count_tokens: &dyn Fn(&str) -> usize) -> String {
    if count_tokens(text) <= max_tokens {
        return text.to_string();
    }
    let words: Vec<&str> = text.split(' ').collect();
    let (mut lo, mut hi) = (0, words.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count_tokens(&words[..mid].join(" ")) <= max_tokens { lo = mid } else { hi = mid - 1 }
    }
    words[..lo].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercises::jsonl::{masked_for_test as exercise, words_for_test as words};

    #[test]
    fn memory_keeps_the_sentences_with_the_mask_and_probed_entities() {
        let e = exercise(&["Anna Berg sailed north. The sea was calm.", "Rain fell. [MASK] wrote a letter."], "Olav");
        let mut probe = exercise(&[], "Anna Berg");
        probe.probe_chunk = Some(0);
        probe.probe_text = Some("[TARGET] sailed north. The sea was calm.".into());
        let c = reference_conversations(&e, &[probe], 100, TeacherStyle::default(), &words);
        assert_eq!(c.iter().map(|c| c.turn).collect::<Vec<_>>(), [TurnKind::Memory { chunk: 0 }, TurnKind::Memory { chunk: 1 }, TurnKind::Answer, TurnKind::Recall]);
        assert_eq!(c[0].reply, "Anna Berg sailed north.");
        assert!(c[1].prompt.contains("<memory>\nAnna Berg sailed north.\n</memory>"));
        assert_eq!(c[1].reply, "Anna Berg sailed north. [MASK] wrote a letter.");
        assert_eq!(c[2].reply, "\\boxed{Olav}");
        assert!(c[3].prompt.contains("<memory>\nAnna Berg sailed north.\n</memory>") && c[3].prompt.contains("[TARGET] sailed"));
        assert_eq!(c[3].reply, "\\boxed{Anna Berg}");
    }

    #[test]
    fn recall_drills_ask_the_probe_from_growing_shuffled_memories_that_hold_the_answer() {
        let e = exercise(&["Anna Berg sailed north. Olav Dahl sold 40 sheep. Kari Lund built a boat. Per Moe sang."], "X");
        let mut probe = exercise(&[], "Olav Dahl");
        probe.id = "probe-7".into();
        probe.probe_chunk = Some(0);
        probe.probe_text = Some("Anna Berg sailed north. [TARGET] sold 40 sheep.".into());
        let c = reference_conversations(&e, std::slice::from_ref(&probe), 100, TeacherStyle { drills: 4, recall: RecallStyle::Box, ..Default::default() }, &words);
        let recalls: Vec<&Conversation> = c.iter().filter(|c| c.turn == TurnKind::Recall).collect();
        assert_eq!(recalls.len(), 1 + 4, "the probe's own turn, then four drills");
        let memory_of = |c: &Conversation| c.prompt.split("<memory>\n").nth(1).unwrap().split("\n</memory>").next().unwrap().to_string();
        // The real turn sees the whole teacher memory; drill d sees the answer's sentence and d others.
        assert_eq!(memory_of(recalls[0]), "Anna Berg sailed north. Olav Dahl sold 40 sheep. Kari Lund built a boat. Per Moe sang.");
        assert_eq!(memory_of(recalls[1]), "Olav Dahl sold 40 sheep.");
        for (d, r) in recalls[1..].iter().enumerate() {
            let m = memory_of(r);
            assert!(m.contains("Olav Dahl sold 40 sheep."), "{m}");
            assert_eq!(sentences(&m).count(), 1 + d.min(3), "{m}");
            assert!(r.prompt.contains("[TARGET] sold 40 sheep.") && r.reply == "\\boxed{Olav Dahl}");
        }
        // Some drill puts the answer's sentence somewhere else than second (its place in the
        // memory); the order is seeded by the probe's id, so it is the same every time.
        assert!(recalls[2..].iter().any(|r| !memory_of(r).starts_with("Anna Berg sailed north. Olav Dahl")));
        assert_eq!(drill_memories(&memory_of(recalls[0]), "Olav Dahl", 4, "probe-7"), recalls[1..].iter().map(|r| memory_of(r)).collect::<Vec<_>>());
        assert!(drill_memories("Anna Berg sailed north.", "Olav Dahl", 3, "p").is_empty(), "no drill when the memory lost the answer");
    }

    #[test]
    fn the_recall_rationale_restores_the_target_sentence_before_the_box() {
        let e = exercise(&["Anna Berg sailed north. Olav Dahl sold 40 sheep."], "X");
        let mut probe = exercise(&[], "Olav Dahl");
        probe.probe_chunk = Some(0);
        probe.probe_text = Some("Anna Berg sailed north. Then [TARGET] sold 40 sheep. Rain fell.".into());
        let c = reference_conversations(&e, std::slice::from_ref(&probe), 100, TeacherStyle { drills: 1, recall: RecallStyle::Rationale, ..Default::default() }, &words);
        let replies: Vec<&str> = c.iter().filter(|c| c.turn == TurnKind::Recall).map(|c| c.reply.as_str()).collect();
        assert_eq!(replies, ["Then Olav Dahl sold 40 sheep. \\boxed{Olav Dahl}"; 2]);
        assert_eq!(crate::agent::extract_answer(replies[0]), "Olav Dahl", "scoring still reads the box");
        assert_eq!(recall_reply("No target here.", "Olav Dahl", RecallStyle::Rationale), "\\boxed{Olav Dahl}");
        assert_eq!(recall_reply("[TARGET] sold sheep.", "Olav Dahl", RecallStyle::Box), "\\boxed{Olav Dahl}");
    }

    #[test]
    fn the_inline_box_style_boxes_the_answer_where_the_target_was() {
        let e = exercise(&["Anna Berg sailed north. Olav Dahl sold 40 sheep."], "X");
        let mut probe = exercise(&[], "Olav Dahl");
        probe.probe_chunk = Some(0);
        probe.probe_text = Some("Anna Berg sailed north. Then [TARGET] sold 40 sheep. Rain fell.".into());
        let c = reference_conversations(&e, std::slice::from_ref(&probe), 100, TeacherStyle { drills: 1, recall: RecallStyle::InlineBox, ..Default::default() }, &words);
        let replies: Vec<&str> = c.iter().filter(|c| c.turn == TurnKind::Recall).map(|c| c.reply.as_str()).collect();
        assert_eq!(replies, ["Then \\boxed{Olav Dahl} sold 40 sheep."; 2]);
        assert_eq!(crate::agent::extract_answer(replies[0]), "Olav Dahl", "scoring reads the box inside the sentence");
        assert_eq!(recall_reply("No target here.", "Olav Dahl", RecallStyle::InlineBox), "\\boxed{Olav Dahl}");
    }

    #[test]
    fn the_answer_inline_box_restores_a_mask_sentence_of_the_final_memory() {
        let e = exercise(&["Anna Berg sailed north. The sea was calm.", "Rain fell. [MASK] wrote to [MASK]'s sister."], "Olav");
        let c = reference_conversations(&e, &[], 100, TeacherStyle { answer_inline_box: true, ..Default::default() }, &words);
        let answer = c.iter().find(|u| u.turn == TurnKind::Answer).unwrap();
        assert_eq!(answer.reply, "\\boxed{Olav} wrote to Olav's sister.");
        assert!(answer.prompt.contains("[MASK] wrote to [MASK]'s sister."), "the sentence is in the memory the answer turn reads");
        assert_eq!(answer_reply("No blank in this memory.", "Olav"), "\\boxed{Olav}");
        let plain = reference_conversations(&e, &[], 100, TeacherStyle::default(), &words);
        assert_eq!(plain.iter().find(|u| u.turn == TurnKind::Answer).unwrap().reply, "\\boxed{Olav}");
    }

    #[test]
    fn answer_drills_ask_from_small_shuffled_memories_of_the_naming_and_mask_sentences() {
        let e = exercise(
            &["The baker Olav Dahl sailed north. The mayor Kari Lund sold 40 sheep. The sea was calm.", "Per Moe built a boat. The baker [MASK] wrote a letter."],
            "Olav Dahl",
        );
        let style = TeacherStyle { answer_drills: 3, answer_inline_box: true, ..Default::default() };
        let c = reference_conversations(&e, &[], 100, style, &words);
        let answers: Vec<&Conversation> = c.iter().filter(|u| u.turn == TurnKind::Answer).collect();
        assert_eq!(answers.len(), 1 + 3, "the real answer turn, then three drills");
        let drills = answer_drill_memories(&e.chunks, "Olav Dahl", 3, &e.id);
        for (d, memory) in drills.iter().enumerate() {
            let mut got: Vec<&str> = sentences(memory).collect();
            got.sort();
            let mut expected = vec!["The baker Olav Dahl sailed north.", "The baker [MASK] wrote a letter."];
            assert!(expected.iter().all(|s| got.contains(s)), "drill {d}: {memory}");
            assert_eq!(got.len(), 2 + d.min(2), "drill {d}: two others at most (the calm sea names no one): {memory}");
            expected.extend(["The mayor Kari Lund sold 40 sheep.", "Per Moe built a boat."]);
            assert!(got.iter().all(|s| expected.contains(s)), "drill {d}: {memory}");
            assert!(answers[1 + d].prompt.contains(memory.as_str()));
            assert_eq!(answers[1 + d].reply, "The baker \\boxed{Olav Dahl} wrote a letter.");
        }
        assert_eq!(drills, answer_drill_memories(&e.chunks, "Olav Dahl", 3, &e.id), "seeded");
        // No drill without a sentence naming the answer (everywhere-masked exercises).
        assert!(answer_drill_memories(&e.chunks, "Anna Berg", 3, &e.id).is_empty());
    }

    #[test]
    fn memory_drills_update_a_small_memory_naming_the_answer_with_a_mask_chunk_and_keep_both() {
        let e = exercise(
            &["The baker Olav Dahl sailed north. The mayor Kari Lund sold 40 sheep.", "Per Moe built a boat. The sea was calm.", "The baker [MASK] wrote a letter. Rain fell.", "[MASK] left. Anna Berg stayed."],
            "Olav Dahl",
        );
        let c = reference_conversations(&e, &[], 100, TeacherStyle { memory_drills: 4, ..Default::default() }, &words);
        let memory_turns: Vec<&Conversation> = c.iter().filter(|u| matches!(u.turn, TurnKind::Memory { .. })).collect();
        assert_eq!(memory_turns.len(), 4 + 4, "the trace's four memory turns, then four drills");
        let drills = memory_drills(&e.chunks, "Olav Dahl", 4, &e.id);
        assert_eq!(drills.iter().map(|d| d.0).collect::<Vec<_>>(), [2, 3, 2, 3], "the [MASK] chunks in turn");
        assert_eq!(drills[0].1, "The baker Olav Dahl sailed north.", "drill 0: the naming sentence alone");
        for ((chunk, memory), turn) in drills.iter().zip(&memory_turns[4..]) {
            assert_eq!(turn.turn, TurnKind::Memory { chunk: *chunk });
            assert!(turn.prompt.contains(&format!("<memory>\n{memory}\n</memory>")) && turn.prompt.contains(e.chunks[*chunk].as_str()), "{}", turn.prompt);
            assert!(turn.reply.contains("The baker Olav Dahl sailed north.") && turn.reply.contains("[MASK]"), "keeps both: {}", turn.reply);
            assert_eq!(memory.matches("Olav Dahl").count(), 1, "one naming sentence: {memory}");
            // Other sentences come only from chunks before the drill's chunk, never filler.
            for s in sentences(memory) {
                assert!(e.chunks[..*chunk].iter().any(|c| c.contains(s)) && s != "The sea was calm.", "{s} in {memory}");
            }
        }
        // Drill 3 (chunk 3) takes all three others of chunks 0–2, the earlier [MASK] sentence among them.
        let mut company: Vec<&str> = sentences(&drills[3].1).collect();
        company.sort();
        assert_eq!(company, ["Per Moe built a boat.", "The baker Olav Dahl sailed north.", "The baker [MASK] wrote a letter.", "The mayor Kari Lund sold 40 sheep."]);
        assert_eq!(drills, memory_drills(&e.chunks, "Olav Dahl", 4, &e.id), "seeded");
        assert!(memory_drills(&e.chunks, "Anna Berg", 3, &e.id).is_empty(), "no [MASK] chunk after the naming one");
    }

    #[test]
    fn memory_keeps_every_entity_sentence_and_the_mask_sentence_outlives_newer_ones() {
        let e = exercise(&["[MASK] wrote a letter. The sea was calm.", "Olav Dahl sailed to Bergen. Rain fell. Kari Lund sold 40 sheep."], "X");
        let c = reference_conversations(&e, &[], 10, TeacherStyle::default(), &words);
        // Filler sentences go; the budget (10 words) drops the oldest entity sentence first,
        // never the one with [MASK].
        assert_eq!(c[0].reply, "[MASK] wrote a letter.");
        assert_eq!(c[1].reply, "[MASK] wrote a letter. Kari Lund sold 40 sheep.");
    }

    #[test]
    fn memory_keeps_the_sentence_naming_the_masked_answer_over_newer_and_masked_ones() {
        // After-pivot masking: chunk 0 names the answer, later chunks hide it.
        let e = exercise(&["Olav Dahl and Kari Lund argued about the school.", "Per Moe sailed to Bergen. [MASK] and Kari Lund argued again.", "Anna Berg sold 40 sheep. [MASK] left."], "Olav Dahl");
        let c = reference_conversations(&e, &[], 16, TeacherStyle { answer_inline_box: true, ..Default::default() }, &words);
        assert_eq!(c[1].reply, "Olav Dahl and Kari Lund argued about the school. [MASK] and Kari Lund argued again.");
        assert_eq!(c[2].reply, "Olav Dahl and Kari Lund argued about the school. [MASK] left.", "a [MASK] sentence goes before the answer's");
        let answer = c.iter().find(|u| u.turn == TurnKind::Answer).unwrap();
        assert!(answer.prompt.contains("Olav Dahl and Kari Lund argued"), "the answer turn can copy the answer from its memory");
        assert_eq!(answer.reply, "\\boxed{Olav Dahl} left.");
    }

    #[test]
    fn resolve_mask_notes_the_answer_once_the_memory_names_it_and_keeps_the_note_longest() {
        let e = exercise(&["Olav Dahl and Kari Lund argued about the school.", "Per Moe sailed to Bergen. [MASK] and Kari Lund argued again.", "Anna Berg sold 40 sheep. [MASK] left."], "Olav Dahl");
        let style = TeacherStyle { resolve_mask: true, answer_inline_box: true, ..Default::default() };
        let c = reference_conversations(&e, &[], 20, style, &words);
        assert_eq!(c[0].reply, "Olav Dahl and Kari Lund argued about the school.", "no note before a blank is read");
        assert_eq!(c[1].reply, "Note: [MASK] is Olav Dahl. Olav Dahl and Kari Lund argued about the school. [MASK] and Kari Lund argued again.");
        assert_eq!(c[2].reply, "Note: [MASK] is Olav Dahl. Olav Dahl and Kari Lund argued about the school. [MASK] left.", "one note, kept over an older [MASK] sentence");
        let answer = c.iter().find(|u| u.turn == TurnKind::Answer).unwrap();
        assert_eq!(answer.reply, "\\boxed{Olav Dahl} left.", "the inline box fills a real [MASK] sentence, not the note");
        // A memory with room for one sentence keeps the note alone.
        let tight = reference_conversations(&e, &[], 5, style, &words);
        assert_eq!(tight[2].reply, "Note: [MASK] is Olav Dahl.");
        assert_eq!(tight.iter().find(|u| u.turn == TurnKind::Answer).unwrap().reply, "\\boxed{Olav Dahl}");
        // Everywhere masking: nothing the student sees names the answer, so no note.
        let hidden = exercise(&["[MASK] and Kari Lund argued about the school.", "Per Moe sailed to Bergen. [MASK] left."], "Olav Dahl");
        assert!(reference_conversations(&hidden, &[], 100, style, &words).iter().all(|u| !u.reply.contains("Note:")));
    }

    #[test]
    fn turn_weights_single_out_answers_and_memories_that_keep_a_mask_sentence() {
        let e = exercise(&["Olav Dahl sailed north.", "[MASK] sold 40 sheep.", "Kari Lund built a boat."], "Olav Dahl");
        let c = reference_conversations(&e, &[], 100, TeacherStyle::default(), &words);
        let w = TurnWeights { answer: 3.0, mask_memory: 2.0 };
        assert_eq!(c.iter().map(|c| w.of(c)).collect::<Vec<_>>(), [1.0, 2.0, 2.0, 3.0], "chunk 0's memory has no [MASK]; chunks 1 and 2 keep it; then the answer");
        assert!(c.iter().all(|c| TurnWeights::default().of(c) == 1.0));
    }

    #[test]
    fn memory_drops_the_oldest_sentences_to_fit_the_budget() {
        let e = exercise(&["[MASK] ran one two three.", "[MASK] hid four five six."], "X");
        let c = reference_conversations(&e, &[], 6, TeacherStyle::default(), &words);
        assert_eq!(c[1].reply, "[MASK] hid four five six.");
    }

    #[test]
    fn a_chunk_without_keys_keeps_the_previous_memory() {
        let e = exercise(&["Nothing here.", "Still nothing."], "X");
        let c = reference_conversations(&e, &[], 50, TeacherStyle::default(), &words);
        assert_eq!(c[0].reply, prompts::INITIAL_MEMORY);
        assert_eq!(c[1].reply, prompts::INITIAL_MEMORY);
    }
}
