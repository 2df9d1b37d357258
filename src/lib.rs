//! vmbench: quantitative comparison of virtualization technologies. The same
//! benchmarks on 1..N guests at once, against the bare-metal baseline.
//! See DESIGN.md (shared) for the architecture: one event vocabulary, one
//! model, live and replay through the same code.

#[macro_use]
mod stderr;

pub mod app;
pub mod bus;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discover;
pub mod event;
pub mod format;
pub mod header;
pub mod input;
pub mod metrics;
pub mod model;
pub mod orchestrate;
pub mod plan;
pub mod provision;
pub mod report;
pub mod results;
pub mod sample;
pub mod stats;
pub mod store;
pub mod transport;
pub mod ui;
pub mod workload;
