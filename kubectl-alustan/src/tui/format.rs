//! Small text helpers shared by the views: ages like kubectl prints them, cell values.

use alustan_shared::Terraform;
use jiff::{SignedDuration, Timestamp};

/// An age the way kubectl prints it (`45s`, `3m12s`, `5h`, `2d3h`, `40d`, `2y`).
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let seconds = now.duration_since(since).as_secs().max(0);
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => with_rest(m, 'm', s % 60, 's'),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => with_rest(h, 'h', m % 60, 'm'),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 => with_rest(d, 'd', h % 24, 'h'),
        s if s < 2 * 365 * 86_400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

/// `5h2m`, but `5h` rather than `5h0m`, as kubectl prints.
fn with_rest(big: i64, big_unit: char, rest: i64, rest_unit: char) -> String {
    if rest == 0 { format!("{big}{big_unit}") } else { format!("{big}{big_unit}{rest}{rest_unit}") }
}

pub fn age_of(object: &Terraform, now: Timestamp) -> String {
    super::state::created(object).map_or_else(|| "<unknown>".to_owned(), |t| age(t, now))
}

pub fn state(object: &Terraform) -> &'static str {
    object.status.as_ref().and_then(|s| s.state).map_or("Pending", alustan_shared::State::as_str)
}

/// The state, marked while the last plan of the applied inputs found drift:
/// `Completed (drifted)`.
pub fn state_label(object: &Terraform) -> String {
    let state = state(object);
    if crate::plans::drifted(object) { format!("{state} (drifted)") } else { state.to_owned() }
}

/// The applied tag, or `<none>`.
pub fn applied(object: &Terraform) -> &str {
    object.status.as_ref().and_then(|s| s.applied.as_ref()).map_or("<none>", |a| a.tag.as_str())
}

/// The applied tag, and the tag of a newer deploy being tried or that failed: `1.0.1→1.0.3`
/// (`<none>→1.0.3` before anything was applied).
pub fn version(object: &Terraform) -> String {
    let status = object.status.as_ref();
    let applied = status.and_then(|s| s.applied.as_ref()).map(|a| a.tag.as_str());
    let tried = status
        .and_then(|s| s.history.iter().find(|r| r.action == alustan_shared::RunAction::Deploy))
        .filter(|r| r.result != alustan_shared::RunResult::Succeeded)
        .and_then(|r| r.tag.as_deref())
        .filter(|tag| Some(*tag) != applied);
    match (applied, tried) {
        (applied, Some(tried)) => format!("{}→{tried}", applied.unwrap_or("<none>")),
        (Some(applied), None) => applied.to_owned(),
        (None, None) => "<none>".to_owned(),
    }
}

pub fn ready(object: &Terraform) -> &str {
    object
        .status
        .as_ref()
        .and_then(|s| alustan_shared::conditions::find(&s.conditions, alustan_shared::conditions::READY))
        .map_or("Unknown", |c| c.status.as_str())
}

/// The status message on one line (messages may hold a log tail).
pub fn message(object: &Terraform) -> String {
    let text = object.status.as_ref().and_then(|s| s.message.as_deref()).unwrap_or("");
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ⏎ ")
}

/// Every output the CLI and the TUI show, labelled by where it comes from: `(name, from, value)`
/// with `from` `terraform` (`status.output`) or `post-deploy` (the post-deploy JSON's `outputs`).
pub fn output_rows(status: &alustan_shared::TerraformStatus) -> Vec<(String, &'static str, String)> {
    let mut rows: Vec<(String, &'static str, String)> =
        status.output.iter().map(|(name, v)| (name.clone(), "terraform", value(v))).collect();
    let post = status.post_deploy_output.as_ref().and_then(|o| o.get("outputs")).and_then(|o| o.as_object());
    rows.extend(post.into_iter().flatten().map(|(name, v)| (name.clone(), "post-deploy", value(v))));
    rows
}

/// A JSON value as a cell: strings bare, everything else as compact JSON.
pub fn value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time, now: Timestamp) -> String {
    format!("{} ({} ago)", t.0.strftime("%Y-%m-%d %H:%M:%SZ"), age(t.0, now))
}

pub fn elapsed(from: Timestamp, to: Timestamp) -> String {
    let d: SignedDuration = to.duration_since(from);
    let s = d.as_secs().max(0);
    if s < 60 { format!("{s}s") } else { with_rest(s / 60, 'm', s % 60, 's') }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        let now: Timestamp = "2026-01-10T00:00:00Z".parse().unwrap();
        let ago = |secs: i64| age(now - SignedDuration::from_secs(secs), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(200), "3m20s");
        assert_eq!(ago(3000), "50m");
        assert_eq!(ago(5 * 3600 + 120), "5h2m");
        assert_eq!(ago(30 * 3600), "30h");
        assert_eq!(ago(3 * 86_400 + 7200), "3d2h");
        assert_eq!(ago(5 * 3600), "5h");
        assert_eq!(ago(300), "5m");
        assert_eq!(ago(40 * 86_400), "40d");
        assert_eq!(ago(800 * 86_400), "2y");
        assert_eq!(ago(-5), "0s");
    }
}
