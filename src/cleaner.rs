//! fastai's `ImageClassifierCleaner`: the training or validation images of each class, the
//! ones the model finds hardest (highest loss) first, so a user can spot wrong labels and
//! decide to relabel or delete them ([`crate::data::Change`]).

use crate::data::Datasets;
use crate::learner::{Event, LearnError, Learner};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "valid" => Ok(Split::Valid),
            other => Err(format!("the split {other:?} should be \"train\" or \"valid\"")),
        }
    }
}

/// One image as the cleaner shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanerRow {
    pub file: String,
    /// Its label in the dataset.
    pub label: String,
    /// What the model predicts, and the probability it gives the label.
    pub predicted: String,
    pub prob_label: f32,
    pub loss: f32,
}

/// Every image of one split, highest loss first (fastai orders each class's images so).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleaner {
    pub split: Split,
    pub classes: Vec<String>,
    pub rows: Vec<CleanerRow>,
}

impl Cleaner {
    /// The rows of one class, highest loss first.
    pub fn class_rows<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a CleanerRow> + 'a {
        self.rows.iter().filter(move |r| r.label == class)
    }
}

impl Learner {
    /// The cleaner's view of `split`: the model's loss on each image (validation transforms,
    /// eval mode), highest first. Files that no longer decode are left out.
    pub async fn cleaner(&mut self, dls: &Datasets, split: Split, on_event: &mut dyn FnMut(&Event)) -> Result<Cleaner, LearnError> {
        let samples = match split {
            Split::Train => &dls.train,
            Split::Valid => &dls.valid,
        };
        let interp = self.interpret_on(dls, samples, on_event).await?;
        let rows = interp
            .top_losses(interp.items.len())
            .into_iter()
            // The label as the dataset writes it (a multi-label set space-separated, as changes
            // name it), not the interpretation's caption.
            .map(|t| CleanerRow { file: t.name, label: dls.label_text(&samples[t.index]), predicted: t.predicted, prob_label: t.prob_actual, loss: t.loss })
            .collect();
        Ok(Cleaner { split, classes: self.classes.clone(), rows })
    }
}
