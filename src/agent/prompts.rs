//! The three MemAgent/MemTrain prompts (method notes §1.4), as plain user-message text.
//!
//! Contract: the structure is exact (tagged blocks, one tag per line, the closing cue line);
//! the instruction wording is paraphrased. Each prompt becomes a single user turn in the
//! model's chat template (see [`super::Policy::chat_prompt_ids`]); the reply is the assistant
//! turn. The final-answer prompt has no `<section>` block, following the code rather than
//! the paper figure (notes §9).

/// The memory every rollout starts from (literal string from the MemAgent code).
pub const INITIAL_MEMORY: &str = "No previous memory";

const UPDATE_INSTRUCTION: &str = "You are presented with a problem, a section of an article that may contain the answer to the problem, and a previous memory. Please read the provided section carefully and update the memory with the new information that helps to answer the problem. Be sure to retain all relevant details from the previous memory while adding any new, useful information.";

const ANSWER_INSTRUCTION: &str = "You are presented with a problem and a previous memory. Please answer the problem based on the previous memory and put the answer in \\boxed{}.";

const RECALL_INSTRUCTION: &str = "You are presented with a memory of previously read sections and a section in which one entity has been replaced by the placeholder [TARGET]. Using the memory, predict the entity marked by [TARGET] and put it in \\boxed{}.";

fn block(tag: &str, content: &str) -> String {
    format!("<{tag}>\n{content}\n</{tag}>")
}

/// Turn (a): fold one chunk into the memory.
pub fn memory_update(problem: &str, memory: &str, section: &str) -> String {
    format!(
        "{UPDATE_INSTRUCTION}\n\n{}\n\n{}\n\n{}\n\nUpdated memory:",
        block("problem", problem),
        block("memory", memory),
        block("section", section)
    )
}

/// Turn (b): answer from the memory alone.
pub fn final_answer(problem: &str, memory: &str) -> String {
    format!("{ANSWER_INSTRUCTION}\n\n{}\n\n{}\n\nYour answer:", block("problem", problem), block("memory", memory))
}

/// Turn (c), objective 2: recover the `[TARGET]` entity of an earlier section from a memory.
pub fn memory_recall(memory: &str, masked_section: &str) -> String {
    format!("{RECALL_INSTRUCTION}\n\n{}\n\n{}\n\nYour answer:", block("memory", memory), block("section", masked_section))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_prompt_has_the_three_blocks_in_order_and_ends_with_the_cue() {
        let p = memory_update("Q?", "M", "S");
        let (q, m, s) = (p.find("<problem>\nQ?\n</problem>").unwrap(), p.find("<memory>\nM\n</memory>").unwrap(), p.find("<section>\nS\n</section>").unwrap());
        assert!(q < m && m < s);
        assert!(p.ends_with("\n\nUpdated memory:"));
    }

    #[test]
    fn final_prompt_has_no_section_and_asks_for_a_box() {
        let p = final_answer("Q?", "M");
        assert!(!p.contains("<section>"));
        assert!(p.contains("\\boxed{}") && p.ends_with("Your answer:"));
    }

    #[test]
    fn recall_prompt_names_the_target_placeholder() {
        let p = memory_recall("M", "the [TARGET] sailed");
        assert!(p.contains("[TARGET]") && p.contains("<memory>\nM\n</memory>") && !p.contains("<problem>"));
    }
}
