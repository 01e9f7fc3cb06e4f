//! fastai's `verify_images`: find files that must not be trained on before any training.
//!
//! The decoders are lenient (a JPEG cut to a third of its length decodes, grey-filled), so
//! every file gets cheap structural checks at load time: the container is complete (JPEG's end
//! marker after its last scan, PNG's chunks up to IEND with their CRCs, WebP's RIFF size, GIF's
//! trailer, BMP's pixel array), and formats Kiln cannot read are named with what to do. A full
//! decode happens later, one batch at a time; a file that still fails there is skipped and
//! reported, never filled in.

use super::SkipReason;

/// Why a file failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{format} cut short: {detail} (a partial download or copy? copy the file again)")]
    Truncated { format: &'static str, detail: String },
    #[error("{format} is damaged: {detail}")]
    Corrupt { format: &'static str, detail: String },
    #[error("{format} is not supported: {advice}")]
    Unsupported { format: &'static str, advice: &'static str },
}

impl From<VerifyError> for SkipReason {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Truncated { .. } => SkipReason::Truncated(e.to_string()),
            VerifyError::Corrupt { .. } => SkipReason::Corrupt(e.to_string()),
            VerifyError::Unsupported { .. } => SkipReason::Unsupported(e.to_string()),
        }
    }
}

const EXPORT_JPEG: &str = "export it as JPEG or PNG (e.g. Photos → Export, or convert in.heic out.jpg)";

/// Check one file's structure. `Ok` for a complete JPEG/PNG/WebP/GIF/BMP, and for bytes that
/// are not a known format at all (the decoder's header check reports those).
pub fn verify(bytes: &[u8]) -> Result<(), VerifyError> {
    if let Some(format) = unsupported(bytes) {
        return Err(format);
    }
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => jpeg(bytes),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => png(bytes),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => webp(bytes),
        [b'G', b'I', b'F', b'8', ..] => gif(bytes),
        [b'B', b'M', ..] => bmp(bytes),
        _ => Ok(()),
    }
}

fn unsupported(bytes: &[u8]) -> Option<VerifyError> {
    let u = |format, advice| Some(VerifyError::Unsupported { format, advice });
    // ISO base media (HEIF/AVIF): a `ftyp` box first, the brand says which.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => u("HEIC/HEIF (an iPhone photo)", EXPORT_JPEG),
            b"avif" | b"avis" => u("AVIF", "convert it to JPEG or PNG"),
            _ => u("an MP4/QuickTime file (a video?)", "only still images can be used: JPEG, PNG, WebP, GIF or BMP"),
        };
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return u("TIFF (or a camera RAW file)", "convert it to JPEG or PNG");
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with("<svg") || (head.starts_with("<?xml") && head.contains("<svg")) {
        return u("SVG (a vector drawing)", "render it to PNG first");
    }
    if bytes.starts_with(b"%PDF") {
        return u("PDF", "export the page as PNG or JPEG");
    }
    None
}

fn jpeg(b: &[u8]) -> Result<(), VerifyError> {
    // Walk the marker segments up to each scan, skip the scan's entropy-coded data (where 0xFF
    // is always stuffed or a restart marker), and require the end-of-image marker after the
    // last scan. An embedded EXIF thumbnail sits inside APP1, so its own end marker is skipped.
    let truncated = |detail: &str| Err(VerifyError::Truncated { format: "JPEG", detail: detail.to_string() });
    let mut i = 2;
    let mut scans = 0;
    loop {
        // Fill bytes before a marker are allowed.
        while i < b.len() && b[i] == 0xFF && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if i + 1 >= b.len() {
            return truncated(if scans == 0 { "it ends before the image data" } else { "the end-of-image marker is missing" });
        }
        if b[i] != 0xFF {
            return Err(VerifyError::Corrupt { format: "JPEG", detail: format!("no marker at byte {i}") });
        }
        let marker = b[i + 1];
        i += 2;
        match marker {
            0xD9 => return if scans > 0 { Ok(()) } else { truncated("it has no image data") },
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if i + 2 > b.len() {
            return truncated("a segment header is cut off");
        }
        let len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        if len < 2 {
            return Err(VerifyError::Corrupt { format: "JPEG", detail: format!("a segment of length {len} at byte {i}") });
        }
        if i + len > b.len() {
            return truncated("a segment runs past the end of the file");
        }
        i += len;
        if marker == 0xDA {
            scans += 1;
            // Entropy-coded data: up to the next marker that is not a stuffed 0xFF00 or RSTn.
            loop {
                match b[i..].iter().position(|&x| x == 0xFF) {
                    None => return truncated("the image data stops in the middle"),
                    Some(p) => {
                        i += p;
                        match b.get(i + 1) {
                            None => return truncated("the image data stops in the middle"),
                            Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

fn png(b: &[u8]) -> Result<(), VerifyError> {
    let mut i = 8;
    let mut idat = false;
    loop {
        if i + 8 > b.len() {
            let detail = if idat { "the IEND chunk is missing (the image data stops early)" } else { "it ends before the image data" };
            return Err(VerifyError::Truncated { format: "PNG", detail: detail.into() });
        }
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = &b[i + 4..i + 8];
        let end = i.checked_add(12).and_then(|x| x.checked_add(len));
        let Some(end) = end.filter(|&e| e <= b.len()) else {
            return Err(VerifyError::Truncated {
                format: "PNG",
                detail: format!("its {} chunk runs past the end of the file", String::from_utf8_lossy(kind)),
            });
        };
        let stored = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
        if crc32fast::hash(&b[i + 4..end - 4]) != stored {
            return Err(VerifyError::Corrupt { format: "PNG", detail: format!("bad checksum in its {} chunk", String::from_utf8_lossy(kind)) });
        }
        match kind {
            b"IDAT" => idat = true,
            b"IEND" => {
                return if idat { Ok(()) } else { Err(VerifyError::Corrupt { format: "PNG", detail: "it has no image data".into() }) };
            }
            _ => {}
        }
        i = end;
    }
}

fn webp(b: &[u8]) -> Result<(), VerifyError> {
    let declared = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64 + 8;
    if (b.len() as u64) < declared {
        return Err(VerifyError::Truncated { format: "WebP", detail: format!("{} of {declared} bytes", b.len()) });
    }
    Ok(())
}

fn gif(b: &[u8]) -> Result<(), VerifyError> {
    // Kiln reads the first frame; a complete file ends with the 0x3B trailer.
    if b.last() != Some(&0x3B) {
        return Err(VerifyError::Truncated { format: "GIF", detail: "the trailer byte is missing".into() });
    }
    Ok(())
}

fn bmp(b: &[u8]) -> Result<(), VerifyError> {
    if b.len() < 26 {
        return Err(VerifyError::Truncated { format: "BMP", detail: "the header is cut off".into() });
    }
    let offset = u32::from_le_bytes([b[10], b[11], b[12], b[13]]) as u64;
    let header = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
    if header < 40 || b.len() < 30 {
        return Ok(()); // old OS/2 headers: left to the decoder
    }
    let width = i32::from_le_bytes([b[18], b[19], b[20], b[21]]).unsigned_abs() as u64;
    let height = i32::from_le_bytes([b[22], b[23], b[24], b[25]]).unsigned_abs() as u64;
    let bits = u16::from_le_bytes([b[28], b[29]]) as u64;
    let compression = if b.len() >= 34 { u32::from_le_bytes([b[30], b[31], b[32], b[33]]) } else { 0 };
    // Uncompressed rows are padded to 4 bytes; compressed sizes are not known up front.
    if compression == 0 || compression == 3 {
        let row = (width * bits).div_ceil(32) * 4;
        let need = offset.saturating_add(row.saturating_mul(height));
        if (b.len() as u64) < need {
            return Err(VerifyError::Truncated { format: "BMP", detail: format!("{} of {need} bytes", b.len()) });
        }
    }
    Ok(())
}
