//! What a checkpoint file is, from its first bytes: shared by the weights reader and by the
//! `.kiln` reader, which names such a file when it is given one instead of a model.

use super::pickle::{self, Value};

/// The magic number torch's legacy (pre-1.6, pickle) `.pth` files start with:
/// `0x1950a86a20f9469cfc6c`, little-endian.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// PyTorch's zip format (torch.save since 1.6).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// A legacy `.pth`: a pickle whose first object is torch's magic number.
pub fn is_legacy(bytes: &[u8]) -> bool {
    let mut pos = 0;
    bytes.first() == Some(&0x80) && matches!(pickle::load(bytes, &mut pos), Ok(Value::BigInt(b)) if b == LEGACY_MAGIC)
}

/// safetensors: a little-endian header length, then the JSON header.
pub fn is_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        n > 1 && n < bytes.len() as u64 && bytes[8] == b'{'
    }
}

/// Any of the checkpoint formats Kiln reads as weights.
pub fn is_checkpoint(bytes: &[u8]) -> bool {
    is_zip(bytes) || is_legacy(bytes) || is_safetensors(bytes)
}
