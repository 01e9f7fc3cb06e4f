//! Kiln: fastai's chapter-5 recipe (presizing, GPU batch augmentation, a pretrained ResNet
//! with fastai's head, one-cycle training) on burn. The data flow, in module order:
//! [`data`] → [`augment`] → [`model`] (+ [`pretrained`] weights) → [`loss`] / [`optimizer`] / [`schedule`] →
//! [`learner`] (+ [`mixed_precision`] for fastai's `to_fp16`) → [`interpret`] → [`cleaner`] → [`export`]. See
//! ARCHITECTURE.md.

pub mod augment;
pub mod cleaner;
pub mod data;
pub mod device;
pub mod export;
pub mod learner;
pub mod interpret;
pub mod loss;
pub mod mixed_precision;
pub mod model;
pub mod optimizer;
pub mod plot;
pub mod pretrained;
pub mod project;
pub mod samples;
pub mod schedule;
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub mod web;

pub use data::{DataConfig, Datasets, Item, LabelRule, Splitter};
pub use learner::{CancelToken, Event, Learner, LearnerConfig};
pub use model::{Arch, ClassifierConfig};
pub use schedule::{Lr, OneCycle};
