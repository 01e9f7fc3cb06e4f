//! `--changes FILE` (src/cli/data.rs): the page's cleaner CSV applied by the CLI, the user's
//! files untouched.

use crate::{kiln, text, tmp};

fn folder(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(tmp(name));
    let _ = std::fs::remove_dir_all(&dir);
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..6 {
            let img = image::RgbImage::from_pixel(10, 10, image::Rgb(if class == "cat" { [200, 20, 20] } else { [20, 20, 200] }));
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    dir
}

#[test]
fn summary_with_changes_relabels_and_leaves_out_without_touching_the_files() {
    let dir = folder("changes-data");
    let d = dir.to_string_lossy();
    // The page names files from the folder the user picked ("changes-data/cat/0.png").
    let csv = tmp("changes.csv");
    std::fs::write(&csv, "file,old_label,action,new_label\nchanges-data/cat/0.png,cat,relabel,dog\ncat/1.png,cat,delete,\n").unwrap();
    let plain = kiln(&["summary", &d, "--valid-pct", "0.5"]);
    assert!(plain.status.success(), "{}", text(&plain));
    let o = kiln(&["summary", &d, "--valid-pct", "0.5", "--changes", &csv]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("Changes: 2 of yours applied"), "{out}");
    assert!(out.contains("cat/1.png: removed by your changes"), "{out}");
    // 12 images before, 11 after: one cat fewer, one dog more (the relabelled cat).
    let total = |s: &str| s.lines().find(|l| l.contains("training and")).unwrap().to_string();
    assert!(total(&text(&plain)).starts_with("2 classes, 6 training and 6 validation"), "{}", text(&plain));
    assert!(total(&out).starts_with("2 classes, 5 training and 6 validation") || total(&out).starts_with("2 classes, 6 training and 5 validation"), "{out}");
    assert!(dir.join("cat/0.png").exists() && dir.join("cat/1.png").exists(), "the files stay where they were");

    // A change that does not fit names the CSV and the file; nothing runs.
    std::fs::write(&csv, "file,old_label,action,new_label\ncat/0.png,dog,delete,\n").unwrap();
    let o = kiln(&["summary", &d, "--changes", &csv]);
    assert!(!o.status.success());
    assert!(text(&o).contains("changes.csv") && text(&o).contains("cat/0.png") && text(&o).contains("labelled \"cat\""), "{}", text(&o));
}

#[test]
fn clean_lists_each_classs_hardest_images_and_train_takes_the_changes() {
    let dir = folder("clean-data");
    let d = dir.to_string_lossy();
    let model = tmp("clean.kiln");
    let o = kiln(&["train", &d, "--arch", "tiny", "--presize", "16", "--size", "16", "--bs", "4", "--epochs", "1", "--valid-pct", "0.5", "--device", "cpu", "-o", &model]);
    assert!(o.status.success(), "{}", text(&o));
    let o = kiln(&["clean", &model, &d, "--valid-pct", "0.5", "-k", "2", "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    // Two classes, two rows each, losses falling within a class.
    for class in ["cat", "dog"] {
        let block: Vec<&str> = out.lines().skip_while(|l| !l.starts_with(&format!("{class} (hardest first"))).skip(1).take_while(|l| l.starts_with("  ")).collect();
        assert_eq!(block.len(), 2, "{out}");
        let losses: Vec<f32> = block.iter().map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
        assert!(losses[0] >= losses[1] && block.iter().all(|l| l.contains(&format!("{class}/"))), "{out}");
    }
    let o = kiln(&["clean", &model, &d, "--split", "test"]);
    assert!(!o.status.success() && text(&o).contains("\"train\" or \"valid\""), "{}", text(&o));

    // train (as fine-tune) takes the changes: the summary it prints before training has them.
    let csv = tmp("clean-changes.csv");
    std::fs::write(&csv, "file,old_label,action,new_label\ncat/2.png,cat,delete,\n").unwrap();
    let o = kiln(&["train", &d, "--arch", "tiny", "--presize", "16", "--size", "16", "--bs", "4", "--epochs", "1", "--valid-pct", "0.5", "--device", "cpu", "--changes", &csv, "-o", &model]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Changes: 1 of yours applied") && text(&o).contains("cat/2.png: removed by your changes"), "{}", text(&o));
}
