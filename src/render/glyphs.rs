//! Missing-glyph detection: typst prints a character that no font covers as glyph 0 (a box)
//! without a warning, so we walk the laid-out frames for glyph 0 and name the data field.

use typst::layout::{Frame, FrameItem};
use typst_layout::PagedDocument;

use super::RenderError;

/// The first character laid out with glyph id 0, if any, mapped back to the data field holding it.
pub fn check_glyphs(document: &PagedDocument, data: &serde_json::Value) -> Result<(), RenderError> {
    for page in document.pages() {
        if let Some(ch) = first_missing(&page.frame) {
            let field = field_containing(data, ch, "").unwrap_or_else(|| "template".to_owned());
            return Err(RenderError::MissingGlyph { ch, field });
        }
    }
    Ok(())
}

fn first_missing(frame: &Frame) -> Option<char> {
    frame.items().find_map(|(_, item)| match item {
        FrameItem::Group(group) => first_missing(&group.frame),
        FrameItem::Text(text) => text
            .glyphs
            .iter()
            .find(|g| g.id == 0)
            .and_then(|g| text.text.get(g.range()))
            .and_then(|s| s.chars().find(|c| !c.is_whitespace())),
        _ => None,
    })
}

/// The dotted path (`student.name`, `signing.2.who`) of the first string in `value` containing `ch`.
pub fn field_containing(value: &serde_json::Value, ch: char, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) => s.contains(ch).then(|| path.to_owned()),
        // At the top, the parties' own fields first: a name repeated in the signing record
        // should be reported where it was typed.
        serde_json::Value::Object(map) if path.is_empty() => {
            let rank = |k: &str| {
                ["student", "employer", "school", "terms"]
                    .iter()
                    .position(|p| *p == k)
                    .unwrap_or(9)
            };
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort_by_key(|(k, _)| rank(k));
            keys.into_iter().find_map(|(k, v)| field_containing(v, ch, &join(k)))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| field_containing(v, ch, &join(k))),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| field_containing(v, ch, &join(&i.to_string()))),
        _ => None,
    }
}
