//! Training the memory agent: rewards of the two objectives, the GRPO update, the supervised
//! warm start, per-step metrics, and the loop that runs them ([`trainer`]) from a RON
//! [`config`] into a run folder ([`run_dir`]). Rollouts come from [`crate::agent`].

pub mod adamw;
pub mod config;
pub mod corrections;
pub mod console;
pub mod data;
pub mod freeze;
pub mod gold_likelihood;
pub mod grpo;
pub mod ledger;
pub mod loss_scale;
pub mod lora;
pub mod metrics;
pub mod reference;
pub mod rewards;
pub mod run_dir;
pub mod schedule;
pub mod sft;
pub mod trainer;
pub mod update;

pub use config::TrainConfig;
pub use trainer::{Outcome, TrainEvent, Trainer};
