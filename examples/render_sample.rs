//! Writes the sample agreement to /tmp/agreement/{final,preview}.pdf and page PNGs, for a look.

use std::path::Path;

use gradsign::render::{AgreementDoc, Renderer, agreement_number, sample_data, verification_code};

/// The sample, or with STRESS=1 the sample with long values everywhere, to check wrapping.
fn data() -> serde_json::Value {
    let mut data = sample_data();
    if std::env::var_os("STRESS").is_some() {
        data["employer"]["name"] = "黑龙江省哈尔滨市松江区现代智能装备制造与工业互联网技术研究院有限责任公司".into();
        data["employer"]["industry"] = "I 信息传输、软件和信息技术服务业".into();
        data["student"]["major"] = "计算机科学与技术（人工智能与大数据方向，中外合作办学）".into();
        data["terms"]["supplementary"] =
            "乙方考取全日制研究生、公务员或出国留学的，可书面通知甲方解除本协议，不承担违约责任。"
                .repeat(6)
                .into();
        let entry = serde_json::json!({"who": "乙方 李晓雯", "action": "查看协议", "at": "2025-03-05 08:00"});
        data["signing"] = serde_json::Value::Array(vec![entry; 12]);
        data["student"]["email"] = "".into();
        data["employer"]["receives_hukou"] = serde_json::Value::Null;
    }
    data
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/agreement");
    let renderer = Renderer::load(&dir).expect("load");
    let out_dir = Path::new("/tmp/agreement");
    std::fs::create_dir_all(out_dir).unwrap();
    let number = agreement_number(2025, "10212", 137);
    for preview in [false, true] {
        let doc = AgreementDoc {
            verification_code: verification_code(b"sample secret", &number),
            verify_url: format!("https://gradsign.example.cn/verify/{number}"),
            number: number.clone(),
            preview,
            data: data(),
            evidence: None,
        };
        let name = if preview { "preview" } else { "final" };
        match renderer.render(&doc, true) {
            Ok(out) => {
                std::fs::write(out_dir.join(format!("{name}.pdf")), &out.pdf).unwrap();
                for (i, png) in out.pages.iter().enumerate() {
                    std::fs::write(out_dir.join(format!("{name}-{}.png", i + 1)), png).unwrap();
                }
            }
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
}
