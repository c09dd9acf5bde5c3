//! Upload processing, all in memory before anything is stored: the type is read from the bytes
//! (magic numbers, not the name or the client's header), dimensions are checked before any
//! pixel is decoded (a tiny file declaring 100,000 × 100,000 pixels is refused, not inflated),
//! EXIF orientation is applied, and every output is re-encoded from pixels, so no metadata
//! (EXIF, GPS, XMP, comments) survives.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, imageops::FilterType};
use std::io::Cursor;

/// Larger sides are refused (and so is any image whose pixels would need more than
/// [`MAX_ALLOC`]).
pub const MAX_SIDE: u32 = 8_000;
pub const MAX_ALLOC: u64 = 256 * 1024 * 1024;
/// Rendition widths; never upscaled past the original.
pub const WIDTHS: [u32; 3] = [200, 800, 1600];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not a JPEG, PNG, WebP or GIF image")]
    Unsupported,
    #[error("the image is {0} × {1} pixels; at most {MAX_SIDE} per side")]
    TooLarge(u32, u32),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
}

pub struct Encoded {
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub extension: &'static str,
    pub bytes: Vec<u8>,
}

pub struct Processed {
    pub original: Encoded,
    pub renditions: Vec<Encoded>,
}

fn kind(format: ImageFormat) -> Option<(&'static str, &'static str)> {
    match format {
        ImageFormat::Jpeg => Some(("image/jpeg", "jpg")),
        ImageFormat::Png => Some(("image/png", "png")),
        ImageFormat::WebP => Some(("image/webp", "webp")),
        ImageFormat::Gif => Some(("image/gif", "gif")),
        _ => None,
    }
}

/// The content type of a stored file, from its extension (the names this module gives).
pub fn content_type_of(name: &str) -> &'static str {
    let format = name.rsplit_once('.').and_then(|(_, ext)| ImageFormat::from_extension(ext));
    format.and_then(kind).map_or("application/octet-stream", |(content_type, _)| content_type)
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Encoded, ImageError> {
    let (content_type, extension) = kind(format).ok_or(ImageError::Unsupported)?;
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        // JPEG has no alpha channel.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()).write_to(&mut out, format),
        // The WebP encoder takes 8-bit RGB(A) only.
        ImageFormat::WebP if img.color().has_alpha() => DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format),
        ImageFormat::WebP => DynamicImage::ImageRgb8(img.to_rgb8()).write_to(&mut out, format),
        ImageFormat::Gif => DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format),
        _ => img.write_to(&mut out, format),
    };
    written.map_err(|e| ImageError::Corrupt(e.to_string()))?;
    Ok(Encoded { width: img.width(), height: img.height(), content_type, extension, bytes: out.into_inner() })
}

/// Checks, decodes and re-encodes an upload: the original (same format, no metadata) and one
/// WebP per width in [`WIDTHS`].
pub fn process(bytes: &[u8]) -> Result<Processed, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::Unsupported)?;
    kind(format).ok_or(ImageError::Unsupported)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(bytes, format, e))?;
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(ImageError::TooLarge(w, h));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(bytes, format, e))?;
    img.apply_orientation(orientation);
    let original = encode(&img, format)?;
    let mut renditions = Vec::with_capacity(WIDTHS.len());
    for width in WIDTHS {
        let target = width.min(img.width());
        // Never upscaled: an image narrower than a width gets one rendition at its own width,
        // not one per width it is narrower than (they would share a name).
        if renditions.last().is_some_and(|r: &Encoded| r.width == target) {
            continue;
        }
        let height = ((img.height() as u64 * target as u64) / img.width().max(1) as u64).max(1) as u32;
        let resized = if target == img.width() { img.clone() } else { img.resize_exact(target, height, FilterType::Triangle) };
        renditions.push(encode(&resized, ImageFormat::WebP)?);
    }
    Ok(Processed { original, renditions })
}

/// A limit hit while reading the header is "too large"; anything else is a broken file.
fn classify(bytes: &[u8], format: ImageFormat, e: image::ImageError) -> ImageError {
    if let image::ImageError::Limits(_) = e {
        let dims = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().unwrap_or((0, 0));
        return ImageError::TooLarge(dims.0, dims.1);
    }
    ImageError::Corrupt(e.to_string())
}
