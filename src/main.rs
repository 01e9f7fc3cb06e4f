//! The `kiln` command line: a thin shell that reads files, calls the core and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use kiln::augment::AugConfig;
use kiln::data::{DataConfig, Datasets, Item, LabelRule, Splitter, show_batch};
use kiln::device::{DeviceChoice, select_native};
use kiln::learner::{CancelToken, Event, FineTune, FitReport, Learner, LearnerConfig};
use kiln::lr_find::LrFindConfig;
use kiln::model::{Arch, ClassifierConfig};
use kiln::schedule::{Lr, OneCycle};

#[derive(Parser)]
#[command(name = "kiln", version, about = "Train image classifiers the fastai way (chapter 5), on your GPU or CPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Folder of images: one sub-folder per class, or files named like `Maine_Coon_157.jpg`.
    dir: PathBuf,
    /// Label by this regex (one capture group) on the file name instead of by folder.
    #[arg(long)]
    label_regex: Option<String>,
    /// Fraction of images held out for validation (ignored when train/ and valid/ folders exist).
    #[arg(long, default_value_t = 0.2)]
    valid_pct: f64,
    /// Seed of the random split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Side of the square CPU presize crop (fastai's Resize(460)).
    #[arg(long, default_value_t = 460)]
    presize: u32,
    /// Refuse images with more pixels than this (protects against decompression bombs).
    #[arg(long, default_value_t = 64_000_000)]
    max_pixels: u64,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// efficientnet_lite0 (pretrained weights bundled), resnet18 or resnet34 (bring torchvision
    /// weights with --weights), or tiny (a cut-down ResNet for quick runs, random init).
    #[arg(long, default_value = "efficientnet_lite0")]
    arch: Arch,
    /// Pretrained weights: a torchvision/timm checkpoint (.pth, .pt, .safetensors) or a Kiln
    /// backbone (.kiln). EfficientNet-Lite0's ImageNet weights are used when not given.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Start from random weights instead of pretrained ones.
    #[arg(long, conflicts_with = "weights")]
    no_pretrained: bool,
    /// Training image size after augmentation.
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long, default_value_t = 64)]
    bs: usize,
    /// Images per forward/backward pass (gradients are accumulated up to --bs); by default the
    /// largest that fits the device's memory.
    #[arg(long)]
    micro_bs: Option<usize>,
    /// Turn off horizontal flips (for digits, text, or anything with a handedness).
    #[arg(long)]
    no_flip: bool,
    /// gpu, cpu, or auto (GPU when an adapter is found, else CPU).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Mixed precision (fastai's to_fp16): f16 activations, f32 weights, dynamic loss scaling.
    /// Where the device has no half precision (the CPU backend), says so and trains in f32.
    #[arg(long)]
    fp16: bool,
    /// Like --fp16, but fail instead of training in f32 where half precision is missing.
    #[arg(long)]
    require_fp16: bool,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(short, long, default_value = "model.kiln")]
        output: PathBuf,
    },
    /// fastai's lr_find: plot loss against an exponentially growing LR and suggest LRs.
    LrFind {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        model: ModelArgs,
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
    /// Predict the class of one or more images with a saved model.
    Predict {
        model: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
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
enum ExportFormat {
    /// ONNX (opset 17): RGB float32 in [0, 1], NCHW at the trained size; class probabilities out.
    Onnx,
    /// fastai's vision_learner state dict as .safetensors (ResNet-18/34, EfficientNet-Lite0).
    Pytorch,
}

#[derive(Subcommand)]
enum WeightsCommand {
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

/// Pretrained weights: a file the user named, or the default backbone built into the binary.
enum WeightsSource {
    File(PathBuf),
    #[cfg(kiln_bundled_weights)]
    Bundled,
}

#[cfg(kiln_bundled_weights)]
static BUNDLED_WEIGHTS: &[u8] = include_bytes!(env!("KILN_BUNDLED_WEIGHTS"));

impl WeightsSource {
    fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            #[cfg(kiln_bundled_weights)]
            Self::Bundled => "the bundled ImageNet checkpoint".into(),
        }
    }

    fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>, String> {
        match self {
            Self::File(p) => std::fs::read(p).map(Into::into).map_err(|e| format!("reading weights {}: {e}", p.display())),
            #[cfg(kiln_bundled_weights)]
            Self::Bundled => Ok(BUNDLED_WEIGHTS.into()),
        }
    }
}

impl From<PathBuf> for WeightsSource {
    fn from(p: PathBuf) -> Self {
        Self::File(p)
    }
}

/// The default backbone, EfficientNet-Lite0: set-up (`scripts/fetch-assets.sh`) puts its
/// ImageNet checkpoint in assets/, and build.rs builds it into the binary.
fn default_weights() -> Result<WeightsSource, String> {
    if let Some(p) = std::env::var_os("KILN_DEFAULT_WEIGHTS") {
        return Ok(WeightsSource::File(PathBuf::from(p)));
    }
    #[cfg(kiln_bundled_weights)]
    return Ok(WeightsSource::Bundled);
    // Built before set-up fetched the assets: look where set-up puts them.
    #[cfg(not(kiln_bundled_weights))]
    {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for name in ["efficientnet_lite0.kiln", "efficientnet-lite0-57934424.pth"] {
            if assets.join(name).exists() {
                return Ok(WeightsSource::File(assets.join(name)));
            }
        }
        Err(format!(
            "this kiln was built without the bundled EfficientNet-Lite0 weights and they are not in {}: run `bash scripts/fetch-assets.sh` once (then rebuild to bundle them), pass --weights FILE, or train from scratch with --no-pretrained",
            assets.display()
        ))
    }
}

fn read_weights(source: &WeightsSource, arch: Option<&Arch>, device: &burn::tensor::Device) -> Result<(Arch, kiln::model::Pretrained), String> {
    let bytes = source.read()?;
    kiln::pretrained::load_any(&bytes, arch, device).map_err(|e| format!("{}: {e}", source.describe()))
}

fn weights_command(command: WeightsCommand) -> Result<(), String> {
    let cpu = burn::tensor::Device::flex();
    match command {
        WeightsCommand::Import { file, output, arch } => {
            let bytes = std::fs::read(&file).map_err(|e| format!("reading weights {}: {e}", file.display()))?;
            let source = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let (header, backbone) =
                pollster::block_on(kiln::pretrained::import(&bytes, &source, arch.as_ref())).map_err(|e| format!("{}: {e}", file.display()))?;
            write_atomic(&output, &backbone)?;
            let classifier = header.imagenet_classes.map(|n| format!(" with its {n}-class classifier")).unwrap_or_default();
            println!("{}: {} weights{classifier}; saved a Kiln backbone to {}", file.display(), header.arch.name(), output.display());
        }
        WeightsCommand::Predict { weights, images, size } => {
            let source = match weights {
                Some(p) => p.into(),
                None => default_weights()?,
            };
            let (arch, model) = read_weights(&source, None, &cpu)?;
            println!("{} ({}), top-5 ImageNet class indices:", source.describe(), arch.name());
            for image in images {
                let bytes = std::fs::read(&image).map_err(|e| format!("reading {}: {e}", image.display()))?;
                let top = pollster::block_on(kiln::pretrained::imagenet_top_k(&model, &bytes, size, 5, &cpu))
                    .map_err(|e| format!("{}: {e}", image.display()))?;
                let top: Vec<String> = top.iter().map(|(i, p)| format!("{i} {p:.3}")).collect();
                println!("  {}: {}", image.display(), top.join(", "));
            }
        }
    }
    Ok(())
}

/// Photos in a folder as (class named after the file, bytes), skipping non-images.
fn read_photos(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut photos = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if !matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "webp") {
            continue;
        }
        let class = path.file_stem().unwrap().to_string_lossy().replace('_', "-");
        photos.push((class, std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?));
    }
    if photos.is_empty() {
        return Err(format!("no photos (.png, .jpg, .webp) in {}", dir.display()));
    }
    Ok(photos)
}

fn read_items(dir: &Path) -> Result<Vec<Item>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder: give a folder of images (one sub-folder per class, or pets-style file names)", dir.display()));
    }
    let mut items = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        if !entry.file_type().is_file() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path()).to_string_lossy().to_string();
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
        items.push(Item::new(rel, bytes));
    }
    Ok(items)
}

fn load(data: &DataArgs) -> Result<Datasets, String> {
    let rule = match &data.label_regex {
        Some(re) => LabelRule::regex(re)?,
        None => LabelRule::default(),
    };
    if !(0.0..1.0).contains(&data.valid_pct) {
        return Err(format!("--valid-pct {} must be in [0, 1)", data.valid_pct));
    }
    let config = DataConfig::default()
        .with_label_rule(rule)
        .with_splitter(Splitter::Auto { valid_pct: data.valid_pct, seed: data.seed })
        .with_presize(data.presize)
        .with_max_pixels(data.max_pixels);
    Datasets::from_items(read_items(&data.dir)?, config).map_err(|e| format!("{}: {e}", data.dir.display()))
}

fn fmt_time(s: f64) -> String {
    format!("{:02}:{:02}", (s as u64) / 60, (s as u64) % 60)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Weights { command } => weights_command(command)?,
        Command::Summary { data } => {
            print!("{}", load(&data)?.summary());
        }
        Command::Samples { output, side, photos, crops_per_cell } => {
            let (items, what) = match photos {
                None => (kiln::samples::digits_items(side), "the digits sample set (1,797 images, 10 classes)".to_string()),
                Some(dir) => {
                    let photos = read_photos(&dir)?;
                    let n = photos.len();
                    let items = kiln::samples::photo_crops(&photos, crops_per_cell, side, 42)?;
                    let what = format!("{} crops of {n} photos (one class each; train/ and valid/ from separate grid cells)", items.len());
                    (items, what)
                }
            };
            for item in items {
                let path = output.join(&item.name);
                std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| format!("creating {}: {e}", path.display()))?;
                std::fs::write(&path, &item.bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            println!("wrote {what} to {}", output.display());
        }
        Command::ShowBatch { data, output, size, n, no_flip, device } => {
            let dls = load(&data)?;
            let dev = select_native(device)?;
            let learner = LearnerConfig::new(ClassifierConfig::new(Arch::ResNet18, dls.classes.len()), size)
                .with_aug(AugConfig::new(size).with_do_flip(!no_flip));
            let (images, labels) = pollster::block_on(kiln::data::augmented_samples(&dls, &learner.aug, n, learner.seed, &dev.device))
                .map_err(|e| e.to_string())?;
            let labels: Vec<String> = labels.iter().map(|&l| dls.classes[l].clone()).collect();
            show_batch(&images, &labels, (n as f64).sqrt().ceil() as usize)
                .save(&output)
                .map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!("saved {} augmented images to {}", images.len(), output.display());
        }
        Command::Train { data, model, epochs, lr, output } => {
            let (dls, mut learner) = new_learner(&data, &model)?;
            let report = fit(&mut learner, |l, cancel, on_event| {
                pollster::block_on(l.fit_one_cycle(&dls, epochs, Lr::Single(lr), &OneCycle::default(), cancel, on_event))
            })?;
            finish(&learner, report, &output)?;
        }
        Command::FineTune { data, model, epochs, base_lr, freeze_epochs, output } => {
            let (dls, mut learner) = new_learner(&data, &model)?;
            let opts = FineTune::default().with_base_lr(base_lr).with_freeze_epochs(freeze_epochs);
            let report = fit(&mut learner, |l, cancel, on_event| {
                pollster::block_on(l.fine_tune(&dls, epochs, &opts, cancel, on_event))
            })?;
            finish(&learner, report, &output)?;
        }
        Command::LrFind { data, model, start_lr, end_lr, num_it, output } => {
            let (dls, mut learner) = new_learner(&data, &model)?;
            let config = LrFindConfig { start_lr, end_lr, num_it, stop_div: true };
            let bar = ProgressBar::new(num_it as u64).with_style(ProgressStyle::with_template("{bar:30} {pos}/{len}  {msg}").expect("valid template"));
            let r = pollster::block_on(learner.lr_find(&dls, &config, &CancelToken::new(), &mut |e| {
                if let Event::Batch(b) = e {
                    bar.set_position(b.iter as u64 + 1);
                    bar.set_message(format!("lr {:.2e}  loss {:.4}", b.lrs[0], b.smooth_loss));
                }
            }))
            .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            kiln::plot::lr_find_plot(&r).save(&output).map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!("lr_find: {} steps, from {:.1e} to {:.1e}; plot saved to {}", r.lrs.len(), r.lrs[0], r.lrs[r.lrs.len() - 1], output.display());
            match r.suggestions {
                Some(s) => {
                    println!("minimum/10: {:.2e}\nsteep:      {:.2e}\nvalley:     {:.2e}\nslide:      {:.2e}", s.minimum.lr, s.steep.lr, s.valley.lr, s.slide.lr);
                }
                None => println!("too few steps before the loss diverged to suggest a learning rate; try a larger --num-it or a smaller --start-lr"),
            }
        }
        Command::Interpret { model, data, k, min_val, device, output } => {
            let bytes = std::fs::read(&model).map_err(|e| format!("reading model {}: {e}", model.display()))?;
            let dev = select_native(device)?;
            let mut learner = kiln::export::from_bytes(&bytes, &dev.device).map_err(|e| format!("{}: {e}", model.display()))?;
            let dls = load(&data)?;
            let interp = pollster::block_on(learner.interpret(&dls, &mut |_| {})).map_err(|e| e.to_string())?;
            let m = interp.confusion_matrix();
            let w = interp.classes.iter().map(|c| c.len()).max().unwrap_or(6).max(6);
            println!("confusion matrix (rows actual, columns predicted), {} validation images:", interp.preds.targets.len());
            print!("{:>w$} ", "");
            for i in 0..m.len() {
                print!("{i:>5}");
            }
            println!();
            for (i, row) in m.iter().enumerate() {
                print!("{:>w$} ", format!("{i} {}", interp.classes[i]), w = w + 3);
                for v in row {
                    print!("{v:>5}");
                }
                println!();
            }
            println!("most confused (actual, predicted, count):");
            for c in interp.most_confused(min_val) {
                println!("  {:<w$} {:<w$} {}", c.actual, c.predicted, c.count);
            }
            std::fs::create_dir_all(&output).map_err(|e| format!("creating {}: {e}", output.display()))?;
            let cm = output.join("confusion_matrix.png");
            kiln::plot::confusion_plot(&interp.classes, &m).save(&cm).map_err(|e| format!("writing {}: {e}", cm.display()))?;
            let tl = output.join("top_losses.png");
            interp.plot_top_losses(&dls, k).save(&tl).map_err(|e| format!("writing {}: {e}", tl.display()))?;
            println!("top {k} losses (predicted/actual/loss/probability of actual):");
            for t in interp.top_losses(k) {
                println!("  {}: {}/{}/{:.2}/{:.2}", t.name, t.predicted, t.actual, t.loss, t.prob_actual);
            }
            println!("saved {} and {}", cm.display(), tl.display());
        }
        Command::Export { model, format, output } => {
            let bytes = std::fs::read(&model).map_err(|e| format!("reading model {}: {e}", model.display()))?;
            let learner = kiln::export::from_bytes(&bytes, &burn::tensor::Device::flex()).map_err(|e| format!("{}: {e}", model.display()))?;
            let to = match format {
                ExportFormat::Onnx => kiln::export::Format::Onnx,
                ExportFormat::Pytorch => kiln::export::Format::PyTorch,
            };
            let out = pollster::block_on(kiln::export::write(&learner, to)).map_err(|e| format!("{}: {e}", model.display()))?;
            let output = output.unwrap_or_else(|| model.with_extension(to.extension()));
            write_atomic(&output, &out)?;
            let size = learner.config.aug.size;
            match format {
                ExportFormat::Onnx => println!(
                    "saved {} ({}, {} classes, opset {}): input `image` RGB float32 in [0, 1], [N, 3, {size}, {size}]; output `probabilities`",
                    output.display(),
                    learner.config.model.arch.name(),
                    learner.classes.len(),
                    kiln::export::onnx::OPSET
                ),
                ExportFormat::Pytorch => println!(
                    "saved {}: load it into fastai's vision_learner(dls, '{}', n_out={}) with learn.model.load_state_dict(safetensors.torch.load_file(...)) (see the README)",
                    output.display(),
                    kiln::export::pytorch::fastai_arch(&learner.config.model.arch).map_err(|e| e.to_string())?,
                    learner.classes.len()
                ),
            }
        }
        Command::Predict { model, images, device } => {
            let bytes = std::fs::read(&model).map_err(|e| format!("reading model {}: {e}", model.display()))?;
            let dev = select_native(device)?;
            let learner = kiln::export::from_bytes(&bytes, &dev.device).map_err(|e| format!("{}: {e}", model.display()))?;
            let mut failed = 0;
            for path in images {
                let result = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| pollster::block_on(learner.predict(&b)).map_err(|e| e.to_string()));
                match result {
                    Ok(p) => {
                        let mut ranked: Vec<(usize, f32)> = p.probs.iter().copied().enumerate().collect();
                        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                        let top: Vec<String> = ranked.iter().take(3).map(|(i, pr)| format!("{} {:.3}", learner.classes[*i], pr)).collect();
                        println!("{}: {} ({})", path.display(), p.label, top.join(", "));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e}", path.display());
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} image(s) could not be predicted"));
            }
        }
    }
    Ok(())
}

fn new_learner(data: &DataArgs, m: &ModelArgs) -> Result<(Datasets, Learner), String> {
    let dls = load(data)?;
    print!("{}", dls.summary());
    let dev = select_native(m.device)?;
    eprintln!("device: {}", dev.description);
    if dev.device.clone().inner() != burn::tensor::Device::flex() {
        // Measured on an H200 with the defaults: 96 s before the first batch, then < 1 s an epoch.
        eprintln!("        its first batches compile and tune GPU kernels for each new shape: a minute or two on a fresh machine");
    }
    let fp16 = (m.fp16 || m.require_fp16)
        && match kiln::mixed_precision::fp16_support(&dev.device) {
            Ok(()) => {
                eprintln!("precision: mixed (fp16 activations and gradients, f32 weights and Adam state, dynamic loss scaling)");
                true
            }
            Err(why) if m.require_fp16 => return Err(format!("--require-fp16: {why}")),
            Err(why) => {
                eprintln!("fp16: {why}; training in f32 (--require-fp16 makes this an error)");
                false
            }
        };
    let config = LearnerConfig::new(ClassifierConfig::new(m.arch.clone(), dls.classes.len()), m.size)
        .with_fp16(fp16)
        .with_batch_size(m.bs)
        .with_micro_batch(m.micro_bs)
        .with_seed(data.seed)
        .with_aug(AugConfig::new(m.size).with_do_flip(!m.no_flip));
    let mut learner = Learner::new(config, dls.classes.clone(), data.presize, &dev.device).map_err(|e| e.to_string())?;
    let loader = learner.loader;
    if loader.accumulation_steps() > 1 {
        eprintln!(
            "batch: {} images as {} passes of up to {} (gradients accumulated; --micro-bs to change)",
            loader.batch_size,
            loader.accumulation_steps(),
            loader.micro_batch
        );
    }
    let weights = match (&m.weights, m.no_pretrained, &m.arch) {
        (_, true, _) | (None, false, Arch::Custom(_)) => None,
        (Some(p), false, _) => Some(p.clone().into()),
        (None, false, Arch::EfficientNetLite0) => Some(default_weights()?),
        (None, false, arch) => {
            return Err(format!(
                "no pretrained {} weights are bundled (none ship offline): pass --weights with torchvision's file (see the README), or --no-pretrained",
                arch.name()
            ));
        }
    };
    if let Some(source) = weights {
        let (arch, body) = read_weights(&source, Some(&m.arch), &dev.device)?;
        learner.load_pretrained(body, &arch).map_err(|e| e.to_string())?;
        eprintln!("pretrained: {} weights from {} (body frozen until fine_tune unfreezes it)", arch.name(), source.describe());
    } else {
        eprintln!("pretrained: none ({} from random weights)", m.arch.name());
    }
    Ok((dls, learner))
}

/// Run a fit with the epoch table, a progress bar and Ctrl-C to cancel.
fn fit(
    learner: &mut Learner,
    run: impl FnOnce(&mut Learner, &CancelToken, &mut dyn FnMut(&Event)) -> Result<FitReport, kiln::learner::LearnError>,
) -> Result<FitReport, String> {
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            eprintln!("\nstopping after this batch (the model keeps its progress)…");
            cancel.cancel();
        });
    }
    println!("{:<9} {:<6} {:>10} {:>10} {:>10} {:>9} {:>6}", "phase", "epoch", "train_loss", "valid_loss", "error_rate", "accuracy", "time");
    let bar = ProgressBar::new(0)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} batches  {msg}  [{elapsed} < {eta}]").expect("valid template"));
    let mut on_event = |e: &Event| match e {
        Event::Batch(b) => {
            let per_epoch = b.total_iters.max(1);
            bar.set_length(per_epoch as u64);
            bar.set_position(b.iter as u64 + 1);
            bar.set_message(format!("{} epoch {}  loss {:.4}  lr {:.2e}", b.phase, b.epoch, b.smooth_loss, b.lrs[b.lrs.len() - 1]));
        }
        Event::Epoch(s) => {
            bar.suspend(|| {
                println!(
                    "{:<9} {:<6} {:>10.6} {:>10.6} {:>10.6} {:>9.6} {:>6}",
                    s.phase, s.epoch, s.train_loss, s.valid_loss, s.error_rate, s.accuracy, fmt_time(s.seconds)
                )
            });
        }
        Event::Skipped(s) => bar.suspend(|| eprintln!("skipped {}: {}", s.name, s.reason)),
        Event::Snapshot(_) => {}
    };
    let report = run(learner, &cancel, &mut on_event).map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(report)
}

fn finish(learner: &Learner, report: FitReport, output: &Path) -> Result<(), String> {
    if report.cancelled {
        eprintln!("training was cancelled after {} full epoch(s); saving the model as it is", report.epochs.len());
    }
    if learner.precision == kiln::mixed_precision::Precision::F16 {
        eprintln!("fp16: loss scale {}, {} step(s) skipped for overflowing gradients", learner.scaler.scale, learner.scaler.skipped);
    }
    let bytes = pollster::block_on(kiln::export::to_bytes(learner)).map_err(|e| e.to_string())?;
    write_atomic(output, &bytes)?;
    println!("saved the model to {}", output.display());
    Ok(())
}

/// Write a file whole or not at all: into a temporary file beside it, then renamed over it,
/// so Ctrl-C or a full disk never leaves half a model under the real name.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

/// wgpu's Vulkan loader probes Wayland, which prints "Error: XDG_RUNTIME_DIR is invalid or not
/// set" on headless machines although nothing is wrong. Give it a private runtime directory.
fn quiet_graphics_probe() -> Option<PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).is_dir()) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("kiln-runtime-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        return Some(dir);
    }
    None
}

fn main() -> ExitCode {
    let runtime_dir = quiet_graphics_probe();
    let code = match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}

