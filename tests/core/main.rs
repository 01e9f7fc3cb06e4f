//! Tests of the core on the CPU backend, one module per stage of the data flow.

mod augment;
mod changes;
mod cleaner;
mod export;
mod fit;
mod common;
mod data;
mod edit;
mod kernels;
mod learner;
mod loss;
mod lr_find;
mod mixed_precision;
mod model;
mod optimizer;
mod pretrained;
mod project;
mod schedule;
mod small_data;
mod untrusted;
mod wgpu;
