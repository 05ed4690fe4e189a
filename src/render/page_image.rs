//! Page images for 查看原图: a rasterised page as a PNG.
//!
//! typst-render's own `encode_png` writes RGBA with the png crate's balanced compression: ~35 ms a
//! page here, four times the rasterising, for ~300 KB. A page is opaque paper, so the alpha channel
//! carries nothing, and a final agreement has no colour at all. Dropping alpha (and colour when
//! there is none) and compressing with the png crate's fast (fdeflate) mode takes ~9 ms for a
//! ~170 KB grayscale page, ~16 ms for a ~470 KB colour one (the preview's red watermark).

use super::RenderError;

/// Encodes premultiplied RGBA pixels (tiny-skia's layout) as an 8-bit RGB or grayscale PNG,
/// composited over white so that any transparent pixel reads as paper.
pub fn encode_png_over_white(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
    let (pixels, color) = over_white(rgba);
    encode_png(&pixels, (width, height), color, png::Compression::Fast)
}

/// Encodes 8-bit pixels of `color` as a PNG: the one PNG writer of the renderer (pages, QR code).
pub fn encode_png(
    pixels: &[u8],
    (width, height): (u32, u32),
    color: png::ColorType,
    compression: png::Compression,
) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(pixels.len() / 16);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(compression);
    let image_err = |e: png::EncodingError| RenderError::Image(e.to_string());
    let mut writer = encoder.write_header().map_err(image_err)?;
    writer.write_image_data(pixels).map_err(image_err)?;
    writer.finish().map_err(image_err)?;
    Ok(out)
}

/// Premultiplied RGBA to pixels over white: `c + (255 − a)` per channel (a premultiplied channel
/// never exceeds its alpha, so this cannot overflow). A page with no colour, such as every final
/// agreement, becomes 8-bit grayscale: a third of the data to compress, and a smaller file.
fn over_white(rgba: &[u8]) -> (Vec<u8>, png::ColorType) {
    let on_paper = |c: u8, alpha: u8| c.saturating_add(255 - alpha);
    let pixels = rgba.chunks_exact(4);
    if pixels.clone().all(|p| p[0] == p[1] && p[1] == p[2]) {
        (
            pixels.map(|p| on_paper(p[0], p[3])).collect(),
            png::ColorType::Grayscale,
        )
    } else {
        let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
        for p in pixels {
            rgb.extend_from_slice(&[on_paper(p[0], p[3]), on_paper(p[1], p[3]), on_paper(p[2], p[3])]);
        }
        (rgb, png::ColorType::Rgb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_become_paper_and_opaque_ones_keep_their_colour() {
        // transparent, opaque red, half-covered black (premultiplied: 0,0,0,128)
        let rgba = [0, 0, 0, 0, 255, 0, 0, 255, 0, 0, 0, 128];
        let (pixels, color) = over_white(&rgba);
        assert_eq!(color, png::ColorType::Rgb);
        assert_eq!(pixels, vec![255, 255, 255, 255, 0, 0, 127, 127, 127]);
    }

    #[test]
    fn a_page_without_colour_becomes_grayscale() {
        // transparent, opaque ink gray, half-covered black
        let rgba = [0, 0, 0, 0, 26, 26, 26, 255, 0, 0, 0, 128];
        assert_eq!(over_white(&rgba), (vec![255, 26, 127], png::ColorType::Grayscale));
    }

    #[test]
    fn encodes_a_readable_rgb_png_of_the_right_size() {
        let rgba: Vec<u8> = (0..6 * 4).flat_map(|i| [i as u8 * 10, 0, 0, 255]).collect();
        let png = encode_png_over_white(&rgba, 6, 4).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height, info.color_type), (6, 4, png::ColorType::Rgb));
        assert_eq!(&buf[..6], &[0, 0, 0, 10, 0, 0]);
    }
}
