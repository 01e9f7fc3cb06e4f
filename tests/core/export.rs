//! Export for use elsewhere: ONNX run by onnxruntime (npm's onnxruntime-node, a runtime that is
//! not Kiln) against Kiln's own `predict`, and the PyTorch state dict against the key/shape
//! manifest fastai itself wrote (tests/data/export, made by tests/fixtures/fastai_manifest.py).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::export;
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};

use crate::common::cpu;

const CLASSES: [&str; 3] = ["cat", "coffee", "rocket"];

fn learner(arch: Arch, size: usize) -> Learner {
    let config = LearnerConfig::new(ClassifierConfig::new(arch, CLASSES.len()), size).with_batch_size(4);
    Learner::new(config, CLASSES.iter().map(|c| c.to_string()).collect(), 2 * size as u32, &cpu()).unwrap()
}

fn photo(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}; run `bash scripts/fetch-assets.sh`", p.display()))
}

const PHOTOS: [&str; 4] = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"];

/// Two training steps on real photos, so weights and BatchNorm statistics are no longer their
/// initial values (a swapped mean and variance would show).
fn train_a_little(learner: &mut Learner) {
    let inputs: Vec<_> = PHOTOS.iter().map(|p| learner.predict_input(&photo(p)).unwrap()).collect();
    let batch = burn::tensor::Tensor::cat(inputs, 0);
    for _ in 0..2 {
        pollster::block_on(learner.train_step(batch.clone(), &[vec![0], vec![1], vec![2], vec![0]], &kiln::learner::Hypers { lrs: vec![1e-3, 1e-3, 1e-2], mom: 0.9 })).unwrap();
    }
}

/// Sets every parameter to a fixed pattern of small values (BatchNorm weights near 1), so a
/// model's predictions do not depend on random initialisation.
struct FixedValues;

impl burn::module::ModuleMapper for FixedValues {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<burn::tensor::Tensor<D>>) -> burn::module::Param<burn::tensor::Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let fan_in = if D > 1 { n / shape.dims::<D>()[D - 1].max(1) } else { 0 };
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let v = ((i * 7919 + 13) % 1000) as f32 / 1000.0 - 0.5;
                if D > 1 { v * 2.0 / (fan_in as f32).sqrt() } else { 1.0 + 0.2 * v }
            })
            .collect();
        let fixed = burn::tensor::Tensor::<D>::from_data(burn::tensor::TensorData::new(values, shape), &tensor.device());
        burn::module::Param::from_mapped_value(id, fixed, mapper)
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("export").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// onnxruntime-node's output for the batch of `n` square images of `side` px: (dims, values).
fn onnxruntime(model: &Path, input: &[f32], n: usize, side: usize) -> (Vec<usize>, Vec<f32>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/onnxruntime-node").is_dir(),
        "onnxruntime-node is not installed: run `npm ci` (the README's test command does)"
    );
    let input_path = model.with_extension("f32");
    std::fs::write(&input_path, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = Command::new("node")
        .current_dir(root)
        .args(["tests/fixtures/onnxruntime_run.mjs"])
        .arg(model)
        .arg(&input_path)
        .args([n.to_string(), side.to_string()])
        .output()
        .expect("node runs");
    assert!(out.status.success(), "onnxruntime failed on {}:\n{}", model.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"], serde_json::json!(["image"]));
    assert_eq!(v["outputs"], serde_json::json!(["probabilities"]));
    let dims = v["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let values = v["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect();
    (dims, values)
}

fn onnx_matches_predict(arch: Arch, size: usize) {
    onnx_matches(learner(arch, size));
}

fn onnx_matches(mut learner: Learner) {
    let multi = learner.config.loss_func.thresh().is_some();
    // One file per call: tests of the same architecture run at the same time.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = learner.config.model.arch.name().replace(['(', ')', '[', ']', ',', ' ', '='], "_") + if multi { "-sigmoid" } else { "" } + &format!("-{call}");
    train_a_little(&mut learner);
    let bytes = pollster::block_on(export::write(&learner, export::Format::Onnx)).unwrap();
    let path = tmp_dir("onnx").join(format!("{name}.onnx"));
    std::fs::write(&path, &bytes).unwrap();

    let mut input = Vec::new();
    let mut expected = Vec::new();
    for p in PHOTOS {
        let x = learner.predict_input(&photo(p)).unwrap();
        input.extend(x.into_data().try_to_vec::<f32>().unwrap());
        expected.push(pollster::block_on(learner.predict(&photo(p))).unwrap().probs);
    }
    // The presized crops: the graph's own resizes then do exactly what Kiln's do.
    let (dims, got) = onnxruntime(&path, &input, PHOTOS.len(), learner.presize as usize);
    assert_eq!(dims, [PHOTOS.len(), CLASSES.len()]);
    let mut worst = 0f32;
    for (i, want) in expected.iter().enumerate() {
        for (k, w) in want.iter().enumerate() {
            worst = worst.max((got[i * CLASSES.len() + k] - w).abs());
        }
    }
    // Near-uniform probabilities would hide a wrong graph: the photos must be told apart.
    let spread = expected.iter().flatten().fold(0f32, |m, &p| m.max((p - 1.0 / CLASSES.len() as f32).abs()));
    eprintln!("{name}: onnxruntime vs Kiln predict on {} photos: max |Δp| {worst:.2e} (largest distance from uniform {spread:.2})", PHOTOS.len());
    assert!(spread > 0.05, "{name}: the model is too close to uniform ({spread}) for the comparison to mean anything");
    assert!(worst <= 1e-4, "{name}: onnxruntime's probabilities differ from Kiln's by {worst}");
}

/// An app's ordinary preprocessing: the photo's centre square at its own size, cropped here
/// with the image crate's plain crop (no resize at all), straight into onnxruntime. The graph's
/// antialiased resize to the presize and bilinear resize to 64 px must give Kiln's prediction,
/// where a resize straight to 64 px (PIL's, a canvas's) did not (issue 32: "malamute 0.965" in
/// Kiln, "terrier 0.76" in onnxruntime).
#[test]
fn onnx_takes_the_centre_square_at_any_size_and_resizes_as_kiln_does() {
    let config = LearnerConfig::new(ClassifierConfig::new(Arch::EfficientNetLite0, CLASSES.len()), 64).with_batch_size(4);
    let learner = Learner::new(config, CLASSES.iter().map(|c| c.to_string()).collect(), 460, &cpu()).unwrap();
    let mut learner = learner;
    // The bundled ImageNet body under a head of fixed values: the same model whatever else runs
    // (a random head draws from burn's one process-wide generator, which tests training at the
    // same time also draw from; a model trained a step or two here saturates).
    let weights = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/efficientnet-lite0-57934424.pth")).unwrap();
    let (arch, body) = export::load_weights(&weights, None, &learner.device).unwrap();
    learner.load_pretrained(body, &arch).unwrap();
    learner.model.head = burn::module::Module::map(learner.model.head.clone(), &mut FixedValues);
    let bytes = pollster::block_on(export::write(&learner, export::Format::Onnx)).unwrap();
    let path = tmp_dir("onnx").join("any-size.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let (mut worst, mut spread) = (0f32, 0f32);
    for p in PHOTOS {
        let img = image::load_from_memory(&photo(p)).unwrap().to_rgb8();
        let side = img.width().min(img.height());
        let square = image::imageops::crop_imm(&img, (img.width() - side) / 2, (img.height() - side) / 2, side, side).to_image();
        let (w, h) = square.dimensions();
        let chw: Vec<f32> = (0..3).flat_map(|c| square.pixels().map(move |px| px[c] as f32 / 255.0)).collect();
        assert_eq!(chw.len(), 3 * (w * h) as usize);
        let (dims, got) = onnxruntime(&path, &chw, 1, side as usize);
        assert_eq!(dims, [1, CLASSES.len()]);
        let want = pollster::block_on(learner.predict(&photo(p))).unwrap().probs;
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let diff = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{p} ({side} px square): Kiln {want:?}, onnxruntime {got:?}, max |Δp| {diff:.2e}");
        assert_eq!(argmax(&got), argmax(&want), "{p}: onnxruntime's class differs from Kiln's");
        worst = worst.max(diff);
        spread = spread.max(want.iter().fold(0f32, |m, &q| m.max((q - 1.0 / CLASSES.len() as f32).abs())));
    }
    assert!(spread > 0.05, "the model is too close to uniform ({spread}) for the comparison to mean anything");
    // Measured with this head: 3–6e-3 on three photos, 6.2e-2 on chelsea.png (300 px, the
    // largest upscale to the presize). Kiln rounds the presize to 8 bits where the graph stays
    // in floats; that chelsea differs ten times more is not explained yet. A resize straight to
    // 64 px differed by up to 0.2 and named other classes (the issue's figures).
    assert!(worst <= 0.1, "onnxruntime's probabilities differ from Kiln's by {worst} on the photos' own crops");
}

/// One sigmoid per class ("none of these"): the graph ends in a Sigmoid, and says so.
#[test]
fn onnx_of_a_sigmoid_model_gives_kilns_probabilities_in_onnxruntime() {
    let config = LearnerConfig::new(ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny()), CLASSES.len()), 48)
        .with_batch_size(4)
        .with_loss_func(kiln::loss::LossFunc::Bce { thresh: 0.5 });
    let learner = Learner::new(config, CLASSES.iter().map(|c| c.to_string()).collect(), 96, &cpu()).unwrap();
    let bytes = pollster::block_on(export::write(&learner, export::Format::Onnx)).unwrap();
    assert!(bytes.windows(7).any(|w| w == b"Sigmoid") && !bytes.windows(7).any(|w| w == b"Softmax"));
    assert!(bytes.windows(33).any(|w| w == b"BCEWithLogitsLossFlat(thresh=0.5)"));
    onnx_matches(learner);
}

#[test]
fn onnx_tiny_resnet_gives_kilns_probabilities_in_onnxruntime() {
    onnx_matches_predict(Arch::Custom(ResNetConfig::tiny()), 48);
}

#[test]
fn onnx_resnet18_gives_kilns_probabilities_in_onnxruntime() {
    onnx_matches_predict(Arch::ResNet18, 64);
}

#[test]
fn onnx_resnet34_gives_kilns_probabilities_in_onnxruntime() {
    onnx_matches_predict(Arch::ResNet34, 64);
}

#[test]
fn onnx_resnet50_gives_kilns_probabilities_in_onnxruntime() {
    onnx_matches_predict(Arch::ResNet50, 64);
}

#[test]
fn onnx_efficientnet_lite0_gives_kilns_probabilities_in_onnxruntime() {
    // An odd size: TF "same" padding is asymmetric at every stride-2 convolution.
    onnx_matches_predict(Arch::EfficientNetLite0, 70);
}

fn manifest_arch(file: &str) -> &str {
    if file == "efficientnet_lite0" { "tf_efficientnet_lite0" } else { file }
}

/// fastai's key → (shape, dtype), from the committed manifest.
fn manifest(arch: &str) -> BTreeMap<String, (Vec<usize>, String)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/export/fastai-{arch}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(v["n_out"], CLASSES.len());
    v["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| {
            let shape = s[0].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (k.clone(), (shape, s[1].as_str().unwrap().to_string()))
        })
        .collect()
}

#[test]
fn pytorch_export_has_fastais_keys_and_shapes_for_every_architecture() {
    for (arch, file) in [
        (Arch::ResNet18, "resnet18"),
        (Arch::ResNet34, "resnet34"),
        (Arch::ResNet50, "resnet50"),
        (Arch::ResNet101, "resnet101"),
        (Arch::ResNet152, "resnet152"),
        (Arch::EfficientNetLite0, "efficientnet_lite0"),
    ] {
        let learner = learner(arch, 32);
        let bytes = pollster::block_on(export::write(&learner, export::Format::PyTorch)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let got: BTreeMap<String, (Vec<usize>, String)> = st
            .tensors()
            .into_iter()
            .map(|(k, v)| {
                let dtype = match v.dtype() {
                    safetensors::Dtype::F32 => "float32",
                    safetensors::Dtype::I64 => "int64",
                    other => panic!("{k}: unexpected dtype {other:?}"),
                };
                (k, (v.shape().to_vec(), dtype.to_string()))
            })
            .collect();
        let want = manifest(file);
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{file}: missing {missing:?}, unexpected {extra:?}");
        for (k, w) in &want {
            assert_eq!(&got[k], w, "{file}: {k}");
        }
        // Linear weights are [out, in]: the last layer's row k is class k's weights.
        let lin2 = learner.model.head.lin2.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let exported = st.tensor("1.8.weight").unwrap();
        let first_row: Vec<f32> = exported.data()[..4 * 512].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let column0: Vec<f32> = lin2.chunks(CLASSES.len()).map(|r| r[0]).collect();
        assert_eq!(first_row, column0, "{file}: 1.8.weight is not lin2 transposed");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["classes"], r#"["cat","coffee","rocket"]"#);
        assert!(meta["fastai"].contains(&format!("'{}', n_out=3", manifest_arch(file))), "{}", meta["fastai"]);
    }
}

/// vision_learner's head options, all changed from fastai's defaults: the PyTorch export has the
/// keys fastai builds for `create_vision_model(resnet18, 3, concat_pool=False, lin_ftrs=[256],
/// ps=0.25, first_bn=False, bn_final=True)`, the metadata says so, and the ONNX graph follows.
fn head_options(arch: Arch, size: usize) -> Learner {
    with_head(arch, size, kiln::model::HeadOptions::default().with_hidden(256).with_ps(0.25).with_concat_pool(false).with_first_bn(false).with_bn_final(true))
}

fn with_head(arch: Arch, size: usize, head: kiln::model::HeadOptions) -> Learner {
    let model = ClassifierConfig::new(arch, CLASSES.len()).with_head(head);
    let config = LearnerConfig::new(model, size).with_batch_size(4);
    Learner::new(config, CLASSES.iter().map(|c| c.to_string()).collect(), 2 * size as u32, &cpu()).unwrap()
}

#[test]
fn a_head_with_other_options_exports_as_fastai_builds_it() {
    let learner = head_options(Arch::ResNet18, 32);
    assert!(learner.model.head.bn1.is_none() && learner.model.head.bn_final.is_some());
    let bytes = pollster::block_on(export::write(&learner, export::Format::PyTorch)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let got: BTreeMap<String, Vec<usize>> = st.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec())).collect();
    let want: BTreeMap<String, Vec<usize>> = manifest("resnet18-head").into_iter().map(|(k, (shape, _))| (k, shape)).collect();
    assert_eq!(got, want);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let fastai = &meta.metadata().as_ref().unwrap()["fastai"];
    assert!(fastai.contains("concat_pool=False, lin_ftrs=[256], ps=0.25, first_bn=False, bn_final=True"), "{fastai}");
    onnx_matches(head_options(Arch::Custom(ResNetConfig::tiny()), 48));

    // lin_first, with and without its BatchNorm, and two hidden layers: fastai's layout for each.
    for (file, lin_first, first_bn, lin_ftrs) in [
        ("resnet18-lin-first", true, true, &[512][..]),
        ("resnet18-lin-first-no-bn", true, false, &[512]),
        ("resnet18-lin-ftrs", false, true, &[256, 128]),
        ("resnet18-lin-ftrs-lin-first", true, false, &[256, 128]),
    ] {
        let head = kiln::model::HeadOptions::default().with_lin_first(lin_first).with_first_bn(first_bn).with_lin_ftrs(lin_ftrs);
        let learner = with_head(Arch::ResNet18, 32, head.clone());
        let bytes = pollster::block_on(export::write(&learner, export::Format::PyTorch)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let got: BTreeMap<String, Vec<usize>> = st.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec())).collect();
        let want: BTreeMap<String, Vec<usize>> = manifest(file).into_iter().map(|(k, (shape, _))| (k, shape)).collect();
        assert_eq!(got, want, "{file}");
        onnx_matches(with_head(Arch::Custom(ResNetConfig::tiny()), 48, head));
    }
}

#[test]
fn export_refuses_what_it_cannot_write_and_names_foreign_model_files() {
    let tiny = learner(Arch::Custom(ResNetConfig::tiny()), 32);
    let e = pollster::block_on(export::write(&tiny, export::Format::PyTorch)).err().expect("no fastai model for the tiny ResNet").to_string();
    assert!(e.contains("ONNX"), "{e}");

    // An ONNX file or a PyTorch state dict given where a .kiln is expected says what it is.
    let onnx = pollster::block_on(export::write(&tiny, export::Format::Onnx)).unwrap();
    let e = export::from_bytes(&onnx, &cpu()).err().unwrap().to_string();
    assert!(e.contains("an ONNX model") && e.contains(".kiln"), "{e}");
    let r18 = pollster::block_on(export::write(&learner(Arch::ResNet18, 32), export::Format::PyTorch)).unwrap();
    let e = export::from_bytes(&r18, &cpu()).err().unwrap().to_string();
    assert!(e.contains("PyTorch or safetensors weights") && e.contains("import it as weights"), "{e}");
    // …and given back as weights, a whole fastai model says it is one.
    let e = kiln::export::load_weights(&r18, None, &cpu()).err().unwrap().to_string();
    assert!(e.contains("whole fastai model") && e.contains(".kiln"), "{e}");
    let e = export::from_bytes(b"hello", &cpu()).err().unwrap().to_string();
    assert!(e.contains("not a Kiln model file"), "{e}");
}
