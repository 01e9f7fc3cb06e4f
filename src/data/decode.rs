//! Image decoding: JPEG, PNG, WebP, GIF (first frame), BMP → RGB8, EXIF orientation applied.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::SkipReason;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{width}×{height} = {pixels} pixels is over the limit of {limit}; shrink the image or raise the pixel budget")]
    TooLarge { width: u32, height: u32, pixels: u64, limit: u64 },
    #[error("{0}")]
    Undecodable(String),
    #[error(transparent)]
    Invalid(#[from] super::VerifyError),
    /// The decoder refused the header's dimensions outright (on wasm32 a 100,000² image's
    /// buffer size does not even fit in an address).
    #[error("its header declares an image too large to decode ({0}); shrink the image")]
    TooLargeHeader(String),
}

impl From<DecodeError> for SkipReason {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { .. } | DecodeError::TooLargeHeader(_) => SkipReason::TooLarge(e.to_string()),
            DecodeError::Undecodable(why) => SkipReason::Undecodable(why),
            DecodeError::Invalid(e) => e.into(),
        }
    }
}

fn reader(bytes: &[u8], max_pixels: u64) -> Result<ImageReader<Cursor<&[u8]>>, DecodeError> {
    super::verify(bytes)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    // Kiln checks the header's pixel budget itself (with a message that says what to do), so
    // image's own dimension limits are off; its allocation limit stays, sized from the same
    // budget, because a header is not the whole story (a GIF frame may be larger than the
    // screen the header declares: found by fuzzing, it allocated gigabytes).
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).saturating_add(64 << 20));
    reader.limits(limits);
    if reader.format().is_none() {
        return Err(DecodeError::Undecodable(
            "not a JPEG, PNG, WebP, GIF or BMP image".to_string(),
        ));
    }
    Ok(reader)
}

/// The decoder's refusal to allocate (its limits) means too large; anything else, unreadable.
fn decode_error(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Limits(l) => DecodeError::TooLargeHeader(l.to_string()),
        e => DecodeError::Undecodable(e.to_string()),
    }
}

/// Read only the header: format and dimensions, refusing images over the pixel budget.
pub(crate) fn check_header(bytes: &[u8], max_pixels: u64) -> Result<(), DecodeError> {
    let (width, height) = reader(bytes, max_pixels)?.into_dimensions().map_err(decode_error)?;
    check_budget(width, height, max_pixels)
}

fn check_budget(width: u32, height: u32, limit: u64) -> Result<(), DecodeError> {
    let pixels = width as u64 * height as u64;
    if pixels > limit {
        return Err(DecodeError::TooLarge { width, height, pixels, limit });
    }
    if pixels == 0 {
        return Err(DecodeError::Undecodable("the image has no pixels".to_string()));
    }
    Ok(())
}

/// Decode to RGB8 (grey, alpha and 16-bit are converted), honouring EXIF orientation.
/// The pixel budget is checked from the header before any pixel buffer is allocated.
pub fn decode_rgb8(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let mut decoder = reader(bytes, max_pixels)?.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    check_budget(width, height, max_pixels)?;
    let orientation = decoder.orientation().map_err(decode_error)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}
