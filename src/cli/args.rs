//! The command line's grammar (clap), and its translation into the core's options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use kiln::data::DataOptions;
use kiln::device::DeviceChoice;
use kiln::learner::LearnerOptions;
use kiln::model::Arch;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Train image classifiers the fastai way (chapter 5), on your GPU or CPU")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// On a GPU, choose each kernel by timing the candidates on the first batch of every new
    /// shape (burn's autotune): minutes of tuning first, for long runs on a large GPU. Without
    /// it, kernels are chosen by shape.
    #[arg(long, global = true)]
    pub autotune: bool,
}

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Folder of images: one sub-folder per class, or files named like `Maine_Coon_157.jpg`;
    /// or a Kiln project (.kilnproj): its photos, labels, split and edits.
    pub dir: PathBuf,
    /// Label by this regex (one capture group) on the file name instead of by folder.
    #[arg(long, conflicts_with = "labels_csv")]
    pub label_regex: Option<String>,
    /// Several labels a photo from a CSV (fastai's from_csv): a header, a file-name column
    /// (fname), a column of space-separated labels (labels), optionally is_valid for the
    /// split. Trains one sigmoid per class (--multi-label).
    #[arg(long, value_name = "FILE")]
    pub labels_csv: Option<PathBuf>,
    /// Fraction of images held out for validation (ignored when train/ and valid/ folders exist).
    #[arg(long, default_value_t = DataOptions::default().valid_pct)]
    pub valid_pct: f64,
    /// Seed of the random split.
    #[arg(long, default_value_t = DataOptions::default().seed)]
    pub seed: u64,
    /// Side of the square CPU presize crop (fastai's Resize(460)).
    #[arg(long, default_value_t = DataOptions::default().presize)]
    pub presize: u32,
    /// Refuse images with more pixels than this (protects against decompression bombs).
    #[arg(long, default_value_t = DataOptions::default().max_pixels)]
    pub max_pixels: u64,
    /// Relabel or leave out files as this CSV says (the page's cleaner writes it:
    /// file,old_label,action,new_label); the files themselves are not touched.
    #[arg(long, value_name = "FILE")]
    pub changes: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// efficientnet_lite0 (pretrained weights bundled), resnet18/34/50/101/152 (bring
    /// torchvision weights with --weights), or tiny (a cut-down ResNet for quick runs, random
    /// init).
    #[arg(long, default_value = "efficientnet_lite0")]
    pub arch: Arch,
    /// Pretrained weights: a torchvision/timm checkpoint (.pth, .pt, .safetensors) or a Kiln
    /// backbone (.kiln). EfficientNet-Lite0's ImageNet weights are used when not given.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Start from random weights instead of pretrained ones.
    #[arg(long, conflicts_with = "weights")]
    pub no_pretrained: bool,
    /// Training image size after augmentation.
    #[arg(long, default_value_t = LearnerOptions::default().size)]
    pub size: usize,
    #[arg(long, default_value_t = LearnerOptions::default().batch_size)]
    pub bs: usize,
    /// Images per forward/backward pass (gradients are accumulated up to --bs); by default the
    /// largest that fits the device's memory.
    #[arg(long)]
    pub micro_bs: Option<usize>,
    /// Turn off horizontal flips (for digits, text, or anything with a handedness).
    #[arg(long)]
    pub no_flip: bool,
    /// gpu, cpu, or auto (whichever trains this model faster: measured on first use, remembered
    /// in ~/.cache/kiln).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Mixed precision (fastai's to_fp16): f16 activations, f32 weights, dynamic loss scaling.
    /// Where the device has no half precision (the CPU backend), says so and trains in f32.
    #[arg(long)]
    pub fp16: bool,
    /// Like --fp16, but fail instead of training in f32 where half precision is missing.
    #[arg(long)]
    pub require_fp16: bool,
    /// One sigmoid per class (fastai's BCEWithLogitsLossFlat and accuracy_multi) instead of a
    /// softmax: a photo's classes are those above --thresh, so it can be "none of these".
    #[arg(long)]
    pub multi_label: bool,
    /// With --multi-label: the probability a class needs to be predicted.
    #[arg(long, default_value_t = 0.5, requires = "multi_label")]
    pub thresh: f32,
    /// fastai's loss_func: CrossEntropyLossFlat (default), LabelSmoothingCrossEntropy (eps 0.1)
    /// or BCEWithLogitsLossFlat (the same as --multi-label).
    #[arg(long, value_name = "NAME")]
    pub loss_func: Option<String>,
    /// The head's hidden layers' widths (vision_learner's lin_ftrs), e.g. 512 or 1024,512.
    #[arg(long, value_name = "N[,N…]", value_delimiter = ',', default_value = "512")]
    pub lin_ftrs: Vec<usize>,
    /// The head's dropout: the last layer's probability, half of it before the first.
    #[arg(long, default_value_t = LearnerOptions::default().ps)]
    pub ps: f64,
    /// Pool the body's features by their average alone (fastai's concat_pool=False), not
    /// [max ‖ average].
    #[arg(long)]
    pub no_concat_pool: bool,
    /// No BatchNorm before the head's first linear layer (first_bn=False).
    #[arg(long)]
    pub no_first_bn: bool,
    /// A BatchNorm after the head's last layer (bn_final=True).
    #[arg(long)]
    pub bn_final: bool,
    /// Each of the head's linear layers before its BatchNorm and dropout (lin_first=True).
    #[arg(long)]
    pub lin_first: bool,
    /// Weight decay (decoupled, AdamW's).
    #[arg(long, default_value_t = LearnerOptions::default().wd)]
    pub wd: f64,
    /// Weight decay on BatchNorm and bias parameters too.
    #[arg(long)]
    pub wd_bn_bias: bool,
    /// Frozen BatchNorm layers stay frozen (train_bn=False; fastai trains them).
    #[arg(long)]
    pub no_train_bn: bool,
    /// One-cycle's momentums: at the start, the peak learning rate and the end.
    #[arg(long, value_name = "A,B,C", default_value = "0.95,0.85,0.95")]
    pub moms: Moms,
}

/// Three momentums written `a,b,c`.
#[derive(Clone, Copy, Debug)]
pub struct Moms(pub [f64; 3]);

impl std::str::FromStr for Moms {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<f64> = s.split(',').map(|m| m.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| format!("{s:?}: {e}"))?;
        let v: [f64; 3] = v.try_into().map_err(|_| format!("{s:?}: give three momentums, like 0.95,0.85,0.95"))?;
        Ok(Moms(v))
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// `--device auto`'s GPU probe, run by kiln itself in a child process it can stop: reads
    /// the learner's config and the CPU's time (JSON) on stdin, prints the probe as JSON.
    #[command(hide = true)]
    ProbeGpu,
    /// Show classes, counts per split, the label rule, and every skipped file with its reason.
    Summary {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Train a classifier with fit_one_cycle and save it.
    Train {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        /// Peak learning rate of the one-cycle schedule.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Also save a project (.kilnproj): the photos, how they were labelled and split, the
        /// settings and the trained model, to open in the page or continue here.
        #[arg(long, value_name = "FILE.kilnproj")]
        save_project: Option<PathBuf>,
        /// Where to save the model.
        #[arg(short, long, default_value = "model.kiln")]
        output: PathBuf,
    },
    /// fastai's fine_tune: a frozen epoch for the head, then all layers with discriminative LRs.
    FineTune {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// Epochs of the unfrozen phase.
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        #[arg(long, default_value_t = 2e-3)]
        base_lr: f64,
        /// Epochs of the frozen (head-only) phase.
        #[arg(long, default_value_t = 1)]
        freeze_epochs: usize,
        /// Also save a project (.kilnproj): the photos, how they were labelled and split, the
        /// settings and the trained model, to open in the page or continue here.
        #[arg(long, value_name = "FILE.kilnproj")]
        save_project: Option<PathBuf>,
        #[arg(short, long, default_value = "model.kiln")]
        output: PathBuf,
    },
    /// Keep training a saved model by hand, as the book does after fine_tune: fastai's
    /// fit_one_cycle on the model as it is, or after --unfreeze/--freeze; the epoch table
    /// continues the model's numbering.
    Fit {
        /// The model to continue: a `.kiln` file, or a project (.kilnproj) with a trained model;
        /// it is not overwritten.
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        /// Peak learning rate: one value for every layer, or LO,HI for fastai's slice(LO, HI)
        /// (discriminative rates from the first layers to the head), e.g. 1e-6,1e-4.
        #[arg(long, default_value = "1e-3", value_parser = kiln::schedule::Lr::parse)]
        lr_max: kiln::schedule::Lr,
        /// Train every layer (fastai's unfreeze) before fitting.
        #[arg(long, conflicts_with = "freeze")]
        unfreeze: bool,
        /// Train only the head (fastai's freeze) before fitting.
        #[arg(long)]
        freeze: bool,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Also save a project (.kilnproj): the photos, how they were labelled and split, the
        /// settings and the trained model, to open in the page or continue here.
        #[arg(long, value_name = "FILE.kilnproj")]
        save_project: Option<PathBuf>,
        /// Where to save the model trained further (not the file it was read from).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// fastai's lr_find: plot loss against an exponentially growing LR and suggest LRs.
    LrFind {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// Run it on this saved model (its own architecture and settings) instead of a new one:
        /// the book's lr_find after unfreezing.
        #[arg(long = "model", value_name = "MODEL.kiln")]
        saved: Option<PathBuf>,
        /// With --model: unfreeze it first.
        #[arg(long, requires = "saved")]
        unfreeze: bool,
        #[arg(long, default_value_t = 1e-7)]
        start_lr: f64,
        #[arg(long, default_value_t = 10.0)]
        end_lr: f64,
        #[arg(long, default_value_t = 100)]
        num_it: usize,
        /// The plot (PNG).
        #[arg(short, long, default_value = "lr_find.png")]
        output: PathBuf,
    },
    /// Confusion matrix, most confused pairs and top losses of a saved model on DIR's validation set.
    Interpret {
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// How many top losses to show.
        #[arg(short, default_value_t = 9)]
        k: usize,
        /// Only pairs confused at least this often.
        #[arg(long, default_value_t = 1)]
        min_val: usize,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Folder for confusion_matrix.png and top_losses.png.
        #[arg(short, long, default_value = ".")]
        output: PathBuf,
    },
    /// fastai's ImageClassifierCleaner: each class's images the model finds hardest (highest
    /// loss first), to fix their labels with a --changes CSV.
    Clean {
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// The training or the validation images.
        #[arg(long, default_value = "train")]
        split: kiln::cleaner::Split,
        /// How many images of each class to list.
        #[arg(short, default_value_t = 5)]
        k: usize,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
    },
    /// Predict the class of images with a saved model: files, and folders searched
    /// recursively; optionally a CSV of every probability and a copy sorted by class.
    Predict {
        model: PathBuf,
        /// Image files and folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Write file, class, probability and every class's probability as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Copy each photo into DIR/<predicted class>/ (a name already there gets " (2)").
        #[arg(long, value_name = "DIR")]
        sort_into: Option<PathBuf>,
        /// With --sort-into: remove the originals once every copy is written.
        #[arg(long = "move", requires = "sort_into")]
        move_files: bool,
        /// Photos whose top probability is below this go to DIR/unsure/.
        #[arg(long, default_value_t = 0.0)]
        threshold: f32,
        /// Photos per batch on the device.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Convert a saved model for use elsewhere: ONNX (apps, onnxruntime) or a PyTorch state dict
    /// in fastai's layout (`.safetensors`, to keep training in a notebook).
    Export {
        /// A model saved by `kiln train`/`fine-tune` or the page (.kiln).
        model: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The file to write (default: the model's name with .onnx or .safetensors).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Save a grid of augmented training images with their labels.
    ShowBatch {
        #[command(flatten)]
        data: DataArgs,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// How many images.
        #[arg(short, default_value_t = 16)]
        n: usize,
        /// Turn off horizontal flips.
        #[arg(long)]
        no_flip: bool,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
    },
    /// Pretrained weights: convert a checkpoint to a Kiln backbone, or check one on photos.
    Weights {
        #[command(subcommand)]
        command: WeightsCommand,
    },
    /// Write the bundled sample set (scikit-learn's handwritten digits) as PNG class folders,
    /// or, with --photos, a set of crops of real photos (one class per photo).
    Samples {
        /// Output folder.
        #[arg(short, long)]
        output: PathBuf,
        /// Side of the written images in pixels.
        #[arg(long, default_value_t = 32)]
        side: u32,
        /// A folder of photos (e.g. assets/photos): each becomes a class of crops, validation
        /// crops taken from grid cells that training never sees.
        #[arg(long)]
        photos: Option<PathBuf>,
        /// Crops per grid cell (with --photos).
        #[arg(long, default_value_t = 2)]
        crops_per_cell: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX (opset 18): the photo's centre square, RGB float32 in [0, 1], NCHW at any size (the
    /// graph resizes it as Kiln does); class probabilities out.
    Onnx,
    /// fastai's vision_learner state dict as .safetensors (ResNet-18/34, EfficientNet-Lite0).
    Pytorch,
}

#[derive(Subcommand)]
pub enum WeightsCommand {
    /// Convert a PyTorch (.pth/.pt, zip or legacy) or .safetensors checkpoint to a Kiln backbone.
    Import {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// The architecture, when it should be checked rather than recognised from the keys.
        #[arg(long)]
        arch: Option<Arch>,
    },
    /// Top-5 ImageNet classes (index and probability) of photos under the weights' own
    /// classifier: a quick check that a checkpoint imported correctly.
    Predict {
        /// A checkpoint or Kiln backbone; the bundled EfficientNet-Lite0 when left out.
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long, default_value_t = 224)]
        size: u32,
    },
}


impl DataArgs {
    /// The dataset options, with the labels CSV read.
    pub fn options(&self) -> Result<DataOptions, String> {
        let labels_csv = match &self.labels_csv {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("reading the labels CSV {}: {e}", path.display()))?),
            None => None,
        };
        Ok(DataOptions {
            label_regex: self.label_regex.clone(),
            valid_pct: self.valid_pct,
            seed: self.seed,
            presize: self.presize,
            max_pixels: self.max_pixels,
            multi_label: labels_csv.is_some(),
            labels_csv,
        })
    }
}

impl ModelArgs {
    /// The learner's options; `fp16` as negotiated with the device.
    pub fn options(&self, seed: u64, fp16: bool) -> LearnerOptions {
        LearnerOptions {
            arch: self.arch.clone(),
            size: self.size,
            batch_size: self.bs,
            micro_batch: self.micro_bs,
            seed,
            do_flip: !self.no_flip,
            fp16,
            multi_label: self.multi_label,
            thresh: self.thresh,
            loss_func: self.loss_func.clone(),
            lin_ftrs: Some(self.lin_ftrs.clone()),
            ps: self.ps,
            concat_pool: !self.no_concat_pool,
            first_bn: !self.no_first_bn,
            bn_final: self.bn_final,
            lin_first: self.lin_first,
            wd: self.wd,
            wd_bn_bias: self.wd_bn_bias,
            train_bn: !self.no_train_bn,
            moms: self.moms.0,
            ..LearnerOptions::default()
        }
    }
}
