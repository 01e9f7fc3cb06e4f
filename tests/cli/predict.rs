//! `kiln predict` over folders: the CSV, and photos sorted into class folders without
//! overwriting anything, bad files named, moved only once copied.

use std::fs;
use std::path::Path;

use super::{kiln, text, tmp};

/// Every file under `dir` (relative path → bytes).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn predict_sorts_folders_by_class_names_bad_files_and_never_overwrites() {
    let digits = tmp("digits-sort");
    assert!(kiln(&["samples", "-o", &digits, "--side", "16"]).status.success());
    let model = tmp("digits-sort.kiln");
    let o = kiln(&["train", &digits, "--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "64", "--epochs", "1", "--no-flip", "--device", "cpu", "-o", &model]);
    assert!(o.status.success(), "{}", text(&o));
    let classes: Vec<String> = {
        let mut c: Vec<String> = fs::read_dir(&digits).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        c.sort();
        c
    };

    // Unsorted photos: twelve digits in two folders, two of them called x.png, and a text file
    // named like a photo.
    let unsorted = Path::new(&tmp("unsorted")).to_path_buf();
    let _ = fs::remove_dir_all(&unsorted);
    for (i, class) in classes.iter().take(6).enumerate() {
        let first = fs::read_dir(Path::new(&digits).join(class)).unwrap().next().unwrap().unwrap().path();
        let sub = unsorted.join(if i % 2 == 0 { "a" } else { "b" });
        fs::create_dir_all(&sub).unwrap();
        fs::copy(&first, sub.join(format!("photo{i}.png"))).unwrap();
        fs::copy(&first, sub.join(if i < 2 { "x.png".to_string() } else { format!("copy{i}.png") })).unwrap();
    }
    fs::write(unsorted.join("a/notes.jpg"), b"shopping list, not a photo").unwrap();
    let before = tree(&unsorted);

    // A sorted folder that already holds an x.png in every class (and in unsure/).
    let sorted = Path::new(&tmp("sorted")).to_path_buf();
    let _ = fs::remove_dir_all(&sorted);
    for class in classes.iter().map(String::as_str).chain(["unsure"]) {
        fs::create_dir_all(sorted.join(class)).unwrap();
        fs::write(sorted.join(class).join("x.png"), b"the user's own file").unwrap();
    }
    let csv = tmp("sorted.csv");
    let o = kiln(&["predict", &model, unsorted.to_str().unwrap(), "--sort-into", sorted.to_str().unwrap(), "--csv", &csv, "--device", "cpu"]);
    let t = text(&o);
    assert!(!o.status.success(), "a file that could not be predicted fails the command: {t}");
    assert!(t.contains("notes.jpg:") && t.contains("1 of 13 files could not be predicted"), "{t}");
    assert_eq!(tree(&unsorted), before, "copying leaves the originals as they were");

    // The CSV: a header with every class, one row per photo, probabilities that sum to 1.
    let csv = fs::read_to_string(&csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), format!("file,class,probability,{}", classes.join(",")));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert!(r[0].starts_with(&unsorted.to_string_lossy().replace('\\', "/")) && classes.iter().any(|c| c == r[1]), "{r:?}");
        let probs: Vec<f64> = r[3..].iter().map(|p| p.parse().unwrap()).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4 && probs.iter().cloned().fold(0.0, f64::max) == r[2].parse::<f64>().unwrap(), "{r:?}");
    }

    // Every photo is in its predicted class's folder, byte for byte; the user's x.png files are
    // untouched and the two incoming ones got new names.
    let out = tree(&sorted);
    for r in &rows {
        let src = fs::read(r[0]).unwrap();
        let name = Path::new(r[0]).file_name().unwrap().to_string_lossy().into_owned();
        let copies: Vec<&(String, Vec<u8>)> = out.iter().filter(|(p, b)| p.starts_with(&format!("{}/", r[1])) && *b == src).collect();
        assert!(!copies.is_empty(), "{name} is not in {}/", r[1]);
    }
    for class in classes.iter().map(String::as_str).chain(["unsure"]) {
        assert_eq!(fs::read(sorted.join(class).join("x.png")).unwrap(), b"the user's own file", "{class}/x.png was overwritten");
    }
    assert_eq!(out.iter().filter(|(p, _)| p.ends_with("/x (2).png") || p.ends_with("/x (3).png")).count(), 2, "{:?}", out.iter().map(|o| &o.0).collect::<Vec<_>>());
    assert_eq!(out.len(), classes.len() + 1 + 12);

    // --move with a threshold no prediction reaches: everything to unsure/, then the originals go.
    fs::remove_file(unsorted.join("a/notes.jpg")).unwrap();
    let photos = tree(&unsorted);
    let moved = Path::new(&tmp("moved")).to_path_buf();
    let _ = fs::remove_dir_all(&moved);
    let o = kiln(&["predict", &model, unsorted.to_str().unwrap(), "--sort-into", moved.to_str().unwrap(), "--move", "--threshold", "1", "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(tree(&unsorted).is_empty(), "moved files are removed");
    let got = tree(&moved);
    assert!(got.iter().all(|(p, _)| p.starts_with("unsure/")), "{:?}", got.iter().map(|g| &g.0).collect::<Vec<_>>());
    let mut want: Vec<Vec<u8>> = photos.into_iter().map(|(_, b)| b).collect();
    let mut have: Vec<Vec<u8>> = got.into_iter().map(|(_, b)| b).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "every photo arrives byte for byte");

    // Bad values are named.
    let o = kiln(&["predict", &model, unsorted.to_str().unwrap(), "--threshold", "1.5"]);
    assert!(!o.status.success() && text(&o).contains("threshold 1.5"), "{}", text(&o));
    let o = kiln(&["predict", &model, "no/such/folder"]);
    assert!(!o.status.success() && text(&o).contains("no/such/folder does not exist"), "{}", text(&o));
}
