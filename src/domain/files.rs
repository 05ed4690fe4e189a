//! Files people upload: the type is decided by the content (PDF, JPEG, PNG), never by
//! the name, must agree with the type the upload declares, and a file cut short in
//! transfer or carrying HTML is refused; names are made safe to keep and to send back
//! in `Content-Disposition`.

use super::FieldError;

/// The content types accepted for uploads.
pub const ACCEPTED: &[&str] = &["application/pdf", "image/jpeg", "image/png"];

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Empty,
    /// Not a PDF, JPEG or PNG, whatever its name says.
    WrongType,
    /// Starts like an accepted type but its end is missing.
    Truncated(&'static str),
    /// Declared as one type (the upload's `Content-Type`) but is another.
    Mismatch {
        declared: String,
        found: &'static str,
    },
    /// Carries markup a browser would run (an HTML page behind a `%PDF-` header).
    Active,
}

impl FileProblem {
    pub fn field_error(&self) -> FieldError {
        match self {
            FileProblem::Empty => FieldError::new("file.empty", "文件为空", "the file is empty"),
            FileProblem::WrongType => FieldError::new(
                "file.type",
                "只能上传 PDF、JPEG 或 PNG 文件（按文件内容判断，而非扩展名）",
                "only PDF, JPEG or PNG files are accepted (judged by content, not by name)",
            ),
            FileProblem::Truncated(kind) => FieldError::new(
                "file.truncated",
                format!("{kind} 文件不完整，可能上传中断，请重新上传"),
                format!("the {kind} file is incomplete (cut short in transfer); upload it again"),
            ),
            FileProblem::Mismatch { declared, found } => FieldError::new(
                "file.type_mismatch",
                format!("文件声明为 {declared}，内容却是 {found}"),
                format!("the file is declared as {declared} but its content is {found}"),
            ),
            FileProblem::Active => FieldError::new(
                "file.active_content",
                "文件中含有网页代码（HTML），不能上传",
                "the file carries HTML markup and is refused",
            ),
        }
        .with_field("file")
    }
}

/// The content type of an accepted file, judged by its first and last bytes.
pub fn sniff(bytes: &[u8]) -> Result<&'static str, FileProblem> {
    if bytes.is_empty() {
        return Err(FileProblem::Empty);
    }
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if carries_markup(bytes) {
        return Err(FileProblem::Active);
    }
    if bytes.starts_with(b"%PDF-") {
        // Every complete PDF ends with an `%%EOF` marker (possibly followed by a newline).
        return if contains(tail, b"%%EOF") {
            Ok("application/pdf")
        } else {
            Err(FileProblem::Truncated("PDF"))
        };
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        // The IEND chunk closes every PNG: length 0, type IEND, CRC AE 42 60 82.
        return if contains(tail, &[b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]) {
            Ok("image/png")
        } else {
            Err(FileProblem::Truncated("PNG"))
        };
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        // End-of-image marker, allowing padding some cameras append.
        let trimmed = trim_trailing_zeros(bytes);
        return if trimmed.ends_with(&[0xFF, 0xD9]) {
            Ok("image/jpeg")
        } else {
            Err(FileProblem::Truncated("JPEG"))
        };
    }
    Err(FileProblem::WrongType)
}

/// The start of an HTML page or SVG image: what a browser sniffing the content would
/// render, and run scripts in. Only the first 4 KiB are read, where sniffing looks and
/// where a real scan or PDF holds binary image data or PDF objects, never tags.
fn carries_markup(bytes: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[b"<html", b"<!doctype", b"<script", b"<body", b"<iframe", b"<svg"];
    let head = bytes[..bytes.len().min(4096)].to_ascii_lowercase();
    MARKERS.iter().any(|m| contains(&head, m))
}

/// Whether the type an upload declares names what its content is (`image/jpg` is a
/// common spelling of `image/jpeg`; parameters such as `; charset` are ignored).
pub fn declared_type_agrees(declared: &str, found: &str) -> bool {
    let declared = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let canonical = match declared.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "application/x-pdf" => "application/pdf",
        other => other,
    };
    canonical == found
}

/// A byte count as people read it: `512 KB`, `10 MB`.
pub fn readable_size(bytes: usize) -> String {
    const MB: usize = 1024 * 1024;
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else if bytes >= MB {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    } else if bytes >= 1024 {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn trim_trailing_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map(|i| i + 1).unwrap_or(0);
    &bytes[..end]
}

/// A file name safe to store and show: no path, no control characters, no invisible
/// characters that reorder or hide text (`协议\u{202E}fdp.exe` would read as
/// `协议exe.pdf`), at most 100 characters, with the extension the content has.
pub fn sanitise_file_name(name: &str, content_type: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !invisible(*c) && !matches!(c, '"' | '<' | '>' | '|' | ':' | '*' | '?'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    let stem = cleaned.rsplit_once('.').map(|(s, _)| s).unwrap_or(cleaned);
    let stem: String = stem.chars().take(90).collect();
    let stem = if stem.trim().is_empty() {
        "upload".to_string()
    } else {
        stem
    };
    let ext = match content_type {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "bin",
    };
    format!("{stem}.{ext}")
}

/// Bidi controls, the left-to-right and right-to-left marks, zero-width characters, the
/// line and paragraph separators and the byte-order mark: nothing a file name needs.
fn invisible(c: char) -> bool {
    super::is_bidi_control(c)
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{2060}' | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_judged_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n...\n%%EOF\n"), Ok("application/pdf"));
        assert_eq!(sniff(b"GIF89a......"), Err(FileProblem::WrongType));
        assert_eq!(sniff(b""), Err(FileProblem::Empty));
        assert_eq!(sniff(b"%PDF-1.7\n1 0 obj"), Err(FileProblem::Truncated("PDF")));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9]), Ok("image/jpeg"));
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2]),
            Err(FileProblem::Truncated("JPEG"))
        );
    }

    #[test]
    fn names_lose_their_paths_and_get_the_content_extension() {
        assert_eq!(sanitise_file_name("../../etc/passwd", "application/pdf"), "passwd.pdf");
        assert_eq!(
            sanitise_file_name("C:\\扫描件\\协议书 盖章.JPG", "image/jpeg"),
            "协议书 盖章.jpg"
        );
        assert_eq!(sanitise_file_name("a\u{0}b\".exe", "image/png"), "ab.png");
        assert_eq!(sanitise_file_name("", "image/png"), "upload.png");
        assert_eq!(
            sanitise_file_name("协议\u{202E}fdp.exe", "application/pdf"),
            "协议fdp.pdf"
        );
        assert_eq!(
            sanitise_file_name("a\u{200F}\u{2066}b.pdf", "application/pdf"),
            "ab.pdf"
        );
    }

    #[test]
    fn html_behind_a_pdf_header_is_refused() {
        assert_eq!(
            sniff(b"%PDF-1.4\n<html><script>alert(1)</script></html>\n%%EOF\n"),
            Err(FileProblem::Active)
        );
        assert_eq!(sniff(b"%PDF-1.4\n<SVG onload=x>\n%%EOF"), Err(FileProblem::Active));
    }

    #[test]
    fn declared_types_must_name_the_content() {
        assert!(declared_type_agrees("application/pdf", "application/pdf"));
        assert!(declared_type_agrees("image/JPG", "image/jpeg"));
        assert!(!declared_type_agrees("image/png", "application/pdf"));
        assert!(!declared_type_agrees("text/html", "application/pdf"));
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(readable_size(10 * 1024 * 1024), "10 MB");
        assert_eq!(readable_size(512 * 1024), "512 KB");
        assert_eq!(readable_size(300), "300 bytes");
    }
}
