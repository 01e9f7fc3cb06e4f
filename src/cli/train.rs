//! Training from the command line: a learner from the flags, fit_one_cycle / fine_tune with
//! fastai's epoch table and a progress bar (Ctrl-C cancels and keeps the model), lr_find.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use kiln::data::Datasets;
use kiln::device::{DeviceChoice, autotune_enabled, is_cpu};
use kiln::learner::{CancelToken, Event, FitReport, LearnError, Learner, LrFindConfig};
use kiln::mixed_precision::{Precision, fp16_support};
use kiln::model::Arch;

use super::args::{DataArgs, ModelArgs};
use super::data::load_source;
use super::project::Source;
use super::write_atomic;
use super::weights::{WeightsSource, default_weights, read_weights};

/// The dataset and a learner set up from the flags: device, precision, pretrained body.
pub fn new_learner(data: &DataArgs, m: &ModelArgs) -> Result<(Datasets, Learner, Source), String> {
    let (dls, source) = load_source(data)?;
    print!("{}", dls.summary());
    let wanted = m.fp16 || m.require_fp16;
    let mut options = m.options(data.seed, wanted);
    // Sets of labels need one sigmoid per class, as fastai picks for a MultiCategoryBlock.
    if dls.multi_label() && !options.multi_label {
        eprintln!("loss: one sigmoid per class (BCEWithLogitsLossFlat, threshold {}), as photos have sets of labels", options.thresh);
        options.multi_label = true;
    }
    let dev = super::device::for_work(m.device, &options.config(dls.classes.len())?)?;
    if !is_cpu(&dev.device) && autotune_enabled() {
        eprintln!("        --autotune: its first batches time GPU kernels for each new shape, a minute or two on a fresh machine");
    }
    options.fp16 = wanted
        && match fp16_support(&dev.device) {
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
    let config = options.config(dls.classes.len())?;
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
    let weights: Option<WeightsSource> = match (&m.weights, m.no_pretrained, &m.arch) {
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
    Ok((dls, learner, source))
}

/// A saved model and the dataset to train it further on, frozen or unfrozen as asked. `output`
/// is refused when it is the model's own file: what the user gave is never overwritten.
pub fn continue_learner(model: &Path, data: &DataArgs, device: DeviceChoice, unfreeze: bool, freeze: bool, output: &Path) -> Result<(Datasets, Learner, Source), String> {
    super::refuse_overwrite(output, &[model], "-o", "the model being read")?;
    let (mut learner, _) = super::model::open_for(model, device)?;
    // The photos are presized as the model was trained (its recipe), whatever --presize says.
    let (dls, source) = load_source(&DataArgs { presize: learner.presize, ..data.clone() })?;
    print!("{}", dls.summary());
    if learner.classes != dls.classes {
        return Err(format!(
            "{} was trained on the classes {}, but {} has {}: train a new model for these classes, or fix the folders",
            model.display(),
            learner.classes.join(", "),
            data.dir.display(),
            dls.classes.join(", ")
        ));
    }
    if unfreeze {
        learner.unfreeze();
    } else if freeze {
        learner.freeze();
    }
    let state = if learner.frozen_below > 0 { "frozen (only the head trains)" } else { "unfrozen (every layer trains)" };
    eprintln!("model: {} after {} epoch(s), {state}", model.display(), learner.history.len());
    Ok((dls, learner, source))
}

fn fmt_time(s: f64) -> String {
    format!("{:02}:{:02}", (s as u64) / 60, (s as u64) % 60)
}

/// Run a fit with the epoch table, a progress bar and Ctrl-C to cancel.
pub fn fit(
    learner: &mut Learner,
    run: impl FnOnce(&mut Learner, &CancelToken, &mut dyn FnMut(&Event)) -> Result<FitReport, LearnError>,
) -> Result<FitReport, String> {
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            eprintln!("\nstopping after this batch (the model keeps its progress)…");
            cancel.cancel();
        });
    }
    // fastai names the metric after itself: accuracy_multi for a one-sigmoid-per-class model.
    let metric = if learner.config.loss_func.thresh().is_some() { "accuracy_multi" } else { "accuracy" };
    println!("{:<9} {:<6} {:>10} {:>10} {:>10} {:>9} {:>6}", "phase", "epoch", "train_loss", "valid_loss", "error_rate", metric, "time");
    let bar = ProgressBar::new(0)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} batches  {msg}  [{elapsed} < {eta}]").expect("valid template"));
    let mut on_event = |e: &Event| match e {
        Event::Batch(b) => {
            bar.set_length(b.total_iters.max(1) as u64);
            bar.set_position(b.iter as u64 + 1);
            bar.set_message(format!("{} epoch {}  loss {:.4}  lr {:.2e}", b.phase, b.epoch, b.smooth_loss, b.hypers.lrs[b.hypers.lrs.len() - 1]));
        }
        Event::Epoch(s) => {
            let m = &s.metrics;
            bar.suspend(|| {
                println!(
                    "{:<9} {:<6} {:>10.6} {:>10.6} {:>10.6} {:>9.6} {:>6}",
                    s.phase, s.number, s.train_loss, m.valid_loss, m.error_rate, m.accuracy, fmt_time(s.seconds)
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

/// Save the trained model, saying how the fit ended.
pub fn finish(learner: &Learner, report: FitReport, output: &Path) -> Result<(), String> {
    if report.cancelled {
        eprintln!("training was cancelled after {} full epoch(s); saving the model as it is", report.epochs.len());
    }
    if learner.precision == Precision::F16 {
        eprintln!("fp16: loss scale {}, {} step(s) skipped for overflowing gradients", learner.scaler.scale, learner.scaler.skipped);
    }
    let bytes = pollster::block_on(kiln::export::to_bytes(learner)).map_err(|e| e.to_string())?;
    write_atomic(output, &bytes)?;
    println!("saved the model to {}", output.display());
    Ok(())
}

/// fastai's lr_find with a progress bar; the plot saved to `output`, the suggestions printed.
pub fn lr_find(dls: &Datasets, learner: &mut Learner, config: &LrFindConfig, output: &Path) -> Result<(), String> {
    let bar = ProgressBar::new(config.num_it as u64).with_style(ProgressStyle::with_template("{bar:30} {pos}/{len}  {msg}").expect("valid template"));
    let r = pollster::block_on(learner.lr_find(dls, config, &CancelToken::new(), &mut |e| {
        if let Event::Batch(b) = e {
            bar.set_position(b.iter as u64 + 1);
            bar.set_message(format!("lr {:.2e}  loss {:.4}", b.hypers.lrs[0], b.smooth_loss));
        }
    }))
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    kiln::plot::lr_find_plot(&r).save(output).map_err(|e| format!("writing {}: {e}", output.display()))?;
    println!("lr_find: {} steps, from {:.1e} to {:.1e}; plot saved to {}", r.lrs.len(), r.lrs[0], r.lrs[r.lrs.len() - 1], output.display());
    match r.suggestions {
        Some(s) => println!("minimum/10: {:.2e}\nsteep:      {:.2e}\nvalley:     {:.2e}\nslide:      {:.2e}", s.minimum.lr, s.steep.lr, s.valley.lr, s.slide.lr),
        None => println!("too few steps before the loss diverged to suggest a learning rate; try a larger --num-it or a smaller --start-lr"),
    }
    Ok(())
}
