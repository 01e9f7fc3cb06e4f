//! The `kiln` command line: a thin shell that reads files, calls the core and prints (its
//! parts are in `cli/`).

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::{data, model, predict, project, train, weights};
use kiln::learner::LearnerOptions;
use kiln::learner::{FineTune, LrFindConfig};
use kiln::schedule::{Lr, OneCycle};

fn run(cli: Cli) -> Result<(), String> {
    kiln::device::set_autotune(cli.autotune).map_err(|e| format!("--autotune: {e}"))?;
    match cli.command {
        Command::Weights { command } => weights::run(command),
        Command::ProbeGpu => cli::device::probe_gpu_child(),
        Command::Summary { data } => {
            print!("{}", data::load(&data)?.summary());
            Ok(())
        }
        Command::Samples { output, side, photos, crops_per_cell } => data::samples(&output, side, photos.as_deref(), crops_per_cell),
        Command::ShowBatch { data, output, size, n, no_flip, device } => data::show(&data, &output, size, n, no_flip, device),
        Command::Train { data, model, epochs, lr, save_project, output } => {
            let (dls, mut learner, source) = train::new_learner(&data, &model)?;
            let report = train::fit(&mut learner, |l, cancel, on_event| {
                pollster::block_on(l.fit_one_cycle(&dls, epochs, Lr::Single(lr), &OneCycle::default(), cancel, on_event))
            })?;
            train::finish(&learner, report, &output)?;
            let settings = project::page_settings(&LearnerOptions::of(&learner.config), source.options(), "fit_one_cycle", epochs, 0, lr);
            save_project.map_or(Ok(()), |p| project::save(&p, &source, &learner, with_pretrained(settings, &model), &[&data.dir, &output]))
        }
        Command::FineTune { data, model, epochs, base_lr, freeze_epochs, save_project, output } => {
            let (dls, mut learner, source) = train::new_learner(&data, &model)?;
            if let Some(p) = kiln::learner::small_data::propose(dls.train.len()).filter(|p| model.bs > p.batch_size) {
                eprintln!("note: {} Try --bs {} --epochs {}.", p.why, p.batch_size, p.epochs);
            }
            let opts = FineTune::default().with_base_lr(base_lr).with_freeze_epochs(freeze_epochs);
            let report = train::fit(&mut learner, |l, cancel, on_event| pollster::block_on(l.fine_tune(&dls, epochs, &opts, cancel, on_event)))?;
            train::finish(&learner, report, &output)?;
            let settings = project::page_settings(&LearnerOptions::of(&learner.config), source.options(), "fine_tune", epochs, freeze_epochs, base_lr);
            save_project.map_or(Ok(()), |p| project::save(&p, &source, &learner, with_pretrained(settings, &model), &[&data.dir, &output]))
        }
        Command::Fit { model, data, epochs, lr_max, unfreeze, freeze, device, save_project, output } => {
            let (dls, mut learner, source) = train::continue_learner(&model, &data, device, unfreeze, freeze, &output)?;
            let sched = OneCycle::default();
            let report = train::fit(&mut learner, |l, cancel, on_event| pollster::block_on(l.fit_one_cycle(&dls, epochs, lr_max, &sched, cancel, on_event)))?;
            train::finish(&learner, report, &output)?;
            // The page's Settings stay as the project had them: this was training by hand.
            save_project.map_or(Ok(()), |p| project::save(&p, &source, &learner, Default::default(), &[&data.dir, &model, &output]))
        }
        Command::LrFind { data, model, saved, unfreeze, start_lr, end_lr, num_it, output } => {
            let (dls, mut learner, _) = match saved {
                Some(path) => train::continue_learner(&path, &data, model.device, unfreeze, false, &output)?,
                None => train::new_learner(&data, &model)?,
            };
            train::lr_find(&dls, &mut learner, &LrFindConfig { start_lr, end_lr, num_it, stop_div: true }, &output)
        }
        Command::Interpret { model, data, k, min_val, device, output } => model::interpret(&model, &data, k, min_val, device, &output),
        Command::Clean { model, data, split, k, device } => model::clean(&model, &data, split, k, device),
        Command::Export { model, format, output } => model::export(&model, format, output),
        Command::Predict { model, paths, device, csv, sort_into, move_files, threshold, batch_size } => predict::predict(&predict::PredictArgs {
            model: &model,
            paths: &paths,
            device,
            csv: csv.as_deref(),
            sort_into: sort_into.as_deref(),
            move_files,
            threshold,
            batch_size,
        }),
    }
}

/// The page's "Start from pretrained weights" box, as the CLI's flags set it.
fn with_pretrained(mut settings: serde_json::Map<String, serde_json::Value>, m: &cli::args::ModelArgs) -> serde_json::Map<String, serde_json::Value> {
    let pretrained = !m.no_pretrained && !matches!(m.arch, kiln::model::Arch::Custom(_));
    settings.insert("pretrained".into(), pretrained.into());
    settings
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
