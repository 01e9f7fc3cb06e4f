//! Kiln: fastai's chapter-5 recipe (presizing, GPU batch augmentation, a pretrained ResNet
//! with fastai's head, one-cycle training) on burn. The data flow, in module order:
//! [`data`] → [`augment`] → [`model`] → [`loss`] / [`optimizer`] / [`schedule`] →
//! [`learner`] → [`export`]. See ARCHITECTURE.md.

pub mod augment;
pub mod data;
pub mod device;
pub mod export;
pub mod learner;
pub mod loss;
pub mod model;
pub mod optimizer;
pub mod samples;
pub mod schedule;

pub use data::{DataConfig, Datasets, Item, LabelRule, Splitter};
pub use learner::{CancelToken, Event, Learner, LearnerConfig};
pub use model::{Arch, ClassifierConfig};
pub use schedule::{Lr, OneCycle};
