//! Document rendering: the two-page 就业协议书 (and any other template in the folder, such as the
//! one-page 解约证明) as PDF and PNG page images, with typst as a library. Owns the
//! template world, the QR code, missing-glyph checks, agreement numbers and verification codes.
//! Knows nothing of cases, HTTP or storage: callers hand in JSON and get bytes.
//!
//! # Layout
//! - `world`: fonts and templates loaded once; per document only `/data.json` and `/qr.png` change
//! - `glyphs`: finds characters the fonts lack (typst prints them as boxes, silently)
//! - `qr`: the verification URL as a QR code PNG
//! - `page_image`: rasterised pages as PNG, fast
//! - `number`: agreement numbers with a check character, HMAC verification codes
//! - `sample`: built-in sample data
//!
//! # Output choices
//! - **No PDF/A claim.** typst-pdf could mark the file PDF/A-2b, but a claim is only worth what a
//!   validator accepts, and none runs here: veraPDF (the reference validator) is a Java program
//!   published on Maven Central and its own site, which this project's machines and CI cannot
//!   reach; the PyPI wrappers of it download it at run time; Debian packages no veraPDF, and the
//!   one PDF/A validator it does package (Apache PDFBox Preflight, in `libpdfbox2-java`) checks
//!   PDF/A-1b only. So the agreement is a plain PDF 1.7 — every font embedded (as subsets), no
//!   external dependencies, `qpdf --check` clean — that claims no conformance it was not tested
//!   for. Turning the claim back on is `PdfStandard::A_2b` in `PdfOptions::standards`, with a
//!   validator in the tests.
//! - **Reproducible bytes.** The PDF's document id is derived from the agreement number, its
//!   creation date from the data (the last signing record's time), and `datetime.today()`
//!   returns that same date: the same data gives the same PDF and PNG bytes. Data without a
//!   readable signing time gets the fixed [`FALLBACK_DATE`]
//!   (2000-01-01 00:00 UTC) rather than the clock, which would break reproducibility.
//! - **Page images at 2 px per pt (144 dpi)**: 1191 × 1684 px for A4, legible on a phone
//!   without zooming into blur; grayscale ~170 KB a page for a final agreement, RGB ~470 KB for a
//!   preview (its watermark is red). See `page_image`.
//!
//! # Speed
//! Measured with `cargo bench --bench render` (see the README).
//! - The template keeps document data out of its set rules (see its "Speed" comment), so typst's
//!   memoized layout is reused from one agreement to the next: only the tables whose data changed
//!   are laid out again. It uses no introspection (a counted page number costs a second layout).
//! - PDF export, the cache eviction and the page images run side by side, and the pages in
//!   parallel (rayon).
//! - What is left of a warm PDF is mostly typst-pdf subsetting and deflating the two fonts
//!   (krilla's fixed level 6), which no option reaches.

mod error;
mod glyphs;
mod number;
mod page_image;
mod qr;
mod sample;
mod world;

use std::path::Path;

use rayon::prelude::*;

use typst::foundations::{Bytes, Datetime, Smart};
use typst::utils::Scalar;
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, Timestamp};

pub use self::error::RenderError;
pub use self::glyphs::field_containing;
pub use self::number::{agreement_number, check_agreement_number, verification_code};
pub use self::sample::sample_data;

use self::world::{Assets, DocumentWorld, LazyQr};

/// Pixels per typographic point of the page images: 2.0 = 144 dpi.
/// The Typst templates of `template_dir` by name (`agreement.typ` → `agreement`): the
/// ones [`Renderer::load`] reads, and the ones a definition's rendered slot may name.
pub fn template_names(template_dir: &Path) -> std::io::Result<std::collections::BTreeSet<String>> {
    Ok(std::fs::read_dir(template_dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".typ"))
                .map(str::to_owned)
        })
        .collect())
}

pub const PIXELS_PER_PT: f32 = 2.0;
/// Page image size for A4 at [`PIXELS_PER_PT`].
pub const PAGE_PNG_SIZE: (u32, u32) = (1191, 1684);
/// The PDF creation date when the data has no readable signing time.
pub const FALLBACK_DATE: (i32, u8, u8) = (2000, 1, 1);
/// The agreement always has exactly this many pages.
pub const PAGE_COUNT: usize = 2;

/// Fonts and template, loaded once and shared (`Arc<Renderer>`) by every render.
pub struct Renderer {
    assets: Assets,
}

/// One agreement to render: its identity and the engine's data JSON (see the template's header
/// comment for the shape; every key optional).
#[derive(Debug, Clone)]
pub struct AgreementDoc {
    /// 协议书编号, printed on every page.
    pub number: String,
    /// 核验码, printed on every page.
    pub verification_code: String,
    /// Encoded in the QR code on every page.
    pub verify_url: String,
    /// Adds the 预览 / PREVIEW watermark to every page.
    pub preview: bool,
    pub data: serde_json::Value,
    /// Where the document came from, for whoever holds it when the database is gone.
    pub evidence: Option<Evidence>,
}

/// The evidence a rendered document carries: in small print on the page (the template's
/// footer) and in the PDF's metadata (its keywords, also in the XMP packet), where
/// [`read_evidence`] finds it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The agreement number (the meta's `number`).
    pub number: String,
    /// The case version the document was rendered from.
    pub case_version: i64,
    /// The SHA-256 (hex) of the case's history chain at that version.
    pub history_sha256: String,
}

impl Evidence {
    const PREFIX: &str = "gradsign-evidence";

    /// The metadata keyword: `gradsign-evidence number=… version=… history-sha256=…`.
    pub fn keyword(&self) -> String {
        format!(
            "{} number={} version={} history-sha256={}",
            Self::PREFIX,
            self.number,
            self.case_version,
            self.history_sha256
        )
    }
}

/// The evidence in a PDF's metadata, if a render of this platform wrote it there.
pub fn read_evidence(pdf: &[u8]) -> Option<Evidence> {
    let prefix = Evidence::PREFIX.as_bytes();
    let at = pdf.windows(prefix.len()).position(|w| w == prefix)?;
    // The keyword is ASCII up to the end of its PDF string or XML element.
    let rest = &pdf[at..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b')' | b'<' | b',') || !b.is_ascii() || b.is_ascii_control())
        .unwrap_or(rest.len());
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let value = |key: &str| {
        text.split(' ')
            .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let history_sha256 = value("history-sha256")?;
    (history_sha256.len() == 64 && history_sha256.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    Some(Evidence {
        number: value("number")?,
        case_version: value("version")?.parse().ok()?,
        history_sha256,
    })
}

/// A rendered agreement.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub pdf: Vec<u8>,
    /// One PNG per page, [`PAGE_PNG_SIZE`] each; empty unless asked for.
    pub pages: Vec<Vec<u8>>,
}

impl Renderer {
    /// Reads the templates of `template_dir` (`agreement.typ`, …) and the fonts in
    /// `template_dir/fonts`.
    pub fn load(template_dir: &Path) -> Result<Renderer, RenderError> {
        // No PDF/A claim (see "Output choices"): `PdfStandards::new(&[PdfStandard::A_2b])`
        // in `PdfOptions::standards` would make one.
        Ok(Renderer {
            assets: Assets::load(template_dir)?,
        })
    }

    /// Renders one agreement (`agreement.typ`, [`PAGE_COUNT`] pages) to PDF and, if
    /// `pages_png`, to one PNG per page.
    pub fn render(&self, doc: &AgreementDoc, pages_png: bool) -> Result<Rendered, RenderError> {
        self.render_template("agreement", PAGE_COUNT, doc, pages_png)
    }

    /// Renders `doc` with the template `NAME.typ`, which must lay out exactly `pages` pages.
    /// Every template reads the same `/data.json` and `/qr.png`.
    pub fn render_template(
        &self,
        template: &str,
        pages: usize,
        doc: &AgreementDoc,
        pages_png: bool,
    ) -> Result<Rendered, RenderError> {
        let main = self.assets.template(template)?;
        let signed_at = last_signing_time(&doc.data).or_else(|| {
            let (y, m, d) = FALLBACK_DATE;
            Datetime::from_ymd_hms(y, m, d, 0, 0, 0)
        });
        let evict = EvictMemoized;
        // The QR code is made while typst compiles: it is only wanted when a page header is laid out.
        let qr = LazyQr::new(&doc.verify_url);
        let document = {
            let world = DocumentWorld {
                assets: &self.assets,
                main,
                data: Bytes::new(input_json(doc)),
                qr: &qr,
                today: signed_at,
            };
            rayon::join(|| qr.png().is_ok(), || compile(&world)).1
        };
        qr.into_result()?; // a QR code that cannot be made is the cause of any template error
        let mut document = document?;
        glyphs::check_glyphs(&document, &doc.data)?;
        if let Some(evidence) = &doc.evidence {
            // Set after layout, not by a `set document` rule: document data in a set rule
            // would cost typst its layout cache (see the template's "Speed" comment).
            document.info_mut().keywords.push(evidence.keyword().into());
        }
        if document.pages().len() != pages {
            return Err(RenderError::PageCount {
                expected: pages,
                pages: document.pages().len(),
            });
        }
        // PDF export, evicting typst's cache and the page images only read the laid-out document:
        // run them side by side.
        let document = &document;
        let (pdf, pages) = rayon::join(
            || self.pdf(template, document, doc, signed_at),
            move || {
                drop(evict);
                if pages_png { page_pngs(document) } else { Ok(Vec::new()) }
            },
        );
        Ok(Rendered {
            pdf: pdf?,
            pages: pages?,
        })
    }

    fn pdf(
        &self,
        template: &str,
        document: &PagedDocument,
        doc: &AgreementDoc,
        signed_at: Option<Datetime>,
    ) -> Result<Vec<u8>, RenderError> {
        let options = PdfOptions {
            ident: Smart::Custom(format!("gradsign-{template}-{}", doc.number)),
            creator: Smart::Custom(Some("gradsign".to_owned())),
            timestamp: signed_at.map(Timestamp::new_utc),
            ..PdfOptions::default()
        };
        let mut pdf = typst_pdf::pdf(document, &options).map_err(|errors| RenderError::Pdf(join_messages(&errors)))?;
        blank_default_suspects(&mut pdf);
        Ok(pdf)
    }
}

/// The mark-info entry `/Suspects false` states the default (ISO 32000-2, 14.7.1), and
/// poppler (Debian 12's `pdfinfo` among its readers) reports it as "Syntax Error: Suspects
/// object is wrong type (boolean)". Blanking it with as many spaces keeps every byte offset
/// (the cross-reference table stays right) and means the same.
fn blank_default_suspects(pdf: &mut [u8]) {
    const ENTRY: &[u8] = b"/Suspects false";
    if let Some(at) = pdf.windows(ENTRY.len()).position(|w| w == ENTRY) {
        pdf[at..at + ENTRY.len()].fill(b' ');
    }
}

/// Typst memoizes across compilations. Entries unused for 10 renders are dropped after every
/// render, failed ones included, when this guard is dropped: after compiling, alongside the PDF
/// export (it takes ~0.5 ms). Evicting only every 64 renders let memory climb from 160 MB to
/// 2.4 GB over 1,000 renders (measured), for a ~10 % speed gain.
struct EvictMemoized;

impl Drop for EvictMemoized {
    fn drop(&mut self) {
        typst::comemo::evict(10);
    }
}

fn compile(world: &DocumentWorld) -> Result<PagedDocument, RenderError> {
    typst::compile::<PagedDocument>(world)
        .output
        .map_err(|errors| RenderError::Template(join_messages(&errors)))
}

fn join_messages(errors: &[typst::diag::SourceDiagnostic]) -> String {
    errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// The template's input: the document's identity under `meta`, the engine's data under `data`.
fn input_json(doc: &AgreementDoc) -> Vec<u8> {
    let input = serde_json::json!({
        "meta": {
            "number": doc.number,
            "verification_code": doc.verification_code,
            "verify_url": doc.verify_url,
            "preview": doc.preview,
            "history_sha256": doc.evidence.as_ref().map(|e| e.history_sha256.as_str()),
        },
        "data": doc.data,
    });
    serde_json::to_vec(&input).expect("a json value always serializes")
}

/// One PNG per page, rasterised and encoded in parallel.
fn page_pngs(document: &PagedDocument) -> Result<Vec<Vec<u8>>, RenderError> {
    let options = typst_render::RenderOptions {
        pixel_per_pt: Scalar::new(f64::from(PIXELS_PER_PT)),
        ..Default::default()
    };
    document
        .pages()
        .par_iter()
        .map(|page| {
            let pixmap = typst_render::render(page, &options);
            page_image::encode_png_over_white(pixmap.data(), pixmap.width(), pixmap.height())
        })
        .collect()
}

/// The time of the last signing record (`"at": "YYYY-MM-DD HH:MM[:SS]"` or `"YYYY-MM-DD"`):
/// the PDF's creation date and the template's `today`. `None` if absent or unreadable.
fn last_signing_time(data: &serde_json::Value) -> Option<Datetime> {
    let at = data.get("signing")?.as_array()?.last()?.get("at")?.as_str()?;
    parse_datetime(at)
}

fn parse_datetime(s: &str) -> Option<Datetime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute) = (num(11..13).unwrap_or(0), num(14..16).unwrap_or(0));
    let second = num(17..19).unwrap_or(0);
    Datetime::from_ymd_hms(
        year as i32,
        month as u8,
        day as u8,
        hour as u8,
        minute as u8,
        second as u8,
    )
}
