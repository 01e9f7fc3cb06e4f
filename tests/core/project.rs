//! Kiln projects (src/project.rs): the recipe replayed gives the same dataset, split and edits
//! included; a damaged, cut or foreign file is refused with what is wrong.

use std::collections::HashMap;
use std::io::Cursor;

use kiln::data::{Change, DataOptions, Datasets, Item};
use kiln::project::{Edit, FORMAT, Manifest, ProjectError, ProjectFile, Recipe};

use crate::common::png_item;

/// (file, class, split) of every file, sorted.
fn layout(d: &Datasets) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = d.train.iter().map(|s| (s.item.name.clone(), d.classes[s.label()].clone(), true)).chain(d.valid.iter().map(|s| (s.item.name.clone(), d.classes[s.label()].clone(), false))).collect();
    v.sort();
    v
}

/// A dataset edited the ways the page edits one, its recipe, and every photo's bytes.
fn edited() -> (Datasets, Recipe, HashMap<String, Vec<u8>>) {
    let mut items: Vec<Item> = Vec::new();
    for i in 0..12 {
        items.push(png_item(&format!("pets/cat/{i}.png"), [200, 20 + i as u8, 20]));
        items.push(png_item(&format!("pets/dog/{i}.png"), [20, 20 + i as u8, 200]));
        items.push(png_item(&format!("pets/fox/{i}.png"), [20, 200, 20 + i as u8]));
    }
    items.push(Item::new("pets/cat/broken.jpg", b"\xff\xd8\xff not a jpeg".to_vec()));
    let options = DataOptions { seed: 3, presize: 24, ..DataOptions::default() };
    let mut dls = Datasets::from_items(items.clone(), options.config().unwrap()).unwrap();
    let changes = vec![
        Change { file: "pets/cat/1.png".into(), old_label: "cat".into(), new_label: Some("dog".into()) },
        Change { file: "pets/dog/2.png".into(), old_label: "dog".into(), new_label: None },
    ];
    dls.apply_changes(&changes).unwrap();
    let added: Vec<Item> = (0..5).map(|i| png_item(&format!("camera/bird/camera-{i:04}.png"), [90, 90, 20 + i as u8])).collect();
    dls.add_items(added.clone());
    dls.rename_class("fox", "vixen").unwrap();
    dls.remove_class("bird").unwrap();
    let edits = vec![
        Edit::Changes(changes),
        Edit::Add(added.iter().map(|i| i.name.clone()).collect()),
        Edit::Rename("fox".into(), "vixen".into()),
        Edit::RemoveClass("bird".into()),
    ];
    let bytes = items.iter().chain(&added).map(|i| (i.name.clone(), i.bytes.to_vec())).collect();
    let recipe = Recipe { options, files: items.iter().map(|i| i.name.clone()).collect(), edits };
    (dls, recipe, bytes)
}

fn written(manifest: &Manifest, photos: &HashMap<String, Vec<u8>>, model: Option<&[u8]>) -> Vec<u8> {
    let out = kiln::project::write(Cursor::new(Vec::new()), manifest, &mut |n| Ok(photos[n].clone()), model).unwrap();
    out.into_inner()
}

#[test]
fn a_project_builds_the_same_dataset_with_its_edits_and_keeps_the_model_and_page_state() {
    let (live, recipe, photos) = edited();
    let mut manifest = Manifest::new(recipe, true, "test");
    manifest.settings.insert("bs".into(), "16".into());
    manifest.charts = serde_json::json!({"loss": [[0, 1], [2.5, 2.0]]});
    let bytes = written(&manifest, &photos, Some(b"KILN model bytes"));

    let mut project = ProjectFile::open(Cursor::new(bytes)).unwrap();
    assert_eq!(project.manifest, manifest);
    let again = project.datasets().unwrap();
    assert_eq!(again.summary().to_string(), live.summary().to_string(), "the summary, skipped files included");
    assert_eq!(layout(&again), layout(&live), "every file in the same class and split");
    assert_eq!(again.classes, ["cat", "dog", "vixen"]);
    assert_eq!(project.model().unwrap().as_deref(), Some(&b"KILN model bytes"[..]));
    assert_eq!(project.photo("camera/bird/camera-0003.png").unwrap(), photos["camera/bird/camera-0003.png"]);
}

#[test]
fn damaged_cut_foreign_or_newer_projects_are_refused_with_the_reason() {
    let (_, recipe, photos) = edited();
    let manifest = Manifest::new(recipe, false, "test");
    let good = written(&manifest, &photos, None);

    // A changed byte inside a photo: the zip's CRC-32 names the photo.
    let target = &photos["pets/dog/5.png"];
    let at = good.windows(target.len()).position(|w| w == target.as_slice()).unwrap() + target.len() / 2;
    let mut flipped = good.clone();
    flipped[at] ^= 0x10;
    let e = ProjectFile::open(Cursor::new(flipped)).unwrap().datasets().err().unwrap();
    assert!(matches!(e, ProjectError::Damaged(_)) && e.to_string().contains("pets/dog/5.png"), "{e}");

    // Cut short: the zip's directory is gone.
    let e = ProjectFile::open(Cursor::new(good[..good.len() * 2 / 3].to_vec())).err().unwrap();
    assert!(e.to_string().contains("not a zip file, or one cut short"), "{e}");

    // A zip that is not a project, a manifest of another kind, a newer format, a bad name.
    let mut other = zip::ZipWriter::new(Cursor::new(Vec::new()));
    other.start_file("notes.txt", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut other, b"hello").unwrap();
    let e = ProjectFile::open(Cursor::new(other.finish().unwrap().into_inner())).err().unwrap();
    assert!(matches!(e, ProjectError::Foreign(_)), "{e}");
    let json = |m: &Manifest| serde_json::to_vec(m).unwrap();
    let e = Manifest::from_json(&json(&Manifest { kind: "something-else".into(), ..manifest.clone() })).unwrap_err();
    assert!(e.to_string().contains("not a Kiln project"), "{e}");
    let e = Manifest::from_json(&json(&Manifest { format: FORMAT + 1, ..manifest.clone() })).unwrap_err();
    assert!(e.to_string().contains("newer Kiln"), "{e}");
    let mut twice = manifest.clone();
    twice.dataset.files.push("pets/cat/0.png".into());
    assert!(Manifest::from_json(&json(&twice)).unwrap_err().to_string().contains("listed twice"));
    let mut escape = manifest.clone();
    escape.dataset.files.push("../etc/passwd".into());
    assert!(Manifest::from_json(&json(&escape)).unwrap_err().to_string().contains("not a relative path"));
    // A manifest that says there is a model when there is none: refused, naming the entry.
    let mut bytes = written(&manifest, &photos, None);
    let mut p = ProjectFile::open(Cursor::new(std::mem::take(&mut bytes))).unwrap();
    p.manifest.model = true;
    assert!(p.model().unwrap_err().to_string().contains("model.kiln"));
}
