//! Train/validation split: seeded random (fastai's RandomSplitter) or by folder.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use std::sync::Arc;

use super::{LabelsCsv, Sample};

#[derive(Clone, Debug)]
pub enum Splitter {
    /// `train/` and `valid/` folders when present anywhere in the paths, else random.
    Auto { valid_pct: f64, seed: u64 },
    /// fastai's `RandomSplitter(valid_pct, seed)`: shuffle, the first `valid_pct` are valid.
    Random { valid_pct: f64, seed: u64 },
    /// fastai's `ColSplitter()`: a labels CSV's `is_valid` column.
    Csv(Arc<LabelsCsv>),
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::Auto { valid_pct: 0.2, seed: 42 }
    }
}

fn split_folder(name: &str) -> Option<bool> {
    name.split('/').rev().skip(1).find_map(|p| match p {
        "train" => Some(false),
        "valid" => Some(true),
        _ => None,
    })
}

impl Splitter {
    /// Returns (train, valid, outside either split folder, description).
    pub fn split(&self, samples: Vec<Sample>) -> (Vec<Sample>, Vec<Sample>, Vec<Sample>, String) {
        let (valid_pct, seed) = match *self {
            Splitter::Auto { valid_pct, seed } => {
                if samples.iter().any(|s| split_folder(&s.item.name) == Some(true))
                    && samples.iter().any(|s| split_folder(&s.item.name) == Some(false))
                {
                    let (mut train, mut valid, mut unused) = (Vec::new(), Vec::new(), Vec::new());
                    for s in samples {
                        match split_folder(&s.item.name) {
                            Some(false) => train.push(s),
                            Some(true) => valid.push(s),
                            None => unused.push(s),
                        }
                    }
                    return (train, valid, unused, "by train/ and valid/ folders".to_string());
                }
                (valid_pct, seed)
            }
            Splitter::Random { valid_pct, seed } => (valid_pct, seed),
            Splitter::Csv(ref csv) => {
                let (mut train, mut valid, mut unused) = (Vec::new(), Vec::new(), Vec::new());
                for s in samples {
                    match csv.is_valid(&s.item.name) {
                        Some(false) => train.push(s),
                        Some(true) => valid.push(s),
                        None => unused.push(s),
                    }
                }
                return (train, valid, unused, "by the labels CSV's is_valid column".to_string());
            }
        };
        let mut idx: Vec<usize> = (0..samples.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_valid = (samples.len() as f64 * valid_pct) as usize;
        let mut is_valid = vec![false; samples.len()];
        for &i in &idx[..n_valid] {
            is_valid[i] = true;
        }
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (s, v) in samples.into_iter().zip(is_valid) {
            if v { valid.push(s) } else { train.push(s) }
        }
        (train, valid, Vec::new(), format!("random, valid_pct={valid_pct}, seed={seed}"))
    }
}
