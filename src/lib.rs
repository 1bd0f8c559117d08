//! MemTrain Studio: teach small language models to remember what they read.
//!
//! Data flows one way: checkpoint → model → generate; the app talks to a worker thread only
//! through messages.

pub mod app;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod generate;
pub mod model;
pub mod session;
