//! `Email` — a pragmatic e-mail address check: one `@`, a sane local part, a dotted DNS domain (lower-cased).

use super::error::FieldError;
use super::newtype::string_newtype;
use super::text::to_half_width;

const MAX_LOCAL: usize = 64;
const MAX_TOTAL: usize = 254;

/// An e-mail address whose domain is lower-cased. The local part keeps its case: some servers treat
/// it as case-sensitive, and the address is only ever used to send mail to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

string_newtype!(Email);

impl Email {
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let address = to_half_width(input);
        let (local, domain) = address.split_once('@').ok_or_else(|| invalid("缺少 @", "missing @"))?;
        check_local(local)?;
        check_domain(domain)?;
        if address.len() > MAX_TOTAL {
            return Err(invalid("地址过长", "longer than 254 characters"));
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).expect("checked by parse")
    }
}

fn check_local(local: &str) -> Result<(), FieldError> {
    if local.is_empty() || local.len() > MAX_LOCAL {
        return Err(invalid(
            "@ 前的部分应为1到64个字符",
            "the part before @ must be 1 to 64 characters",
        ));
    }
    let allowed = |c: char| c.is_ascii_graphic() && !"\"(),:;<>@[\\]".contains(c);
    if !local.chars().all(allowed) || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid(
            "@ 前含有不允许的字符",
            "the part before @ has characters that are not allowed",
        ));
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), FieldError> {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(invalid(
            "@ 后的域名不正确，例如 example.com",
            "the domain after @ is not valid, e.g. example.com",
        ));
    }
    Ok(())
}

fn invalid(zh_detail: &str, en_detail: &str) -> FieldError {
    FieldError::new(
        "email.format",
        format!("电子邮箱格式不正确：{zh_detail}"),
        format!("not a valid e-mail address: {en_detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lower_cased_and_local_part_kept() {
        let e = Email::parse(" Zhang.San@PKU.Edu.CN ").unwrap();
        assert_eq!((e.as_str(), e.domain()), ("Zhang.San@pku.edu.cn", "pku.edu.cn"));
    }

    #[test]
    fn full_width_at_sign_is_folded() {
        assert_eq!(Email::parse("hr＠example.com").unwrap().as_str(), "hr@example.com");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "", "a", "@x.cn", "a@b", "a@@b.cn", "a b@x.cn", "a@-x.cn", "a@x-.cn", "a@x..cn", "a@x_y.cn", "a.@x.cn",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().code, "email.format", "{bad}");
        }
        assert!(Email::parse(&format!("{}@x.cn", "a".repeat(65))).is_err());
    }
}
