//! Training the memory agent: rewards of the two objectives, the GRPO update, the supervised
//! warm start and per-step metrics. Rollouts come from [`crate::agent`].

pub mod grpo;
pub mod metrics;
pub mod rewards;
pub mod sft;
