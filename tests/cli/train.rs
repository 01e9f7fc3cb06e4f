//! Training by hand from the command line (src/cli/train.rs): `kiln fit` continues a saved
//! model with fastai's slices, numbering on from its epoch table; `lr-find --model`.

use crate::{kiln, text, tmp};

/// The epoch numbers of the table `kiln` printed, for rows of `phase`.
fn numbers(out: &str, phase: &str) -> Vec<usize> {
    out.lines().filter_map(|l| l.strip_prefix(phase)?.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn fit_continues_a_saved_model_and_never_overwrites_it() {
    let digits = tmp("fit-digits");
    let _ = std::fs::remove_dir_all(&digits);
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    let (first, more) = (tmp("fit-first.kiln"), tmp("fit-more.kiln"));
    let tiny = ["--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "32", "--device", "cpu"];
    let o = kiln(&[&["fine-tune", &digits, "--epochs", "1", "-o", &first][..], &tiny[..]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!((numbers(&text(&o), "frozen"), numbers(&text(&o), "unfrozen")), (vec![0], vec![1]));

    let o = kiln(&["fit", &first, &digits, "--epochs", "2", "--unfreeze", "--lr-max", "1e-4,1e-2", "--device", "cpu", "-o", &more]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("after 2 epoch(s), unfrozen"), "{out}");
    assert_eq!(numbers(&out, "fit"), [2, 3], "the table numbers on: {out}");

    // Saved with its history: the next fit goes on from 4, frozen as asked.
    let again = tmp("fit-again.kiln");
    let o = kiln(&["fit", &more, &digits, "--freeze", "--device", "cpu", "-o", &again]);
    assert!(text(&o).contains("after 4 epoch(s), frozen"), "{}", text(&o));
    assert_eq!(numbers(&text(&o), "fit"), [4]);

    // lr_find on the saved model, unfrozen first (the book's step before fit_one_cycle(slice)).
    let plot = tmp("fit-lr.png");
    let o = kiln(&["lr-find", &digits, "--model", &more, "--unfreeze", "--num-it", "20", "-o", &plot]);
    assert!(o.status.success() && std::path::Path::new(&plot).exists(), "{}", text(&o));

    // The model read is never the one written; bad rates and other classes are named.
    let before = std::fs::read(&more).unwrap();
    let o = kiln(&["fit", &more, &digits, "--device", "cpu", "-o", &more]);
    assert!(!o.status.success() && text(&o).contains("is the model being read"), "{}", text(&o));
    assert_eq!(std::fs::read(&more).unwrap(), before);
    let o = kiln(&["fit", &more, &digits, "--lr-max", "1e-2,1e-4", "-o", &again]);
    assert!(!o.status.success() && text(&o).contains("lo ≤ hi"), "{}", text(&o));
    let other = tmp("fit-other");
    let _ = std::fs::remove_dir_all(&other);
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(format!("{other}/{class}")).unwrap();
        for i in 0..4 {
            image::RgbImage::from_pixel(10, 10, image::Rgb([i * 40, 20, 20])).save(format!("{other}/{class}/{i}.png")).unwrap();
        }
    }
    let o = kiln(&["fit", &more, &other, "--device", "cpu", "-o", &again]);
    assert!(!o.status.success() && text(&o).contains("trained on the classes 0, 1"), "{}", text(&o));
}

/// `--multi-label`: one sigmoid per class, fastai's accuracy_multi in the table, and photos of
/// none of the classes predicted (and sorted) as "none of these".
#[test]
fn multi_label_models_say_none_of_these_from_the_command_line() {
    let digits = tmp("multi-digits");
    let _ = std::fs::remove_dir_all(&digits);
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    let others = tmp("multi-others");
    let _ = std::fs::remove_dir_all(&others);
    std::fs::create_dir_all(&others).unwrap();
    for d in 5..10 {
        std::fs::rename(format!("{digits}/{d}"), format!("{others}/{d}")).unwrap();
    }
    let model = tmp("multi.kiln");
    let o = kiln(&["train", &digits, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "32", "--epochs", "4", "--lr", "1e-2", "--no-flip", "--device", "cpu", "--multi-label", "-o", &model]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("accuracy_multi"), "{}", text(&o));
    let sorted = tmp("multi-sorted");
    let _ = std::fs::remove_dir_all(&sorted);
    let o = kiln(&["predict", &model, &others, "--device", "cpu", "--sort-into", &sorted]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let none = std::fs::read_dir(format!("{sorted}/none-of-these")).map(|d| d.count()).unwrap_or(0);
    assert!(none > 0 && none < 896, "{none} of the 896 photos of 5 to 9 sorted into none-of-these/: {out}");
    let one = format!("{others}/7/{}", std::fs::read_dir(format!("{others}/7")).unwrap().next().unwrap().unwrap().file_name().to_string_lossy());
    let o = kiln(&["predict", &model, &one, "--device", "cpu"]);
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    let shown = line.strip_prefix(&format!("{one}: ")).and_then(|r| r.split(" (").next()).unwrap_or_default().to_string();
    assert!(shown == "none of these" || shown.split(", ").all(|c| ["0", "1", "2", "3", "4"].contains(&c)), "{line}");
    let o = kiln(&["train", &digits, "--thresh", "0.7", "-o", &model]);
    assert!(!o.status.success() && text(&o).contains("--multi-label"), "--thresh needs --multi-label: {}", text(&o));
}

/// `--labels-csv`: fastai's from_csv layout, several labels a photo (and none), trained with one
/// sigmoid per class without asking; predict names both classes of a photo of both.
#[test]
fn a_labels_csv_trains_a_multi_label_model_from_the_command_line() {
    let dir = tmp("labels-csv");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(format!("{dir}/photos")).unwrap();
    let mut csv = String::from("fname,labels\n");
    let png = |path: String, c: [u8; 3]| image::RgbImage::from_pixel(12, 10, image::Rgb(c)).save(path).unwrap();
    for i in 0..16u8 {
        let v = 180 + i * 4;
        for (kind, colour, labels) in [("r", [v, 20, 20], "red"), ("b", [20, 20, v], "blue"), ("m", [v, 20, v], "blue red"), ("g", [20, v, 20], "")] {
            png(format!("{dir}/photos/{kind}{i}.png"), colour);
            csv.push_str(&format!("{kind}{i}.png,{labels}\n"));
        }
    }
    let labels = format!("{dir}/labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let model = format!("{dir}/model.kiln");
    let photos = format!("{dir}/photos");
    let o = kiln(&["train", &photos, "--labels-csv", &labels, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "16", "--epochs", "12", "--lr", "2e-2", "--no-flip", "--device", "cpu", "-o", &model]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Several labels a photo (16 with none)") && out.contains("one sigmoid per class") && out.contains("accuracy_multi"), "{out}");
    let both = format!("{dir}/both.png");
    png(both.clone(), [230, 20, 230]);
    let o = kiln(&["predict", &model, &both, "--device", "cpu"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{both}: blue, red")), "{}", text(&o));
    let o = kiln(&["interpret", &model, &photos, "--labels-csv", &labels, "--device", "cpu", "-o", &dir]);
    assert!(o.status.success() && text(&o).contains("per class"), "{}", text(&o));
    // A CSV that does not parse is named with what is wrong.
    std::fs::write(&labels, "file\nr0.png\n").unwrap();
    let o = kiln(&["train", &photos, "--labels-csv", &labels, "-o", &model]);
    assert!(!o.status.success() && text(&o).contains("labels.csv") && text(&o).contains("first line"), "{}", text(&o));
}

/// vision_learner's options from the command line: the model file keeps them, `fit` goes on
/// with them, and the fastai export names them for the notebook.
#[test]
fn vision_learner_options_from_the_command_line() {
    let digits = tmp("options-digits");
    let _ = std::fs::remove_dir_all(&digits);
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    let model = tmp("options.kiln");
    let o = kiln(&[
        "train", &digits, "--arch", "resnet18", "--no-pretrained", "--size", "16", "--presize", "16", "--bs", "64", "--epochs", "1", "--no-flip", "--device", "cpu",
        "--loss-func", "LabelSmoothingCrossEntropy", "--lin-ftrs", "128", "--ps", "0.2", "--no-concat-pool", "--no-first-bn", "--bn-final", "--wd", "0.05", "--wd-bn-bias",
        "--no-train-bn", "--moms", "0.9,0.8,0.9", "-o", &model,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let st = tmp("options.safetensors");
    let o = kiln(&["export", &model, "--format", "pytorch", "-o", &st]);
    let want = "concat_pool=False, lin_ftrs=[128], ps=0.2, first_bn=False, bn_final=True, loss_func=LabelSmoothingCrossEntropy(eps=0.1), wd=0.05, wd_bn_bias=True, train_bn=False, moms=(0.9, 0.8, 0.9)";
    assert!(o.status.success() && text(&o).contains(want), "{}", text(&o));
    let more = tmp("options-more.kiln");
    assert!(kiln(&["fit", &model, &digits, "--epochs", "1", "--device", "cpu", "-o", &more]).status.success());
    let o = kiln(&["export", &more, "--format", "pytorch", "-o", &st]);
    assert!(text(&o).contains(want), "fit keeps the options: {}", text(&o));
    let o = kiln(&["train", &digits, "--loss-func", "FocalLoss", "-o", &model]);
    assert!(!o.status.success() && text(&o).contains("LabelSmoothingCrossEntropy"), "{}", text(&o));
}

/// `--autotune` tunes kernels for the shapes of the first epoch and never again: the training
/// loader drops its short last batch and validation keeps one batch size (the short last one
/// padded on a GPU), so later epochs bring no new tuning keys. Each key tuned is one "Fastest
/// result" line of cubecl's autotune log, which the `cubecl.toml` in the working directory sends
/// to stdout between Kiln's epoch rows.
#[test]
fn autotune_tunes_in_the_first_epoch_only() {
    let digits = tmp("autotune-digits");
    let _ = std::fs::remove_dir_all(&digits);
    assert!(kiln(&["samples", "-o", &digits]).status.success());
    // 25 digits a class: 8 training batches of 24 (the rest dropped) and validation's short last
    // batch each epoch, so the shapes that could bring new keys all occur; the batches after the
    // first only cost lavapipe time.
    for class in std::fs::read_dir(&digits).unwrap() {
        let mut files: Vec<_> = std::fs::read_dir(class.unwrap().path()).unwrap().map(|f| f.unwrap().path()).collect();
        files.sort();
        files.iter().skip(25).for_each(|f| std::fs::remove_file(f).unwrap());
    }
    let dir = std::path::PathBuf::from(tmp("autotune-cwd"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cubecl.toml"), "[autotune.logger]\nstdout = true\nlevel = \"minimal\"\n").unwrap();
    let o = crate::kiln_command()
        .current_dir(&dir)
        .args(["--autotune", "train", &digits, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "24"])
        .args(["--epochs", "2", "--no-flip", "--device", "gpu", "-o", &tmp("autotune.kiln")])
        .output()
        .unwrap();
    let out = text(&o);
    if out.contains("no GPU adapter was found") {
        eprintln!("no wgpu adapter here: nothing to tune");
        return;
    }
    assert!(o.status.success(), "{out}");
    // Keys tuned before each epoch row.
    let (mut rows, mut keys) = (Vec::new(), 0);
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if line.starts_with("Fastest result") {
            keys += 1;
        } else if line.starts_with("fit ") {
            rows.push(keys);
            keys = 0;
        }
    }
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0] > 0, "nothing was tuned in the first epoch (is the autotune log on stdout?): {out}");
    assert_eq!(rows[1], 0, "new tuning keys in the second epoch: {rows:?}\n{out}");
}
