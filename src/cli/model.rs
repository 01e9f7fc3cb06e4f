//! Using a saved model: interpretation, and export to ONNX or fastai/PyTorch (prediction: [`super::predict`]).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use kiln::device::DeviceChoice;
use kiln::export::{self, Format};
use kiln::learner::Learner;

use super::args::{DataArgs, ExportFormat};
use super::data::load;
use super::write_atomic;

/// A `.kiln` model file rebuilt on `device`; errors name the file.
pub(super) fn open(model: &Path, device: &Device) -> Result<Learner, String> {
    // A project holds its trained model.
    let bytes = if super::project::is_project(model) {
        super::project::model_bytes(model)?
    } else {
        std::fs::read(model).map_err(|e| format!("reading model {}: {e}", model.display()))?
    };
    export::from_bytes(&bytes, device).map_err(|e| format!("{}: {e}", model.display()))
}

/// fastai's ClassificationInterpretation: the confusion matrix and most confused pairs
/// printed, the matrix and the top losses saved as pictures in `output`.
pub fn interpret(model: &Path, data: &DataArgs, k: usize, min_val: usize, device: DeviceChoice, output: &Path) -> Result<(), String> {
    let (mut learner, _) = open_for(model, device)?;
    let dls = load(data)?;
    let interp = pollster::block_on(learner.interpret(&dls, &mut |_| {})).map_err(|e| e.to_string())?;
    print!("{interp}");
    let w = interp.classes.iter().map(|c| c.len()).max().unwrap_or(6).max(6);
    println!("most confused (actual, predicted, count):");
    for c in interp.most_confused(min_val) {
        println!("  {:<w$} {:<w$} {}", c.actual, c.predicted, c.count);
    }
    std::fs::create_dir_all(output).map_err(|e| format!("creating {}: {e}", output.display()))?;
    let cm = output.join("confusion_matrix.png");
    kiln::plot::confusion_plot(&interp.classes, &interp.confusion_matrix()).save(&cm).map_err(|e| format!("writing {}: {e}", cm.display()))?;
    let tl = output.join("top_losses.png");
    interp.plot_top_losses(&dls, k).save(&tl).map_err(|e| format!("writing {}: {e}", tl.display()))?;
    println!("top {k} losses (predicted/actual/loss/probability of actual):");
    for t in interp.top_losses(k) {
        println!("  {}: {}/{}/{:.2}/{:.2}", t.name, t.predicted, t.actual, t.loss, t.prob_actual);
    }
    println!("saved {} and {}", cm.display(), tl.display());
    Ok(())
}

/// fastai's ImageClassifierCleaner as text: each class's `k` hardest images of `split`.
pub fn clean(model: &Path, data: &DataArgs, split: kiln::cleaner::Split, k: usize, device: DeviceChoice) -> Result<(), String> {
    let (mut learner, _) = open_for(model, device)?;
    let dls = load(data)?;
    let cleaner = pollster::block_on(learner.cleaner(&dls, split, &mut |_| {})).map_err(|e| e.to_string())?;
    for class in &cleaner.classes {
        println!("{class} (hardest first: loss, file, predicted, probability of {class}):");
        for r in cleaner.class_rows(class).take(k) {
            println!("  {:>6.2}  {}  {}  {:.2}", r.loss, r.file, r.predicted, r.prob_label);
        }
    }
    println!("To fix labels, list them in a CSV (file,old_label,action,new_label; action relabel or delete) and pass it with --changes.");
    Ok(())
}

/// The model as ONNX or a fastai/PyTorch state dict, beside it unless `output` names a file.
pub fn export(model: &Path, format: ExportFormat, output: Option<PathBuf>) -> Result<(), String> {
    let learner = open(model, &Device::flex())?;
    let to = match format {
        ExportFormat::Onnx => Format::Onnx,
        ExportFormat::Pytorch => Format::PyTorch,
    };
    let out = pollster::block_on(export::write(&learner, to)).map_err(|e| format!("{}: {e}", model.display()))?;
    let output = output.unwrap_or_else(|| model.with_extension(to.extension()));
    write_atomic(&output, &out)?;
    let (size, arch, n) = (learner.config.aug.size, &learner.config.model.arch, learner.classes.len());
    match format {
        ExportFormat::Onnx => println!(
            "saved {} ({}, {n} classes, opset {}): input `image` RGB float32 in [0, 1], [N, 3, H, W], the photo's centre square at any size (the graph resizes it to {} px, then {size}); output `probabilities`",
            output.display(),
            arch.name(),
            export::onnx::OPSET,
            learner.presize,
        ),
        ExportFormat::Pytorch => println!(
            "saved {}: load it into fastai's vision_learner(dls, '{}', n_out={n}, {}) with learn.model.load_state_dict(safetensors.torch.load_file(...)) (see docs/EXPORT.md)",
            output.display(),
            export::pytorch::fastai_arch(arch).map_err(|e| e.to_string())?,
            learner.config.fastai_args(),
        ),
    }
    Ok(())
}

/// A saved model opened on the device `choice` picks for it (`auto` measures the model's own
/// work, read from the file).
pub fn open_for(model: &Path, choice: DeviceChoice) -> Result<(Learner, kiln::device::Selected), String> {
    if choice != DeviceChoice::Auto {
        let selected = kiln::device::select_native(choice)?;
        eprintln!("device: {}", selected.description);
        return Ok((open(model, &selected.device)?, selected));
    }
    let on_cpu = open(model, &Device::flex())?;
    let selected = super::device::for_work(choice, &on_cpu.config)?;
    let learner = if kiln::device::is_cpu(&selected.device) { on_cpu } else { open(model, &selected.device)? };
    Ok((learner, selected))
}
