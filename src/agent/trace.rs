//! What one agent rollout leaves behind: every turn's prompt ids, generated ids and their
//! log-probs (what GRPO trains on), the memory after every chunk (what objective 2, the
//! inspector and evaluation read) and the extracted final answer (what the reward scores).
//!
//! Contract: `turns` holds one `Memory` turn per chunk in chunk order, then exactly one
//! `Answer` turn; `memories[i]` is the decoded output of the memory turn for chunk `i`, so
//! `memories.len()` equals the number of chunks. The memory a turn *read* is
//! [`Trace::input_memory`].

use crate::generate::StopReason;
use crate::model::stem::StemStates;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TurnKind {
    /// Folded chunk `chunk` into the memory.
    Memory { chunk: usize },
    /// Answered the problem from the final memory.
    Answer,
    /// Objective 2: recovered a `[TARGET]` entity of an earlier section from a memory.
    Recall,
}

/// One independent conversation (method notes §1.6): its own prompt, its own response.
#[derive(Clone, Debug, Serialize)]
pub struct Turn {
    pub kind: TurnKind,
    pub prompt_ids: Vec<u32>,
    /// Sampled tokens; a final stop token is included (the policy is trained to stop).
    pub generated_ids: Vec<u32>,
    /// Per generated token, its log-probability at temperature 1 under the sampling policy.
    pub logprobs: Vec<f32>,
    pub stop: StopReason,
    /// Decoded response with special tokens removed.
    pub text: String,
    /// The stream entering the policy's frozen layers' top, at every token the turn fed, when
    /// the rollout kept it ([`crate::generate::GenerateOptions::stem_layer`]); for the update only.
    #[serde(skip)]
    pub stem: Option<Arc<StemStates>>,
}

/// The memory the turn for chunk `chunk` started from, given the memories written so far.
pub fn input_memory(memories: &[String], chunk: usize) -> &str {
    if chunk == 0 { super::prompts::INITIAL_MEMORY } else { &memories[chunk - 1] }
}

#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    /// Index of the document in the `run_agent` input.
    pub doc: usize,
    /// Index of this rollout inside its document's group.
    pub rollout: usize,
    pub memories: Vec<String>,
    pub turns: Vec<Turn>,
    /// The answer as extracted by [`super::extract_masked_answer`] from the answer turn (a box,
    /// the words at a restored `[MASK]`, or the last line).
    pub answer: String,
}

impl Trace {
    /// The memory the turn for chunk `chunk` started from: the initial memory for chunk 0,
    /// otherwise the memory written after chunk `chunk - 1`.
    pub fn input_memory(&self, chunk: usize) -> &str {
        input_memory(&self.memories, chunk)
    }

    pub fn answer_turn(&self) -> Option<&Turn> {
        self.turns.iter().find(|t| t.kind == TurnKind::Answer)
    }

    /// Memory turns that stopped at the token cap rather than on their own (a length metric).
    pub fn capped_memory_turns(&self) -> usize {
        self.turns.iter().filter(|t| matches!(t.kind, TurnKind::Memory { .. }) && t.stop == StopReason::MaxTokens).count()
    }

    pub fn generated_tokens(&self) -> usize {
        self.turns.iter().map(|t| t.generated_ids.len()).sum()
    }
}
