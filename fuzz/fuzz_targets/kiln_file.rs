//! A `.kiln` model or backbone file given to `kiln predict`/`export` or dropped on the page.
#![no_main]
use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The CRC-32 would reject nearly every mutation before the parsers behind it run: recompute
    // it, so the fuzzer explores the JSON header and the weights reader (the real files' CRC
    // check itself is covered by the normal tests).
    let mut bytes = bytes.to_vec();
    if bytes.len() >= 16 && &bytes[..4] == b"KILN" && bytes[4..8] == 3u32.to_le_bytes() {
        let crc = crc32fast::hash(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    if kiln::export::read_header(&bytes).is_ok() {
        let device = Device::flex();
        let _ = kiln::export::from_bytes(&bytes, &device);
        let _ = kiln::export::backbone_from_bytes(&bytes, &device);
    }
});
