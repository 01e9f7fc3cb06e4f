//! Label rules: a user-typed regex (the first line) applied to a dropped path (the rest).
#![no_main]
use kiln::LabelRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let (pattern, path) = text.split_once('\n').unwrap_or((&text, "a/b.jpg"));
    let _ = LabelRule::ParentFolder.label(path);
    if let Ok(rule) = LabelRule::regex(pattern) {
        let _ = rule.label(path);
    }
});
