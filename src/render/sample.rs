//! A built-in, realistic sample agreement: fictional people and companies, valid checksums.

use serde_json::{Value, json};

/// Sample data in the engine's JSON shape, for previews, tests and benchmarks.
///
/// The credit code is a valid GB 32100 example from REFERENCE.md; the ID number is invented for a
/// plausible graduate (Harbin 230103, born 2001-03-15, even sequence digit for a woman, valid
/// GB 11643 check digit); the people, companies, phone numbers and addresses are invented.
pub fn sample_data() -> Value {
    json!({
        "employer": {
            "name": "哈尔滨松江智能装备有限公司",
            "credit_code": "91110000600037341L",
            "nature": "39 其他企业",
            "industry": "C 制造业",
            "location": "230103 黑龙江省哈尔滨市南岗区",
            "address": "黑龙江省哈尔滨市南岗区学府路52号松江科技园3号楼",
            "postcode": "150080",
            "contact": "王立新",
            "phone": "0451-86390000",
            "email": "hr@songjiang-ie.example.cn",
            "receives_archive": true,
            "receives_hukou": false
        },
        "student": {
            "name": "李晓雯",
            "gender": "女",
            "id_number": "230103200103150022",
            "student_number": "2021113042",
            "school": "哈尔滨北方理工大学",
            "college": "机电工程学院",
            "major": "机械设计制造及其自动化",
            "education_level": "本科生毕业",
            "study_years": "4 年",
            "training_mode": "非定向",
            "political_status": "共青团员",
            "graduation_date": "2025-06-30",
            "origin": "230600 黑龙江省大庆市",
            "phone": "13800451234",
            "email": "lixiaowen2001@example.com"
        },
        "school": {
            "name": "哈尔滨北方理工大学",
            "office": "学生就业指导中心",
            "contact": "赵老师",
            "phone": "0451-86412000",
            "address": "黑龙江省哈尔滨市南岗区西大直街92号"
        },
        "terms": {
            "position": "13 工程技术人员（机械设计工程师）",
            "work_place": "黑龙江省哈尔滨市",
            "salary": "试用期每月7,200元，转正后每月9,000元（税前），另按规定缴纳五险一金",
            "probation": "3个月",
            "reporting_date": "2025-07-15",
            "archive_unit": "哈尔滨松江智能装备有限公司人力资源部",
            "archive_address": "黑龙江省哈尔滨市南岗区学府路52号松江科技园3号楼 人力资源部",
            "archive_postcode": "150080",
            "archive_contact": "人力资源部 王立新",
            "archive_phone": "0451-86390000",
            "hukou_unit": "大庆市公安局让胡路分局",
            "hukou_address": "黑龙江省大庆市让胡路区中央大街118号",
            "liquidated_damages": "5,000元",
            "supplementary": "乙方考取全日制研究生、公务员或出国留学的，可书面通知甲方解除本协议，不承担违约责任。甲方提供单身公寓一间。"
        },
        "signing": [
            {"who": "甲方 王立新", "action": "发出签约邀请", "at": "2025-03-02 09:15"},
            {"who": "乙方 李晓雯", "action": "查看并同意邀请", "at": "2025-03-04 20:41"},
            {"who": "乙方 李晓雯", "action": "填写档案户口去向并确认签约", "at": "2025-03-04 20:47"},
            {"who": "丙方 学院就业办", "action": "学院审核通过", "at": "2025-03-06 10:02"},
            {"who": "丙方 就业指导中心", "action": "学校审核通过，协议生效", "at": "2025-03-07 14:30"}
        ],
        "dates": {
            "employer": "2025年3月2日",
            "student": "2025年3月4日",
            "school": "2025年3月7日"
        }
    })
}
