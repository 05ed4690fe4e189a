//! Renders one mail to stdout, for eyeballing a template:
//! `cargo run --example preview -- invitation_received '{"recipient_name": "张三", ...}'`.

use std::path::Path;

use gradsign::mail::Templates;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().ok_or("usage: preview NAME JSON_CONTEXT")?;
    let ctx: serde_json::Value = serde_json::from_str(&args.next().unwrap_or_else(|| "{}".into()))?;
    let templates = Templates::load(Path::new("templates/email"))?;
    let mail = templates.render(&name, &ctx)?;
    println!(
        "Subject: {}\n\n{}\n==== html ====\n{}",
        mail.subject, mail.text, mail.html
    );
    Ok(())
}
