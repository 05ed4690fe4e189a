//! `Templates`: the mail templates under `templates/email/`, loaded and checked once, rendered
//! into a subject, an HTML body and a text body. Knows nothing of SMTP or of who the recipient is.
//!
//! A mail `NAME` is three files: `NAME.subject.tera`, `NAME.html.tera`, `NAME.txt.tera`. Files
//! starting with `_` are partials (a layout to extend, a footer to include) and are not mails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tera::{Context, Tera};

use super::MailError;

/// The three parts of a mail, by the name used in errors and the file-name suffix.
const PARTS: [(&str, &str); 3] = [
    ("subject", ".subject.tera"),
    ("html", ".html.tera"),
    ("text", ".txt.tera"),
];

/// A mail ready to be handed to a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line: newlines and runs of blanks in the template are collapsed to one space.
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// All mail templates, parsed once at start-up so a broken template stops the process early
/// instead of failing the first job that needs it.
pub struct Templates {
    tera: Tera,
    /// Mails with all three parts; `load` refuses a directory where one has fewer.
    names: BTreeSet<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("names", &self.names).finish()
    }
}

impl Templates {
    /// Loads every `*.tera` file of `dir` (not recursive). Errors name the offending file.
    pub fn load(dir: &Path) -> Result<Templates, MailError> {
        let files = read_template_files(dir)?;
        let mut tera = Tera::default();
        // Tera escapes `.html` files by default; ours end in `.tera`, so say it explicitly.
        tera.autoescape_on(vec![".html.tera"]);
        tera.set_escape_fn(escape_html);
        // Templates must not read the process environment: that is where secrets live.
        tera.register_function("get_env", |_: &std::collections::HashMap<String, tera::Value>| {
            Err(tera::Error::msg("get_env is disabled in mail templates"))
        });
        // Partials first, so a mail's `extends` finds its layout when it is added.
        for file in &files {
            tera.add_raw_template(&file.name, &file.content)
                .map_err(|e| MailError::TemplateSyntax {
                    path: file.path.clone(),
                    detail: error_chain(&e),
                })?;
        }
        let names = complete_mail_names(dir, &files)?;
        Ok(Templates { tera, names })
    }

    /// The mails that have all three parts, sorted.
    pub fn names(&self) -> Vec<String> {
        self.names.iter().cloned().collect()
    }

    /// Renders mail `name` with `ctx`, which must be a JSON object. A key that a template prints
    /// but `ctx` lacks is an error naming both (`MailError::MissingVariable`).
    pub fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<RenderedMail, MailError> {
        if !self.names.contains(name) {
            return Err(MailError::UnknownMail(name.to_owned()));
        }
        let context = to_context(ctx)?;
        let subject = self.render_part(&format!("{name}.subject.tera"), &context)?;
        let html = self.render_part(&format!("{name}.html.tera"), &context)?;
        let text = self.render_part(&format!("{name}.txt.tera"), &context)?;
        Ok(RenderedMail {
            subject: one_line(&subject),
            html: html.trim_start().to_owned(),
            text: text.trim_start().to_owned(),
        })
    }

    fn render_part(&self, template: &str, context: &Context) -> Result<String, MailError> {
        self.tera
            .render(template, context)
            .map_err(|e| render_error(template, &e))
    }
}

struct TemplateFile {
    name: String,
    path: PathBuf,
    content: String,
}

/// Reads the `.tera` files of `dir`, partials (`_*`) first, then the rest, each group sorted.
fn read_template_files(dir: &Path) -> Result<Vec<TemplateFile>, MailError> {
    let dir_error = |source| MailError::TemplateDir {
        dir: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let path = entry.map_err(dir_error)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !name.ends_with(".tera") || !path.is_file() {
            continue;
        }
        if !name.starts_with('_') && part_of(&name).is_none() {
            return Err(MailError::UnexpectedTemplateFile { path });
        }
        let content = std::fs::read_to_string(&path).map_err(|source| MailError::TemplateFile {
            path: path.clone(),
            source,
        })?;
        files.push(TemplateFile { name, path, content });
    }
    files.sort_by(|a, b| (!a.name.starts_with('_'), &a.name).cmp(&(!b.name.starts_with('_'), &b.name)));
    Ok(files)
}

/// Splits `NAME.html.tera` into (`NAME`, part index); `None` for any other file name.
fn part_of(file_name: &str) -> Option<(&str, usize)> {
    PARTS.iter().enumerate().find_map(|(i, (_, suffix))| {
        let mail = file_name.strip_suffix(suffix)?;
        (!mail.is_empty()).then_some((mail, i))
    })
}

/// The mail names found, after checking that each has every part.
fn complete_mail_names(dir: &Path, files: &[TemplateFile]) -> Result<BTreeSet<String>, MailError> {
    let present: BTreeSet<(&str, usize)> = files
        .iter()
        .filter(|f| !f.name.starts_with('_'))
        .filter_map(|f| part_of(&f.name))
        .collect();
    let mails: BTreeSet<&str> = present.iter().map(|(mail, _)| *mail).collect();
    for mail in &mails {
        for (i, (part, suffix)) in PARTS.iter().enumerate() {
            if !present.contains(&(*mail, i)) {
                let expected = dir.join(format!("{mail}{suffix}"));
                return Err(MailError::MissingPart {
                    mail: mail.to_string(),
                    part,
                    expected,
                });
            }
        }
    }
    Ok(mails.into_iter().map(str::to_owned).collect())
}

fn to_context(ctx: &serde_json::Value) -> Result<Context, MailError> {
    let kind = match ctx {
        serde_json::Value::Object(_) => return Ok(Context::from_value(ctx.clone()).expect("an object")),
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
    };
    Err(MailError::ContextNotObject(kind))
}

/// Tera reports a missing variable deep in its error chain as
/// "Variable `x` not found in context while rendering 'tpl'"; lift it into a typed error so
/// callers (and tests) need not parse strings.
fn render_error(template: &str, e: &tera::Error) -> MailError {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cause {
        if let Some(variable) = missing_variable(&err.to_string()) {
            return MailError::MissingVariable {
                template: template.to_owned(),
                variable,
            };
        }
        cause = err.source();
    }
    MailError::Render {
        template: template.to_owned(),
        detail: error_chain(e),
    }
}

fn missing_variable(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Variable `")?;
    let (variable, tail) = rest.split_once('`')?;
    tail.starts_with(" not found in context").then(|| variable.to_owned())
}

/// Tera's top-level message is generic ("Failed to render 'x'"); the useful part is below it.
fn error_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(err) = cause {
        parts.push(err.to_string());
        cause = err.source();
    }
    parts.join(": ")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escapes what HTML needs escaped and nothing more: Tera's own escaper also turns `/` into
/// `&#x2F;`, which mangles every link in the mail source without making it any safer.
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
