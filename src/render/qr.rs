//! The verification QR code: the verify URL as a grayscale PNG, handed to typst as `/qr.png`.

use qrcode::{Color, EcLevel, QrCode};

use super::RenderError;

/// Pixels per QR module. The template prints the code at 20 mm; 8 px a module keeps it sharp in
/// the 144 dpi page images and in print, and typst scales the image anyway.
const MODULE_PX: usize = 8;
/// The quiet zone the QR standard asks for, in modules.
const QUIET_ZONE: usize = 4;

/// Encodes `text` (the verification URL) as a PNG image of its QR code.
///
/// Error correction level M: the code survives a stamp or a fold over ~15 % of its area.
pub fn qr_png(text: &str) -> Result<Vec<u8>, RenderError> {
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| RenderError::Qr(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * MODULE_PX;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            paint_module(&mut pixels, side, i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        }
    }
    encode_gray(&pixels, side as u32)
}

fn paint_module(pixels: &mut [u8], side: usize, x: usize, y: usize) {
    for row in y * MODULE_PX..(y + 1) * MODULE_PX {
        let start = row * side + x * MODULE_PX;
        pixels[start..start + MODULE_PX].fill(0);
    }
}

fn encode_gray(pixels: &[u8], side: u32) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let image_err = |e: png::EncodingError| RenderError::Image(e.to_string());
    let mut writer = encoder.write_header().map_err(image_err)?;
    writer.write_image_data(pixels).map_err(image_err)?;
    writer.finish().map_err(image_err)?;
    Ok(out)
}
