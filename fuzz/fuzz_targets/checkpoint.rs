//! Pretrained weights a user brings: PyTorch zip and legacy pickle checkpoints, safetensors.
#![no_main]
use kiln::pretrained::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_bytes(bytes) {
        let _ = ckpt.infer_arch();
    }
});
