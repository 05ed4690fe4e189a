//! Black-box tests of agreement rendering: the PDF's text (via poppler's pdftotext), page count,
//! page images, reproducibility, missing glyphs, the preview watermark and agreement numbers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use gradsign::render::{
    AgreementDoc, PAGE_PNG_SIZE, RenderError, Rendered, Renderer, agreement_number, check_agreement_number,
    sample_data, verification_code,
};
use serde_json::{Value, json};

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/agreement")
}

fn renderer() -> Arc<Renderer> {
    static RENDERER: OnceLock<Arc<Renderer>> = OnceLock::new();
    RENDERER
        .get_or_init(|| Arc::new(Renderer::load(&template_dir()).expect("template loads")))
        .clone()
}

fn doc(data: Value, preview: bool) -> AgreementDoc {
    let number = agreement_number(2025, "10212", 137);
    AgreementDoc {
        verification_code: verification_code(b"test secret", &number),
        verify_url: format!("https://gradsign.example.cn/verify/{number}"),
        number,
        preview,
        data,
        evidence: None,
    }
}

fn render(data: Value, preview: bool, pngs: bool) -> Rendered {
    renderer().render(&doc(data, preview), pngs).expect("renders")
}

/// Whether poppler-utils (pdftotext, pdfinfo, pdftoppm) is installed. Outside CI a
/// test that needs it prints `skipped: …` and passes; in CI (`CI` set) it fails, since
/// `.ci/run` installs it.
fn poppler_installed() -> bool {
    let found = Command::new("pdftotext").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "poppler-utils is required in CI; .ci/run installs it"
        );
        eprintln!("skipped: poppler-utils (pdftotext) is not installed; CI runs this test");
    }
    found
}

/// Runs a poppler tool on the PDF and returns its standard output. Each call writes the
/// PDF into its own temporary folder: tests run in parallel and may render equal bytes.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agreement.pdf");
    std::fs::write(&path, pdf).unwrap();
    let mut command = Command::new(tool);
    command.args(args).arg(&path);
    if tool == "pdftotext" {
        command.arg("-"); // to standard output
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (apt-get install poppler-utils): {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Page text with all whitespace removed, so that layout spacing does not matter.
fn page_text(pdf: &[u8], page: u32) -> String {
    let p = page.to_string();
    poppler("pdftotext", &["-layout", "-f", &p, "-l", &p], pdf)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn page_count(pdf: &[u8]) -> u32 {
    let info = poppler("pdfinfo", &[], pdf);
    let line = info
        .lines()
        .find(|l| l.starts_with("Pages:"))
        .expect("pdfinfo prints Pages:");
    line["Pages:".len()..].trim().parse().unwrap()
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every string under the given top-level sections of the data.
fn strings_of(data: &Value, sections: &[&str]) -> Vec<(String, String)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((path, s.clone())),
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, format!("{path}.{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, format!("{path}.{i}"), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for s in sections {
        walk(&data[*s], (*s).to_owned(), &mut out);
    }
    out
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "png signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |r: std::ops::Range<usize>| u32::from_be_bytes(png[r].try_into().unwrap());
    (be(16..20), be(20..24))
}

#[test]
fn renderer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Renderer>();
}

/// A clean structure, as its readers check it: qpdf finds no error and poppler's `pdfinfo`
/// prints no syntax error (it used to: "Suspects object is wrong type").
#[test]
fn every_agreement_passes_qpdf_check_and_pdfinfo_says_nothing_wrong() {
    if !poppler_installed() {
        return;
    }
    let final_copy = render(sample_data(), false, false);
    let preview = render(sample_data(), true, false);
    for pdf in [&final_copy.pdf, &preview.pdf] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agreement.pdf");
        std::fs::write(&path, pdf).unwrap();
        let info = Command::new("pdfinfo").arg(&path).output().unwrap();
        assert!(info.status.success());
        let stderr = String::from_utf8_lossy(&info.stderr);
        assert!(stderr.trim().is_empty(), "pdfinfo complains: {stderr}");
        match Command::new("qpdf").arg("--check").arg(&path).output() {
            Ok(check) => assert!(
                check.status.success(),
                "qpdf --check: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            ),
            Err(e) if std::env::var("CI").is_err() => {
                eprintln!("skipped: qpdf is not installed ({e}); CI runs this check");
            }
            Err(e) => panic!("qpdf is required in CI; .ci/run installs it: {e}"),
        }
    }
}

#[test]
fn sample_has_two_pages() {
    if !poppler_installed() {
        return;
    }
    let out = render(sample_data(), false, false);
    assert_eq!(page_count(&out.pdf), 2);
}

#[test]
fn every_party_field_is_on_page_one() {
    if !poppler_installed() {
        return;
    }
    let data = sample_data();
    let out = render(data.clone(), false, false);
    let text = page_text(&out.pdf, 1);
    for (path, value) in strings_of(&data, &["employer", "student", "school"]) {
        assert!(
            text.contains(&squash(&value)),
            "page 1 lacks {path} = {value:?}\n{text}"
        );
    }
}

#[test]
fn every_term_signature_date_and_signing_record_is_on_page_two() {
    if !poppler_installed() {
        return;
    }
    let data = sample_data();
    let out = render(data.clone(), false, false);
    let text = page_text(&out.pdf, 2);
    for (path, value) in strings_of(&data, &["terms", "dates", "signing"]) {
        assert!(
            text.contains(&squash(&value)),
            "page 2 lacks {path} = {value:?}\n{text}"
        );
    }
}

#[test]
fn both_pages_carry_the_number_and_verification_code() {
    if !poppler_installed() {
        return;
    }
    let d = doc(sample_data(), false);
    let out = renderer().render(&d, false).unwrap();
    for page in 1..=2 {
        let text = page_text(&out.pdf, page);
        assert!(text.contains(&d.number), "page {page} lacks the number");
        assert!(text.contains(&d.verification_code), "page {page} lacks the code");
        assert!(
            text.contains(&format!("第{page}页共2页")),
            "page {page} lacks its page number"
        );
    }
}

/// A PNG's pixels as 8-bit luminance (grayscale, RGB or RGBA), with its width and height.
fn luma_pixels(png_bytes: &[u8]) -> (Vec<u8>, usize, usize) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    let channels = info.color_type.samples();
    let luma = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| match px.len() {
            1 | 2 => px[0],
            _ => ((u32::from(px[0]) * 299 + u32::from(px[1]) * 587 + u32::from(px[2]) * 114) / 1000) as u8,
        })
        .collect();
    (luma, info.width as usize, info.height as usize)
}

/// The texts of every QR code found in a PNG image.
fn qr_codes_in(png_bytes: &[u8]) -> Vec<String> {
    let (luma, width, height) = luma_pixels(png_bytes);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    image
        .detect_grids()
        .iter()
        .map(|grid| grid.decode().expect("a QR code found decodes").1)
        .collect()
}

#[test]
fn the_qr_code_on_every_page_reads_back_as_the_verify_url() {
    if !poppler_installed() {
        return;
    }
    let d = doc(sample_data(), false);
    let out = renderer().render(&d, true).unwrap();
    for (i, page) in out.pages.iter().enumerate() {
        assert_eq!(
            qr_codes_in(page),
            std::slice::from_ref(&d.verify_url),
            "page image {}",
            i + 1
        );
    }
    // The PDF as a viewer shows it: rasterised by poppler at the same 144 dpi.
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("agreement.pdf");
    std::fs::write(&pdf, &out.pdf).unwrap();
    let status = Command::new("pdftoppm")
        .args(["-r", "144", "-gray", "-png"])
        .arg(&pdf)
        .arg(dir.path().join("page"))
        .status()
        .expect("pdftoppm must be installed (apt-get install poppler-utils)");
    assert!(status.success(), "pdftoppm failed");
    for page in 1..=2 {
        let png = std::fs::read(dir.path().join(format!("page-{page}.png"))).unwrap();
        assert_eq!(
            qr_codes_in(&png),
            std::slice::from_ref(&d.verify_url),
            "pdf page {page}"
        );
    }
}

#[test]
fn a_verify_url_too_long_for_a_qr_code_fails_as_such() {
    let mut d = doc(sample_data(), false);
    d.verify_url = format!("https://gradsign.example.cn/verify/{}", "x".repeat(5_000));
    match renderer().render(&d, false) {
        Err(RenderError::Qr(_)) => {}
        other => panic!("expected a QR code error, got {other:?}"),
    }
}

#[test]
fn page_images_are_a4_at_144_dpi() {
    let out = render(sample_data(), false, true);
    assert_eq!(out.pages.len(), 2);
    for png in &out.pages {
        assert_eq!(png_size(png), PAGE_PNG_SIZE);
    }
}

#[test]
fn same_data_gives_identical_bytes() {
    let a = render(sample_data(), false, true);
    let b = render(sample_data(), false, true);
    assert!(a.pdf == b.pdf, "pdf bytes differ");
    assert!(a.pages == b.pages, "png bytes differ");
}

#[test]
fn changed_data_gives_different_bytes() {
    let a = render(sample_data(), false, true);
    let mut data = sample_data();
    data["terms"]["salary"] = json!("每月9,500元");
    let b = render(data, false, true);
    assert!(a.pdf != b.pdf);
    assert!(a.pages[1] != b.pages[1], "page 2 image should change");
    assert!(a.pages[0] == b.pages[0], "page 1 does not show the salary");
}

#[test]
fn a_character_missing_from_the_font_names_the_field() {
    let mut data = sample_data();
    data["student"]["name"] = json!("李𠇔");
    let err = renderer().render(&doc(data, false), false).unwrap_err();
    match &err {
        RenderError::MissingGlyph { ch, field } => {
            assert_eq!(*ch, '𠇔');
            assert_eq!(field, "student.name");
        }
        other => panic!("expected MissingGlyph, got {other:?}"),
    }
    assert!(err.to_string().contains("student.name"), "{err}");
    assert_eq!(err.message_zh(), "字体缺少字符 “𠇔”（字段 student.name）");
}

#[test]
fn preview_carries_the_watermark_and_final_does_not() {
    if !poppler_installed() {
        return;
    }
    // The rotated watermark comes out of pdftotext as scattered characters: look for each one.
    let preview = render(sample_data(), true, false);
    for page in 1..=2 {
        let text = page_text(&preview.pdf, page);
        assert!(
            text.contains('预') && text.contains('览'),
            "page {page} lacks the watermark: {text}"
        );
    }
    let final_copy = render(sample_data(), false, false);
    assert!(!squash(&poppler("pdftotext", &[], &final_copy.pdf)).contains("预览"));
}

#[test]
fn empty_and_absent_fields_print_blank() {
    if !poppler_installed() {
        return;
    }
    let mut data = sample_data();
    data["student"]["email"] = json!("");
    data["employer"]["postcode"] = Value::Null;
    data["employer"]["receives_hukou"] = Value::Null;
    data["terms"].as_object_mut().unwrap().remove("supplementary");
    data.as_object_mut().unwrap().remove("dates");
    let out = render(data, false, false);
    let text = poppler("pdftotext", &["-layout"], &out.pdf).to_lowercase();
    assert!(!text.contains("null") && !text.contains("none"), "{text}");
}

#[test]
fn empty_data_still_renders_two_blank_pages() {
    if !poppler_installed() {
        return;
    }
    let out = render(json!({}), false, false);
    let text = poppler("pdftotext", &["-layout"], &out.pdf).to_lowercase();
    assert!(!text.contains("null") && !text.contains("none"));
    assert_eq!(page_count(&out.pdf), 2);
}

#[test]
fn a_long_signing_record_and_long_terms_stay_on_two_pages() {
    let mut data = sample_data();
    let entry = json!({"who": "乙方 李晓雯", "action": "查看协议", "at": "2025-03-05 08:00"});
    data["signing"] = Value::Array(vec![entry; 20]);
    data["terms"]["supplementary"] = json!("乙方考取全日制研究生的，可解除本协议。".repeat(14));
    render(data, false, false);
}

#[test]
fn agreement_number_check_character_catches_a_changed_character() {
    let number = agreement_number(2025, "10212", 137);
    assert!(check_agreement_number(&number), "{number}");
    assert!(number.starts_with("2025-10212-000137-"));
    let chars: Vec<char> = number.chars().collect();
    for i in (0..chars.len() - 2).filter(|i| chars[*i] != '-') {
        for replacement in ['0', '5', '9', 'A', 'K'] {
            if replacement == chars[i] {
                continue;
            }
            let mut changed = chars.clone();
            changed[i] = replacement;
            let changed: String = changed.into_iter().collect();
            assert!(!check_agreement_number(&changed), "{changed} should fail");
        }
    }
    assert!(!check_agreement_number("not a number"));
}

#[test]
fn adjacent_swaps_in_the_agreement_number_are_caught() {
    let number = agreement_number(2024, "10213", 4518);
    let chars: Vec<char> = number.chars().collect();
    for i in 0..chars.len() - 3 {
        if chars[i] == '-' || chars[i + 1] == '-' || chars[i] == chars[i + 1] {
            continue;
        }
        let mut swapped = chars.clone();
        swapped.swap(i, i + 1);
        let swapped: String = swapped.into_iter().collect();
        assert!(!check_agreement_number(&swapped), "{swapped} should fail");
    }
}

#[test]
fn verification_codes_are_eight_unambiguous_characters_tied_to_the_secret() {
    let a = verification_code(b"secret one", "2025-10212-000137-K");
    assert_eq!(a.len(), 8);
    assert!(
        a.chars().all(|c| c.is_ascii_alphanumeric() && !"01IO".contains(c)),
        "{a}"
    );
    assert_eq!(a, verification_code(b"secret one", "2025-10212-000137-K"));
    assert_ne!(a, verification_code(b"secret two", "2025-10212-000137-K"));
    assert_ne!(a, verification_code(b"secret one", "2025-10212-000138-K"));
}

#[test]
fn the_bold_subset_covers_every_fixed_character_of_the_template() {
    // Run templates/agreement/fonts/subset-bold.sh again when this fails after a template edit.
    use typst::foundations::Bytes;
    use typst::text::Font;
    let dir = template_dir();
    let bold = std::fs::read(dir.join("fonts/NotoSerifSC_700Bold-subset.ttf")).unwrap();
    let font = Font::iter(Bytes::new(bold)).next().expect("bold subset parses");
    let template = std::fs::read_to_string(dir.join("agreement.typ")).unwrap();
    let missing: String = template
        .chars()
        .filter(|c| !c.is_whitespace() && (*c as u32) > 0x7e)
        .filter(|c| !font.info().coverage.contains(*c as u32))
        .collect();
    assert!(missing.is_empty(), "bold subset lacks {missing:?}");
}

#[test]
fn the_names_a_definition_may_render_are_the_templates_the_renderer_reads() {
    let names = gradsign::render::template_names(&template_dir()).unwrap();
    assert!(
        names.contains("agreement") && names.contains("termination_certificate"),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        std::fs::read_dir(template_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "typ"))
            .count()
    );
}

#[test]
fn the_termination_certificate_is_one_page_with_both_parties_and_the_reason() {
    let mut data = sample_data();
    data["case"] = json!({ "termination": { "requested_by": "student", "reason": "考取全日制硕士研究生" } });
    let number = doc(data.clone(), false).number;
    let out = renderer()
        .render_template("termination_certificate", 1, &doc(data, false), true)
        .expect("renders");
    assert_eq!(page_count(&out.pdf), 1);
    assert_eq!(out.pages.len(), 1);
    let text = page_text(&out.pdf, 1);
    for fact in [
        "解除就业协议证明",
        "李晓雯",
        "哈尔滨松江智能装备有限公司",
        "考取全日制硕士研究生",
        "乙方（毕业生）",
        number.as_str(),
    ] {
        assert!(text.contains(fact), "the certificate lacks {fact}: {text}");
    }
    // The agreement's template still insists on its own two pages.
    let err = renderer()
        .render_template("agreement", 1, &doc(sample_data(), false), false)
        .unwrap_err();
    assert!(matches!(err, RenderError::PageCount { expected: 1, pages: 2 }), "{err}");
}

/// The longest values the definitions' forms allow (`max` of each field of
/// workflows/*.toml), and long ones in the parties' records, wrap in their cells and still
/// give two pages, each value on its page.
#[test]
fn the_longest_values_the_forms_allow_stay_on_two_pages() {
    let long = |unit: &str, n: usize| unit.chars().cycle().take(n).collect::<String>();
    let mut data = sample_data();
    for (field, n) in [
        ("position", 60),
        ("work_place", 100),
        ("salary", 60),
        ("probation", 60),
        ("liquidated_damages", 60),
        ("archive_unit", 100),
        ("archive_address", 200),
        ("archive_contact", 30),
        ("hukou_unit", 100),
        ("hukou_address", 200),
    ] {
        data["terms"][field] = json!(long("黑龙江省哈尔滨市南岗区学府路人才服务中心", n));
    }
    data["terms"]["supplementary"] = json!(long("乙方考取全日制研究生的，可解除本协议，不承担违约责任。", 300));
    for (field, n) in [("school", 30), ("college", 24), ("major", 30), ("origin", 60)] {
        data["student"][field] = json!(long("哈尔滨北方理工大学机电工程学院", n));
    }
    data["employer"]["name"] = json!(long("哈尔滨松江智能装备有限公司", 100));
    data["employer"]["address"] = json!(long("黑龙江省哈尔滨市南岗区学府路", 200));
    let out = render(data.clone(), false, false);
    if !poppler_installed() {
        return;
    }
    assert_eq!(page_count(&out.pdf), 2);
    // In the order the page draws them (a wrapped cell's lines stay together).
    let text = |page: u32| -> String {
        let p = page.to_string();
        poppler("pdftotext", &["-raw", "-f", &p, "-l", &p], &out.pdf)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    let (one, two) = (text(1), text(2));
    for (path, value) in strings_of(&data, &["employer", "student", "school"]) {
        assert!(one.contains(&squash(&value)), "page 1 lacks {path}");
    }
    for (path, value) in strings_of(&data, &["terms"]) {
        assert!(two.contains(&squash(&value)), "page 2 lacks {path}");
    }
}

/// No validator of PDF/A can run on this project's machines (see `render`'s "Output
/// choices"), so the agreement claims no PDF/A conformance.
#[test]
fn the_agreement_claims_no_pdf_a_conformance() {
    let out = render(sample_data(), false, false);
    let claims = |needle: &[u8]| out.pdf.windows(needle.len()).any(|w| w == needle);
    assert!(!claims(b"pdfaid"), "an XMP PDF/A identification");
    assert!(!claims(b"GTS_PDFA"), "a PDF/A output intent");
}

/// The evidence a rendered document carries is in its metadata (read back by `pdfinfo`
/// and by `read_evidence`) and, in small print, on both pages.
#[test]
fn the_evidence_reads_back_from_the_metadata_and_the_page() {
    let evidence = gradsign::render::Evidence {
        number: agreement_number(2025, "10212", 137),
        case_version: 7,
        history_sha256: "ab".repeat(32),
    };
    let mut agreement = doc(sample_data(), false);
    agreement.evidence = Some(evidence.clone());
    let out = renderer().render(&agreement, false).expect("renders");
    assert_eq!(gradsign::render::read_evidence(&out.pdf), Some(evidence.clone()));
    assert_eq!(
        gradsign::render::read_evidence(&render(sample_data(), false, false).pdf),
        None
    );
    if !poppler_installed() {
        return;
    }
    let info = poppler("pdfinfo", &[], &out.pdf);
    assert!(info.contains(&evidence.keyword()), "{info}");
    for page in [1, 2] {
        assert!(
            page_text(&out.pdf, page).contains(&evidence.history_sha256),
            "page {page}"
        );
    }
    assert_eq!(page_count(&out.pdf), 2);
}
