//! Nigehban: a network egress data-loss-prevention sensor.
//!
//! ```text
//!  capture ──batches──▶ pipeline (shard by symmetric flow hash, bounded queues)
//!                          │
//!            ┌─────────────┴─────────────┐   one worker thread per shard, nothing shared
//!            ▼                           ▼
//!   decode → flow table → TCP reassembly → matcher (Hyperscan streaming) → validate → alert
//!                                                                                    │
//!                                       metrics (Prometheus) ◀── counters      sink ◀┘
//! ```
//!
//! Each stage is a module named after it; `app` wires them together.

pub mod alert;
pub mod app;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod decode;
pub mod flow;
pub mod judge;
pub mod l7;
pub mod matcher;
pub mod metrics;
pub mod pii;
pub mod pipeline;
pub mod privilege;
pub mod reassembly;
pub mod rules;
pub mod sink;
pub mod synth;
pub mod validate;
