//! The render module's error type, with an English (lower-case) and a Chinese message per variant.

use std::path::PathBuf;

/// Everything that can go wrong while loading the templates or rendering a document.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A character of the data has no glyph in the embedded fonts; typst would print a box.
    #[error("the font has no glyph for {ch:?} (U+{code:04X}) in field {field}", code = *ch as u32)]
    MissingGlyph { ch: char, field: String },
    /// The template failed to compile (a template bug, data of an unexpected shape, or a
    /// template name the folder does not hold).
    #[error("template error: {0}")]
    Template(String),
    /// A font file could not be parsed, or the template directory holds none.
    #[error("font error: {0}")]
    Font(String),
    /// The data did not fit the template's fixed number of pages.
    #[error("the document must have {expected} pages but has {pages}")]
    PageCount { expected: usize, pages: usize },
    /// PDF export failed.
    #[error("pdf export failed: {0}")]
    Pdf(String),
    /// PNG encoding of a page or of the QR code failed.
    #[error("image encoding failed: {0}")]
    Image(String),
    /// The verification URL cannot be encoded as a QR code (far too long).
    #[error("the verification url cannot be encoded as a qr code: {0}")]
    Qr(String),
    /// A template file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl RenderError {
    /// The message in Chinese, for the people who typed the data (students, employers, schools).
    pub fn message_zh(&self) -> String {
        match self {
            Self::MissingGlyph { ch, field } => format!("字体缺少字符 “{ch}”（字段 {field}）"),
            Self::Template(m) => format!("协议书模板错误：{m}"),
            Self::Font(m) => format!("字体加载失败：{m}"),
            Self::PageCount { expected, pages } => {
                format!("文书应为 {expected} 页，实际为 {pages} 页，请精简填写内容")
            }
            Self::Pdf(m) => format!("生成 PDF 失败：{m}"),
            Self::Image(m) => format!("生成图片失败：{m}"),
            Self::Qr(m) => format!("无法生成核验二维码：{m}"),
            Self::Io { path, source } => format!("无法读取文件 {}：{source}", path.display()),
        }
    }
}
