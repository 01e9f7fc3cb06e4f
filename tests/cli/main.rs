//! The `kiln` binary as a user runs it: pretrained weights from the command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod data;
mod predict;
mod project;
mod train;

fn kiln(args: &[&str]) -> Output {
    kiln_command().args(args).output().expect("kiln runs")
}

/// `kiln` with the device probe's cache in the tests' own folder, not the user's.
fn kiln_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env("KILN_CACHE_DIR", tmp("cache"));
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn asset(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(name);
    assert!(p.exists(), "{} is missing: run `bash scripts/fetch-assets.sh`", p.display());
    p.to_string_lossy().into_owned()
}

fn tmp(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn weights_import_then_predict_names_the_espresso() {
    let out = tmp("lite0.kiln");
    let o = kiln(&["weights", "import", &asset("efficientnet-lite0-57934424.pth"), "-o", &out]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("efficientnet_lite0 weights with its 1000-class classifier"), "{}", text(&o));
    let o = kiln(&["weights", "predict", "--weights", &out, &asset("photos/coffee.png")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("coffee.png: 967 "), "{}", text(&o));
}

#[test]
fn the_default_backbone_is_built_into_the_binary() {
    // A copy of the binary away from the source tree (as on another machine) needs no assets/.
    let dir = PathBuf::from(tmp("elsewhere"));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &copy).unwrap();
    let o = Command::new(&copy)
        .args(["weights", "predict", &asset("photos/coffee.png")])
        .current_dir(&dir)
        .env_remove("KILN_DEFAULT_WEIGHTS")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the bundled ImageNet checkpoint (efficientnet_lite0)"), "{}", text(&o));
    assert!(text(&o).contains("coffee.png: 967 "), "{}", text(&o));
}

#[test]
fn fine_tune_starts_from_the_bundled_backbone_by_default() {
    let crops = tmp("crops");
    let o = kiln(&["samples", "--photos", &asset("photos"), "--side", "32", "--crops-per-cell", "1", "-o", &crops]);
    assert!(o.status.success(), "{}", text(&o));
    let model = tmp("crops.kiln");
    let o = kiln(&["fine-tune", &crops, "--presize", "32", "--size", "32", "--bs", "16", "--epochs", "1", "--device", "cpu", "-o", &model]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("pretrained: efficientnet_lite0 weights from"), "{t}");
    assert!(t.contains("frozen") && t.contains("unfrozen"), "{t}");
    let o = kiln(&["predict", &model, &asset("photos/chelsea.png")]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn missing_or_wrong_weights_are_one_line_errors_that_say_what_to_do() {
    let crops = tmp("crops-errors");
    assert!(kiln(&["samples", "--photos", &asset("photos"), "--side", "16", "--crops-per-cell", "1", "-o", &crops]).status.success());
    let o = kiln(&["fine-tune", &crops, "--arch", "resnet34", "--device", "cpu"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--weights") && text(&o).contains("--no-pretrained"), "{}", text(&o));
    let o = kiln(&["fine-tune", &crops, "--arch", "resnet18", "--weights", &asset("efficientnet-lite0-57934424.pth"), "--device", "cpu"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("efficientnet_lite0") && text(&o).contains("resnet18"), "{}", text(&o));
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let o = kiln(&["weights", "import", &readme.to_string_lossy(), "-o", &tmp("x.kiln")]);
    assert!(!o.status.success());
    assert!(text(&o).contains("README.md") && text(&o).contains("PyTorch checkpoint"), "{}", text(&o));
}

/// On a headless machine (no XDG_RUNTIME_DIR) no graphics-stack error line appears; a saved
/// model is written whole (no partial file beside it); a damaged model file is refused with its
/// name and what to do.
#[test]
fn headless_output_is_clean_and_model_files_are_whole_or_refused() {
    let crops = tmp("crops-files");
    assert!(kiln(&["samples", "--photos", &asset("photos"), "--side", "16", "--crops-per-cell", "1", "-o", &crops]).status.success());
    let o = kiln_command().args(["summary", &crops, "--presize", "16"]).env_remove("XDG_RUNTIME_DIR").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("XDG_RUNTIME_DIR"), "{}", text(&o));
    let model = tmp("files.kiln");
    let o = kiln_command()
        .args(["train", &crops, "--arch", "tiny", "--presize", "16", "--size", "16", "--bs", "8", "--epochs", "1", "--device", "auto", "-o", &model])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("XDG_RUNTIME_DIR"), "{}", text(&o));
    let dir = Path::new(&model).parent().unwrap();
    let partial: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".partial-")).collect();
    assert!(partial.is_empty(), "a partial file was left: {:?}", partial.iter().map(|e| e.file_name()).collect::<Vec<_>>());
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let damaged = tmp("damaged.kiln");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = kiln(&["predict", &damaged, &asset("photos/chelsea.png")]);
    assert!(!o.status.success());
    assert!(text(&o).contains("damaged.kiln") && text(&o).contains("checksum"), "{}", text(&o));
}

#[test]
fn export_writes_onnx_and_refuses_damaged_or_foreign_files_without_writing() {
    let digits = tmp("digits-export");
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    let model = tmp("digits-export.kiln");
    let o = kiln(&["train", &digits, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "32", "--epochs", "1", "--no-flip", "--device", "cpu", "-o", &model]);
    assert!(o.status.success(), "{}", text(&o));

    let onnx = tmp("digits-export.onnx");
    let o = kiln(&["export", &model, "--format", "onnx", "-o", &onnx]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("opset 18") && text(&o).contains("[N, 3, H, W]") && text(&o).contains("to 16 px, then 16"), "{}", text(&o));
    assert!(std::fs::metadata(&onnx).unwrap().len() > 10_000);

    // The tiny ResNet has no fastai counterpart: a clear refusal, and no file.
    let pt = tmp("digits-export.safetensors");
    let o = kiln(&["export", &model, "--format", "pytorch", "-o", &pt]);
    assert!(!o.status.success() && text(&o).contains("export it as ONNX instead"), "{}", text(&o));
    assert!(!Path::new(&pt).exists());

    // One flipped byte: refused by the checksum, nothing written.
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let damaged = tmp("damaged.kiln");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = tmp("damaged.onnx");
    let o = kiln(&["export", &damaged, "--format", "onnx", "-o", &out]);
    assert!(!o.status.success() && text(&o).contains("damaged.kiln") && text(&o).contains("checksum"), "{}", text(&o));
    assert!(!Path::new(&out).exists());

    // A backbone .kiln (the wrong kind) is refused the same way.
    let backbone = tmp("export-backbone.kiln");
    assert!(kiln(&["weights", "import", &asset("efficientnet-lite0-57934424.pth"), "-o", &backbone]).status.success());
    let out = tmp("backbone.onnx");
    let o = kiln(&["export", &backbone, "--format", "onnx", "-o", &out]);
    assert!(!o.status.success() && text(&o).contains("holds a pretrained backbone, not a trained model"), "{}", text(&o));
    assert!(!Path::new(&out).exists());

    // An ONNX file where a model is expected says what it is and what to give instead.
    let o = kiln(&["predict", &onnx, &asset("photos/chelsea.png")]);
    assert!(!o.status.success() && text(&o).contains("an ONNX model") && text(&o).contains(".kiln"), "{}", text(&o));
}

#[test]
fn fp16_on_the_cpu_trains_in_f32_with_a_notice_or_fails_when_required() {
    let digits = tmp("digits-fp16");
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    let model = tmp("digits-fp16.kiln");
    let args = ["train", &digits, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "32", "--epochs", "1", "--no-flip", "--device", "cpu", "-o", &model];
    let o = kiln(&[&args[..], &["--fp16"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("fp16: mixed precision (fp16) needs a GPU with half precision; the CPU backend computes in f32; training in f32"), "{}", text(&o));
    let o = kiln(&[&args[..], &["--require-fp16"]].concat());
    assert!(!o.status.success() && text(&o).contains("--require-fp16: mixed precision (fp16) needs a GPU"), "{}", text(&o));
}

/// The same files, seed and thread count give the same epoch table; values the core checks are
/// refused with the value named, as the page refuses them.
#[test]
fn the_same_run_twice_gives_the_same_epoch_table_and_bad_values_are_named() {
    let crops = tmp("crops-repeat");
    assert!(kiln(&["samples", "--photos", &asset("photos"), "--side", "16", "--crops-per-cell", "1", "-o", &crops]).status.success());
    let run = |size: &str, out: &str| {
        let out = tmp(out);
        kiln(&["fine-tune", &crops, "--arch", "tiny", "--no-pretrained", "--size", size, "--presize", "16", "--bs", "8", "--micro-bs", "4", "--device", "cpu", "-o", &out])
    };
    // The epoch table's rows without their times.
    let table = |o: &Output| text(o).lines().filter(|l| l.starts_with("frozen") || l.starts_with("unfrozen")).map(|l| l[..l.len() - 6].to_string()).collect::<Vec<_>>();
    let (a, b) = (run("16", "repeat-a.kiln"), run("16", "repeat-b.kiln"));
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(table(&a).len(), 2, "{}", text(&a));
    assert_eq!(table(&a), table(&b), "two identical runs differ");
    let o = run("4", "never.kiln");
    assert!(!o.status.success() && text(&o).contains("image size 4"), "{}", text(&o));
    let o = kiln(&["summary", &crops, "--valid-pct", "1.5"]);
    assert!(!o.status.success() && text(&o).contains("validation fraction 1.5"), "{}", text(&o));
}

/// `--device auto` times the model's training pass on the CPU and on wgpu's adapter (lavapipe
/// in CI, a software adapter: the measurement decides, no rule) and takes the faster; a second
/// run with the same model and size reads the answer from the cache instead of probing again.
#[test]
fn auto_device_is_measured_once_then_remembered() {
    let crops = tmp("crops-auto");
    assert!(kiln(&["samples", "--photos", &asset("photos"), "--side", "16", "--crops-per-cell", "1", "-o", &crops]).status.success());
    let cache = tmp("cache-auto");
    let _ = std::fs::remove_dir_all(&cache);
    let train = || {
        let o = kiln_command()
            .env("KILN_CACHE_DIR", &cache)
            .args(["train", &crops, "--arch", "tiny", "--presize", "16", "--size", "16", "--bs", "8", "--epochs", "1", "--device", "auto", "-o", &tmp("auto.kiln")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let first = train();
    if first.contains("no GPU adapter was found") {
        eprintln!("no wgpu adapter here: nothing to measure against");
        return;
    }
    let line = first.lines().find(|l| l.contains("measured:")).unwrap_or_else(|| panic!("no measured device line:\n{first}"));
    assert!(line.contains("GPU") && line.contains("CPU") && line.contains(" ms"), "{line}");
    let saved = std::fs::read_to_string(Path::new(&cache).join("device-probe.json")).expect("the probe's cache");
    assert!(saved.contains("\"cpu\"") && saved.contains("firstMs") && saved.contains(" at 16 px"), "{saved}");
    // A GPU probe stopped at its limit (lavapipe compiling, here) loses, and says so.
    if saved.contains("\"timedOut\": true") {
        assert!(line.contains("the CPU, over ") && line.contains("GPU did not finish in "), "{line}");
        assert!(saved.contains("\"chosen\": \"cpu\""), "{saved}");
    }
    let second = train();
    assert!(second.contains("measured on an earlier run"), "{second}");
    assert!(second.contains(line.trim_start_matches("device: ")), "the cached choice differs:\n{line}\n{second}");
}
