//! A dataset edited in place (src/data/edit.rs): files added, classes renamed and removed,
//! the files already there keeping their label and split.

use kiln::data::{DataConfig, Datasets, SkipReason, Splitter};

use crate::common::png_item;

fn dataset() -> Datasets {
    let mut items = Vec::new();
    for i in 0..10 {
        items.push(png_item(&format!("cat/{i}.png"), [200, 20, 20]));
        items.push(png_item(&format!("dog/{i}.png"), [20, 20, 200]));
    }
    Datasets::from_items(items, DataConfig::default().with_splitter(Splitter::Auto { valid_pct: 0.2, seed: 7 })).unwrap()
}

/// (file, class, split) of every file, sorted.
fn layout(d: &Datasets) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = d.train.iter().map(|s| (s.item.name.clone(), d.classes[s.label()].clone(), true)).chain(d.valid.iter().map(|s| (s.item.name.clone(), d.classes[s.label()].clone(), false))).collect();
    v.sort();
    v
}

#[test]
fn added_files_join_a_new_or_known_class_and_nothing_already_there_moves() {
    let mut d = dataset();
    let before = layout(&d);
    let mut items: Vec<_> = (0..10).map(|i| png_item(&format!("bird/{i}.png"), [20, 200, 20])).collect();
    items.push(png_item("cat/10.png", [210, 20, 20]));
    items.push(png_item("cat/3.png", [200, 20, 20])); // already there
    items.push(kiln::Item::new("bird/broken.png", b"\x89PNG\r\n\x1a\n not really".to_vec()));
    let added = d.add_items(items);
    assert_eq!(added.new_classes, vec!["bird".to_string()]);
    assert_eq!((added.train + added.valid, added.valid), (11, 2), "the new files split among themselves, 20 % held out");
    let reasons: Vec<(&str, &SkipReason)> = added.skipped.iter().map(|s| (s.name.as_str(), &s.reason)).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.contains(&("cat/3.png", &SkipReason::Duplicate)), "{reasons:?}");
    assert!(reasons.iter().any(|(n, _)| *n == "bird/broken.png"), "{reasons:?}");
    assert_eq!(d.classes, ["bird", "cat", "dog"]);
    let after = layout(&d);
    for f in &before {
        assert!(after.contains(f), "{f:?} changed");
    }
    assert_eq!(after.len(), before.len() + 11);
    let s = d.summary();
    assert_eq!((s.classes[0].name.as_str(), s.classes[0].train + s.classes[0].valid), ("bird", 10));
}

#[test]
fn a_class_renamed_keeps_its_files_and_a_removed_one_lists_them() {
    let mut d = dataset();
    let before = layout(&d);
    d.rename_class("cat", "zebra").unwrap();
    assert_eq!(d.classes, ["dog", "zebra"]);
    let renamed: Vec<_> = before.iter().map(|(f, c, t)| (f.clone(), if c == "cat" { "zebra".into() } else { c.clone() }, *t)).collect();
    assert_eq!(layout(&d), renamed);
    assert!(d.rename_class("zebra", "dog").unwrap_err().contains("already"));
    assert!(d.rename_class("cow", "ox").unwrap_err().contains("no class \"cow\""));
    assert!(d.remove_class("dog").unwrap_err().contains("at least two classes"));

    d.add_items((0..10).map(|i| png_item(&format!("ant/{i}.png"), [9, 9, 9])).collect());
    d.remove_class("dog").unwrap();
    assert_eq!(d.classes, ["ant", "zebra"]);
    assert_eq!(d.skipped.iter().filter(|s| s.reason == SkipReason::Removed).count(), 10);
    assert!(layout(&d).iter().all(|(f, c, _)| f.starts_with(if c == "ant" { "ant/" } else { "cat/" })));
}
