//! MemTrain Studio: teach small language models to remember what they read.
//!
//! Data flows one way: documents → exercises → rollouts → rewards → updates → metrics → charts;
//! the model never knows it is trained or shown, and the app talks to a worker thread only
//! through messages.

pub mod app;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod documents;
pub mod eval;
pub mod exercises;
pub mod generate;
pub mod host_heap;
pub mod kernels;
pub mod model;
pub mod session;
pub mod agent;
pub mod train;
