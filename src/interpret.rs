//! fastai's ClassificationInterpretation over the validation set: confusion matrix,
//! most_confused and top_losses, and for one sigmoid per class each class's hits and misses
//! (a photo can have several labels, or be predicted as none of the classes).

use crate::data::{Crop, Datasets, Sample};
use crate::learner::{Event, LearnError, Learner, NONE_OF_THESE, Preds};

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
    /// Probability the model gave the actual class (several labels: the lowest it gave one of
    /// them; none: one minus the highest it gave any class).
    pub prob_actual: f32,
}

/// One class's hits and misses over the photos interpreted (sklearn's multilabel confusion).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassScore {
    pub class: String,
    /// Labelled and predicted.
    pub tp: usize,
    /// Predicted, not labelled.
    pub fp: usize,
    /// Labelled, not predicted.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Neither.
    pub tn: usize,
}

impl ClassScore {
    pub fn precision(&self) -> f32 {
        self.tp as f32 / (self.tp + self.fp).max(1) as f32
    }
    pub fn recall(&self) -> f32 {
        self.tp as f32 / (self.tp + self.fn_).max(1) as f32
    }
}

impl Interpretation {
    pub fn new(classes: Vec<String>, preds: Preds, items: Vec<(usize, String)>) -> Self {
        Self { decoded: preds.predicted(), classes, preds, items }
    }

    /// Each photo's predicted classes: the likeliest (softmax), or every class above the
    /// threshold (one sigmoid per class; possibly none).
    fn predicted_sets(&self) -> Vec<Vec<usize>> {
        self.preds.predicted_sets()
    }

    /// Rows are actual classes, columns predicted classes. With several labels a photo, a
    /// photo counts once for every (label, predicted class) pair, so the diagonal holds each
    /// class's hits.
    pub fn confusion_matrix(&self) -> Vec<Vec<usize>> {
        let k = self.classes.len();
        let mut m = vec![vec![0; k]; k];
        if self.preds.multi_label() {
            for (t, p) in self.preds.targets.iter().zip(self.predicted_sets()) {
                for &a in t {
                    for &q in &p {
                        m[a][q] += 1;
                    }
                }
            }
        } else {
            for (t, &p) in self.preds.targets.iter().zip(&self.decoded) {
                m[t[0]][p] += 1;
            }
        }
        m
    }

    /// Each class's true/false positives and negatives, from the predicted sets.
    pub fn per_class(&self) -> Vec<ClassScore> {
        let mut out: Vec<ClassScore> = self.classes.iter().map(|c| ClassScore { class: c.clone(), tp: 0, fp: 0, fn_: 0, tn: 0 }).collect();
        for (t, p) in self.preds.targets.iter().zip(self.predicted_sets()) {
            for (c, score) in out.iter_mut().enumerate() {
                match (t.contains(&c), p.contains(&c)) {
                    (true, true) => score.tp += 1,
                    (false, true) => score.fp += 1,
                    (true, false) => score.fn_ += 1,
                    (false, false) => score.tn += 1,
                }
            }
        }
        out
    }

    /// (actual, predicted, count) for wrong predictions with count ≥ `min_val`, most frequent
    /// first. With one sigmoid per class, a label the model missed is paired with each class it
    /// predicted instead, and an empty side is "none of these".
    pub fn most_confused(&self, min_val: usize) -> Vec<Confusion> {
        let mut out: Vec<Confusion> = Vec::new();
        if self.preds.thresh.is_none() {
            let m = self.confusion_matrix();
            for (a, row) in m.iter().enumerate() {
                for (p, &count) in row.iter().enumerate() {
                    if a != p && count >= min_val.max(1) {
                        out.push(Confusion { actual: self.classes[a].clone(), predicted: self.classes[p].clone(), count });
                    }
                }
            }
        } else {
            let name = |c: Option<usize>| c.map_or(NONE_OF_THESE.to_string(), |c| self.classes[c].clone());
            let mut counts: std::collections::BTreeMap<(Option<usize>, Option<usize>), usize> = Default::default();
            for (t, p) in self.preds.targets.iter().zip(self.predicted_sets()) {
                let missed: Vec<Option<usize>> = t.iter().filter(|c| !p.contains(c)).map(|&c| Some(c)).collect();
                let extra: Vec<Option<usize>> = p.iter().filter(|c| !t.contains(c)).map(|&c| Some(c)).collect();
                if missed.is_empty() && extra.is_empty() {
                    continue;
                }
                // A missed label with nothing predicted instead (or an extra class on a photo
                // whose labels were all found) pairs with "none of these" only if that side is
                // really empty.
                let missed = if missed.is_empty() { if t.is_empty() { vec![None] } else { Vec::new() } } else { missed };
                let extra = if extra.is_empty() { if p.is_empty() { vec![None] } else { Vec::new() } } else { extra };
                for &a in &missed {
                    for &q in &extra {
                        *counts.entry((a, q)).or_default() += 1;
                    }
                }
            }
            // Ordered by class (none last), then most frequent first (stable).
            let mut keys: Vec<_> = counts.into_iter().filter(|&(_, n)| n >= min_val.max(1)).collect();
            keys.sort_by_key(|&((a, q), _)| (a.is_none(), a, q.is_none(), q));
            out = keys.into_iter().map(|((a, q), count)| Confusion { actual: name(a), predicted: name(q), count }).collect();
        }
        // Stable: ties keep row-major order, like fastai's sort of the flattened matrix.
        out.sort_by(|x, y| y.count.cmp(&x.count));
        out
    }

    /// The `k` items with the highest loss, highest first.
    pub fn top_losses(&self, k: usize) -> Vec<TopLoss> {
        let mut idx: Vec<usize> = (0..self.preds.losses.len()).collect();
        idx.sort_by(|&a, &b| self.preds.losses[b].total_cmp(&self.preds.losses[a]));
        let sets = self.predicted_sets();
        let words = |set: &[usize]| if set.is_empty() { NONE_OF_THESE.to_string() } else { set.iter().map(|&c| self.classes[c].as_str()).collect::<Vec<_>>().join(", ") };
        idx.into_iter()
            .take(k)
            .map(|i| {
                let (t, probs) = (&self.preds.targets[i], &self.preds.probs[i]);
                let prob_actual = match t.iter().map(|&c| probs[c]).min_by(f32::total_cmp) {
                    Some(p) => p,
                    None => 1.0 - probs.iter().copied().fold(0.0, f32::max),
                };
                TopLoss {
                    index: self.items[i].0,
                    name: self.items[i].1.clone(),
                    predicted: words(&sets[i]),
                    actual: words(t),
                    loss: self.preds.losses[i],
                    prob_actual,
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
        let w = self.classes.iter().map(|c| c.len()).max().unwrap_or(6).max(6);
        if let Some(thresh) = self.preds.thresh {
            writeln!(f, "per class (one sigmoid each, threshold {thresh}), {} validation images:", self.preds.targets.len())?;
            writeln!(f, "{:>w$}  {:>5} {:>5} {:>5} {:>5}  {:>9} {:>6}", "class", "tp", "fp", "fn", "tn", "precision", "recall")?;
            for s in self.per_class() {
                writeln!(f, "{:>w$}  {:>5} {:>5} {:>5} {:>5}  {:>9.2} {:>6.2}", s.class, s.tp, s.fp, s.fn_, s.tn, s.precision(), s.recall())?;
            }
            if self.preds.multi_label() {
                return Ok(());
            }
        }
        let m = self.confusion_matrix();
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
