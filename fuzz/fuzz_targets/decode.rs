//! A dropped file: structural verification, strict decode under the pixel budget, presize.
#![no_main]
use kiln::data::{Crop, decode_rgb8, presize, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = verify(bytes);
    // The budget keeps the fuzzer from spending its time on legitimately huge images.
    if let Ok(img) = decode_rgb8(bytes, 1 << 20) {
        let out = presize(&img, 24, Crop::Centre);
        assert_eq!(out.dimensions(), (24, 24));
    }
});
