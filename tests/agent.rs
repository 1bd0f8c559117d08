//! The MemAgent loop with the real SmolLM2 model (skipped with a note when it is not
//! installed): a two-chunk document yields one memory per chunk and an answer, the trace keeps
//! every turn's ids and log-probs, and sampled group rollouts replay exactly from their seed.

mod common;

use burn::prelude::*;
use memtrain::agent::{AgentInput, AgentParams, Policy, RecallInput, TurnKind, prompts, run_agent, run_recall};
use memtrain::checkpoint::{self, LoadedModel};
use memtrain::generate::SamplingParams;

fn load() -> Option<LoadedModel> {
    let path = common::real_model()?;
    Some(checkpoint::load(&path, &Device::flex()).unwrap())
}

fn two_chunk_doc() -> AgentInput {
    AgentInput {
        chunks: vec!["The ferry Astrid was built in Bergen in 1931.".into(), "Years later, the [MASK] ferry sank near Oslo.".into()],
        question: "Based on the entire article, which entity is represented by the [MASK] placeholder?".into(),
    }
}

#[test]
fn a_two_chunk_document_yields_a_memory_per_chunk_and_an_answer() {
    let Some(lm) = load() else { return };
    let policy = Policy::from_loaded(&lm);
    let params = AgentParams { sampling: SamplingParams::default(), memory_tokens: 24, answer_tokens: 16 };
    let started = std::time::Instant::now();
    let traces = run_agent(&policy, &[two_chunk_doc()], 1, &params).unwrap();
    let t = &traces[0];
    eprintln!("{:.1}s, {} tokens; memories {:?}; answer {:?} (reply {:?})", started.elapsed().as_secs_f32(), t.generated_tokens(), t.memories, t.answer, t.turns[2].text);
    assert_eq!(t.memories.len(), 2);
    assert!(t.memories.iter().all(|m| !m.trim().is_empty()), "{:?}", t.memories);
    let kinds: Vec<TurnKind> = t.turns.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, [TurnKind::Memory { chunk: 0 }, TurnKind::Memory { chunk: 1 }, TurnKind::Answer]);
    for turn in &t.turns {
        assert!(!turn.generated_ids.is_empty() && turn.generated_ids.len() == turn.logprobs.len());
        assert!(turn.generated_ids.len() <= 24);
    }
    // The second memory turn read the first memory; the answer turn read the last one.
    let second_prompt = lm.tokenizer.decode(&t.turns[1].prompt_ids, false).unwrap();
    assert!(second_prompt.contains(&t.memories[0]) && second_prompt.contains("Oslo"), "{second_prompt}");
    let answer_prompt = lm.tokenizer.decode(&t.turns[2].prompt_ids, false).unwrap();
    assert!(answer_prompt.contains(&t.memories[1]) && !answer_prompt.contains("<section>"));
    assert_eq!(t.input_memory(0), prompts::INITIAL_MEMORY);
    assert!(!t.answer.is_empty(), "no answer extracted from {:?}", t.turns[2].text);

    // Objective 2 on the same trace: two sampled recall answers for one masked earlier chunk.
    let request = RecallInput { memory: t.memories[1].clone(), masked_section: "The ferry [TARGET] was built in Bergen in 1931.".into() };
    let sampling = SamplingParams { temperature: 1.0, seed: 3, ..Default::default() };
    let recall = run_recall(&policy, &[request], 2, &sampling, 8, 99).unwrap();
    eprintln!("recall answers {:?}", recall.iter().map(|r| &r.answer).collect::<Vec<_>>());
    assert_eq!(recall.iter().map(|r| r.request).collect::<Vec<_>>(), [0, 0]);
    assert!(recall.iter().all(|r| r.turn.kind == TurnKind::Recall && !r.turn.generated_ids.is_empty() && r.turn.generated_ids.len() <= 8));
    assert!(lm.tokenizer.decode(&recall[0].turn.prompt_ids, false).unwrap().contains("[TARGET]"));
}

#[test]
fn sampled_group_rollouts_replay_exactly_from_their_seed() {
    let Some(lm) = load() else { return };
    let policy = Policy::from_loaded(&lm);
    let sampling = SamplingParams { temperature: 1.0, top_p: 0.95, seed: 7, ..Default::default() };
    let params = AgentParams { sampling, memory_tokens: 10, answer_tokens: 8 };
    let run = || run_agent(&policy, &[two_chunk_doc()], 2, &params).unwrap();
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].doc, a[0].rollout, a[1].doc, a[1].rollout), (0, 0, 0, 1));
    let ids = |traces: &[memtrain::agent::Trace]| traces.iter().map(|t| t.turns.iter().map(|x| x.generated_ids.clone()).collect::<Vec<_>>()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a)[0], ids(&a)[1], "two rollouts at temperature 1 sampled identical tokens");
}

/// The dense reward of tiny-model training (train::gold_likelihood): the real model must find the
/// gold answer clearly likelier after a memory that holds it than after the empty memory, and
/// scoring in one padded batch must agree with scoring one conversation at a time.
#[test]
fn the_gold_answer_is_likelier_after_a_memory_that_holds_it() {
    use memtrain::train::gold_likelihood::{GoldQuery, gold_likelihoods};
    let Some(lm) = load() else { return };
    let inv_freq = memtrain::model::rope::inverse_frequencies(&lm.info.config);
    let question = two_chunk_doc().question;
    let query = |memory: &str| GoldQuery { prompt: prompts::final_answer(&question, memory), gold: "Astrid".into() };
    let queries = [query("The ferry Astrid was built in Bergen in 1931. Years later, the [MASK] ferry sank near Oslo."), query(prompts::INITIAL_MEMORY)];
    let one_by_one = gold_likelihoods(&lm.model, &inv_freq, &lm.tokenizer, &queries, 1).unwrap();
    let batched = gold_likelihoods(&lm.model, &inv_freq, &lm.tokenizer, &queries, 2).unwrap();
    eprintln!("p(gold | memory with it) = {:.4}, p(gold | no memory) = {:.4}", one_by_one[0], one_by_one[1]);
    assert!(one_by_one.iter().all(|&p| p > 0.0 && p <= 1.0), "{one_by_one:?}");
    assert!(one_by_one[0] > 2.0 * one_by_one[1], "a memory holding the answer should make it likelier: {one_by_one:?}");
    for (a, b) in one_by_one.iter().zip(&batched) {
        assert!((a - b).abs() < 1e-4, "padding changed a score: {one_by_one:?} vs {batched:?}");
    }
}
