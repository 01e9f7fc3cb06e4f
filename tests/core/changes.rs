//! The cleaner's changes (src/data/changes.rs): the CSV both ways, and a dataset edited
//! all or nothing, untouched files keeping their split.

use kiln::data::{Change, DataConfig, Datasets, SkipReason, changes_from_csv, changes_to_csv};

use crate::common::png_item;

fn dataset() -> Datasets {
    let mut items = Vec::new();
    for i in 0..10 {
        items.push(png_item(&format!("pets/cat/{i}.png"), [200, 20, 20]));
        items.push(png_item(&format!("pets/dog/{i}.png"), [20, 20, 200]));
        items.push(png_item(&format!("pets/fox/{i}.png"), [20, 200, 20]));
    }
    Datasets::from_items(items, DataConfig::default()).unwrap()
}

fn change(file: &str, old: &str, new: Option<&str>) -> Change {
    Change { file: file.into(), old_label: old.into(), new_label: new.map(Into::into) }
}

fn counts(d: &Datasets) -> Vec<(String, usize, usize)> {
    d.summary().classes.into_iter().map(|c| (c.name, c.train, c.valid)).collect()
}

#[test]
fn the_changes_csv_reads_back_what_it_writes_with_commas_and_quotes_in_names() {
    let changes = vec![change("pets/cat/a, \"b\".png", "cat", Some("dog")), change("pets/dog/1.png", "dog", None)];
    let csv = changes_to_csv(&changes);
    assert!(csv.starts_with("file,old_label,action,new_label\n"), "{csv}");
    assert!(csv.contains("pets/dog/1.png,dog,delete,\n"), "{csv}");
    assert_eq!(changes_from_csv(&csv).unwrap(), changes);
    // Mistakes name the line.
    let err = changes_from_csv("file,old_label,action,new_label\npets/cat/1.png,cat,rename,dog\n").unwrap_err();
    assert!(err.contains("line 2") && err.contains("rename"), "{err}");
    let err = changes_from_csv("file,old_label,action,new_label\npets/cat/1.png,cat,relabel,\n").unwrap_err();
    assert!(err.contains("line 2") && err.contains("no new label"), "{err}");
    let err = changes_from_csv("name,label\n").unwrap_err();
    assert!(err.contains("header"), "{err}");
}

#[test]
fn a_relabel_keeps_the_split_a_delete_is_listed_and_nothing_else_moves() {
    let mut d = dataset();
    let before = counts(&d);
    let (relabelled, deleted) = (d.train[0].clone(), d.valid[0].clone());
    let class = |s: &kiln::data::Sample| d.classes[s.label()].clone();
    let (from, gone_class) = (class(&relabelled), class(&deleted));
    let to = if from == "dog" { "fox" } else { "dog" };
    let untouched: Vec<String> = d.train[1..].iter().map(|s| s.item.name.clone()).collect();
    // The page names files from the folder the user picked, the CLI from inside it: a change to
    // "picked/pets/cat/1.png" finds "pets/cat/1.png".
    let short = format!("picked/{}", relabelled.item.name);
    d.apply_changes(&[change(&short, &from, Some(to)), change(&deleted.item.name, &gone_class, None)]).unwrap();

    let after = counts(&d);
    for ((name, t0, v0), (_, t1, v1)) in before.iter().zip(&after) {
        let dt = (name == to) as i64 - (*name == from) as i64;
        let dv = -((*name == gone_class) as i64);
        assert_eq!((*t1 as i64 - *t0 as i64, *v1 as i64 - *v0 as i64), (dt, dv), "{name}: {before:?} -> {after:?}");
    }
    let moved = d.train.iter().find(|s| s.item.name == relabelled.item.name).expect("still in train");
    assert_eq!(d.classes[moved.label()], to);
    assert_eq!(d.train[1..].iter().map(|s| s.item.name.clone()).collect::<Vec<_>>(), untouched);
    assert!(d.skipped.iter().any(|s| s.name == deleted.item.name && s.reason == SkipReason::Removed));
    assert_eq!(d.summary().changes, 2);
    assert!(d.summary().to_string().contains("Changes: 2 of yours applied"));

    // A file changed again is one change from its first label (the CSV has one row a file);
    // changed back, none.
    let again = *["cat", "dog", "fox"].iter().find(|c| **c != from && **c != to).unwrap();
    d.apply_changes(&[change(&relabelled.item.name, to, Some(again))]).unwrap();
    let csv = changes_to_csv(&d.changes);
    assert_eq!(csv.lines().filter(|l| l.contains(&relabelled.item.name)).count(), 1, "{csv}");
    assert!(d.changes.contains(&change(&short, &from, Some(again))), "{:?}", d.changes);
    d.apply_changes(&[change(&relabelled.item.name, again, Some(&from))]).unwrap();
    assert_eq!(d.changes.len(), 1, "{:?}", d.changes);
}

#[test]
fn a_bad_change_names_the_file_and_changes_nothing() {
    let d = dataset();
    let first = d.train[0].item.name.clone();
    let label = d.classes[d.train[0].label()].clone();
    let fine = change(&first, &label, None);
    let cases = [
        (change("pets/cat/missing.png", "cat", None), "missing.png"),
        (change(&d.valid[0].item.name, "not-its-label", None), "not-its-label"),
        (change(&d.valid[0].item.name, &d.classes[d.valid[0].label()], Some("wolf")), "wolf"),
        (fine.clone(), "twice"),
    ];
    for (bad, says) in cases {
        let mut edited = d.clone();
        let err = edited.apply_changes(&[fine.clone(), bad]).unwrap_err();
        assert!(err.contains(says), "{err}");
        assert_eq!(counts(&edited), counts(&d));
        assert_eq!(edited.skipped.len(), d.skipped.len());
        assert!(edited.changes.is_empty());
    }
    // Deleting every validation image is refused too.
    let mut edited = d.clone();
    let all: Vec<Change> = d.valid.iter().map(|s| change(&s.item.name, &d.classes[s.label()], None)).collect();
    let err = edited.apply_changes(&all).unwrap_err();
    assert!(err.contains("every validation image"), "{err}");
    assert_eq!(counts(&edited), counts(&d));
}
