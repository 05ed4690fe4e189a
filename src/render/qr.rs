//! The verification QR code: the verify URL as a grayscale PNG, handed to typst as `/qr.png`.

use qrcode::{Color, EcLevel, QrCode};

use super::RenderError;
use super::page_image::encode_png;

/// Pixels per QR module. The template prints the code at 20 mm. Viewers smooth images as they
/// scale them: at 8 px a module poppler's rendering of the PDF at 144 dpi still reads back, at
/// 4 px it does not (tested in `tests/render.rs`).
const MODULE_PX: usize = 8;
/// The quiet zone the QR standard asks for, in modules.
const QUIET_ZONE: usize = 4;

/// Encodes `text` (the verification URL) as a PNG image of its QR code.
///
/// Error correction level M: the code survives a stamp or a fold over ~15 % of its area. The PNG
/// is written with fast compression: typst decodes it and the PDF compresses it again anyway.
pub fn qr_png(text: &str) -> Result<Vec<u8>, RenderError> {
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| RenderError::Qr(e.to_string()))?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * MODULE_PX;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == Color::Dark {
            paint_module(&mut pixels, side, i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        }
    }
    let side = side as u32;
    encode_png(&pixels, (side, side), png::ColorType::Grayscale, png::Compression::Fast)
}

fn paint_module(pixels: &mut [u8], side: usize, x: usize, y: usize) {
    for row in y * MODULE_PX..(y + 1) * MODULE_PX {
        let start = row * side + x * MODULE_PX;
        pixels[start..start + MODULE_PX].fill(0);
    }
}
