//! The reference files' format as parsed, with spans for error lines, and its conversion into the public types.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeListsFile {
    #[serde(default)]
    list: Vec<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    name: Spanned<String>,
    name_zh: String,
    name_en: String,
    entries: Vec<Spanned<CodeEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoriesFile {
    #[serde(default)]
    category: Vec<RawCategory>,
    #[serde(default)]
    subcategory: Vec<RawSubcategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    code: Spanned<String>,
    name_zh: String,
    name_en: String,
    group: String,
    group_zh: String,
    written_by_agreement: bool,
    #[serde(default)]
    fields: Vec<RawField>,
    #[serde(default)]
    proofs: Vec<ProofSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    label_zh: String,
    label_en: String,
    kind: Spanned<String>,
    required: bool,
    max_len: Option<usize>,
    code_list: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubcategory {
    code: Spanned<String>,
    parent: Spanned<String>,
    name_zh: String,
    name_en: String,
}

pub(super) fn parse_code_lists(file: &SourceFile) -> Result<Vec<CodeList>, ReferenceError> {
    let parsed: CodeListsFile = file.parse()?;
    let mut names = BTreeSet::new();
    for list in &parsed.list {
        file.unique(&mut names, &list.name, "code list")?;
        let mut codes = BTreeSet::new();
        for entry in &list.entries {
            if !codes.insert(entry.get_ref().code.as_str()) {
                return Err(file.error_at(entry.span(), format!("duplicate code '{}'", entry.get_ref().code)));
            }
        }
    }
    Ok(parsed.list.into_iter().map(into_code_list).collect())
}

fn into_code_list(list: RawList) -> CodeList {
    CodeList {
        name: list.name.into_inner(),
        name_zh: list.name_zh,
        name_en: list.name_en,
        entries: list.entries.into_iter().map(Spanned::into_inner).collect(),
    }
}

pub(super) fn parse_categories(
    file: &SourceFile,
    code_lists: &[CodeList],
) -> Result<(Vec<Category>, Vec<Subcategory>), ReferenceError> {
    let parsed: CategoriesFile = file.parse()?;
    let mut codes = BTreeSet::new();
    for category in &parsed.category {
        check_category(file, category, code_lists)?;
        file.unique(&mut codes, &category.code, "category code")?;
    }
    let mut sub_codes = BTreeSet::new();
    for sub in &parsed.subcategory {
        check_subcategory(file, sub, &codes)?;
        file.unique(&mut sub_codes, &sub.code, "subcategory code")?;
    }
    let categories = parsed.category.into_iter().map(into_category).collect();
    let subcategories = parsed.subcategory.into_iter().map(into_subcategory).collect();
    Ok((categories, subcategories))
}

fn check_category(file: &SourceFile, category: &RawCategory, code_lists: &[CodeList]) -> Result<(), ReferenceError> {
    let code = category.code.get_ref();
    if code.len() != 2 || !all_digits(code) {
        return Err(file.error_at(
            category.code.span(),
            format!("category code '{code}' must be two digits"),
        ));
    }
    let mut names = BTreeSet::new();
    for field in &category.fields {
        file.unique(&mut names, &field.name, "field")?;
        if !known_kind(field.kind.get_ref()) {
            return Err(file.error_at(
                field.kind.span(),
                format!("unknown validator kind '{}'", field.kind.get_ref()),
            ));
        }
        if let Some(list) = &field.code_list
            && !code_lists.iter().any(|l| &l.name == list.get_ref())
        {
            let message = format!("unknown code list '{}' (not in {CODE_LISTS_FILE})", list.get_ref());
            return Err(file.error_at(list.span(), message));
        }
    }
    Ok(())
}

fn check_subcategory(
    file: &SourceFile,
    sub: &RawSubcategory,
    categories: &BTreeSet<&str>,
) -> Result<(), ReferenceError> {
    let (code, parent) = (sub.code.get_ref(), sub.parent.get_ref());
    if code.len() != 3 || !all_digits(code) || !code.starts_with(parent.as_str()) {
        let message = format!("subcategory code '{code}' must be three digits starting with its parent '{parent}'");
        return Err(file.error_at(sub.code.span(), message));
    }
    if !categories.contains(parent.as_str()) {
        return Err(file.error_at(sub.parent.span(), format!("parent '{parent}' is not a category")));
    }
    Ok(())
}

fn into_category(raw: RawCategory) -> Category {
    Category {
        code: raw.code.into_inner(),
        name_zh: raw.name_zh,
        name_en: raw.name_en,
        group: raw.group,
        group_zh: raw.group_zh,
        written_by_agreement: raw.written_by_agreement,
        fields: raw.fields.into_iter().map(into_field).collect(),
        proofs: raw.proofs,
    }
}

fn into_field(raw: RawField) -> FieldSpec {
    FieldSpec {
        name: raw.name.into_inner(),
        label_zh: raw.label_zh,
        label_en: raw.label_en,
        kind: raw.kind.into_inner(),
        required: raw.required,
        max_len: raw.max_len,
        code_list: raw.code_list.map(Spanned::into_inner),
    }
}

fn into_subcategory(raw: RawSubcategory) -> Subcategory {
    Subcategory {
        code: raw.code.into_inner(),
        parent: raw.parent.into_inner(),
        name_zh: raw.name_zh,
        name_en: raw.name_en,
    }
}
