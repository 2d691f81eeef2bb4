//! The public transparency notice: `GET /transparency` (JSON) and `GET /transparency.html` (the
//! same as a plain page, no script). Which sharing agreements are in force today, who shares
//! and who receives under each, for which roles and purposes, which parts of the record, and
//! how a patient objects; and every participating organisation. Built from the policy in force
//! only: it holds no patient data, so it needs no token and is not audited.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use tideway_policy::ConsentModel;
use tideway_policy::agreement::Sections;
use tideway_policy::terminology::SetMask;

use crate::state::AppState;

/// One agreement in force, as the public sees it.
#[derive(Debug, Serialize)]
struct Shared {
    id: String,
    version: u32,
    title: String,
    consent_model: &'static str,
    start: String,
    end: Option<String>,
    controllers: Vec<String>,
    organisations: Vec<String>,
    roles: Vec<String>,
    purposes: Vec<&'static str>,
    sections: Vec<String>,
    only_code_sets: Vec<String>,
    excluded_code_sets: Vec<String>,
    sensitive: Vec<String>,
    objection: String,
}

/// An organisation taking part, and how.
#[derive(Debug, Serialize)]
struct Participant {
    ods_code: String,
    /// `data-controller`, `recipient`, or both.
    roles: Vec<&'static str>,
    /// The registered sources it runs, by name.
    sources: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Notice {
    agreements: Vec<Shared>,
    organisations: Vec<Participant>,
}

fn notice(state: &AppState) -> Notice {
    let policy = state.records.policy.current();
    let in_force = &state.records.policy;
    let today = time::OffsetDateTime::now_utc().date();
    let terminology = policy.terminology();
    let set_names = |mask: SetMask| -> Vec<String> {
        terminology
            .sets()
            .iter()
            .filter(|s| terminology.bit(&s.name).is_some_and(|b| b & mask != 0))
            .map(|s| s.name.clone())
            .collect()
    };
    let mut participants: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let agreements: Vec<Shared> = policy
        .agreements()
        .iter()
        .filter(|a| a.in_force(today))
        .map(|a| {
            let controllers = in_force.controllers_of(a);
            for c in &controllers {
                participants.entry(c.clone()).or_default().push("data-controller");
            }
            for o in &a.organisations {
                participants.entry(o.as_str().to_owned()).or_default().push("recipient");
            }
            Shared {
                id: a.id.clone(),
                version: a.version,
                title: a.title.clone(),
                consent_model: match a.consent_model {
                    ConsentModel::Explicit => "explicit",
                    ConsentModel::ImpliedDirectCare => "implied-direct-care",
                    ConsentModel::NationalDataOptOut => "national-data-opt-out",
                },
                start: a.start.to_string(),
                end: a.end.map(|d| d.to_string()),
                controllers,
                organisations: a.organisations.iter().map(|o| o.as_str().to_owned()).collect(),
                roles: a.roles.iter().cloned().collect(),
                purposes: a.purposes.iter().map(|p| p.code()).collect(),
                sections: match &a.sections {
                    Sections::Every => vec!["*".to_owned()],
                    Sections::Only(s) => s
                        .iter()
                        .filter_map(|s| serde_json::to_value(s).ok()?.as_str().map(str::to_owned))
                        .collect(),
                },
                only_code_sets: set_names(a.include),
                excluded_code_sets: set_names(a.exclude),
                sensitive: set_names(a.sensitive),
                objection: a.objection.clone(),
            }
        })
        .collect();
    let organisations = participants
        .into_iter()
        .map(|(ods_code, mut roles)| {
            roles.sort_unstable();
            roles.dedup();
            let sources = state
                .settings
                .sources
                .iter()
                .filter(|s| s.ods_code.as_str() == ods_code)
                .map(|s| s.name.clone())
                .collect();
            Participant { ods_code, roles, sources }
        })
        .collect();
    Notice { agreements, organisations }
}

/// `GET /transparency`
pub async fn json(state: web::Data<AppState>) -> HttpResponse {
    let body = serde_json::to_string(&notice(&state)).unwrap_or_else(|_| "{}".to_owned());
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// `GET /transparency.html`
pub async fn html(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"))
        .body(page(&notice(&state)))
}

fn page(n: &Notice) -> String {
    let mut out = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>How your health and care record is shared</title>\n",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em;line-height:1.5}",
        "table{border-collapse:collapse}th,td{border:1px solid #555;padding:.3em .6em;text-align:left}</style>\n",
        "</head>\n<body>\n<main>\n<h1>How your health and care record is shared</h1>\n",
        "<p>These sharing agreements are in force today. Each says which organisations share parts ",
        "of your record, who may see them, for what, and how you can object.</p>\n",
    ));
    let list = |items: &[String]| -> String {
        if items.is_empty() { "none".to_owned() } else { escape(&items.join(", ")) }
    };
    for a in &n.agreements {
        let _ = write!(
            out,
            "<section>\n<h2>{title}</h2>\n<dl>\n<dt>Agreement</dt><dd>{id}, version {version}</dd>\n\
             <dt>Consent</dt><dd>{consent}</dd>\n<dt>In force</dt><dd>from {start}{end}</dd>\n\
             <dt>Shared by (data controllers)</dt><dd>{controllers}</dd>\n\
             <dt>Seen by (organisations)</dt><dd>{organisations}</dd>\n\
             <dt>Roles</dt><dd>{roles}</dd>\n<dt>Purposes</dt><dd>{purposes}</dd>\n\
             <dt>Parts of the record</dt><dd>{sections}</dd>\n\
             <dt>Only entries about</dt><dd>{only}</dd>\n<dt>Never entries about</dt><dd>{never}</dd>\n\
             <dt>Sensitive information shared</dt><dd>{sensitive}</dd>\n\
             <dt>How to object</dt><dd>{objection}</dd>\n</dl>\n</section>\n",
            title = escape(&a.title),
            id = escape(&a.id),
            version = a.version,
            consent = match a.consent_model {
                "explicit" => "only with your explicit agreement",
                "national-data-opt-out" => {
                    "de-identified, for planning and research, unless you registered a National Data Opt-out"
                }
                _ => "for your direct care, unless you object",
            },
            start = escape(&a.start),
            end = a.end.as_deref().map(|e| format!(" to {}", escape(e))).unwrap_or_default(),
            controllers = list(&a.controllers),
            organisations = list(&a.organisations),
            roles = list(&a.roles),
            purposes = escape(&a.purposes.join(", ")),
            sections = if a.sections == ["*"] { "the whole record".to_owned() } else { list(&a.sections) },
            only = if a.only_code_sets.is_empty() { "any".to_owned() } else { list(&a.only_code_sets) },
            never = list(&a.excluded_code_sets),
            sensitive = list(&a.sensitive),
            objection = escape(&a.objection),
        );
    }
    out.push_str(
        "<h2>Participating organisations</h2>\n<table>\n<thead><tr><th scope=\"col\">ODS code</th>\
         <th scope=\"col\">Takes part as</th><th scope=\"col\">Systems</th></tr></thead>\n<tbody>\n",
    );
    for o in &n.organisations {
        let roles: Vec<String> = o.roles.iter().map(|r| (*r).to_owned()).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.ods_code),
            list(&roles),
            list(&o.sources)
        );
    }
    out.push_str("</tbody>\n</table>\n</main>\n</body>\n</html>\n");
    out
}

/// Text as HTML text or attribute content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_agreement_text_is_shown_as_text() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
