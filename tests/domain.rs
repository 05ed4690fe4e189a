//! Black-box tests of `gradsign::domain`: every parsing rule with valid and invalid examples, every
//! destination category with a valid and an invalid registration, and reference-file error reporting.
//!
//! ID numbers here are the standard's published examples or numbers computed for fictitious people.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use gradsign::domain::{
    CreditCode, Email, FieldError, IdNumber, KINDS, Phone, Postcode, Reference, ReferenceError, RegionCode, Sex,
    known_kind, validate,
};
use serde_json::{Map, Value, json};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A fixed "today" so the tests do not age.
fn today() -> NaiveDate {
    day(2024, 6, 30)
}

fn id(s: &str) -> Result<IdNumber, FieldError> {
    IdNumber::parse_on(s, today())
}

// ---------- credit codes ----------

#[test]
fn published_credit_codes_are_accepted() {
    for code in ["91110000600037341L", "91110000101623741K", "911101066976941872"] {
        assert_eq!(CreditCode::parse(code).unwrap().as_str(), code);
    }
}

#[test]
fn credit_codes_with_letters_up_front_are_accepted() {
    // Computed: authority Y and a region part with letters, and a 1-category public institution.
    for code in ["Y1110000MA0000000U", "91230103MA1B2C3D4L", "12100000400000000W"] {
        assert!(CreditCode::parse(code).is_ok(), "{code}");
    }
}

#[test]
fn a_real_code_that_fails_the_check_is_refused_without_revealing_the_right_character() {
    let e = CreditCode::parse("91350211M0000XUF46").unwrap_err();
    assert_eq!(e.code, "credit_code.checksum");
    assert!(e.zh.contains("校验位不符"), "{}", e.zh);
    assert!(e.en.contains("check character does not match"), "{}", e.en);
    // The right character is R; the messages must not hand it out.
    assert!(!e.zh.contains('R') && !e.en.contains('R'));
}

#[test]
fn a_wrong_check_character_is_refused() {
    assert_eq!(
        CreditCode::parse("91110000600037341K").unwrap_err().code,
        "credit_code.checksum"
    );
}

#[test]
fn credit_code_length_is_eighteen() {
    assert_eq!(
        CreditCode::parse("91110000600037341").unwrap_err().code,
        "credit_code.length"
    );
    assert_eq!(
        CreditCode::parse("91110000600037341LL").unwrap_err().code,
        "credit_code.length"
    );
    assert_eq!(CreditCode::parse("").unwrap_err().code, "credit_code.length");
}

#[test]
fn letters_outside_the_alphabet_are_refused_with_their_position() {
    for bad in ['I', 'O', 'S', 'V', 'Z', '-', '中'] {
        let code: String = format!("9111000060003734{bad}L");
        let e = CreditCode::parse(&code).unwrap_err();
        assert_eq!(e.code, "credit_code.charset", "{code}");
        assert!(e.zh.contains("第17位"), "{}", e.zh);
    }
}

#[test]
fn lower_case_and_full_width_credit_codes_are_normalised() {
    assert_eq!(
        CreditCode::parse(" 91110000600037341l ").unwrap().as_str(),
        "91110000600037341L"
    );
    assert_eq!(
        CreditCode::parse("９１１１００００６０００３７３４１Ｌ")
            .unwrap()
            .as_str(),
        "91110000600037341L"
    );
}

#[test]
fn credit_codes_serialise_as_strings_and_deserialise_through_parse() {
    let code = CreditCode::parse("91110000600037341l").unwrap();
    assert_eq!(serde_json::to_value(&code).unwrap(), json!("91110000600037341L"));
    assert_eq!(
        serde_json::from_value::<CreditCode>(json!("91110000600037341l")).unwrap(),
        code
    );
    assert!(serde_json::from_value::<CreditCode>(json!("91350211M0000XUF46")).is_err());
}

// ---------- ID numbers ----------

#[test]
fn the_standards_own_id_examples_are_accepted() {
    for (number, birth, sex) in [
        ("11010519491231002X", day(1949, 12, 31), Sex::Female),
        ("440524188001010014", day(1880, 1, 1), Sex::Male),
        ("34052419800101001X", day(1980, 1, 1), Sex::Male),
    ] {
        let parsed = id(number).unwrap();
        assert_eq!((parsed.birth_date(), parsed.sex()), (birth, sex), "{number}");
    }
}

#[test]
fn lower_case_x_and_full_width_digits_are_normalised() {
    assert_eq!(id("11010519491231002x").unwrap().as_str(), "11010519491231002X");
    assert_eq!(
        id("１１０１０５１９４９１２３１００２ｘ").unwrap().as_str(),
        "11010519491231002X"
    );
    assert_eq!(id("110105 19491231 002X").unwrap().as_str(), "11010519491231002X");
}

#[test]
fn a_wrong_id_check_digit_is_refused() {
    assert_eq!(id("110105194912310021").unwrap_err().code, "id_number.checksum");
    assert_eq!(id("230103200105170028").unwrap_err().code, "id_number.checksum");
}

#[test]
fn id_length_and_characters_are_checked() {
    assert_eq!(id("11010519491231002").unwrap_err().code, "id_number.length");
    assert_eq!(id("110105194912310").unwrap_err().code, "id_number.length"); // the old 15-digit form
    assert_eq!(id("1101051949123100XX").unwrap_err().code, "id_number.charset");
    assert_eq!(id("1101051949123100中2").unwrap_err().code, "id_number.charset");
}

#[test]
fn an_impossible_birth_date_is_refused() {
    // 2023-02-30 with a correct check digit, so only the date is wrong.
    let e = id("110105202302300016").unwrap_err();
    assert_eq!(e.code, "id_number.birth_date");
    assert!(e.zh.contains("20230230"));
}

#[test]
fn a_birth_date_in_the_future_or_before_1800_is_refused() {
    assert_eq!(
        id("110105209901010012").unwrap_err().code,
        "id_number.birth_date_future"
    );
    assert_eq!(
        id("110105179912310016").unwrap_err().code,
        "id_number.birth_date_too_early"
    );
    assert!(id("110105189912310015").is_ok());
}

#[test]
fn declared_gender_is_compared_with_the_sequence_digit() {
    let female = id("230103200105170027").unwrap();
    let male = id("230103200105170019").unwrap();
    assert!(female.matches_gender("女") && female.matches_gender("female") && female.matches_gender("F"));
    assert!(!female.matches_gender("男") && !female.matches_gender("male"));
    assert!(male.matches_gender("男") && !male.matches_gender("女"));
    assert!(!male.matches_gender("") && !male.matches_gender("unknown"));
}

#[test]
fn graduate_plausibility_is_a_separate_check() {
    assert!(
        id("230103200105170027")
            .unwrap()
            .plausible_for_graduate(today())
            .is_ok()
    );
    let e = id("440524188001010014")
        .unwrap()
        .plausible_for_graduate(today())
        .unwrap_err();
    assert_eq!(e.code, "id_number.implausible_age");
    assert!(
        id("230103195001010017")
            .unwrap()
            .plausible_for_graduate(today())
            .is_err()
    ); // 74
    assert!(
        id("230103195001010017")
            .unwrap()
            .plausible_for_graduate(day(2020, 1, 1))
            .is_ok()
    ); // 70
}

#[test]
fn leap_day_births_are_real_dates() {
    assert_eq!(id("440305200002290037").unwrap().birth_date(), day(2000, 2, 29));
}

// ---------- phones, e-mail, postcodes, regions ----------

#[test]
fn phones_normalise_and_refuse_garbage() {
    assert_eq!(Phone::parse("+86 139-0451-0000").unwrap().as_str(), "13904510000");
    assert_eq!(
        Phone::parse("０４５１－８６４１２１１４").unwrap().as_str(),
        "0451-86412114"
    );
    assert_eq!(Phone::parse("010-12345678-123").unwrap().as_str(), "010-12345678-123");
    for bad in [
        "",
        "1390451000",
        "139045100000",
        "11904510000",
        "abc",
        "4512345678",
        "+1 2025550123",
    ] {
        assert_eq!(Phone::parse(bad).unwrap_err().code, "phone.format", "{bad}");
    }
}

#[test]
fn emails_lower_case_the_domain() {
    assert_eq!(Email::parse("HR@Example.COM").unwrap().as_str(), "HR@example.com");
    for bad in ["hr@", "hr@example", "h r@example.com", "hr@exa mple.com", "a@b@c.cn"] {
        assert_eq!(Email::parse(bad).unwrap_err().code, "email.format", "{bad}");
    }
}

#[test]
fn postcodes_and_region_codes() {
    assert_eq!(Postcode::parse(" 150001 ").unwrap().as_str(), "150001");
    assert_eq!(Postcode::parse("1500011").unwrap_err().code, "postcode.format");
    assert_eq!(RegionCode::parse("２３０１０３").unwrap().as_str(), "230103");
    for ok in ["110000", "710000", "810000", "820000", "650102"] {
        assert!(RegionCode::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "160000", "240000", "380000", "470000", "550000", "660000", "830000", "000000",
    ] {
        assert_eq!(
            RegionCode::parse(bad).unwrap_err().code,
            "region_code.province",
            "{bad}"
        );
    }
}

// ---------- validator registry ----------

#[test]
fn the_registry_knows_its_kinds() {
    assert_eq!(KINDS.len(), 12);
    assert!(KINDS.iter().all(|k| known_kind(k)));
    assert!(!known_kind("regex"));
}

#[test]
fn the_registry_returns_normalised_values() {
    let cases = [
        ("text", json!(" 张三 "), json!("张三")),
        ("credit_code", json!("91110000600037341l"), json!("91110000600037341L")),
        ("id_number", json!("11010519491231002x"), json!("11010519491231002X")),
        ("phone", json!("+86 13800138000"), json!("13800138000")),
        ("email", json!("a@B.cn"), json!("a@b.cn")),
        ("postcode", json!("150001"), json!("150001")),
        ("region_code", json!("230103"), json!("230103")),
        ("date", json!("2024-07-01"), json!("2024-07-01")),
        ("bool", json!("否"), json!(false)),
        ("integer", json!("６"), json!(6)),
        ("money", json!("8000.00"), json!(8000)),
    ];
    for (kind, input, expected) in cases {
        assert_eq!(validate(kind, &input).unwrap(), expected, "{kind}");
    }
}

#[test]
fn the_registry_refuses_wrong_types_and_values() {
    assert_eq!(
        validate("postcode", &json!(150001)).unwrap_err().code,
        "value.not_a_string"
    );
    assert_eq!(
        validate("credit_code", &json!("91350211M0000XUF46")).unwrap_err().code,
        "credit_code.checksum"
    );
    assert_eq!(validate("date", &json!("2023-02-30")).unwrap_err().code, "date.format");
    assert_eq!(validate("money", &json!(-5)).unwrap_err().code, "money.negative");
    assert_eq!(validate("money", &json!("1.005")).unwrap_err().code, "money.precision");
    assert_eq!(
        validate("nope", &json!("x")).unwrap_err().code,
        "validator.unknown_kind"
    );
}

// ---------- reference data ----------

fn reference() -> &'static Reference {
    Reference::builtin()
}

#[test]
fn there_are_fourteen_categories_and_only_10_is_written_by_an_agreement() {
    let codes: Vec<&str> = reference().categories().iter().map(|c| c.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "10", "11", "12", "27", "46", "50", "51", "75", "76", "80", "85", "70", "71", "72"
        ]
    );
    let by_agreement: Vec<&str> = reference()
        .categories()
        .iter()
        .filter(|c| c.written_by_agreement)
        .map(|c| c.code.as_str())
        .collect();
    assert_eq!(by_agreement, ["10"]);
}

#[test]
fn three_digit_codes_resolve_to_their_parent() {
    for (sub, parent) in [
        ("271", "27"),
        ("502", "50"),
        ("503", "50"),
        ("512", "51"),
        ("519", "51"),
        ("801", "80"),
        ("802", "80"),
    ] {
        assert_eq!(reference().subcategory(sub).unwrap().parent, parent);
        assert_eq!(reference().category(sub).unwrap().code, parent);
    }
    assert_eq!(reference().category("509").unwrap().code, "50"); // unknown sub-code, known parent
    for bad in ["99", "999", "1", "1000", "ab", ""] {
        assert!(reference().category(bad).is_none(), "{bad}");
    }
}

#[test]
fn code_lists_are_loaded() {
    let r = reference();
    assert_eq!(r.code_list("unit_nature").unwrap().entries.len(), 12);
    assert_eq!(r.code_list("industry").unwrap().entries.len(), 21);
    assert_eq!(r.code_list("job_category").unwrap().entries.len(), 18);
    assert_eq!(r.code_list("education_level").unwrap().entries.len(), 14);
    assert_eq!(
        r.code_list("industry").unwrap().lookup("i").unwrap().name_zh,
        "信息传输、软件和信息技术服务业"
    );
    assert!(r.code_list("no_such_list").is_none());
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

fn unit_fields() -> Value {
    json!({
        "unit_name": "北京某某科技有限公司",
        "credit_code": "91110000600037341L",
        "unit_nature": "其他企业",
        "industry": "I",
        "location": "110108",
        "job_category": "13",
        "contact": "王老师",
        "contact_phone": "010-12345678",
    })
}

/// One valid registration per category; the invalid ones below break it in a category-specific way.
fn valid_registration(code: &str) -> Value {
    match code {
        "10" | "11" | "12" => unit_fields(),
        "27" => {
            json!({ "unit_name": "某某大学", "location": "230103", "post_name": "材料学院课题组" })
        }
        "46" => json!({ "recruiting_office": "南岗区人民武装部" }),
        "50" => {
            json!({ "project_name": "西部计划", "unit_name": "某县团委", "location": "650102" })
        }
        "51" => {
            json!({ "project_name": "地方选调生", "unit_name": "某镇人民政府", "location": "230103" })
        }
        "75" => {
            json!({ "enterprise_name": "某某网店", "location": "330106", "shop_url": "https://shop.example.com/1" })
        }
        "76" => json!({ "description": "为多家出版社提供插画设计服务，按件结算" }),
        "80" => json!({ "admitting_school": "哈尔滨工业大学", "degree_level": "硕士研究生" }),
        "85" => json!({ "country_region": "英国", "school": "University of Edinburgh" }),
        "70" => json!({ "sub_status": "求职中" }),
        "71" | "72" => json!({}),
        other => panic!("no example for {other}"),
    }
}

fn invalid_registration(code: &str) -> (Value, &'static str) {
    match code {
        "10" => (json!({ "credit_code": "91350211M0000XUF46" }), "credit_code.checksum"),
        "11" => (json!({ "unit_nature": "外企" }), "field.not_in_list"),
        "12" => (json!({ "location": "990000" }), "region_code.province"),
        "27" => (json!({ "unit_name": "" }), "field.required"),
        "46" => (json!({ "recruiting_office": "武".repeat(101) }), "field.too_long"),
        "50" => (json!({ "contact_phone": "12345" }), "phone.format"),
        "51" => (json!({ "project_name": null }), "field.required"),
        "75" => (json!({ "credit_code": "9111000060003734OL" }), "credit_code.charset"),
        "76" => (json!({ "description": "   " }), "field.required"),
        "80" => (json!({ "degree_level": "博士后" }), "field.not_in_list"),
        "85" => (json!({ "school": 42 }), "value.not_a_string"),
        "70" => (json!({ "sub_status": "躺平" }), "field.not_in_list"),
        "71" | "72" => (json!({ "unit_name": "某公司" }), "field.unknown"),
        other => panic!("no example for {other}"),
    }
}

#[test]
fn every_category_accepts_a_valid_registration() {
    for category in reference().categories() {
        let input = fields(valid_registration(&category.code));
        let result = reference().validate_registration(&category.code, &input);
        assert!(result.is_ok(), "{}: {:?}", category.code, result);
    }
}

#[test]
fn every_category_refuses_an_invalid_registration() {
    for category in reference().categories() {
        let mut input = fields(valid_registration(&category.code));
        let (changes, expected) = invalid_registration(&category.code);
        input.extend(fields(changes));
        let errors = reference().validate_registration(&category.code, &input).unwrap_err();
        assert!(
            errors.iter().any(|e| e.code == expected),
            "{}: {:?}",
            category.code,
            errors
        );
    }
}

#[test]
fn registration_values_come_back_normalised() {
    let mut input = fields(unit_fields());
    input.insert("credit_code".into(), json!("９１１１００００６０００３７３４１ｌ"));
    input.insert("contact_phone".into(), json!("+86 138 0013 8000"));
    let out = reference().validate_registration("11", &input).unwrap();
    assert_eq!(out["credit_code"], json!("91110000600037341L"));
    assert_eq!(out["contact_phone"], json!("13800138000"));
    assert_eq!(out["unit_nature"], json!("39")); // name → code
    assert_eq!(out["industry"], json!("34")); // GB/T 4754 section letter → Ministry code
    let pending = reference()
        .validate_registration("70", &fields(json!({ "sub_status": "拟创业" })))
        .unwrap();
    assert_eq!(pending["sub_status"], json!("startup"));
}

#[test]
fn optional_blank_fields_are_left_out() {
    let input = fields(json!({ "unit_name": "某某大学", "location": "230103", "contact": "", "contact_phone": null }));
    let out = reference().validate_registration("271", &input).unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["location", "unit_name"]);
}

#[test]
fn all_registration_errors_are_reported_at_once() {
    let input = fields(json!({ "credit_code": "123", "contact_phone": "x", "salary": 1 }));
    let errors = reference().validate_registration("11", &input).unwrap_err();
    let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
    for expected in [
        ("salary", "field.unknown"),
        ("unit_name", "field.required"),
        ("credit_code", "credit_code.length"),
        ("unit_nature", "field.required"),
        ("location", "field.required"),
        ("contact_phone", "phone.format"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
    assert_eq!(errors.len(), 9);
}

#[test]
fn an_unknown_destination_code_is_refused() {
    let errors = reference().validate_registration("99", &Map::new()).unwrap_err();
    assert_eq!(
        (errors[0].field.as_str(), errors[0].code),
        ("destination_code", "destination.unknown")
    );
}

#[test]
fn required_proofs_are_counted() {
    let counts = |pairs: &[(&str, u32)]| {
        pairs
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(
        reference()
            .validate_proofs("11", &counts(&[("labour_contract", 2)]))
            .is_ok()
    );
    assert!(reference().validate_proofs("70", &counts(&[])).is_ok());
    let missing = reference().validate_proofs("46", &counts(&[])).unwrap_err();
    assert_eq!(
        (missing[0].field.as_str(), missing[0].code),
        ("enlistment_notice", "proof.missing")
    );
    let wrong = reference()
        .validate_proofs("80", &counts(&[("internship_certificate", 1)]))
        .unwrap_err();
    let codes: Vec<&str> = wrong.iter().map(|e| e.code).collect();
    assert_eq!(codes, ["proof.unknown", "proof.missing"]);
}

// ---------- reference files with errors ----------

fn reference_dir(name: &str, categories: &str, code_lists: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradsign-reference-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("destination_categories.toml"), categories).unwrap();
    std::fs::write(dir.join("code_lists.toml"), code_lists).unwrap();
    dir
}

fn builtin_text(file: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference").join(file)).unwrap()
}

fn invalid_at(result: Result<Reference, ReferenceError>) -> (String, usize, String) {
    match result {
        Err(ReferenceError::Invalid {
            file, line, message, ..
        }) => (file, line, message),
        other => panic!("expected an invalid-file error, got {other:?}"),
    }
}

#[test]
fn the_project_reference_directory_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference");
    assert_eq!(Reference::load(dir).unwrap().categories().len(), 14);
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let broken = "# comment\n[[category]]\ncode = \"10\n";
    let dir = reference_dir("syntax", broken, &builtin_text("code_lists.toml"));
    let (file, line, _) = invalid_at(Reference::load(&dir));
    assert_eq!((file.as_str(), line), ("destination_categories.toml", 3));
}

#[test]
fn an_unknown_validator_kind_names_the_file_and_line() {
    let categories =
        builtin_text("destination_categories.toml").replacen("kind = \"credit_code\"", "kind = \"credit_kode\"", 1);
    let expected_line = categories.lines().position(|l| l.contains("credit_kode")).unwrap() + 1;
    let dir = reference_dir("kind", &categories, &builtin_text("code_lists.toml"));
    let (file, line, message) = invalid_at(Reference::load(&dir));
    assert_eq!((file.as_str(), line), ("destination_categories.toml", expected_line));
    assert!(message.contains("credit_kode"), "{message}");
}

#[test]
fn a_misspelt_key_in_a_code_list_names_the_file_and_line() {
    let lists = "[[list]]\nname = \"x\"\nname_zh = \"x\"\nname_en = \"x\"\nentries = [\n  { code = \"1\", name_zh = \"a\", nmae_en = \"a\" },\n]\n";
    let dir = reference_dir("key", &builtin_text("destination_categories.toml"), lists);
    let (file, line, message) = invalid_at(Reference::load(&dir));
    assert_eq!((file.as_str(), line), ("code_lists.toml", 6));
    assert!(message.contains("nmae_en"), "{message}");
}

#[test]
fn a_duplicate_category_and_a_dangling_code_list_are_refused() {
    let lists = builtin_text("code_lists.toml");
    let duplicate = builtin_text("destination_categories.toml").replacen("code = \"11\"", "code = \"10\"", 1);
    let (_, line, message) = invalid_at(Reference::load(reference_dir("dup", &duplicate, &lists)));
    assert_eq!(duplicate.lines().nth(line - 1).unwrap().trim(), "code = \"10\"");
    assert!(message.contains("duplicate"), "{message}");

    let dangling =
        builtin_text("destination_categories.toml").replacen("code_list = \"industry\"", "code_list = \"trade\"", 1);
    let (_, line, message) = invalid_at(Reference::load(reference_dir("list", &dangling, &lists)));
    assert!(dangling.lines().nth(line - 1).unwrap().contains("\"trade\""));
    assert!(message.contains("unknown code list"), "{message}");
}

#[test]
fn a_missing_reference_file_names_its_path() {
    let err = Reference::load("/nonexistent/reference").unwrap_err();
    assert!(matches!(err, ReferenceError::Read { .. }));
    assert!(err.to_string().contains("destination_categories.toml"), "{err}");
}

#[test]
fn the_error_display_reads_file_line_column() {
    let dir = reference_dir("display", "[[category]]\ncode = 10\n", &builtin_text("code_lists.toml"));
    let rendered = Reference::load(&dir).unwrap_err().to_string();
    assert!(rendered.starts_with("destination_categories.toml:2:"), "{rendered}");
}

// ---------- tidy ----------

#[test]
fn every_source_file_opens_with_a_module_doc_line() {
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("//! "), "{} does not open with //!", path.display());
        }
    }
}
