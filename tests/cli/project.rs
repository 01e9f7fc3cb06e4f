//! Projects on the command line (src/cli/project.rs): `--save-project` after training, a
//! `.kilnproj` where a folder or a model goes, damaged files refused with nothing written.

use std::path::Path;

use crate::{kiln, text, tmp};

fn pets(name: &str) -> String {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (class, rgb) in [("cat", [200, 30, 30]), ("dog", [30, 30, 200])] {
        std::fs::create_dir_all(format!("{dir}/{class}")).unwrap();
        for i in 0..16u8 {
            image::RgbImage::from_pixel(12, 12, image::Rgb([rgb[0], rgb[1] + i * 8, rgb[2]])).save(format!("{dir}/{class}/{i}.png")).unwrap();
        }
    }
    std::fs::write(format!("{dir}/cat/notes.txt"), "not a photo").unwrap();
    dir
}

fn stdout(args: &[&str]) -> String {
    let o = kiln(args);
    assert!(o.status.success(), "kiln {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_saved_project_summarises_predicts_and_trains_on_like_its_folder() {
    let dir = pets("proj-pets");
    let (proj, more) = (tmp("proj-a.kilnproj"), tmp("proj-b.kilnproj"));
    let _ = std::fs::remove_file(&proj);
    let tiny = ["--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "8", "--device", "cpu"];
    let out = stdout(&[&["fine-tune", &dir, "--epochs", "1", "-o", &tmp("proj-a.kiln"), "--save-project", &proj][..], &tiny[..]].concat());
    assert!(out.contains("saved the project to") && out.contains("33 photos"), "{out}");

    // The same summary (skipped notes.txt included) from the project as from the folder.
    assert_eq!(stdout(&["summary", &proj, "--presize", "16"]), stdout(&["summary", &dir, "--presize", "16"]));
    // Its model predicts, as a .kiln would.
    let photo = format!("{dir}/dog/3.png");
    assert_eq!(stdout(&["predict", &proj, &photo, "--device", "cpu"]), stdout(&["predict", &tmp("proj-a.kiln"), &photo, "--device", "cpu"]));

    // Carried on by hand: the table numbers on, and the new project keeps the page's Settings.
    let out = stdout(&["fit", &proj, &proj, "--unfreeze", "--lr-max", "1e-4,1e-2", "--device", "cpu", "-o", &tmp("proj-b.kiln"), "--save-project", &more]);
    assert!(out.lines().any(|l| l.starts_with("fit") && l.split_whitespace().nth(1) == Some("2")), "{out}");
    let manifest: serde_json::Value = {
        let mut z = zip::ZipArchive::new(std::fs::File::open(&more).unwrap()).unwrap();
        serde_json::from_reader(z.by_name("kiln-project.json").unwrap()).unwrap()
    };
    assert_eq!(manifest["settings"]["bs"], "8");
    assert_eq!(manifest["settings"]["method"], "fine_tune");
    assert_eq!(manifest["model"], true);

    // --save-project never writes over a file the run read.
    let before = std::fs::read(&proj).unwrap();
    let o = kiln(&["fit", &proj, &proj, "--device", "cpu", "-o", &tmp("proj-c.kiln"), "--save-project", &proj]);
    assert!(!o.status.success() && text(&o).contains("is a file this run read"), "{}", text(&o));
    assert_eq!(std::fs::read(&proj).unwrap(), before);
}

#[test]
fn damaged_or_cut_projects_are_refused_and_nothing_is_written() {
    let dir = pets("proj-damaged");
    let proj = tmp("proj-good.kilnproj");
    let tiny = ["--arch", "tiny", "--size", "16", "--presize", "16", "--bs", "8", "--device", "cpu"];
    stdout(&[&["train", &dir, "-o", &tmp("proj-good.kiln"), "--save-project", &proj][..], &tiny[..]].concat());
    let good = std::fs::read(&proj).unwrap();
    let photo = std::fs::read(format!("{dir}/dog/7.png")).unwrap();
    let at = good.windows(photo.len()).position(|w| w == photo.as_slice()).unwrap() + photo.len() / 2;
    let mut flipped = good.clone();
    flipped[at] ^= 1;
    let bad = tmp("proj-flipped.kilnproj");
    std::fs::write(&bad, &flipped).unwrap();
    let cut = tmp("proj-cut.kilnproj");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    for (file, says) in [(&bad, "damaged"), (&cut, "cut short")] {
        let o = kiln(&["summary", file]);
        assert!(!o.status.success() && text(&o).contains(says), "{file}: {}", text(&o));
        let out = tmp("proj-never.kilnproj");
        let o = kiln(&["fit", &tmp("proj-good.kiln"), file, "--device", "cpu", "-o", &tmp("proj-never.kiln"), "--save-project", &out]);
        assert!(!o.status.success() && text(&o).contains(says), "{}", text(&o));
        assert!(!Path::new(&out).exists() && !Path::new(&tmp("proj-never.kiln")).exists(), "nothing written");
    }
    assert_eq!(std::fs::read(&proj).unwrap(), good, "the good project is untouched");
}
