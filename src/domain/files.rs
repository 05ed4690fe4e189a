//! Files people upload: the type is decided by the content (PDF, JPEG, PNG), never by
//! the name, and a file cut short in transfer is refused; names are made safe to keep
//! and to send back in `Content-Disposition`.

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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn trim_trailing_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map(|i| i + 1).unwrap_or(0);
    &bytes[..end]
}

/// A file name safe to store and show: no path, no control characters, at most 100
/// characters, with the extension the content has.
pub fn sanitise_file_name(name: &str, content_type: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '|' | ':' | '*' | '?'))
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
    }
}
