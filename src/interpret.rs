//! fastai's ClassificationInterpretation over the validation set: confusion matrix,
//! most_confused and top_losses.

use crate::data::{Crop, Datasets, Sample};
use crate::learner::{Event, LearnError, Learner, Preds};

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interpretation {
    pub classes: Vec<String>,
    pub preds: Preds,
    /// The predicted class of each item.
    pub decoded: Vec<usize>,
    /// Each item's index in the samples interpreted (the validation set unless said) and its
    /// file name.
    pub items: Vec<(usize, String)>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Confusion {
    pub actual: String,
    pub predicted: String,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopLoss {
    /// Index into the validation set.
    pub index: usize,
    pub name: String,
    pub predicted: String,
    pub actual: String,
    pub loss: f32,
    /// Probability the model gave the actual class.
    pub prob_actual: f32,
}

impl Interpretation {
    pub fn new(classes: Vec<String>, preds: Preds, items: Vec<(usize, String)>) -> Self {
        Self { decoded: preds.predicted(), classes, preds, items }
    }

    /// Rows are actual classes, columns predicted classes.
    pub fn confusion_matrix(&self) -> Vec<Vec<usize>> {
        let k = self.classes.len();
        let mut m = vec![vec![0; k]; k];
        for (&t, &p) in self.preds.targets.iter().zip(&self.decoded) {
            m[t][p] += 1;
        }
        m
    }

    /// Off-diagonal (actual, predicted, count) with count ≥ `min_val`, most frequent first.
    pub fn most_confused(&self, min_val: usize) -> Vec<Confusion> {
        let m = self.confusion_matrix();
        let mut out: Vec<Confusion> = Vec::new();
        for (a, row) in m.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                if a != p && count >= min_val.max(1) {
                    out.push(Confusion { actual: self.classes[a].clone(), predicted: self.classes[p].clone(), count });
                }
            }
        }
        // Stable: ties keep row-major order, like fastai's sort of the flattened matrix.
        out.sort_by(|x, y| y.count.cmp(&x.count));
        out
    }

    /// The `k` items with the highest loss, highest first.
    pub fn top_losses(&self, k: usize) -> Vec<TopLoss> {
        let mut idx: Vec<usize> = (0..self.preds.losses.len()).collect();
        idx.sort_by(|&a, &b| self.preds.losses[b].total_cmp(&self.preds.losses[a]));
        idx.into_iter()
            .take(k)
            .map(|i| {
                let (t, p) = (self.preds.targets[i], self.decoded[i]);
                TopLoss {
                    index: self.items[i].0,
                    name: self.items[i].1.clone(),
                    predicted: self.classes[p].clone(),
                    actual: self.classes[t].clone(),
                    loss: self.preds.losses[i],
                    prob_actual: self.preds.probs[i][t],
                }
            })
            .collect()
    }

    /// The top-loss images (centre presize, as validated) titled
    /// "predicted/actual" and "loss/probability", as one grid.
    pub fn plot_top_losses(&self, dls: &Datasets, k: usize) -> image::RgbImage {
        let top = self.top_losses(k);
        let images = self.top_loss_images(dls, k, 192);
        let titles: Vec<String> = top.iter().map(|t| format!("{}/{}\n{:.2}/{:.2}", t.predicted, t.actual, t.loss, t.prob_actual)).collect();
        crate::data::show_batch(&images, &titles, (k as f64).sqrt().ceil() as usize)
    }

    /// The images of [`Self::top_losses`], in its order: the centre crop the model saw, at
    /// least `side` pixels square, shrunk to `side` when larger (a file that no longer decodes
    /// gives an empty image).
    pub fn top_loss_images(&self, dls: &Datasets, k: usize, side: u32) -> Vec<image::RgbImage> {
        let samples: Vec<&Sample> = self.top_losses(k).iter().map(|t| &dls.valid[t.index]).collect();
        dls.presize_batch(&samples, &mut || Crop::Centre)
            .into_iter()
            .map(|r| r.ok().and_then(|px| image::RgbImage::from_raw(dls.config.presize, dls.config.presize, px)).unwrap_or_default())
            .map(|img| match img.width() > side {
                true => image::imageops::thumbnail(&img, side, side),
                false => thumbnail(img, side),
            })
            .collect()
    }
}

/// The confusion matrix as text: rows actual, columns predicted, classes numbered.
impl std::fmt::Display for Interpretation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.confusion_matrix();
        let w = self.classes.iter().map(|c| c.len()).max().unwrap_or(6).max(6);
        writeln!(f, "confusion matrix (rows actual, columns predicted), {} validation images:", self.preds.targets.len())?;
        write!(f, "{:>w$} ", "")?;
        for i in 0..m.len() {
            write!(f, "{i:>5}")?;
        }
        writeln!(f)?;
        for (i, row) in m.iter().enumerate() {
            write!(f, "{:>w$} ", format!("{i} {}", self.classes[i]), w = w + 3)?;
            for v in row {
                write!(f, "{v:>5}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// At least `min` px wide: small images (digits) are enlarged so titles fit above them.
fn thumbnail(img: image::RgbImage, min: u32) -> image::RgbImage {
    if img.width() >= min || img.width() == 0 {
        return img;
    }
    let s = min.div_ceil(img.width());
    image::imageops::resize(&img, img.width() * s, img.height() * s, image::imageops::FilterType::Nearest)
}

impl Learner {
    /// fastai's `ClassificationInterpretation.from_learner`: predictions on the validation set.
    pub async fn interpret(&mut self, dls: &Datasets, on_event: &mut dyn FnMut(&Event)) -> Result<Interpretation, LearnError> {
        self.interpret_on(dls, &dls.valid, on_event).await
    }

    /// The same over any of the dataset's samples (the cleaner looks at the training set
    /// too); the items' indices point into `samples`.
    pub async fn interpret_on(&mut self, dls: &Datasets, samples: &[Sample], on_event: &mut dyn FnMut(&Event)) -> Result<Interpretation, LearnError> {
        if dls.classes != self.classes {
            return Err(LearnError::ClassMismatch { expected: self.classes.len(), found: dls.classes.len() });
        }
        let mut failed = Vec::new();
        let preds = {
            let mut sink = |e: &Event| {
                if let Event::Skipped(s) = e {
                    failed.push(s.name.clone());
                }
                on_event(e)
            };
            self.get_preds_on(dls, samples, &mut sink).await?
        };
        let items = samples.iter().enumerate().filter(|(_, s)| !failed.contains(&s.item.name)).map(|(i, s)| (i, s.item.name.clone())).collect();
        Ok(Interpretation::new(self.classes.clone(), preds, items))
    }
}
