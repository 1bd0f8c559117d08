//! The MemAgent loop (method notes §1): a document is read chunk by chunk into a bounded
//! plain-text memory, then the problem is answered from that memory alone.
//!
//! Contract of [`run_agent`]:
//! - every document is rolled out `group` times; traces come back document-major
//!   (`doc 0 rollout 0, doc 0 rollout 1, …, doc 1 rollout 0, …`), which is the GRPO group order;
//! - turn t of all rollouts that have a chunk t goes through [`generate`] as one batch, then one
//!   batch for all final answers, so a step costs (max chunks + 1) batched generations;
//! - memory starts as [`prompts::INITIAL_MEMORY`], is overwritten by each memory turn's decoded
//!   output (special tokens removed) and is bounded by cutting generation at `memory_tokens`;
//! - sampling is reproducible: the same inputs, parameters and seed give the same traces.

pub mod prompts;
pub mod trace;
pub mod recall_answer;

use crate::checkpoint::LoadedModel;
use crate::checkpoint::chat_template::{ChatMessage, render_chat};
use crate::checkpoint::tokenizer::TextTokenizer;
use crate::generate::{GenerateOptions, Generation, SamplingParams, generate_with};
use crate::model::Llama;
use crate::model::packed::PackedLlama;
use anyhow::{Result, bail};
pub use recall_answer::{extract_masked_answer, extract_recall_answer};
pub use trace::{Trace, Turn, TurnKind};

/// The model being rolled out, with what it needs to read and write text. Borrowed so the
/// trainer can hand in the current weights (`model.valid()`) every step.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub model: &'a Llama,
    /// `model`'s weights repacked for generation on its device (`PackedLlama::for_device`), if any.
    pub packed: Option<&'a PackedLlama>,
    pub inv_freq: &'a [f64],
    pub tokenizer: &'a TextTokenizer,
    /// How generation runs. The trainer's rollouts set `stem_layer`: each turn keeps its residual
    /// stream entering that layer ([`Turn::stem`]), so the update need not run the frozen layers
    /// below it again ([`crate::model::stem`]).
    pub options: GenerateOptions,
}

impl<'a> Policy<'a> {
    pub fn from_loaded(loaded: &'a LoadedModel) -> Self {
        Policy { model: &loaded.model, packed: loaded.packed(), inv_freq: &loaded.inv_freq, tokenizer: &loaded.tokenizer, options: GenerateOptions::default() }
    }

    /// Token ids of `user_text` as the single user turn of a chat, ready for the assistant reply.
    pub fn chat_prompt_ids(&self, user_text: &str) -> Result<Vec<u32>> {
        chat_prompt_ids(self.tokenizer, user_text)
    }

    /// Generates for all prompts in one batch with the given token cap.
    pub fn generate_batch(&self, prompts: &[Vec<u32>], sampling: &SamplingParams) -> Result<Vec<Generation>> {
        self.generate_observed(prompts, sampling, &mut || true)
    }

    /// [`Self::generate_batch`], asking `go_on` after every token whether to continue; a `false`
    /// ends the call with [`Cancelled`].
    pub fn generate_observed(&self, prompts: &[Vec<u32>], sampling: &SamplingParams, go_on: &mut dyn FnMut() -> bool) -> Result<Vec<Generation>> {
        let mut stopped = false;
        let out = generate_with(self.model, self.packed, self.inv_freq, prompts, sampling, &self.tokenizer.stop_ids, self.options, &mut |_| {
            stopped = !go_on();
            !stopped
        })?;
        if stopped {
            return Err(Cancelled.into());
        }
        Ok(out)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }
}

/// Token ids of `user_text` as the single user turn of a chat, ready for the assistant reply
/// (also what SFT reference traces are trained on, so both see the same prompt).
pub fn chat_prompt_ids(t: &TextTokenizer, user_text: &str) -> Result<Vec<u32>> {
    let messages = [ChatMessage { role: "user".into(), content: user_text.into() }];
    let text = render_chat(t.chat_template.as_deref(), &messages, true, &t.bos_token, &t.eos_token)?;
    // The rendered chat already carries its special tokens.
    t.encode(&text, false)
}

/// One document for the agent: its chunks in reading order and the problem to answer.
#[derive(Clone, Debug)]
pub struct AgentInput {
    pub chunks: Vec<String>,
    pub question: String,
}

impl From<&crate::exercises::jsonl::Exercise> for AgentInput {
    fn from(e: &crate::exercises::jsonl::Exercise) -> Self {
        AgentInput { chunks: e.chunks.clone(), question: e.question.clone() }
    }
}

/// One objective-2 question: a memory and an earlier section with an entity masked as `[TARGET]`.
#[derive(Clone, Debug)]
pub struct RecallInput {
    pub memory: String,
    pub masked_section: String,
}

/// One sampled recall answer: its turn (for GRPO) and the extracted answer (for the reward).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecallAnswer {
    /// Index of the request in the `run_recall` input.
    pub request: usize,
    pub turn: Turn,
    pub answer: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentParams {
    /// Temperature, top-k, top-p and seed; its `max_new_tokens` is ignored (see the caps below).
    pub sampling: SamplingParams,
    /// M: the memory budget, enforced as the generation cap of every memory turn.
    pub memory_tokens: usize,
    /// Generation cap of the final answer turn.
    pub answer_tokens: usize,
}

/// A long agent run was stopped by its observer (the app's Stop button).
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Where a rollout stands, for progress bars and the live memory view.
pub struct AgentProgress<'a> {
    /// Turns finished: memory turns (one per chunk, all rollouts together), then the answer turn.
    pub turns_done: usize,
    /// Memory turns of the longest document plus the answer turn.
    pub turns: usize,
    /// Tokens generated so far in the turn under way (summed over the batch).
    pub tokens: usize,
    /// The rollouts as far as they have got.
    pub traces: &'a [Trace],
}

/// Rolls out every document `group` times; see the module doc for the order and guarantees.
pub fn run_agent(policy: &Policy, docs: &[AgentInput], group: usize, params: &AgentParams) -> Result<Vec<Trace>> {
    run_agent_observed(policy, docs, group, params, &mut |_| true)
}

/// [`run_agent`] that reports after every generated token and every finished turn; when
/// `observe` returns `false` the run stops with [`Cancelled`].
pub fn run_agent_observed(policy: &Policy, docs: &[AgentInput], group: usize, params: &AgentParams, observe: &mut dyn FnMut(&AgentProgress) -> bool) -> Result<Vec<Trace>> {
    if group == 0 {
        bail!("group size must be at least 1");
    }
    if let Some(i) = docs.iter().position(|d| d.chunks.is_empty()) {
        bail!("document {i} has no chunks: the agent needs at least one to read");
    }
    let mut traces: Vec<Trace> = docs
        .iter()
        .enumerate()
        .flat_map(|(doc, _)| (0..group).map(move |rollout| Trace { doc, rollout, memories: vec![], turns: vec![], answer: String::new() }))
        .collect();
    let max_chunks = docs.iter().map(|d| d.chunks.len()).max().unwrap_or(0);
    let turns = max_chunks + 1;
    for chunk in 0..max_chunks {
        let rows: Vec<usize> = (0..traces.len()).filter(|&r| docs[traces[r].doc].chunks.len() > chunk).collect();
        let prompts = rows
            .iter()
            .map(|&r| {
                let doc = &docs[traces[r].doc];
                policy.chat_prompt_ids(&prompts::memory_update(&doc.question, traces[r].input_memory(chunk), &doc.chunks[chunk]))
            })
            .collect::<Result<Vec<_>>>()?;
        let sampling = turn_sampling(&params.sampling, chunk, params.memory_tokens);
        let generations = generate_reporting(policy, &prompts, &sampling, chunk, turns, &traces, observe)?;
        for ((&r, prompt_ids), generation) in rows.iter().zip(prompts).zip(generations) {
            let turn = record_turn(policy, TurnKind::Memory { chunk }, prompt_ids, generation)?;
            traces[r].memories.push(turn.text.clone());
            traces[r].turns.push(turn);
        }
        if !observe(&AgentProgress { turns_done: chunk + 1, turns, tokens: 0, traces: &traces }) {
            return Err(Cancelled.into());
        }
    }
    let prompts = traces
        .iter()
        .map(|t| {
            let memory = t.memories.last().map(String::as_str).unwrap_or(prompts::INITIAL_MEMORY);
            policy.chat_prompt_ids(&prompts::final_answer(&docs[t.doc].question, memory))
        })
        .collect::<Result<Vec<_>>>()?;
    let sampling = turn_sampling(&params.sampling, max_chunks, params.answer_tokens);
    let generations = generate_reporting(policy, &prompts, &sampling, max_chunks, turns, &traces, observe)?;
    for ((trace, prompt_ids), generation) in traces.iter_mut().zip(prompts).zip(generations) {
        let turn = record_turn(policy, TurnKind::Answer, prompt_ids, generation)?;
        trace.answer = extract_masked_answer(&turn.text, &docs[trace.doc].chunks);
        trace.turns.push(turn);
    }
    observe(&AgentProgress { turns_done: turns, turns, tokens: 0, traces: &traces });
    Ok(traces)
}

/// One batched turn that tells `observe` about every generated token.
fn generate_reporting(policy: &Policy, prompts: &[Vec<u32>], sampling: &SamplingParams, turns_done: usize, turns: usize, traces: &[Trace], observe: &mut dyn FnMut(&AgentProgress) -> bool) -> Result<Vec<Generation>> {
    let mut tokens = 0;
    policy.generate_observed(prompts, sampling, &mut || {
        tokens += 1;
        observe(&AgentProgress { turns_done, turns, tokens, traces })
    })
}

/// Samples `group` recall answers per request in one batch, request-major (each request's
/// answers form a GRPO group of their own). `turn_index` separates its random stream from the
/// agent turns of the same step.
pub fn run_recall(policy: &Policy, requests: &[RecallInput], group: usize, sampling: &SamplingParams, answer_tokens: usize, turn_index: usize) -> Result<Vec<RecallAnswer>> {
    run_recall_observed(policy, requests, group, sampling, answer_tokens, turn_index, &mut || true)
}

/// [`run_recall`] that asks `go_on` after every generated token ([`Cancelled`] on `false`).
pub fn run_recall_observed(policy: &Policy, requests: &[RecallInput], group: usize, sampling: &SamplingParams, answer_tokens: usize, turn_index: usize, go_on: &mut dyn FnMut() -> bool) -> Result<Vec<RecallAnswer>> {
    if group == 0 {
        bail!("group size must be at least 1");
    }
    let mut prompts = Vec::with_capacity(requests.len() * group);
    for r in requests {
        let ids = policy.chat_prompt_ids(&prompts::memory_recall(&r.memory, &r.masked_section))?;
        prompts.extend(std::iter::repeat_n(ids, group));
    }
    let generations = policy.generate_observed(&prompts, &turn_sampling(sampling, turn_index, answer_tokens), go_on)?;
    prompts
        .into_iter()
        .zip(generations)
        .enumerate()
        .map(|(i, (prompt_ids, g))| {
            let turn = record_turn(policy, TurnKind::Recall, prompt_ids, g)?;
            Ok(RecallAnswer { request: i / group, answer: extract_recall_answer(&turn.text, &requests[i / group].masked_section), turn })
        })
        .collect()
}

/// Sampling for turn `turn`: its own seed, so that turns do not replay each other's random
/// streams (generate already separates the sequences inside one call).
fn turn_sampling(base: &SamplingParams, turn: usize, cap: usize) -> SamplingParams {
    SamplingParams { seed: splitmix64(base.seed.wrapping_add(turn as u64)), max_new_tokens: cap, ..base.clone() }
}

/// A well-mixed 64-bit hash, so nearby seeds give unrelated streams.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn record_turn(policy: &Policy, kind: TurnKind, prompt_ids: Vec<u32>, g: Generation) -> Result<Turn> {
    let text = policy.decode(&g.tokens)?.trim().to_string();
    Ok(Turn { kind, prompt_ids, generated_ids: g.tokens, logprobs: g.logprobs, stop: g.stop, text, stem: g.stem })
}

/// The answer in a reply: the inside of the last `\boxed{...}` (braces balanced; an unclosed box
/// that hit the token cap keeps what it has), otherwise the last non-empty line without an
/// `Answer:` label, because tiny models rarely manage the box.
pub fn extract_answer(reply: &str) -> String {
    if reply.contains("\\boxed{") {
        return crate::exercises::scoring::unbox(reply).trim().to_string();
    }
    let last = reply.lines().map(str::trim).rev().find(|l| !l.is_empty()).unwrap_or("");
    strip_answer_label(last).trim().to_string()
}

fn strip_answer_label(line: &str) -> &str {
    for label in ["final answer:", "answer:"] {
        if line.len() >= label.len() && line.is_char_boundary(label.len()) && line[..label.len()].eq_ignore_ascii_case(label) {
            return &line[label.len()..];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_last_boxed_answer() {
        assert_eq!(extract_answer("I think \\boxed{Oslo}. No wait: \\boxed{ Bergen }"), "Bergen");
    }

    #[test]
    fn boxed_answer_keeps_nested_braces() {
        assert_eq!(extract_answer("so \\boxed{\\frac{1}{2}} done"), "\\frac{1}{2}");
    }

    #[test]
    fn unclosed_box_keeps_what_was_written() {
        assert_eq!(extract_answer("\\boxed{Anna Be"), "Anna Be");
    }

    #[test]
    fn without_a_box_the_last_non_empty_line_is_the_answer() {
        assert_eq!(extract_answer("Let me think.\nThe ship sailed.\n  Salt Road  \n\n"), "Salt Road");
        assert_eq!(extract_answer("Answer: Paris"), "Paris");
        assert_eq!(extract_answer(""), "");
    }

    #[test]
    fn each_turn_samples_with_its_own_seed_and_cap() {
        let base = SamplingParams { seed: 5, temperature: 0.7, ..Default::default() };
        let (a, b) = (turn_sampling(&base, 0, 32), turn_sampling(&base, 1, 8));
        assert_ne!(a.seed, b.seed);
        assert_eq!((a.max_new_tokens, b.max_new_tokens, a.temperature), (32, 8, 0.7));
        assert_eq!(turn_sampling(&base, 1, 8), b);
    }
}
