//! The typst `World` for documents: fonts, library and templates loaded once ([`Assets`]), and a
//! cheap per-document view ([`DocumentWorld`]) that picks a template and adds only `/data.json`
//! and `/qr.png`.
//!
//! Nothing here reads the system: no system fonts, no packages, no clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use super::{RenderError, qr};

/// Everything that stays the same from one document to the next.
pub struct Assets {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    /// Every `NAME.typ` of the template directory, by `NAME`.
    templates: BTreeMap<String, Source>,
    data_id: FileId,
    qr_id: FileId,
}

impl Assets {
    /// Reads every `.typ` template of `template_dir` and every `.ttf`/`.otf` in
    /// `template_dir/fonts`.
    pub fn load(template_dir: &Path) -> Result<Assets, RenderError> {
        let mut templates = BTreeMap::new();
        let entries = std::fs::read_dir(template_dir).map_err(|source| RenderError::Io {
            path: template_dir.to_owned(),
            source,
        })?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".typ"))
            else {
                continue;
            };
            let text = read(&path)
                .and_then(|bytes| String::from_utf8(bytes).map_err(|e| RenderError::Template(e.to_string())))?;
            let source = Source::new(file_id(&format!("/{name}.typ")), text);
            templates.insert(name.to_owned(), source);
        }
        if templates.is_empty() {
            return Err(RenderError::Template(format!(
                "no .typ template in {}",
                template_dir.display()
            )));
        }
        let fonts = load_fonts(&template_dir.join("fonts"))?;
        Ok(Assets {
            library: LazyHash::new(Library::default()),
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
            templates,
            data_id: file_id("/data.json"),
            qr_id: file_id("/qr.png"),
        })
    }

    /// The template named `name` (`agreement` for `agreement.typ`).
    pub fn template(&self, name: &str) -> Result<&Source, RenderError> {
        self.templates
            .get(name)
            .ok_or_else(|| RenderError::Template(format!("no template {name}.typ")))
    }
}

fn file_id(path: &str) -> FileId {
    let vpath = VirtualPath::new(path).expect("static virtual paths are valid");
    RootedPath::new(VirtualRoot::Project, vpath).intern()
}

fn read(path: &Path) -> Result<Vec<u8>, RenderError> {
    std::fs::read(path).map_err(|source| RenderError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Loads the font files in a stable (sorted) order, so that font indices, and with them the
/// output bytes, do not depend on the directory listing order.
fn load_fonts(dir: &Path) -> Result<Vec<Font>, RenderError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RenderError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("ttf") || x.eq_ignore_ascii_case("otf"))
        })
        .collect();
    paths.sort();
    let mut fonts = Vec::new();
    for path in paths {
        let before = fonts.len();
        fonts.extend(Font::iter(Bytes::new(read(&path)?)));
        if fonts.len() == before {
            return Err(RenderError::Font(format!("{} holds no usable font", path.display())));
        }
    }
    if fonts.is_empty() {
        return Err(RenderError::Font(format!("no .ttf or .otf font in {}", dir.display())));
    }
    Ok(fonts)
}

/// A document's QR code as PNG, made once by whichever thread asks first: the renderer makes it
/// while typst compiles, and typst, when it lays out the page header, takes it or waits for it.
pub struct LazyQr<'a> {
    url: &'a str,
    png: OnceLock<Result<Bytes, RenderError>>,
}

impl<'a> LazyQr<'a> {
    pub fn new(url: &'a str) -> Self {
        LazyQr {
            url,
            png: OnceLock::new(),
        }
    }

    /// The PNG, made now unless it was made or is being made.
    pub fn png(&self) -> Result<Bytes, &RenderError> {
        self.png
            .get_or_init(|| qr::qr_png(self.url).map(Bytes::new))
            .as_ref()
            .cloned()
    }

    /// Whether the QR code could be made (it is made now if nobody asked yet).
    pub fn into_result(self) -> Result<(), RenderError> {
        let _ = self.png();
        self.png.into_inner().expect("made just above").map(drop)
    }
}

/// One document's view of the world: the shared assets, its template, its data and QR code.
pub struct DocumentWorld<'a> {
    pub assets: &'a Assets,
    /// The template compiled as the main file.
    pub main: &'a Source,
    /// `/data.json`: `{"meta": {...}, "data": {...}}`.
    pub data: Bytes,
    /// `/qr.png`: the verification URL's QR code.
    pub qr: &'a LazyQr<'a>,
    /// What `datetime.today()` returns: fixed per document so that output is reproducible.
    pub today: Option<Datetime>,
}

impl World for DocumentWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        &self.assets.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.assets.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(not_found(id))
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.assets.data_id {
            Ok(self.data.clone())
        } else if id == self.assets.qr_id {
            self.qr.png().map_err(|e| FileError::Other(Some(e.to_string().into())))
        } else if id == self.main.id() {
            Ok(Bytes::from_string(self.main.clone()))
        } else {
            Err(not_found(id))
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.assets.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        self.today
    }
}

fn not_found(id: FileId) -> FileError {
    FileError::NotFound(id.vpath().get_with_slash().into())
}
